//! Tests of the lane kernels: every layout and epilogue against naive products, and the kernels
//! against each other bit for bit.

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::init::uniform;
use crate::matmul::naive_matmul;

fn max_abs_error(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn every_layout_matches_the_naive_product_and_accumulates() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (m, k, w) in [(1, 1, 16), (5, 3, 16), (6, 32, 32), (7, 33, 48), (13, 2049, 16), (48, 32, 64), (2050, 32, 48)] {
        let a = uniform((m, k), 1.0, &mut rng);
        let a_t = uniform((k, m), 1.0, &mut rng);
        let b = uniform((k, w), 1.0, &mut rng);
        let a_spread = uniform((m, 2 * k), 1.0, &mut rng);
        let tolerance = 1e-5 * (k as f32).sqrt() * 4.0;
        let every_other = a_spread.slice(ndarray::s![.., ..;2]);
        for (name, a_view) in [("A", a.view()), ("(Aᵀ)ᵀ", a_t.t()), ("A strided", every_other)] {
            let reference = naive_matmul(a_view, b.view());
            let mut out = Array2::from_elem((m, w), f32::NAN);
            lane_gemm(a_view, b.view(), 0.0, &mut out.view_mut());
            let error = max_abs_error(&out, &reference);
            assert!(error < tolerance, "{name} {m}x{k}x{w}: max error {error}");
            let mut accumulated = Array2::from_elem((m, w), 2.0f32);
            lane_gemm(a_view, b.view(), 1.0, &mut accumulated.view_mut());
            let error = max_abs_error(&accumulated, &(&reference + 2.0));
            assert!(error < tolerance, "{name} {m}x{k}x{w} accumulated: max error {error}");
        }
    }
}

#[test]
fn the_portable_tiles_agree_with_the_dispatched_kernel() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let (a, b) = (uniform((23, 40), 1.0, &mut rng), uniform((40, 32), 1.0, &mut rng));
    let mut dispatched = Array2::zeros((23, 32));
    lane_gemm(a.view(), b.view(), 0.0, &mut dispatched.view_mut());
    let mut portable_out = Array2::<f32>::zeros((23, 32));
    let op = Operands {
        a: a.as_ptr(),
        a_row: 40,
        a_k: 1,
        b: b.as_ptr(),
        ldb: 32,
        out: portable_out.as_mut_ptr(),
        ldo: 32,
        m: 23,
        k: 40,
        w: 32,
        epilogue: Epilogue::Overwrite,
        column_max: None,
    };
    portable(&op);
    assert!(max_abs_error(&dispatched, &portable_out) < 1e-5);
}

#[test]
fn the_avx512_and_avx2_kernels_give_the_same_bits() {
    if !(avx512() && avx2_fma()) {
        eprintln!("skipped: this CPU lacks AVX-512F or AVX2/FMA");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    // Every column plan (64s, 32s, one 48, 48 then 32, 48 then 64, 16 alone) and every
    // remainder tile size.
    let shapes = [(2050, 32, 48), (65, 600, 64), (31, 65, 80), (23, 40, 16), (12, 7, 112), (9, 300, 128), (14, 17, 96)];
    // Each shape in every addressing of `A`: `Aᵀ` stored (unit row stride), `A` row-major
    // (unit step), and both strides 2 or more.
    for ((m, k, w), (a_row, a_k)) in
        shapes.into_iter().flat_map(|(m, k, w)| [(1, m), (k, 1), (2 * k, 2)].map(move |strides| ((m, k, w), strides)))
    {
        let (a, b) = (uniform((1, 2 * m * k), 1.0, &mut rng), uniform((k, w), 1.0, &mut rng));
        let (mut wide, mut narrow) = (Array2::from_elem((m, w), 0.5f32), Array2::from_elem((m, w), 0.5f32));
        for (out, kernel) in [(&mut wide, 512), (&mut narrow, 2)] {
            let op = Operands {
                a: a.as_ptr(),
                a_row,
                a_k,
                b: b.as_ptr(),
                ldb: w,
                out: out.as_mut_ptr(),
                ldo: w,
                m,
                k,
                w,
                epilogue: Epilogue::Accumulate,
                column_max: None,
            };
            // SAFETY: both feature sets were detected above; `op` describes `b`, `out` and
            // an `A` inside `a` (its last element is at (m−1)·a_row + (k−1)·a_k < 2mk).
            #[allow(unsafe_code)]
            unsafe {
                if kernel == 512 {
                    avx512::lane_gemm(&op)
                } else {
                    avx2::lane_gemm(&op)
                }
            }
        }
        let strided = ndarray::ArrayView2::from_shape(
            ndarray::ShapeBuilder::strides((m, k), (a_row, a_k)),
            a.as_slice().unwrap(),
        )
        .unwrap();
        let reference = naive_matmul(strided, b.view()) + 0.5;
        let tolerance = 1e-5 * (k as f32).sqrt() * 4.0;
        assert!(max_abs_error(&wide, &reference) < tolerance, "{m}x{k}x{w} strides {a_row}, {a_k}");
        let same = wide.iter().zip(&narrow).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{m}x{k}x{w} strides {a_row}, {a_k}");
    }
}

/// Runs one kernel (`"portable"`, `"avx2"` or `"avx512"`) on `a · b` into `out`.
fn run_kernel(kernel: &str, a: &Array2<f32>, b: &Array2<f32>, epilogue: Epilogue<'_>, out: &mut Array2<f32>) {
    run_kernel_tracking(kernel, a, b, epilogue, None, out);
}

/// [`run_kernel`], keeping the running column maxima of `out` in `column_max` when given.
fn run_kernel_tracking(
    kernel: &str,
    a: &Array2<f32>,
    b: &Array2<f32>,
    epilogue: Epilogue<'_>,
    column_max: Option<&mut [f32]>,
    out: &mut Array2<f32>,
) {
    let ((m, k), w) = (a.dim(), b.ncols());
    let op = Operands {
        a: a.as_ptr(),
        a_row: k,
        a_k: 1,
        b: b.as_ptr(),
        ldb: w,
        out: out.as_mut_ptr(),
        ldo: w,
        m,
        k,
        w,
        epilogue,
        column_max: column_max.map(|max| {
            assert_eq!(max.len(), w, "a maximum per column");
            max.as_mut_ptr()
        }),
    };
    run_operands(kernel, &op);
}

/// Runs one kernel on operands that describe live arrays.
fn run_operands(kernel: &str, op: &Operands<'_>) {
    match kernel {
        "portable" => portable(op),
        // SAFETY: callers ask for a kernel only when the CPU has its features, with `op`
        // describing live arrays of its shapes.
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        "avx2" => unsafe { avx2::lane_gemm(op) },
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        "avx512" => unsafe { avx512::lane_gemm(op) },
        _ => unreachable!("kernel {kernel}"),
    }
}

/// The kernels [`run_kernel`] can run here: the portable one, then AVX2 and AVX-512 where
/// the CPU has them.
fn kernels_on_this_cpu() -> Vec<&'static str> {
    let mut kernels = vec!["portable"];
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            kernels.push("avx2");
        }
        if avx512() {
            kernels.push("avx512");
        }
    }
    kernels
}

/// On every kernel this CPU has, `a · b` stored through `epilogue` has the bits of the plain
/// product passed through `then`.
fn assert_epilogue_on_every_kernel(
    a: &Array2<f32>,
    b: &Array2<f32>,
    epilogue: Epilogue<'_>,
    then: impl Fn(Array2<f32>) -> Array2<f32>,
    what: &str,
) {
    let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let (m, w) = (a.nrows(), b.ncols());
    for kernel in kernels_on_this_cpu() {
        let mut product = Array2::zeros((m, w));
        run_kernel(kernel, a, b, Epilogue::Overwrite, &mut product);
        let mut ours = Array2::from_elem((m, w), f32::NAN);
        run_kernel(kernel, a, b, epilogue, &mut ours);
        assert_eq!(bits(&ours), bits(&then(product)), "{kernel} {what}");
    }
}

#[test]
fn row_bias_equals_the_product_then_the_bias_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (m, k, w) in [(2050, 32, 48), (37, 65, 32), (13, 300, 16), (5, 0, 16)] {
        let (a, b) = (uniform((m, k), 1.0, &mut rng), uniform((k, w), 1.0, &mut rng));
        let bias = uniform((1, m), 3.0, &mut rng).row(0).to_vec();
        let then_bias = |mut product: Array2<f32>| {
            for (row, &b) in product.rows_mut().into_iter().zip(&bias) {
                row.into_iter().for_each(|v| *v += b);
            }
            product
        };
        let mut product = Array2::zeros((m, w));
        lane_gemm(a.view(), b.view(), 0.0, &mut product.view_mut());
        let mut ours = Array2::from_elem((m, w), f32::NAN);
        lane_gemm_row_bias(a.view(), b.view(), &bias, &mut ours.view_mut());
        assert_eq!(bits(&ours), bits(&then_bias(product)), "dispatched {m}x{k}x{w}");
        if k == 0 {
            continue;
        }
        assert_epilogue_on_every_kernel(&a, &b, Epilogue::RowBias(&bias), then_bias, &format!("{m}x{k}x{w}"));
    }
}

#[test]
fn column_bias_and_relu_equal_the_product_then_the_pass_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(25);
    let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (m, k, w) in [(2050, 65, 64), (37, 64, 32), (13, 300, 48), (7, 3, 16), (5, 0, 16)] {
        let (mut a, b) = (uniform((m, k), 1.0, &mut rng), uniform((k, w), 1.0, &mut rng));
        if k > 0 {
            // A NaN sum and an exactly zero one: ReLU gives +0 for both, as `max(x, 0)` does.
            a.row_mut(0).fill(0.0);
            a[[m - 1, 0]] = f32::NAN;
        }
        let mut bias = uniform((1, w), 1.0, &mut rng).row(0).to_vec();
        bias[0] = -0.0;
        for relu in [false, true] {
            let then_pass = |mut product: Array2<f32>| {
                for mut row in product.rows_mut() {
                    for (v, &b) in row.iter_mut().zip(&bias) {
                        let z = *v + b;
                        *v = if !relu || z > 0.0 { z } else { 0.0 };
                    }
                }
                product
            };
            let mut product = Array2::zeros((m, w));
            lane_gemm(a.view(), b.view(), 0.0, &mut product.view_mut());
            let expected = then_pass(product);
            if relu {
                assert!(expected.iter().all(|v| *v >= 0.0 && v.to_bits() >> 31 == 0), "ReLU leaves +0 or more");
            }
            let mut ours = Array2::from_elem((m, w), f32::NAN);
            lane_gemm_column_bias(a.view(), b.view(), &bias, relu, &mut ours.view_mut());
            assert_eq!(bits(&ours), bits(&expected), "dispatched {m}x{k}x{w} relu {relu}");
            if k == 0 {
                continue;
            }
            let epilogue = Epilogue::ColumnBias { bias: &bias, relu };
            assert_epilogue_on_every_kernel(&a, &b, epilogue, then_pass, &format!("{m}x{k}x{w} relu {relu}"));
        }
    }
}

#[test]
fn column_maxima_equal_a_maxps_pass_over_the_output_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(27);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let pass = |out: &Array2<f32>| {
        let mut max = vec![f32::NEG_INFINITY; out.ncols()];
        for row in out.rows() {
            max.iter_mut().zip(row).for_each(|(m, &v)| *m = if *m > v { *m } else { v });
        }
        max
    };
    let kernels = kernels_on_this_cpu();
    // Every column plan of the AVX-512 kernel and remainder tiles of every size.
    for (m, k, w) in [(2050, 32, 48), (37, 64, 32), (13, 300, 64), (31, 65, 80), (7, 3, 16), (5, 0, 16)] {
        let mut a = uniform((m, k), 1.0, &mut rng);
        let b = uniform((k, w), 1.0, &mut rng);
        if k > 0 {
            // A NaN row in the middle (the next row replaces it) and one at the end (kept).
            a[[m / 2, 0]] = f32::NAN;
            a[[m - 1, k - 1]] = f32::NAN;
        }
        let bias = uniform((1, m), 3.0, &mut rng).row(0).to_vec();
        for bias in [None, Some(&bias[..])] {
            let mut out = Array2::from_elem((m, w), 7.0f32);
            let mut max = vec![0.0; w];
            lane_gemm_column_max(a.view(), b.view(), bias, &mut max, &mut out.view_mut());
            let mut expected = Array2::from_elem((m, w), 7.0f32);
            match bias {
                Some(bias) => lane_gemm_row_bias(a.view(), b.view(), bias, &mut expected.view_mut()),
                None => lane_gemm(a.view(), b.view(), 0.0, &mut expected.view_mut()),
            }
            assert_eq!(bits(out.as_slice().unwrap()), bits(expected.as_slice().unwrap()), "{m}x{k}x{w} values");
            assert_eq!(bits(&max), bits(&pass(&out)), "dispatched {m}x{k}x{w} bias {}", bias.is_some());
            if k == 0 {
                continue;
            }
            assert!(max.iter().all(|v| v.is_nan()), "the last row's NaN is kept");
            for &kernel in &kernels {
                let mut out = Array2::from_elem((m, w), 7.0f32);
                let mut max = vec![f32::NEG_INFINITY; w];
                let epilogue = bias.map_or(Epilogue::Overwrite, Epilogue::RowBias);
                run_kernel_tracking(kernel, &a, &b, epilogue, Some(&mut max), &mut out);
                assert_eq!(bits(&max), bits(&pass(&out)), "{kernel} {m}x{k}x{w}");
            }
        }
        // Without the last NaN row, the middle one's is replaced: the maxima are numbers.
        let rows = m - 1;
        let mut max = vec![0.0; w];
        let mut out = Array2::zeros((rows, w));
        lane_gemm_column_max(a.slice(ndarray::s![..rows, ..]), b.view(), None, &mut max, &mut out.view_mut());
        assert_eq!(bits(&max), bits(&pass(&out)), "{rows}x{k}x{w} without the last row");
        if k > 0 && rows > m / 2 + 1 {
            assert!(max.iter().all(|v| v.is_finite()), "{max:?}");
        }
    }
}

#[test]
#[should_panic(expected = "3 maxima for 16 columns")]
fn a_maximum_per_column_is_required() {
    let (a, b) = (Array2::<f32>::zeros((4, 2)), Array2::<f32>::zeros((2, 16)));
    lane_gemm_column_max(a.view(), b.view(), None, &mut [0.0; 3], &mut Array2::zeros((4, 16)).view_mut());
}

#[test]
fn product_column_bias_off_the_lanes_adds_the_bias_after_the_blas_product() {
    let mut rng = ChaCha8Rng::seed_from_u64(26);
    let (a, b) = (uniform((9, 5), 1.0, &mut rng), uniform((5, 10), 1.0, &mut rng));
    let bias = uniform((1, 10), 1.0, &mut rng).row(0).to_vec();
    let mut ours = Array2::from_elem((9, 10), f32::NAN);
    product_column_bias(a.view(), b.view(), &bias, true, &mut ours.view_mut());
    let expected = (naive_matmul(a.view(), b.view()) + ndarray::ArrayView1::from(&bias)).mapv(|v| v.max(0.0));
    assert!(max_abs_error(&ours, &expected) < 1e-5, "{ours} vs {expected}");
}

#[test]
#[should_panic(expected = "3 biases for 4 rows")]
fn a_bias_per_row_is_required() {
    let (a, b) = (Array2::<f32>::zeros((4, 2)), Array2::<f32>::zeros((2, 16)));
    lane_gemm_row_bias(a.view(), b.view(), &[0.0; 3], &mut Array2::zeros((4, 16)).view_mut());
}

#[test]
fn empty_inner_dimension_overwrites_with_zeros_or_keeps() {
    let (a, b) = (Array2::<f32>::zeros((3, 0)), Array2::<f32>::zeros((0, 16)));
    let mut out = Array2::from_elem((3, 16), 5.0f32);
    lane_gemm(a.view(), b.view(), 1.0, &mut out.view_mut());
    assert!(out.iter().all(|&v| v == 5.0));
    lane_gemm(a.view(), b.view(), 0.0, &mut out.view_mut());
    assert!(out.iter().all(|&v| v == 0.0));
}

#[test]
#[should_panic(expected = "multiple of 16")]
fn widths_off_the_lane_count_are_refused() {
    let (a, b) = (Array2::<f32>::zeros((3, 2)), Array2::<f32>::zeros((2, 10)));
    lane_gemm(a.view(), b.view(), 0.0, &mut Array2::zeros((3, 10)).view_mut());
}

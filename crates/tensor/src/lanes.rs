//! `lane_gemm`: a small GEMM for the thin products of a fused softmax step, on data that stays
//! in the L2 cache.
//!
//! ```text
//! out (m × w)  =  A (m × k) · B (k × w)      (or out += A·B)
//! ```
//!
//! `B` and `out` are row-major with `w` a multiple of [`LANES`]; `A` may have any positive
//! strides, so `Aᵀ` of a row-major block is passed as `block.t()` without a copy. That covers all
//! three products of the in-batch softmax over a block of queries held candidate-major
//! (`Eᵀ`, one row per candidate):
//!
//! ```text
//! Eᵀ  = C · Qᵀ       (n × d)·(d × r)     the block's logits, one row per candidate
//! dQ̂  = (Eᵀ)ᵀ · C    (r × n)·(n × d)     the query gradient before its row scale
//! dC += Eᵀ · Q̃       (n × r)·(r × d)     the candidate gradient
//! ```
//!
//! OpenBLAS repacks both operands on every call; for these shapes (one side 32 wide, blocks of
//! tens of rows) the repacking and the call overhead cost as much as the arithmetic. Here
//! nothing is packed: a tile of `MR` rows of `out` × 16 columns lives in 12 registers, each step
//! of `k` broadcasts `MR` values of `A` and loads 16 values of `B`.
//!
//! **Kernels.** x86-64 CPUs with AVX-512F run 24-register tiles (6 × 64, 12 × 32, 8 × 48 or 24 × 16);
//! others with AVX2 and FMA run `MR = 6` rows of two 8-lane accumulators; the rest run the AVX2
//! tiling in portable Rust. The AVX-512 and AVX2 kernels give the same bits (tested). The order of
//! the additions is the same in both: for each output element, `k` in increasing order within
//! chunks of 256 whose partial sums are then added in order, one fused (AVX2) or separate
//! (portable) multiply-add at a time, so the two differ only by the rounding of the fused
//! multiply-add.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Columns of `B` and `out` one tile covers; `w` must be a multiple of it.
pub const LANES: usize = 16;
/// Rows of `out` one tile covers.
const MR: usize = 6;
/// Steps of `k` summed in registers before they are added to the running total: a two-level
/// sum whose rounding error grows with `K_CHUNK + k / K_CHUNK` instead of `k` (the long `k`
/// is the `N` candidates of the query-gradient product).
const K_CHUNK: usize = 256;

/// `out = A·B + beta·out` with `beta` 0 (overwrite) or 1 (accumulate).
///
/// # Shapes
/// `a: (m, k)` with non-negative strides, `b: (k, w)` and `out: (m, w)` row-major with unit
/// column stride, `w % LANES == 0`.
///
/// # Panics
/// On mismatched shapes, `w` not a multiple of [`LANES`], `b` or `out` not row-major with unit
/// column stride, negative strides of `a`, or `beta` other than 0 or 1.
#[track_caller]
pub fn lane_gemm(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, beta: f32, out: &mut ArrayViewMut2<'_, f32>) {
    assert!(beta == 0.0 || beta == 1.0, "lane_gemm: beta {beta}; need 0 or 1");
    let epilogue = if beta == 1.0 { Epilogue::Accumulate } else { Epilogue::Overwrite };
    checked_gemm(a, b, epilogue, out);
}

/// `out = A·B + bias·1ᵀ`: row `i` of the product plus `bias[i]` in every column, added as each
/// tile is stored, so the result has the bits of [`lane_gemm`] followed by a pass adding
/// `bias[i]` to row `i`, without that pass over `out` (the fused softmax's logQ correction,
/// one bias per candidate row of a block).
///
/// # Shapes
/// As [`lane_gemm`], and `bias: (m)`.
///
/// # Panics
/// As [`lane_gemm`], and if `bias` is not `m` long.
#[track_caller]
pub fn lane_gemm_row_bias(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    bias: &[f32],
    out: &mut ArrayViewMut2<'_, f32>,
) {
    assert_eq!(bias.len(), a.nrows(), "lane_gemm_row_bias: {} biases for {} rows", bias.len(), a.nrows());
    checked_gemm(a, b, Epilogue::RowBias(bias), out);
}

/// `out = A·B (+ bias·1ᵀ)` as [`lane_gemm`] or [`lane_gemm_row_bias`], and `column_max[j]` the
/// largest value of column `j` of `out`, found as each tile is stored (a softmax down the
/// columns then needs no pass of its own to find them).
///
/// The maximum runs down the rows in order from `−∞`, as `m = if m > v { m } else { v }`: the
/// x86 `maxps` instruction a vector pass over `out` uses, so the bits equal such a pass's, a
/// NaN or `±0` included (a NaN replaces the running maximum, and the next value replaces it).
///
/// # Shapes
/// As [`lane_gemm`], `bias: (m)` and `column_max: (w)`.
///
/// # Panics
/// As [`lane_gemm`], and if `bias` is not `m` or `column_max` not `w` long.
#[track_caller]
pub fn lane_gemm_column_max(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    bias: Option<&[f32]>,
    column_max: &mut [f32],
    out: &mut ArrayViewMut2<'_, f32>,
) {
    let w = b.ncols();
    assert_eq!(column_max.len(), w, "lane_gemm_column_max: {} maxima for {w} columns", column_max.len());
    let epilogue = match bias {
        Some(bias) => {
            assert_eq!(bias.len(), a.nrows(), "lane_gemm_column_max: {} biases for {} rows", bias.len(), a.nrows());
            Epilogue::RowBias(bias)
        }
        None => Epilogue::Overwrite,
    };
    column_max.fill(f32::NEG_INFINITY);
    let ran = checked_gemm_tracking(a, b, epilogue, Some(column_max.as_mut_ptr()), out);
    if !ran {
        // No tile ran (`k == 0` or an empty output): the maxima of what was written.
        for row in out.rows() {
            column_max.iter_mut().zip(row).for_each(|(m, &v)| *m = running_max(*m, v));
        }
    }
}

/// One step of a running maximum as `maxps(m, v)` computes it: `m` if `m > v`, else `v`.
#[inline(always)]
fn running_max(m: f32, v: f32) -> f32 {
    if m > v {
        m
    } else {
        v
    }
}

/// `out = act(A·B + 1·biasᵀ)`: column `j` of the product plus `bias[j]`, then `max(·, 0)`
/// when `relu`, as each tile is stored (a dense layer's bias and ReLU without a pass over its
/// output). The bits are those of [`lane_gemm`] followed by `(v + bias[j]).max(0.0)`.
///
/// # Shapes
/// As [`lane_gemm`], and `bias: (w)`.
///
/// # Panics
/// As [`lane_gemm`], and if `bias` is not `w` long.
#[track_caller]
pub fn lane_gemm_column_bias(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    bias: &[f32],
    relu: bool,
    out: &mut ArrayViewMut2<'_, f32>,
) {
    assert_eq!(bias.len(), b.ncols(), "lane_gemm_column_bias: {} biases for {} columns", bias.len(), b.ncols());
    checked_gemm(a, b, Epilogue::ColumnBias { bias, relu }, out);
}

/// `v + bias`, then, when `relu`, itself if positive and `+0` otherwise (a NaN too), as
/// `max(x, 0)` does in the vector kernels.
#[inline]
fn column_bias(v: f32, bias: f32, relu: bool) -> f32 {
    let z = v + bias;
    match relu {
        true if z > 0.0 => z,
        true => 0.0,
        false => z,
    }
}

/// Checks the operands of [`lane_gemm`] and runs the kernel this CPU has.
#[track_caller]
fn checked_gemm(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    epilogue: Epilogue<'_>,
    out: &mut ArrayViewMut2<'_, f32>,
) {
    checked_gemm_tracking(a, b, epilogue, None, out);
}

/// [`checked_gemm`], with the running column maxima of `out` kept in `column_max` (`w` values,
/// `−∞` to start) when given. Returns whether the tiles ran (else `out` was empty or filled
/// without them, `k == 0`, and `column_max` is untouched).
#[track_caller]
fn checked_gemm_tracking(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    epilogue: Epilogue<'_>,
    column_max: Option<*mut f32>,
    out: &mut ArrayViewMut2<'_, f32>,
) -> bool {
    // The vector kernels' stores keep maxima for these epilogues only (the public functions
    // ask for no other).
    debug_assert!(
        column_max.is_none() || matches!(epilogue, Epilogue::Overwrite | Epilogue::RowBias(_)),
        "lane_gemm: column maxima with an accumulating or column-bias epilogue"
    );
    let (m, k) = a.dim();
    let w = b.ncols();
    assert_eq!(b.nrows(), k, "lane_gemm: A {:?} · B {:?}", a.dim(), b.dim());
    assert_eq!(out.dim(), (m, w), "lane_gemm: out {:?} for A {:?} · B {:?}", out.dim(), a.dim(), b.dim());
    assert!(w.is_multiple_of(LANES), "lane_gemm: {w} columns; need a multiple of {LANES}");
    let row_major = |strides: &[isize], rows: usize| rows == 0 || w == 0 || strides[1] == 1;
    assert!(row_major(b.strides(), k), "lane_gemm: B strides {:?} are not row-major", b.strides());
    assert!(row_major(out.strides(), m), "lane_gemm: out strides {:?} are not row-major", out.strides());
    assert!(a.strides().iter().all(|&s| s >= 0), "lane_gemm: A strides {:?} are negative", a.strides());
    if m == 0 || w == 0 {
        return false;
    }
    if k == 0 {
        match epilogue {
            Epilogue::Overwrite => out.fill(0.0),
            Epilogue::Accumulate => {}
            Epilogue::RowBias(bias) => {
                for (mut row, &value) in out.rows_mut().into_iter().zip(bias) {
                    row.fill(0.0 + value);
                }
            }
            Epilogue::ColumnBias { bias, relu } => {
                for mut row in out.rows_mut() {
                    row.iter_mut().zip(bias).for_each(|(o, &b)| *o = column_bias(0.0, b, relu));
                }
            }
        }
        return false;
    }
    let operands = Operands {
        a: a.as_ptr(),
        a_row: a.strides()[0] as usize,
        a_k: a.strides()[1] as usize,
        b: b.as_ptr(),
        ldb: b.strides()[0] as usize,
        out: out.as_mut_ptr(),
        ldo: out.strides()[0] as usize,
        m,
        k,
        w,
        epilogue,
        column_max,
    };
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512F (checked), `w` is a multiple of 16, and `operands`
        // describes the views above, as for the AVX2 kernel.
        #[allow(unsafe_code)]
        unsafe {
            avx512::lane_gemm(&operands)
        };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked), and `operands` describes the views above:
        // every offset the kernel forms is `row·stride + col` of an in-bounds element.
        #[allow(unsafe_code)]
        unsafe {
            avx2::lane_gemm(&operands)
        };
        return true;
    }
    portable(&operands);
    true
}

/// `out = A·B + beta·out` on [`lane_gemm`] when the layouts allow it (`B` and `out` row-major
/// with unit column stride, `w` a multiple of [`LANES`], `beta` 0 or 1), else on ndarray's
/// `general_mat_mul` (BLAS with the `blas` feature). For the thin products of dense layers,
/// where a BLAS call's packing costs as much as its arithmetic.
///
/// # Panics
/// On mismatched shapes.
#[track_caller]
pub fn product(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, beta: f32, out: &mut ArrayViewMut2<'_, f32>) {
    if fits_lanes(a, b, out) && (beta == 0.0 || beta == 1.0) {
        lane_gemm(a, b, beta, out);
    } else {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, beta, out);
    }
}

/// `out = act(A·B + 1·biasᵀ)` on [`lane_gemm_column_bias`] when the layouts allow it (as
/// [`product`]), else on ndarray's `general_mat_mul` followed by a pass adding the bias: the
/// same bits either way when the GEMMs agree.
///
/// # Panics
/// On mismatched shapes, or `bias` not `b.ncols()` long.
#[track_caller]
pub fn product_column_bias(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    bias: &[f32],
    relu: bool,
    out: &mut ArrayViewMut2<'_, f32>,
) {
    if fits_lanes(a, b, out) {
        lane_gemm_column_bias(a, b, bias, relu, out);
    } else {
        assert_eq!(bias.len(), b.ncols(), "product_column_bias: {} biases for {} columns", bias.len(), b.ncols());
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, out);
        for mut row in out.rows_mut() {
            row.iter_mut().zip(bias).for_each(|(o, &b)| *o = column_bias(*o, b, relu));
        }
    }
}

/// Whether [`lane_gemm`] takes these operands: `B` and `out` row-major with unit column stride,
/// `w` a multiple of [`LANES`], `A` with non-negative strides.
fn fits_lanes(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, out: &ArrayViewMut2<'_, f32>) -> bool {
    let unit_columns = |strides: &[isize], rows: usize, cols: usize| rows == 0 || cols == 0 || strides[1] == 1;
    b.ncols().is_multiple_of(LANES)
        && unit_columns(b.strides(), b.nrows(), b.ncols())
        && unit_columns(out.strides(), out.nrows(), out.ncols())
        && a.strides().iter().all(|&s| s >= 0)
}

/// Whether [`lane_gemm`] runs its AVX2/FMA kernel on this CPU.
pub fn uses_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX-512 kernels run: the CPU has AVX-512F and the environment variable
/// `TWOTOWER_NO_AVX512` is unset. Setting it runs the AVX2 kernels instead (the same bits, see
/// the tests), to measure on an AVX-512 machine what an AVX2-only one runs.
pub fn avx512_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ENABLED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f") && std::env::var_os("TWOTOWER_NO_AVX512").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    avx512_enabled()
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Raw views of the three operands, checked by [`lane_gemm`].
struct Operands<'a> {
    a: *const f32,
    a_row: usize,
    a_k: usize,
    b: *const f32,
    ldb: usize,
    out: *mut f32,
    ldo: usize,
    m: usize,
    k: usize,
    w: usize,
    epilogue: Epilogue<'a>,
    /// `w` running column maxima of `out` to update as tiles are stored (rows in order, see
    /// [`lane_gemm_column_max`]), when given; with the `Overwrite` and `RowBias` epilogues only.
    column_max: Option<*mut f32>,
}

/// What a tile does with its sums when it stores them.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    /// `out = sums`.
    Overwrite,
    /// `out = sums + out`.
    Accumulate,
    /// `out = sums + bias[row]`, `bias` holding `m` values.
    RowBias(&'a [f32]),
    /// `out = sums + bias[col]`, then `max(·, 0)` when `relu`; `bias` holding `w` values.
    ColumnBias { bias: &'a [f32], relu: bool },
}

/// The epilogues as const parameters of the vector kernels' stores: `out = sums`.
const OVERWRITE: u8 = 0;
/// `out = sums + out`.
const ACCUMULATE: u8 = 1;
/// `out = sums + bias[row]`.
const ROW_BIAS: u8 = 2;
/// `out = sums + bias[col]`.
const COLUMN_BIAS: u8 = 3;
/// `out = max(sums + bias[col], 0)`.
const COLUMN_BIAS_RELU: u8 = 4;

/// The same tiles in portable Rust (any CPU), by index arithmetic on slices rebuilt from the
/// checked views.
fn portable(op: &Operands<'_>) {
    for row0 in (0..op.m).step_by(MR) {
        let rows = MR.min(op.m - row0);
        for col0 in (0..op.w).step_by(LANES) {
            let mut acc = [[0.0f32; LANES]; MR];
            for chunk in (0..op.k).step_by(K_CHUNK) {
                let mut partial = [[0.0f32; LANES]; MR];
                for kk in chunk..(chunk + K_CHUNK).min(op.k) {
                    // SAFETY: row0 + r < m, kk < k, col0 + LANES ≤ w: in bounds of A and B.
                    #[allow(unsafe_code)]
                    let b_row = unsafe { std::slice::from_raw_parts(op.b.add(kk * op.ldb + col0), LANES) };
                    for (r, partial_row) in partial.iter_mut().enumerate().take(rows) {
                        #[allow(unsafe_code)]
                        let a_value = unsafe { *op.a.add((row0 + r) * op.a_row + kk * op.a_k) };
                        for (p, &b) in partial_row.iter_mut().zip(b_row) {
                            *p += a_value * b;
                        }
                    }
                }
                if chunk == 0 {
                    acc = partial;
                } else {
                    for (acc_row, partial_row) in acc.iter_mut().zip(&partial) {
                        acc_row.iter_mut().zip(partial_row).for_each(|(a, p)| *a += p);
                    }
                }
            }
            for (r, acc_row) in acc.iter().enumerate().take(rows) {
                // SAFETY: row0 + r < m and col0 + LANES ≤ w: in bounds of `out`.
                #[allow(unsafe_code)]
                let out_row = unsafe { std::slice::from_raw_parts_mut(op.out.add((row0 + r) * op.ldo + col0), LANES) };
                for (c, (o, &v)) in out_row.iter_mut().zip(acc_row).enumerate() {
                    *o = match op.epilogue {
                        Epilogue::Overwrite => v,
                        Epilogue::Accumulate => *o + v,
                        Epilogue::RowBias(bias) => v + bias[row0 + r],
                        Epilogue::ColumnBias { bias, relu } => column_bias(v, bias[col0 + c], relu),
                    };
                    if let Some(max) = op.column_max {
                        // SAFETY: col0 + c < w, and `column_max` holds `w` values.
                        #[allow(unsafe_code)]
                        unsafe {
                            *max.add(col0 + c) = running_max(*max.add(col0 + c), *o)
                        };
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests;

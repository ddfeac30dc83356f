//! The element-wise start of a dense layer's backward pass: `dz = dy ⊙ act'(z)` and the column
//! sums `Σ_rows dz` that become the bias gradient, in one pass over row-major blocks.
//!
//! The workspace is compiled for baseline x86-64 (SSE2); on CPUs with AVX2 the same loops run
//! compiled for it (eight columns per instruction instead of four). Neither fuses a multiply
//! with an add, and each column's sum runs down the rows in order in both, so the two give the
//! same bits.

/// `sums[j] += Σ_i rows[i, j]` for a row-major block of `width`-wide rows, row by row.
///
/// # Panics
/// If `rows.len()` is not a multiple of `width` or `sums` is not `width` long.
#[track_caller]
pub(crate) fn add_column_sums(rows: &[f32], width: usize, sums: &mut [f32]) {
    if check(rows.len(), width, sums.len()) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        #[allow(unsafe_code)]
        return unsafe { add_column_sums_avx2(rows, width, sums) };
    }
    add_column_sums_kernel(rows, width, sums);
}

/// `dz = if y > 0 { dy } else { 0 }` element-wise (ReLU's derivative at its output `y`, 0 at
/// 0 as TF takes it) and `sums[j] += Σ_i dz[i, j]`, for row-major blocks of `width`-wide rows.
///
/// # Panics
/// If the three blocks differ in length, their length is not a multiple of `width`, or `sums`
/// is not `width` long.
#[track_caller]
pub(crate) fn relu_grad_with_sums(dy: &[f32], y: &[f32], dz: &mut [f32], width: usize, sums: &mut [f32]) {
    assert!(
        dy.len() == y.len() && dz.len() == y.len(),
        "relu_grad_with_sums: {} dy, {} y, {} dz",
        dy.len(),
        y.len(),
        dz.len()
    );
    if check(y.len(), width, sums.len()) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        #[allow(unsafe_code)]
        return unsafe { relu_grad_with_sums_avx2(dy, y, dz, width, sums) };
    }
    relu_grad_with_sums_kernel(dy, y, dz, width, sums);
}

/// Checks the shapes; true when there is nothing to do (rows of width 0, a layer of 0 units).
#[track_caller]
fn check(len: usize, width: usize, sums: usize) -> bool {
    assert!(len.is_multiple_of(width), "column sums: {len} values in rows of {width}");
    assert_eq!(sums, width, "column sums: {sums} sums for {width} columns");
    width == 0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_column_sums_avx2(rows: &[f32], width: usize, sums: &mut [f32]) {
    add_column_sums_kernel(rows, width, sums);
}

#[inline(always)]
fn add_column_sums_kernel(rows: &[f32], width: usize, sums: &mut [f32]) {
    for row in rows.chunks_exact(width) {
        sums.iter_mut().zip(row).for_each(|(sum, &v)| *sum += v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn relu_grad_with_sums_avx2(dy: &[f32], y: &[f32], dz: &mut [f32], width: usize, sums: &mut [f32]) {
    relu_grad_with_sums_kernel(dy, y, dz, width, sums);
}

#[inline(always)]
fn relu_grad_with_sums_kernel(dy: &[f32], y: &[f32], dz: &mut [f32], width: usize, sums: &mut [f32]) {
    let rows = dz.chunks_exact_mut(width).zip(dy.chunks_exact(width)).zip(y.chunks_exact(width));
    for ((dz_row, dy_row), y_row) in rows {
        for ((dz, &d), &y) in dz_row.iter_mut().zip(dy_row).zip(y_row) {
            *dz = if y > 0.0 { d } else { 0.0 };
        }
        sums.iter_mut().zip(&*dz_row).for_each(|(sum, &v)| *sum += v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block with zeros, negative zeros, NaNs and values of every size, `rows × width`.
    fn block(rows: usize, width: usize, seed: u32) -> Vec<f32> {
        (0..rows * width)
            .map(|i| match (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 11 {
                0 => 0.0,
                1 => -0.0,
                2 if seed == 3 => f32::NAN,
                k => ((i * 7919 % 1000) as f32 - 500.0) * 10f32.powi(k as i32 - 6),
            })
            .collect()
    }

    #[test]
    fn both_builds_equal_a_plain_loop_bit_for_bit() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (rows, width) in [(2048, 64), (37, 32), (5, 13), (1, 1)] {
            let (dy, y) = (block(rows, width, 1), block(rows, width, 3));
            let mut plain_dz = vec![0.0; rows * width];
            let mut plain_sums = vec![0.5; width];
            let mut plain_linear = vec![0.5; width];
            for i in 0..rows {
                for j in 0..width {
                    let k = i * width + j;
                    plain_dz[k] = if y[k] > 0.0 { dy[k] } else { 0.0 };
                    plain_sums[j] += plain_dz[k];
                    plain_linear[j] += dy[k];
                }
            }
            let (mut dz, mut sums, mut linear) = (vec![f32::NAN; rows * width], vec![0.5; width], vec![0.5; width]);
            relu_grad_with_sums(&dy, &y, &mut dz, width, &mut sums);
            add_column_sums(&dy, width, &mut linear);
            assert_eq!(bits(&dz), bits(&plain_dz), "{rows}x{width} dz");
            assert_eq!(bits(&sums), bits(&plain_sums), "{rows}x{width} sums");
            assert_eq!(bits(&linear), bits(&plain_linear), "{rows}x{width} linear sums");
            let (mut dz, mut sums, mut linear) = (vec![f32::NAN; rows * width], vec![0.5; width], vec![0.5; width]);
            relu_grad_with_sums_kernel(&dy, &y, &mut dz, width, &mut sums);
            add_column_sums_kernel(&dy, width, &mut linear);
            assert_eq!(
                (bits(&dz), bits(&sums), bits(&linear)),
                (bits(&plain_dz), bits(&plain_sums), bits(&plain_linear))
            );
        }
    }

    #[test]
    fn rows_of_width_zero_have_nothing_to_sum() {
        add_column_sums(&[], 0, &mut []);
        relu_grad_with_sums(&[], &[], &mut [], 0, &mut []);
    }

    #[test]
    #[should_panic(expected = "3 sums for 4 columns")]
    fn a_sum_per_column_is_required() {
        add_column_sums(&[0.0; 8], 4, &mut [0.0; 3]);
    }
}

//! One row of a numerically stable softmax (`exp(s − max)` and its sum), and the exponential it uses.

/// `exp(x)` for f32 in straight-line code the compiler can vectorise.
///
/// Cody-Waite range reduction `x = n·ln2 + r` with `|r| ≤ ln2/2`, then a degree-6 minimax
/// polynomial (Cephes' `expf` coefficients), then `2ⁿ` by exponent arithmetic. The relative error
/// is below 2 ulp on the range used here; inputs below −87.3 give exactly 0 (as `exp` underflows),
/// inputs above 88 are clamped (the softmax never produces positive inputs).
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let underflow = x < -87.33;
    let x = x.clamp(-87.33, 88.0);
    // Round to nearest with the 1.5·2²³ trick: plain adds, so it vectorises without SSE4.1.
    const ROUNDER: f32 = 12_582_912.0;
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    // The same n as an integer, read from the mantissa (a float-to-int cast would not vectorise).
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n is within [-126, 127] after the clamp, so the exponent field is in range.
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    let value = y * scale;
    if underflow {
        0.0
    } else {
        value
    }
}

/// The max and the sum of one row, after [`exp_row`] replaced it by `exp(s − max)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowExp {
    /// `max_j s_j`.
    pub max: f32,
    /// `Σ_j exp(s_j − max)`.
    pub sum: f32,
}

impl RowExp {
    /// `logsumexp(s)`, in f64.
    pub fn logsumexp(&self) -> f64 {
        f64::from(self.max) + f64::from(self.sum).ln()
    }
}

/// Overwrites `s` with `exp(s − max(s))` and returns the max and the sum, so that
/// `softmax(s) = s / sum` afterwards.
///
/// The max and the sum run in eight interleaved f32 lanes combined in a fixed order, so the
/// result depends only on the row (not on threads or CPU). On x86-64 CPUs with AVX2 the same
/// code runs compiled for AVX2; multiplications and additions are never fused, so both builds
/// give bit-identical results.
pub fn exp_row(s: &mut [f32]) -> RowExp {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        #[allow(unsafe_code)]
        return unsafe { exp_row_avx2(s) };
    }
    exp_row_kernel(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exp_row_avx2(s: &mut [f32]) -> RowExp {
    exp_row_kernel(s)
}

#[inline(always)]
fn exp_row_kernel(s: &mut [f32]) -> RowExp {
    let mut max_lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        for (m, &v) in max_lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    for (m, &v) in max_lanes.iter_mut().zip(chunks.remainder()) {
        *m = if v > *m { v } else { *m };
    }
    let max = max_lanes.iter().copied().fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    let mut lanes = [0f32; 8];
    let mut chunks = s.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let chunk: &mut [f32; 8] = chunk.try_into().expect("chunks of 8");
        let mut e = [0f32; 8];
        for i in 0..8 {
            e[i] = fast_exp(chunk[i] - max);
        }
        *chunk = e;
        for (lane, v) in lanes.iter_mut().zip(e) {
            *lane += v;
        }
    }
    for (lane, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
        *v = fast_exp(*v - max);
        *lane += *v;
    }
    let sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    RowExp { max, sum }
}

/// The column-wise [`exp_row`] of a candidate-major block, where column `i` holds query `i`'s
/// logits: replaces every element by `exp(v − max_i)` and writes each column's max and sum.
///
/// # Shapes
/// `block: (rows, width)` row-major as a flat slice, `max` and `sum`: `(width)`.
///
/// The sum runs down each column in row order, in partial sums of 64 rows added in order, so
/// the result depends only on the block and the CPU. CPUs with AVX2 and FMA (and `width` a
/// multiple of 8) run an intrinsics kernel that evaluates the same polynomial with fused
/// multiply-adds: within an ulp or two of the portable code, not bit-identical to it.
///
/// # Panics
/// If `block.len()` is not a multiple of `width` or `max`/`sum` are not `width` long.
#[track_caller]
pub fn exp_columns(block: &mut [f32], width: usize, max: &mut [f32], sum: &mut [f32]) {
    assert!(width > 0 && block.len().is_multiple_of(width), "exp_columns: {} values in rows of {width}", block.len());
    assert!(
        max.len() == width && sum.len() == width,
        "exp_columns: {} maxima, {} sums for {width} columns",
        max.len(),
        sum.len()
    );
    #[cfg(target_arch = "x86_64")]
    if width.is_multiple_of(crate::columns_avx512::LANES) && tensor::lanes::avx512_enabled() {
        // SAFETY: the CPU supports AVX-512F (`avx512_enabled` checks it); the shapes were checked.
        #[allow(unsafe_code)]
        return unsafe { crate::columns_avx512::exp_columns(block, width, max, sum) };
    }
    #[cfg(target_arch = "x86_64")]
    if width.is_multiple_of(8)
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above; the shapes were checked.
        #[allow(unsafe_code)]
        return unsafe { columns_avx2::exp_columns(block, width, max, sum) };
    }
    exp_columns_kernel(block, width, max, sum)
}

#[inline(always)]
fn exp_columns_kernel(block: &mut [f32], width: usize, max: &mut [f32], sum: &mut [f32]) {
    max.fill(f32::NEG_INFINITY);
    for row in block.chunks_exact(width) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = if v > *m { v } else { *m };
        }
    }
    // Sixteen columns at a time, down every row: fixed-size arrays that compile to vector code.
    let rows = block.len() / width;
    for first in (0..width).step_by(COLUMN_LANES) {
        let columns = first..(first + COLUMN_LANES).min(width);
        let mut column_max = [0f32; COLUMN_LANES];
        column_max[..columns.len()].copy_from_slice(&max[columns.clone()]);
        let mut total = [0f32; COLUMN_LANES];
        for chunk in (0..rows).step_by(SUM_CHUNK_ROWS) {
            let mut partial = [0f32; COLUMN_LANES];
            for row in chunk..(chunk + SUM_CHUNK_ROWS).min(rows) {
                let values = &mut block[row * width + columns.start..row * width + columns.end];
                if let Ok(values) = <&mut [f32; COLUMN_LANES]>::try_from(&mut *values) {
                    for lane in 0..COLUMN_LANES {
                        let e = fast_exp(values[lane] - column_max[lane]);
                        values[lane] = e;
                        partial[lane] += e;
                    }
                } else {
                    for (lane, v) in values.iter_mut().enumerate() {
                        *v = fast_exp(*v - column_max[lane]);
                        partial[lane] += *v;
                    }
                }
            }
            total.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
        }
        sum[columns.clone()].copy_from_slice(&total[..columns.len()]);
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod columns_avx2 {
    //! [`super::exp_columns`] in AVX2/FMA intrinsics, eight columns per register.
    use std::arch::x86_64::{
        __m256, _mm256_add_epi32, _mm256_add_ps, _mm256_andnot_ps, _mm256_castps_si256, _mm256_castsi256_ps,
        _mm256_cmp_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_mul_ps,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_slli_epi32, _mm256_storeu_ps, _mm256_sub_ps, _CMP_LT_OQ,
    };

    use super::SUM_CHUNK_ROWS;

    /// [`super::fast_exp`] on eight lanes, with fused multiply-adds, for inputs `x ≤ 0` (or NaN):
    /// the inputs are `s − max`, so the scalar form's upper clamp never binds and is left out.
    ///
    /// `2ⁿ` comes from the rounding trick's own bits: `shifted = 1.5·2²³ + n` holds `n` in its
    /// low mantissa bits and `1.5·2²³`'s low nine bits are zero, so `shifted << 23` is `n << 23`
    /// (mod 2³²), and adding the bits of `1.0` (`127 << 23`) gives the bits of `2ⁿ` for
    /// `n ∈ [−126, 0]`: two integer operations and no constant beyond the `1.0` the polynomial
    /// already holds, where `(shifted − bits(1.5·2²³) + 127) << 23` took three and two more
    /// constants. Sixteen registers hold the constants, the running sums and the temporaries
    /// without spilling, which is what the kernel's speed rests on.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn exp8(x: __m256) -> __m256 {
        const ROUNDER: f32 = 12_582_912.0;
        let lowest = _mm256_set1_ps(-87.33);
        let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, lowest);
        let x = _mm256_max_ps(x, lowest);
        let shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), _mm256_set1_ps(ROUNDER));
        let n = _mm256_sub_ps(shifted, _mm256_set1_ps(ROUNDER));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let one = _mm256_set1_ps(1.0);
        let y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, one));
        let scale = _mm256_add_epi32(_mm256_slli_epi32::<23>(_mm256_castps_si256(shifted)), _mm256_castps_si256(one));
        _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(scale)))
    }

    /// # Safety
    /// The CPU supports AVX2 and FMA; `width % 8 == 0`, `block.len() % width == 0`, and `max`,
    /// `sum` are `width` long.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn exp_columns(block: &mut [f32], width: usize, max: &mut [f32], sum: &mut [f32]) {
        // Whole rows of the fused step's blocks (48 or 32 columns) per pass, so that each pass
        // reads the block in order (2048 × 48 on Zen 5, one run after another: 35.5 µs, against
        // 42.3–46.7 µs in passes of one to three registers down the columns). Else two
        // registers, else one.
        // SAFETY: forwarded from the caller.
        unsafe {
            if width.is_multiple_of(48) {
                column_groups::<6>(block, width, max, sum)
            } else if width.is_multiple_of(32) {
                column_groups::<4>(block, width, max, sum)
            } else if width.is_multiple_of(16) {
                column_groups::<2>(block, width, max, sum)
            } else {
                column_groups::<1>(block, width, max, sum)
            }
        }
    }

    /// Columns in groups of `8·G`: the max down each group, then its exponentials and sums.
    ///
    /// # Safety
    /// As [`exp_columns`], and `width % (8·G) == 0`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn column_groups<const G: usize>(block: &mut [f32], width: usize, max: &mut [f32], sum: &mut [f32]) {
        let rows = block.len() / width;
        let data = block.as_mut_ptr();
        for column in (0..width).step_by(8 * G) {
            // SAFETY (whole loop): row < rows and column + 8·G ≤ width, so every access is
            // inside `block`, `max` or `sum`.
            unsafe {
                let mut column_max = [_mm256_set1_ps(f32::NEG_INFINITY); G];
                for row in 0..rows {
                    let at = data.add(row * width + column);
                    for (g, m) in column_max.iter_mut().enumerate() {
                        *m = _mm256_max_ps(*m, _mm256_loadu_ps(at.add(8 * g)));
                    }
                }
                let mut total = [_mm256_setzero_ps(); G];
                for chunk in (0..rows).step_by(SUM_CHUNK_ROWS) {
                    let mut partial = [_mm256_setzero_ps(); G];
                    for row in chunk..(chunk + SUM_CHUNK_ROWS).min(rows) {
                        let at = data.add(row * width + column);
                        for g in 0..G {
                            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(at.add(8 * g)), column_max[g]));
                            _mm256_storeu_ps(at.add(8 * g), e);
                            partial[g] = _mm256_add_ps(partial[g], e);
                        }
                    }
                    for g in 0..G {
                        total[g] = _mm256_add_ps(total[g], partial[g]);
                    }
                }
                for g in 0..G {
                    _mm256_storeu_ps(max.as_mut_ptr().add(column + 8 * g), column_max[g]);
                    _mm256_storeu_ps(sum.as_mut_ptr().add(column + 8 * g), total[g]);
                }
            }
        }
    }
}

/// Columns [`exp_columns`] exponentiates together.
const COLUMN_LANES: usize = 16;
/// Rows summed per partial sum: the column sums are two-level (partials of 64 rows, then their
/// total), so their rounding error grows with `64 + rows / 64` rather than `rows`.
pub(crate) const SUM_CHUNK_ROWS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_of_std() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, reference) = (fast_exp(x), x.exp());
            worst = worst.max(((ours - reference) / reference).abs());
            x += 0.001_37;
        }
        assert!(worst < 2.5e-7, "max relative error {worst}");
        assert_eq!(fast_exp(-1e30), 0.0);
        assert_eq!(fast_exp(-88.0), 0.0);
        assert_eq!(fast_exp(0.0), 1.0);
    }

    #[test]
    fn avx2_and_portable_kernels_agree_bit_for_bit() {
        let row: Vec<f32> = (0..1003).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
        let (mut a, mut b) = (row.clone(), row.clone());
        assert_eq!(exp_row(&mut a), exp_row_kernel(&mut b));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn columns_equal_rows_of_the_transposed_block() {
        // Widths of one, two and three registers per pass, and one the portable code takes.
        for width in [8, 16, 24, 48, 5] {
            let rows = 137;
            let block: Vec<f32> = (0..rows * width).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
            let (mut columns, mut max, mut sum) = (block.clone(), vec![0.0; width], vec![0.0; width]);
            exp_columns(&mut columns, width, &mut max, &mut sum);
            let (mut portable, mut max_portable, mut sum_portable) =
                (block.clone(), vec![0.0; width], vec![0.0; width]);
            exp_columns_kernel(&mut portable, width, &mut max_portable, &mut sum_portable);
            let close = |a: f32, b: f32| (a - b).abs() <= 4e-7 * b.abs().max(f32::MIN_POSITIVE);
            assert!(columns.iter().zip(&portable).all(|(&x, &y)| close(x, y)), "width {width}: kernels differ");
            assert_eq!(max, max_portable, "width {width}");
            assert!(sum.iter().zip(&sum_portable).all(|(&x, &y)| close(x, y)), "{sum:?} vs {sum_portable:?}");
            for i in 0..width {
                let mut row: Vec<f32> = (0..rows).map(|j| block[j * width + i]).collect();
                let expected = exp_row(&mut row);
                assert_eq!(max[i], expected.max);
                assert!(
                    (sum[i] - expected.sum).abs() <= 1e-6 * expected.sum,
                    "column {i}: {} vs {}",
                    sum[i],
                    expected.sum
                );
                for j in 0..rows {
                    assert_eq!(portable[j * width + i], row[j], "width {width}, column {i}, row {j}");
                }
            }
        }
    }

    #[test]
    fn row_is_stable_for_huge_logits() {
        let mut s = vec![1e4f32, 0.0, -1e4, 1e4 - 1.0];
        let row = exp_row(&mut s);
        let expected = 1e4 + (1.0 + (-1f64).exp()).ln();
        assert!((row.logsumexp() - expected).abs() < 1e-3, "{}", row.logsumexp());
        assert!(s.iter().all(|v| v.is_finite()));
        assert_eq!(s[2], 0.0);
    }
}

//! One row of a numerically stable softmax (`exp(s − max)` and its sum), and the exponential it uses.

/// `x = n·ln2 + r` (Cody-Waite): `ln 2` in two parts, the first with nine significant bits, so
/// that `n·LN2_HI` is exact for every `|n| < 2¹⁵` and `r` loses nothing to the subtraction.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 − LN2_HI`.
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5·2²³`: `v + ROUNDER − ROUNDER` rounds `v` to the nearest integer (ties to even) for
/// `|v| < 2²²`, with plain additions that vectorise everywhere.
pub(crate) const ROUNDER: f32 = 12_582_912.0;
/// Inputs below this give exactly 0. Above it `n = round(x·log₂e) ≥ −125`, so `y·2ⁿ` with
/// `y ≥ e^(−ln2/2)` is a normal float (at least 1.66·10⁻³⁸) and `2ⁿ` can be applied exactly by
/// exponent arithmetic. `exp(−86.9) ≈ 1.8·10⁻³⁸`: what is set to 0 is below every sum a softmax
/// forms (its largest term is 1).
pub(crate) const EXP_UNDERFLOW: f32 = -86.9;
/// `exp(r) ≈ 1 + r·(1 + r·(c₀ + r·(c₁ + r·(c₂ + r·(c₃ + r·c₄)))))` on `|r| ≤ ln2/2`: a
/// degree-6 polynomial whose `c₀..c₄` minimise the largest relative error (Lawson's algorithm
/// on 20 000 points, 3.1·10⁻⁹, far below f32's rounding). Evaluated in f32 as written, over every
/// f32 in `[−86.9, 0]`: largest relative error 7.7·10⁻⁸ with fused multiply-adds, 9.9·10⁻⁸
/// without (Cephes' degree-7 `expf` polynomial, used before: 1.2·10⁻⁷ with them); over every f32
/// in `[0, 88]`, without: 9.8·10⁻⁸.
pub(crate) const EXP_POLY: [f32; 5] = [0.499_999_94, 0.166_665_21, 0.041_668_39, 0.008_368_745, 0.001_381_454];

/// `exp(x)` for f32 in straight-line code the compiler can vectorise.
///
/// `x = n·ln2 + r` with `|r| ≤ ln2/2` ([`LN2_HI`], [`LN2_LO`]), then the degree-6 polynomial
/// [`EXP_POLY`] in Horner form, then `·2ⁿ` (exact: the product is a normal float). The relative
/// error is below 10⁻⁷ (under one ulp of 2⁻²³) for every f32 in `[−86.9, 88]`; inputs below
/// −86.9 give exactly 0 (`exp` is below 1.8·10⁻³⁸ there), inputs above 88 are clamped (the
/// softmax never produces positive inputs), NaN gives NaN.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    // `if` rather than `min`, which would turn NaN into 88.
    let x = if x > 88.0 { 88.0 } else { x };
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    // The same n as an integer, read from the mantissa (a float-to-int cast would not vectorise).
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let [c0, c1, c2, c3, c4] = EXP_POLY;
    let p = (((c4 * r + c3) * r + c2) * r + c1) * r + c0;
    let y = (p * r + 1.0) * r + 1.0;
    // n ∈ [−125, 127] above the underflow bound and after the clamp: a normal 2ⁿ. Below the
    // bound n is out of range (the result is replaced by 0), hence the wrapping arithmetic.
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    let value = y * scale;
    if x < EXP_UNDERFLOW {
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
    dispatch_columns(block, width, ColumnMax::Find(max), sum);
}

/// [`exp_columns`] with each column's max already known (`max`, `(width)`), as
/// [`tensor::lanes::lane_gemm_column_max`] finds them while it writes the block: the pass that
/// looks for them is skipped, and the values and sums have the bits `exp_columns` gives when
/// its max pass finds the same maxima (on AVX2 and AVX-512, whose pass takes them as `maxps`
/// does).
///
/// # Panics
/// As [`exp_columns`].
#[track_caller]
pub fn exp_columns_with_max(block: &mut [f32], width: usize, max: &[f32], sum: &mut [f32]) {
    dispatch_columns(block, width, ColumnMax::Given(max), sum);
}

/// Where the column kernels take each column's max from.
pub(crate) enum ColumnMax<'a> {
    /// Found by a pass down the block, and written here.
    Find(&'a mut [f32]),
    /// Known already.
    Given(&'a [f32]),
}

impl ColumnMax<'_> {
    /// The maxima, once found.
    fn values(&self) -> &[f32] {
        match self {
            ColumnMax::Find(max) => max,
            ColumnMax::Given(max) => max,
        }
    }
}

/// Checks the shapes and runs the column kernel this CPU has.
#[track_caller]
fn dispatch_columns(block: &mut [f32], width: usize, max: ColumnMax<'_>, sum: &mut [f32]) {
    assert!(width > 0 && block.len().is_multiple_of(width), "exp_columns: {} values in rows of {width}", block.len());
    assert!(
        max.values().len() == width && sum.len() == width,
        "exp_columns: {} maxima, {} sums for {width} columns",
        max.values().len(),
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
fn exp_columns_kernel(block: &mut [f32], width: usize, mut max: ColumnMax<'_>, sum: &mut [f32]) {
    if let ColumnMax::Find(max) = &mut max {
        max.fill(f32::NEG_INFINITY);
        for row in block.chunks_exact(width) {
            for (m, &v) in max.iter_mut().zip(row) {
                *m = if v > *m { v } else { *m };
            }
        }
    }
    let max = max.values();
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
        _mm256_cmp_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_set1_ps,
        _mm256_setzero_ps, _mm256_slli_epi32, _mm256_storeu_ps, _mm256_sub_ps, _CMP_LT_OQ,
    };

    use super::{ColumnMax, EXP_POLY, EXP_UNDERFLOW, LN2_HI, LN2_LO, ROUNDER, SUM_CHUNK_ROWS};

    /// [`super::fast_exp`] on eight lanes, with fused multiply-adds, for inputs `x ≤ 0` (or NaN):
    /// the inputs are `s − max`, so the scalar form's upper clamp never binds and is left out.
    ///
    /// Below [`EXP_UNDERFLOW`] the lanes are computed from out-of-range `n` and then masked to
    /// 0, so no lower clamp sits on the dependency chain. `2ⁿ` is applied by adding `n` to `y`'s
    /// exponent field, which is exact where the result is normal (everywhere above the bound;
    /// the same bits as multiplying by `2ⁿ`): `shifted = 1.5·2²³ + n` holds `n` in its low
    /// mantissa bits and `1.5·2²³`'s low nine bits are zero, so `shifted << 23` is `n << 23`
    /// (mod 2³²). One integer add where the multiplication took an add, a multiplication and
    /// a constant. A NaN input gives NaN when its payload's low nine bits are zero, as for every
    /// NaN that arithmetic produces (an input NaN carrying other payload bits can come out as
    /// another value; the trainer's guard stops on the loss that the same NaN logit makes NaN).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn exp8(x: __m256) -> __m256 {
        let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_UNDERFLOW));
        let shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), _mm256_set1_ps(ROUNDER));
        let n = _mm256_sub_ps(shifted, _mm256_set1_ps(ROUNDER));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let [c0, c1, c2, c3, c4] = EXP_POLY;
        let mut p = _mm256_set1_ps(c4);
        for c in [c3, c2, c1, c0] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let one = _mm256_set1_ps(1.0);
        let y = _mm256_fmadd_ps(_mm256_fmadd_ps(p, r, one), r, one);
        let scaled = _mm256_add_epi32(_mm256_castps_si256(y), _mm256_slli_epi32::<23>(_mm256_castps_si256(shifted)));
        _mm256_andnot_ps(underflow, _mm256_castsi256_ps(scaled))
    }

    /// # Safety
    /// The CPU supports AVX2 and FMA; `width % 8 == 0`, `block.len() % width == 0`, and the
    /// maxima and `sum` are `width` long.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn exp_columns(block: &mut [f32], width: usize, max: ColumnMax<'_>, sum: &mut [f32]) {
        // Whole rows of the fused step's blocks (48 or 32 columns) per pass, so that each pass
        // reads the block in order (faster on Zen 5 than passes of one to three registers down
        // the columns: RESULTS.md, issue 12, fourth round). Else two registers, else one.
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

    /// Columns in groups of `8·G`, three passes down each group: the max (unless given), the
    /// exponentials in place, the sums.
    ///
    /// Three passes rather than one, each its own function: sixteen registers cannot hold six
    /// running maxima or sums beside the exponential's eleven constants and temporaries, and
    /// one pass spilled and reloaded them on every row (seen with `perf annotate`; criterion's
    /// `exp_columns_2048x48_one_thread` before and after, with the new polynomial: RESULTS.md,
    /// issue 12, fifth round). The block stays in L2 between the passes; every value and sum
    /// has the bits of the one-pass form.
    ///
    /// # Safety
    /// As [`exp_columns`], and `width % (8·G) == 0`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn column_groups<const G: usize>(block: &mut [f32], width: usize, mut max: ColumnMax<'_>, sum: &mut [f32]) {
        let rows = block.len() / width;
        let data = block.as_mut_ptr();
        for column in (0..width).step_by(8 * G) {
            // SAFETY: row < rows and column + 8·G ≤ width in every pass, so every access is
            // inside `block`, the maxima or `sum`.
            unsafe {
                let group = Group { data, rows, width, column };
                if let ColumnMax::Find(max) = &mut max {
                    group_max::<G>(&group, max.as_mut_ptr().add(column));
                }
                group_exp::<G>(&group, max.values().as_ptr().add(column));
                group_sums::<G>(&group, sum.as_mut_ptr().add(column));
            }
        }
    }

    /// Columns `column..column + 8·G` of a `rows × width` row-major block at `data`.
    struct Group {
        data: *mut f32,
        rows: usize,
        width: usize,
        column: usize,
    }

    impl Group {
        /// The first of the group's values in `row`.
        ///
        /// # Safety
        /// `row < rows`, and the group describes columns inside the block.
        #[inline(always)]
        unsafe fn at(&self, row: usize) -> *mut f32 {
            // SAFETY: forwarded from the caller.
            unsafe { self.data.add(row * self.width + self.column) }
        }
    }

    /// Writes the max of each of the group's columns to `max[..8·G]`.
    ///
    /// # Safety
    /// The group is inside its block and `max` has `8·G` writable values.
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    unsafe fn group_max<const G: usize>(group: &Group, max: *mut f32) {
        // SAFETY (whole body): forwarded from the caller.
        unsafe {
            let mut column_max = [_mm256_set1_ps(f32::NEG_INFINITY); G];
            for row in 0..group.rows {
                let at = group.at(row);
                for (g, m) in column_max.iter_mut().enumerate() {
                    *m = _mm256_max_ps(*m, _mm256_loadu_ps(at.add(8 * g)));
                }
            }
            for (g, m) in column_max.iter().enumerate() {
                _mm256_storeu_ps(max.add(8 * g), *m);
            }
        }
    }

    /// Replaces each of the group's values by `exp(v − max)` of its column.
    ///
    /// # Safety
    /// The group is inside its block and `max` has `8·G` readable values.
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    unsafe fn group_exp<const G: usize>(group: &Group, max: *const f32) {
        // SAFETY (whole body): forwarded from the caller.
        unsafe {
            for row in 0..group.rows {
                let at = group.at(row);
                for g in 0..G {
                    let x = _mm256_sub_ps(_mm256_loadu_ps(at.add(8 * g)), _mm256_loadu_ps(max.add(8 * g)));
                    _mm256_storeu_ps(at.add(8 * g), exp8(x));
                }
            }
        }
    }

    /// Writes the sum of each of the group's columns to `sum[..8·G]`: partial sums of
    /// [`SUM_CHUNK_ROWS`] rows, added in order.
    ///
    /// # Safety
    /// The group is inside its block and `sum` has `8·G` writable values.
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    unsafe fn group_sums<const G: usize>(group: &Group, sum: *mut f32) {
        // SAFETY (whole body): forwarded from the caller.
        unsafe {
            let mut total = [_mm256_setzero_ps(); G];
            for chunk in (0..group.rows).step_by(SUM_CHUNK_ROWS) {
                let mut partial = [_mm256_setzero_ps(); G];
                for row in chunk..(chunk + SUM_CHUNK_ROWS).min(group.rows) {
                    let at = group.at(row);
                    for (g, p) in partial.iter_mut().enumerate() {
                        *p = _mm256_add_ps(*p, _mm256_loadu_ps(at.add(8 * g)));
                    }
                }
                for (t, p) in total.iter_mut().zip(partial) {
                    *t = _mm256_add_ps(*t, p);
                }
            }
            for (g, t) in total.iter().enumerate() {
                _mm256_storeu_ps(sum.add(8 * g), *t);
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
    fn fast_exp_is_within_one_ulp_of_std() {
        let mut worst = 0f64;
        let mut x = EXP_UNDERFLOW;
        while x < 88.0 {
            let (ours, reference) = (f64::from(fast_exp(x)), f64::from(x).exp());
            worst = worst.max(((ours - reference) / reference).abs());
            x += 0.001_37;
        }
        // One ulp of 2⁻²³ relative; over every f32 in [−86.9, 0] the largest is 9.9·10⁻⁸.
        assert!(worst < 1.2e-7, "max relative error {worst}");
        for below in [-1e30, f32::NEG_INFINITY, -88.0, -86.91] {
            assert_eq!(fast_exp(below), 0.0, "exp({below})");
        }
        assert!(fast_exp(EXP_UNDERFLOW) > 1.6e-38 && fast_exp(EXP_UNDERFLOW).is_normal());
        assert_eq!(fast_exp(0.0), 1.0);
        assert!(fast_exp(f32::NAN).is_nan());
        assert_eq!(fast_exp(1e30), fast_exp(88.0));
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
            exp_columns_kernel(&mut portable, width, ColumnMax::Find(&mut max_portable), &mut sum_portable);
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
    fn given_maxima_give_the_bits_of_the_max_pass() {
        // Widths every kernel takes (AVX-512 groups of one to three registers, AVX2 groups, and
        // the portable code), a −∞ logit and a NaN one in a column's middle.
        for width in [8, 16, 32, 48, 96, 5] {
            let rows = 203;
            let mut block: Vec<f32> = (0..rows * width).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
            block[width + 1] = f32::NEG_INFINITY;
            block[(rows / 2) * width + 2] = f32::NAN;
            let (mut found, mut max, mut sum) = (block.clone(), vec![0.0; width], vec![0.0; width]);
            exp_columns(&mut found, width, &mut max, &mut sum);
            let (mut given, mut given_sum) = (block.clone(), vec![0.0; width]);
            exp_columns_with_max(&mut given, width, &max, &mut given_sum);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&given), bits(&found), "width {width}: values");
            assert_eq!(bits(&given_sum), bits(&sum), "width {width}: sums");
            let (mut portable, mut portable_sum) = (block.clone(), vec![0.0; width]);
            let mut portable_max = vec![0.0; width];
            exp_columns_kernel(&mut portable, width, ColumnMax::Find(&mut portable_max), &mut portable_sum);
            let (mut portable_given, mut portable_given_sum) = (block, vec![0.0; width]);
            exp_columns_kernel(&mut portable_given, width, ColumnMax::Given(&portable_max), &mut portable_given_sum);
            assert_eq!(bits(&portable_given), bits(&portable), "width {width}: portable values");
            assert_eq!(bits(&portable_given_sum), bits(&portable_sum), "width {width}: portable sums");
            // A shift other than the max is used as given: every exponential is then scaled.
            let shifted: Vec<f32> = max.iter().map(|m| m + 1.0).collect();
            let mut other_sum = vec![0.0; width];
            let mut raw: Vec<f32> = (0..rows * width).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
            exp_columns_with_max(&mut raw, width, &shifted, &mut other_sum);
            let ratio = other_sum[0] / sum[0];
            assert!((ratio - (-1f32).exp()).abs() < 1e-5, "width {width}: sum ratio {ratio}");
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

//! [`crate::exp_columns`] on AVX-512: sixteen columns per register, bit-identical to the AVX2
//! kernel.
//!
//! The exponential is [`crate::fast_exp`]'s: `x = n·ln2 + r` (Cody-Waite), the same degree-6
//! polynomial in `r` with fused multiply-adds, then `2ⁿ`. One AVX-512 instruction replaces
//! three of the AVX2 kernel's: `vscalefps` multiplies by `2ⁿ` (exactly, as the AVX2 kernel's
//! exponent add is where the result is normal) and applies the underflow mask, so no integer
//! exponent arithmetic or separate mask remains. Every value, maximum and
//! sum equals the AVX2 kernel's bit for bit: the same roundings in the same order. On Zen 4,
//! whose 512-bit units are double-pumped, the gain is in instructions per element (about 18 for
//! sixteen values against 24 for eight).

#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_fnmadd_ps, _mm512_loadu_ps,
    _mm512_maskz_scalef_ps, _mm512_max_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps, _mm512_sub_ps,
    _CMP_NLT_UQ,
};

use crate::softmax::{ColumnMax, EXP_POLY, EXP_UNDERFLOW, LN2_HI, LN2_LO, ROUNDER, SUM_CHUNK_ROWS};

/// Lanes of one register.
pub(crate) const LANES: usize = 16;

/// [`crate::fast_exp`] on sixteen lanes, for inputs `x ≤ 0` (or NaN): 0 below
/// [`EXP_UNDERFLOW`], as the scalar and AVX2 forms.
#[target_feature(enable = "avx512f")]
#[inline]
fn exp16(x: __m512) -> __m512 {
    // "Not below the bound", so that NaN lanes stay NaN.
    let in_range = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(EXP_UNDERFLOW));
    // n = round(x·log₂e), ties to even, by the 1.5·2²³ trick on the fused product (as AVX2).
    let shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), _mm512_set1_ps(ROUNDER));
    let n = _mm512_sub_ps(shifted, _mm512_set1_ps(ROUNDER));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let [c0, c1, c2, c3, c4] = EXP_POLY;
    let mut p = _mm512_set1_ps(c4);
    for c in [c3, c2, c1, c0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let one = _mm512_set1_ps(1.0);
    let y = _mm512_fmadd_ps(_mm512_fmadd_ps(p, r, one), r, one);
    _mm512_maskz_scalef_ps(in_range, y, n)
}

/// # Safety
/// The CPU supports AVX-512F; `width % 16 == 0`, `block.len() % width == 0`, and the maxima and
/// `sum` are `width` long.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp_columns(block: &mut [f32], width: usize, max: ColumnMax<'_>, sum: &mut [f32]) {
    // Three registers of columns per pass when the width allows (one pass over a 48-wide
    // block), else two, else one.
    // SAFETY: forwarded from the caller.
    unsafe {
        if width.is_multiple_of(3 * LANES) {
            column_groups::<3>(block, width, max, sum)
        } else if width.is_multiple_of(2 * LANES) {
            column_groups::<2>(block, width, max, sum)
        } else {
            column_groups::<1>(block, width, max, sum)
        }
    }
}

/// Columns in groups of `16·G`: the max down each group (unless given), then its exponentials
/// and sums.
///
/// # Safety
/// As [`exp_columns`], and `width % (16·G) == 0`.
#[target_feature(enable = "avx512f")]
unsafe fn column_groups<const G: usize>(block: &mut [f32], width: usize, mut max: ColumnMax<'_>, sum: &mut [f32]) {
    let rows = block.len() / width;
    let data = block.as_mut_ptr();
    for column in (0..width).step_by(LANES * G) {
        // SAFETY (whole loop): row < rows and column + 16·G ≤ width, so every access is inside
        // `block`, the maxima or `sum`.
        unsafe {
            let mut column_max = [_mm512_set1_ps(f32::NEG_INFINITY); G];
            match &mut max {
                ColumnMax::Find(max) => {
                    for row in 0..rows {
                        let at = data.add(row * width + column);
                        for (g, m) in column_max.iter_mut().enumerate() {
                            *m = _mm512_max_ps(*m, _mm512_loadu_ps(at.add(LANES * g)));
                        }
                    }
                    for (g, m) in column_max.iter().enumerate() {
                        _mm512_storeu_ps(max.as_mut_ptr().add(column + LANES * g), *m);
                    }
                }
                ColumnMax::Given(max) => {
                    for (g, m) in column_max.iter_mut().enumerate() {
                        *m = _mm512_loadu_ps(max.as_ptr().add(column + LANES * g));
                    }
                }
            }
            let mut total = [_mm512_setzero_ps(); G];
            for chunk in (0..rows).step_by(SUM_CHUNK_ROWS) {
                let mut partial = [_mm512_setzero_ps(); G];
                for row in chunk..(chunk + SUM_CHUNK_ROWS).min(rows) {
                    let at = data.add(row * width + column);
                    for g in 0..G {
                        let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(at.add(LANES * g)), column_max[g]));
                        _mm512_storeu_ps(at.add(LANES * g), e);
                        partial[g] = _mm512_add_ps(partial[g], e);
                    }
                }
                for g in 0..G {
                    total[g] = _mm512_add_ps(total[g], partial[g]);
                }
            }
            for (g, t) in total.iter().enumerate() {
                _mm512_storeu_ps(sum.as_mut_ptr().add(column + LANES * g), *t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_avx2_kernel_bit_for_bit() {
        let has = |f: &str| match f {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            _ => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        };
        if !(has("avx512f") && has("avx2")) {
            eprintln!("skipped: this CPU lacks AVX-512F or AVX2/FMA");
            return;
        }
        // One, two and three registers per pass; values down to the underflow edge, below it,
        // −∞ (an accidental hit's logit after the shift) and NaN (which both keep).
        for width in [16, 32, 48, 96] {
            let rows = 300;
            let mut block: Vec<f32> = (0..rows * width).map(|i| ((i * 7919) % 20011) as f32 / 200.0 - 95.0).collect();
            block[width + 3] = f32::NEG_INFINITY;
            block[2 * width + 5] = f32::MIN / 100.0;
            block[(rows - 1) * width + 7] = f32::NAN;
            let (mut ours, mut max, mut sum) = (block.clone(), vec![0.0; width], vec![0.0; width]);
            let (mut avx2, mut max2, mut sum2) = (block, vec![0.0; width], vec![0.0; width]);
            // SAFETY: both feature sets were detected above; the shapes are consistent.
            unsafe {
                exp_columns(&mut ours, width, ColumnMax::Find(&mut max), &mut sum);
                crate::softmax::columns_avx2::exp_columns(&mut avx2, width, ColumnMax::Find(&mut max2), &mut sum2);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ours), bits(&avx2), "width {width}: values");
            assert_eq!(bits(&max), bits(&max2), "width {width}: maxima");
            assert_eq!(bits(&sum), bits(&sum2), "width {width}: sums");
            assert!(ours[(rows - 1) * width + 7].is_nan() && sum[7].is_nan(), "width {width}: NaN kept");
        }
    }
}

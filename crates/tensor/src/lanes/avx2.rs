//! The AVX2/FMA tiles: `MR` rows × 16 columns in `2·MR` ymm accumulators.

#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

use super::{Epilogue, Operands, ACCUMULATE, COLUMN_BIAS, COLUMN_BIAS_RELU, K_CHUNK, LANES, MR, OVERWRITE, ROW_BIAS};

const _: () = assert!(LANES == 16, "the AVX2 tile holds 16 columns in two registers");

/// Every tile of `out`: full `MR`-row tiles, then one shorter tile for the remaining rows.
///
/// # Safety
/// The CPU supports AVX2 and FMA, and `op` describes in-bounds views (see `lane_gemm`).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn lane_gemm(op: &Operands<'_>) {
    let full = op.m / MR * MR;
    for row0 in (0..full).step_by(MR) {
        // SAFETY: forwarded from the caller.
        unsafe { row_tiles::<MR>(op, row0) };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match op.m - full {
            0 => {}
            1 => row_tiles::<1>(op, full),
            2 => row_tiles::<2>(op, full),
            3 => row_tiles::<3>(op, full),
            4 => row_tiles::<4>(op, full),
            _ => row_tiles::<5>(op, full),
        }
    }
}

/// The tiles of rows `row0..row0 + R`, left to right.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_tiles<const R: usize>(op: &Operands<'_>, row0: usize) {
    for col0 in (0..op.w).step_by(LANES) {
        // SAFETY: forwarded from the caller; row0 + R ≤ m and col0 + 16 ≤ w.
        unsafe { tile::<R>(op, row0, col0) };
    }
}

/// One `R × 16` tile: `k` steps of `R` broadcasts, two loads and `2R` fused multiply-adds.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize>(op: &Operands<'_>, row0: usize, col0: usize) {
    // SAFETY (whole body): the caller guarantees row0 + R ≤ m, col0 + 16 ≤ w, and that the
    // operands' strides address in-bounds elements for every row < m, kk < k, col < w.
    unsafe {
        let a = op.a.add(row0 * op.a_row);
        let b = op.b.add(col0);
        let acc = if op.a_row == 1 { sums::<R, true>(op, a, b) } else { sums::<R, false>(op, a, b) };
        // One branch per tile picks the store (see the AVX-512 tile).
        match (op.epilogue, op.column_max.is_some()) {
            (Epilogue::Overwrite, false) => store::<R, OVERWRITE, false>(op, row0, col0, &acc, std::ptr::null()),
            (Epilogue::Overwrite, true) => store::<R, OVERWRITE, true>(op, row0, col0, &acc, std::ptr::null()),
            (Epilogue::Accumulate, _) => store::<R, ACCUMULATE, false>(op, row0, col0, &acc, std::ptr::null()),
            (Epilogue::RowBias(bias), false) => store::<R, ROW_BIAS, false>(op, row0, col0, &acc, bias.as_ptr()),
            (Epilogue::RowBias(bias), true) => store::<R, ROW_BIAS, true>(op, row0, col0, &acc, bias.as_ptr()),
            (Epilogue::ColumnBias { bias, relu: false }, _) => {
                store::<R, COLUMN_BIAS, false>(op, row0, col0, &acc, bias.as_ptr())
            }
            (Epilogue::ColumnBias { bias, relu: true }, _) => {
                store::<R, COLUMN_BIAS_RELU, false>(op, row0, col0, &acc, bias.as_ptr())
            }
        }
    }
}

/// The sums of an `R × 16` tile whose first row of `A` is at `a` and first column of `B`
/// at `b`: the first chunk of `k` is the running total, later chunks are added in order.
///
/// Each row of `A` is read from its own pointer (`UNIT_ROW`: at a constant offset from one
/// pointer, `Aᵀ` stored), so no address is a chain of adds carried from step to step.
///
/// # Safety
/// As [`tile`], with `op.a_row == 1` when `UNIT_ROW`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sums<const R: usize, const UNIT_ROW: bool>(
    op: &Operands<'_>,
    a: *const f32,
    b: *const f32,
) -> [[__m256; 2]; R] {
    // SAFETY (whole body): forwarded from the caller.
    unsafe {
        let rows: [*const f32; R] = std::array::from_fn(|r| a.add(r * op.a_row));
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for chunk in (0..op.k).step_by(K_CHUNK) {
            let mut partial = [[_mm256_setzero_ps(); 2]; R];
            for kk in chunk..(chunk + K_CHUNK).min(op.k) {
                let (offset, b_at) = (kk * op.a_k, b.add(kk * op.ldb));
                let b_low = _mm256_loadu_ps(b_at);
                let b_high = _mm256_loadu_ps(b_at.add(8));
                for (r, partial) in partial.iter_mut().enumerate() {
                    let at = if UNIT_ROW { a.add(offset + r) } else { rows[r].add(offset) };
                    let a_value = _mm256_set1_ps(*at);
                    partial[0] = _mm256_fmadd_ps(a_value, b_low, partial[0]);
                    partial[1] = _mm256_fmadd_ps(a_value, b_high, partial[1]);
                }
            }
            if chunk == 0 {
                acc = partial;
            } else {
                for (acc, partial) in acc.iter_mut().zip(&partial) {
                    acc[0] = _mm256_add_ps(acc[0], partial[0]);
                    acc[1] = _mm256_add_ps(acc[1], partial[1]);
                }
            }
        }
        acc
    }
}

/// Stores an `R × 16` tile's sums at `(row0, col0)` as the epilogue `KIND` says (`bias`:
/// the `m` row or `w` column biases, else null), updating the column maxima when `MAX`.
///
/// # Safety
/// As [`tile`]; `bias` holds `m` values for [`ROW_BIAS`], `w` for the column kinds, and
/// `op.column_max` is set when `MAX`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store<const R: usize, const KIND: u8, const MAX: bool>(
    op: &Operands<'_>,
    row0: usize,
    col0: usize,
    acc: &[[__m256; 2]; R],
    bias: *const f32,
) {
    // SAFETY (whole body): forwarded from the caller.
    unsafe {
        let maxima = op.column_max.unwrap_or(std::ptr::null_mut());
        let mut column_max = [_mm256_setzero_ps(); 2];
        if MAX {
            column_max = [_mm256_loadu_ps(maxima.add(col0)), _mm256_loadu_ps(maxima.add(col0 + 8))];
        }
        for (r, acc) in acc.iter().enumerate() {
            let out = op.out.add((row0 + r) * op.ldo + col0);
            let (mut low, mut high) = (acc[0], acc[1]);
            match KIND {
                OVERWRITE => {}
                ACCUMULATE => {
                    low = _mm256_add_ps(low, _mm256_loadu_ps(out));
                    high = _mm256_add_ps(high, _mm256_loadu_ps(out.add(8)));
                }
                ROW_BIAS => {
                    let bias = _mm256_set1_ps(*bias.add(row0 + r));
                    low = _mm256_add_ps(low, bias);
                    high = _mm256_add_ps(high, bias);
                }
                _ => {
                    low = _mm256_add_ps(low, _mm256_loadu_ps(bias.add(col0)));
                    high = _mm256_add_ps(high, _mm256_loadu_ps(bias.add(col0 + 8)));
                    if KIND == COLUMN_BIAS_RELU {
                        // `max(x, 0)` returns 0 for a NaN `x`, as `f32::max` does.
                        low = _mm256_max_ps(low, _mm256_setzero_ps());
                        high = _mm256_max_ps(high, _mm256_setzero_ps());
                    }
                }
            }
            _mm256_storeu_ps(out, low);
            _mm256_storeu_ps(out.add(8), high);
            if MAX {
                column_max = [_mm256_max_ps(column_max[0], low), _mm256_max_ps(column_max[1], high)];
            }
        }
        if MAX {
            _mm256_storeu_ps(maxima.add(col0), column_max[0]);
            _mm256_storeu_ps(maxima.add(col0 + 8), column_max[1]);
        }
    }
}

//! The AVX-512 tiles, for widths that are multiples of 16: `R` rows × `16·C` columns in
//! `R·C` zmm accumulators, 24 of the 32 registers (6 × 64, 12 × 32, 8 × 48 or 24 × 16), so each step
//! of `k` loads `C` registers of `B` and broadcasts `R` values of `A` for 24 fused
//! multiply-adds, against 12 in the AVX2 tile. Each element's sum runs over `k` in the same
//! order and chunks as in the AVX2 tile, with the same fused multiply-adds, so the two
//! kernels give the same bits.

#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use super::{Epilogue, Operands, ACCUMULATE, COLUMN_BIAS, COLUMN_BIAS_RELU, K_CHUNK, OVERWRITE, ROW_BIAS};

/// Columns of one register.
pub(super) const LANES: usize = 16;

/// Every tile of `out`: all columns in 64-wide tiles (6 rows) when the width is a multiple
/// of 64, else in 32-wide tiles (12 rows) when it is a multiple of 32, else a 48-wide block
/// (8-row tiles; the fused step's blocks of 48 queries) followed by 64- or 32-wide ones, or
/// a 16-wide block when only 16 columns remain.
///
/// # Safety
/// The CPU supports AVX-512F, `op.w % 16 == 0`, and `op` describes in-bounds views.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn lane_gemm(op: &Operands<'_>) {
    // SAFETY (whole body): forwarded from the caller; each block ends at or before `w`.
    unsafe {
        let mut col0 = 0;
        if !op.w.is_multiple_of(2 * LANES) {
            if op.w >= 3 * LANES {
                block::<8, 3>(op, 0, 3 * LANES);
                col0 = 3 * LANES;
            } else {
                block::<24, 1>(op, 0, LANES);
                col0 = LANES;
            }
        }
        if col0 < op.w {
            if (op.w - col0).is_multiple_of(4 * LANES) {
                // Six broadcasts and four loads per 24 multiply-adds, against twelve and two
                // in the 32-wide tile: a dense layer of 64 outputs ran its forward product
                // 9 % faster on Zen 5 (RESULTS.md, issue 12, seventh round).
                block::<6, 4>(op, col0, op.w);
            } else {
                block::<12, 2>(op, col0, op.w);
            }
        }
    }
}

/// The tiles of columns `cols_start..cols_end` (a multiple of `16·C` wide), row tile by row
/// tile, each left to right (the row-major `B` is then streamed in order): full `MR`-row
/// tiles, then the remaining rows in tiles of 16, 8, 4, 2 and 1 (those below `MR` only, so
/// that no tile needs more registers than the full one).
#[target_feature(enable = "avx512f")]
unsafe fn block<const MR: usize, const C: usize>(op: &Operands<'_>, cols_start: usize, cols_end: usize) {
    let mut row0 = 0;
    // SAFETY (whole body): forwarded from the caller; every tile ends at or before `m`
    // and `cols_end ≤ w`.
    unsafe {
        while op.m - row0 >= MR {
            row_of_tiles::<MR, C>(op, row0, cols_start, cols_end);
            row0 += MR;
        }
        if MR > 16 && op.m - row0 >= 16 {
            row_of_tiles::<16, C>(op, row0, cols_start, cols_end);
            row0 += 16;
        }
        if MR > 8 && op.m - row0 >= 8 {
            row_of_tiles::<8, C>(op, row0, cols_start, cols_end);
            row0 += 8;
        }
        if MR > 4 && op.m - row0 >= 4 {
            row_of_tiles::<4, C>(op, row0, cols_start, cols_end);
            row0 += 4;
        }
        if MR > 2 && op.m - row0 >= 2 {
            row_of_tiles::<2, C>(op, row0, cols_start, cols_end);
            row0 += 2;
        }
        if MR > 1 && op.m - row0 >= 1 {
            row_of_tiles::<1, C>(op, row0, cols_start, cols_end);
        }
    }
}

/// The `R`-row tiles of rows `row0..row0 + R`, left to right over `cols_start..cols_end`.
#[target_feature(enable = "avx512f")]
unsafe fn row_of_tiles<const R: usize, const C: usize>(
    op: &Operands<'_>,
    row0: usize,
    cols_start: usize,
    cols_end: usize,
) {
    for col0 in (cols_start..cols_end).step_by(LANES * C) {
        // SAFETY: forwarded from the caller; row0 + R ≤ m and col0 + 16·C ≤ cols_end ≤ w.
        unsafe { tile::<R, C>(op, row0, col0) };
    }
}

/// One `R × 16·C` tile, summed over `k` in chunks of `K_CHUNK` as the AVX2 tile.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize, const C: usize>(op: &Operands<'_>, row0: usize, col0: usize) {
    // SAFETY (whole body): row0 + R ≤ m, col0 + 16·C ≤ w, and the operands' strides
    // address in-bounds elements for every row < m, kk < k, col < w.
    unsafe {
        let (a, b) = (op.a.add(row0 * op.a_row), op.b.add(col0));
        let acc = tile_sums::<R, C>(op, a, b);
        // One branch per tile picks a store whose loops unroll over registers (a `match`
        // per register spilled the sums and jumped through a table on every row).
        let max = op.column_max;
        match (op.epilogue, max.is_some()) {
            (Epilogue::Overwrite, false) => store::<R, C, OVERWRITE, false>(op, row0, col0, &acc, std::ptr::null()),
            (Epilogue::Overwrite, true) => store::<R, C, OVERWRITE, true>(op, row0, col0, &acc, std::ptr::null()),
            (Epilogue::Accumulate, _) => store::<R, C, ACCUMULATE, false>(op, row0, col0, &acc, std::ptr::null()),
            (Epilogue::RowBias(bias), false) => store::<R, C, ROW_BIAS, false>(op, row0, col0, &acc, bias.as_ptr()),
            (Epilogue::RowBias(bias), true) => store::<R, C, ROW_BIAS, true>(op, row0, col0, &acc, bias.as_ptr()),
            (Epilogue::ColumnBias { bias, relu: false }, _) => {
                store::<R, C, COLUMN_BIAS, false>(op, row0, col0, &acc, bias.as_ptr())
            }
            (Epilogue::ColumnBias { bias, relu: true }, _) => {
                store::<R, C, COLUMN_BIAS_RELU, false>(op, row0, col0, &acc, bias.as_ptr())
            }
        }
    }
}

/// Stores an `R × 16·C` tile's sums at `(row0, col0)` as the epilogue `KIND` says (`bias`:
/// the `m` row or `w` column biases, else null), updating the column maxima when `MAX`.
///
/// # Safety
/// As [`tile`]; `bias` holds `m` values for [`ROW_BIAS`], `w` for the column kinds, and
/// `op.column_max` is set when `MAX`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store<const R: usize, const C: usize, const KIND: u8, const MAX: bool>(
    op: &Operands<'_>,
    row0: usize,
    col0: usize,
    acc: &[[__m512; C]; R],
    bias: *const f32,
) {
    // SAFETY (whole body): forwarded from the caller.
    unsafe {
        let maxima = op.column_max.unwrap_or(std::ptr::null_mut());
        let mut column_max = [_mm512_setzero_ps(); C];
        if MAX {
            for (c, m) in column_max.iter_mut().enumerate() {
                *m = _mm512_loadu_ps(maxima.add(col0 + LANES * c));
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let out = op.out.add((row0 + r) * op.ldo + col0);
            for (c, &value) in acc.iter().enumerate() {
                let at = out.add(LANES * c);
                let value = match KIND {
                    OVERWRITE => value,
                    ACCUMULATE => _mm512_add_ps(value, _mm512_loadu_ps(at)),
                    ROW_BIAS => _mm512_add_ps(value, _mm512_set1_ps(*bias.add(row0 + r))),
                    _ => {
                        let value = _mm512_add_ps(value, _mm512_loadu_ps(bias.add(col0 + LANES * c)));
                        // `max(x, 0)` returns 0 for a NaN `x`, as `f32::max` does.
                        if KIND == COLUMN_BIAS_RELU {
                            _mm512_max_ps(value, _mm512_setzero_ps())
                        } else {
                            value
                        }
                    }
                };
                _mm512_storeu_ps(at, value);
                if MAX {
                    column_max[c] = _mm512_max_ps(column_max[c], value);
                }
            }
        }
        if MAX {
            for (c, m) in column_max.iter().enumerate() {
                _mm512_storeu_ps(maxima.add(col0 + LANES * c), *m);
            }
        }
    }
}

/// The sums of an `R × 16·C` tile whose first row of `A` is at `a` and first column of `B`
/// at `b`: the first chunk's sums are the running total (no zeroed total to add them to,
/// which would not fit the registers beside them); later chunks are added in order.
///
/// # Safety
/// As [`tile`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_sums<const R: usize, const C: usize>(
    op: &Operands<'_>,
    mut a: *const f32,
    mut b: *const f32,
) -> [[__m512; C]; R] {
    // SAFETY (whole body): forwarded from the caller.
    unsafe {
        let mut acc = chunk_sums::<R, C>(op, &mut a, &mut b, K_CHUNK.min(op.k));
        for chunk in (K_CHUNK..op.k).step_by(K_CHUNK) {
            let partial = chunk_sums::<R, C>(op, &mut a, &mut b, K_CHUNK.min(op.k - chunk));
            for (acc, partial) in acc.iter_mut().zip(&partial) {
                for (a, &p) in acc.iter_mut().zip(partial) {
                    *a = _mm512_add_ps(*a, p);
                }
            }
        }
        acc
    }
}

/// `steps` steps of `k` from `a`, `b` (advanced past them) into fresh `R × C` registers,
/// each row of `A` read from its own pointer, so that no address is a chain of adds carried
/// from step to step (the 12-row tile's chain of twelve was as long as its twelve cycles
/// of multiply-adds).
///
/// # Safety
/// As [`tile`], for the `steps` rows of `B` and columns of `A` from the pointers on.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn chunk_sums<const R: usize, const C: usize>(
    op: &Operands<'_>,
    a: &mut *const f32,
    b: &mut *const f32,
    steps: usize,
) -> [[__m512; C]; R] {
    let mut sums = [[_mm512_setzero_ps(); C]; R];
    // SAFETY: forwarded from the caller.
    unsafe {
        let rows: [*const f32; R] = std::array::from_fn(|r| a.add(r * op.a_row));
        for kk in 0..steps {
            let offset = kk * op.a_k;
            let b_at = b.add(kk * op.ldb);
            let mut b_row = [_mm512_setzero_ps(); C];
            for (c, b_c) in b_row.iter_mut().enumerate() {
                *b_c = _mm512_loadu_ps(b_at.add(LANES * c));
            }
            for (r, sums) in sums.iter_mut().enumerate() {
                let a_value = _mm512_set1_ps(*rows[r].add(offset));
                for (s, &b_c) in sums.iter_mut().zip(&b_row) {
                    *s = _mm512_fmadd_ps(a_value, b_c, *s);
                }
            }
        }
        *a = a.add(steps * op.a_k);
        *b = b.add(steps * op.ldb);
    }
    sums
}

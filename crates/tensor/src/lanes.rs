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
    /// [`lane_gemm_column_max`]), when given.
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
#[allow(unsafe_code)]
mod avx2 {
    //! The AVX2/FMA tiles: `MR` rows × 16 columns in `2·MR` ymm accumulators.
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    use super::{
        Epilogue, Operands, ACCUMULATE, COLUMN_BIAS, COLUMN_BIAS_RELU, K_CHUNK, LANES, MR, OVERWRITE, ROW_BIAS,
    };

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
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    //! The AVX-512 tiles, for widths that are multiples of 16: `R` rows × `16·C` columns in
    //! `R·C` zmm accumulators, 24 of the 32 registers (6 × 64, 12 × 32, 8 × 48 or 24 × 16), so each step
    //! of `k` loads `C` registers of `B` and broadcasts `R` values of `A` for 24 fused
    //! multiply-adds, against 12 in the AVX2 tile. Each element's sum runs over `k` in the same
    //! order and chunks as in the AVX2 tile, with the same fused multiply-adds, so the two
    //! kernels give the same bits.
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
}

#[cfg(test)]
mod tests {
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
        for (m, k, w) in
            [(1, 1, 16), (5, 3, 16), (6, 32, 32), (7, 33, 48), (13, 2049, 16), (48, 32, 64), (2050, 32, 48)]
        {
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
        let shapes =
            [(2050, 32, 48), (65, 600, 64), (31, 65, 80), (23, 40, 16), (12, 7, 112), (9, 300, 128), (14, 17, 96)];
        // Each shape in every addressing of `A`: `Aᵀ` stored (unit row stride), `A` row-major
        // (unit step), and both strides 2 or more.
        for ((m, k, w), (a_row, a_k)) in shapes
            .into_iter()
            .flat_map(|(m, k, w)| [(1, m), (k, 1), (2 * k, 2)].map(move |strides| ((m, k, w), strides)))
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

    #[test]
    fn row_bias_equals_the_product_then_the_bias_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(24);
        let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let kernels = kernels_on_this_cpu();
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
            for &kernel in &kernels {
                let mut product = Array2::zeros((m, w));
                run_kernel(kernel, &a, &b, Epilogue::Overwrite, &mut product);
                let mut ours = Array2::from_elem((m, w), f32::NAN);
                run_kernel(kernel, &a, &b, Epilogue::RowBias(&bias), &mut ours);
                assert_eq!(bits(&ours), bits(&then_bias(product)), "{kernel} {m}x{k}x{w}");
            }
        }
    }

    #[test]
    fn column_bias_and_relu_equal_the_product_then_the_pass_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(25);
        let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let kernels = kernels_on_this_cpu();
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
                for &kernel in &kernels {
                    let mut product = Array2::zeros((m, w));
                    run_kernel(kernel, &a, &b, Epilogue::Overwrite, &mut product);
                    let mut ours = Array2::from_elem((m, w), f32::NAN);
                    run_kernel(kernel, &a, &b, Epilogue::ColumnBias { bias: &bias, relu }, &mut ours);
                    assert_eq!(bits(&ours), bits(&then_pass(product)), "{kernel} {m}x{k}x{w} relu {relu}");
                }
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
}

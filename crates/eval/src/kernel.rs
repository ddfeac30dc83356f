//! Where block scores come from: the GEMM by default, or any other kernel with the same
//! rounding guarantees (tests use a deliberately perturbed one to prove that ranks do not
//! depend on the last bits the kernel produces).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use tensor::lanes::{lane_gemm, LANES};
use tensor::matmul::{scores, Parallelism};

/// Computes a block of scores `S = Q·Cᵀ` (f32), each within the forward error bound of a dot
/// product of length `d` (`γ_d · Σ|q_i c_i|`, any summation order, with or without FMA).
///
/// # Shapes
/// `queries: (n_queries, d)`, `candidates: (n_candidates, d)`, `out: (n_queries, n_candidates)`.
pub trait ScoreKernel: Sync {
    /// Overwrites `out` with the block's scores.
    fn scores(&self, queries: ArrayView2<'_, f32>, candidates: ArrayView2<'_, f32>, out: &mut ArrayViewMut2<'_, f32>);
}

/// The GEMM of `tensor::matmul` (OpenBLAS with the `blas` feature, else matrixmultiply), split
/// in two concurrent halves when large.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gemm;

impl ScoreKernel for Gemm {
    fn scores(&self, queries: ArrayView2<'_, f32>, candidates: ArrayView2<'_, f32>, out: &mut ArrayViewMut2<'_, f32>) {
        scores(queries, candidates, out, Parallelism::SplitInTwo);
    }
}

/// `tensor::lanes::lane_gemm` on one thread, for callers that already run in parallel: used when
/// the candidates are the transpose of a row-major `(d, n)` block with `n` a multiple of 16 and
/// `out` is row-major (as `true_rank` lays them out); any other layout falls back to
/// `general_mat_mul` on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lanes;

impl ScoreKernel for Lanes {
    fn scores(&self, queries: ArrayView2<'_, f32>, candidates: ArrayView2<'_, f32>, out: &mut ArrayViewMut2<'_, f32>) {
        let candidates_t = candidates.t();
        let row_major = |strides: &[isize]| strides[1] == 1;
        if candidates_t.ncols().is_multiple_of(LANES) && row_major(candidates_t.strides()) && row_major(out.strides()) {
            lane_gemm(queries, candidates_t, 0.0, out);
        } else {
            general_mat_mul(1.0, &queries, &candidates_t, 0.0, out);
        }
    }
}

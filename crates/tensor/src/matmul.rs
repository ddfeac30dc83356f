//! The score core `S = Q·Cᵀ` and its two backward products, plus a naive reference.
//!
//! ```text
//! S  = Q·Cᵀ            (batch, n_candidates)
//! dQ += dS·C           (batch, dim)
//! dC += dSᵀ·Q          (n_candidates, dim)
//! ```
//!
//! All three go through `general_mat_mul` (BLAS `sgemm` with the `blas` feature; the backward
//! products use `beta = 1` to accumulate). With OpenBLAS the product `dSᵀ·Q` runs markedly
//! faster in the form `dCᵀ = Qᵀ·dS` (see `shared/docs/blas-on-this-machine.md`), so
//! [`scores_backward`] computes that into a scratch buffer and adds its transpose.
//!
//! **Threads.** Large products are split into two halves (by rows, or by columns) that rayon
//! runs concurrently, each a single-threaded GEMM. The split is fixed (it does not depend on the
//! number of threads), so results are the same bit for bit whatever runs them. The binaries set
//! OpenBLAS itself to one thread ([`set_blas_threads`]) so that rayon owns the cores.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

use crate::Buffer;

/// Whether the GEMMs run on the system BLAS (`blas` feature) or on the pure-Rust matrixmultiply.
pub const USES_BLAS: bool = cfg!(feature = "blas");

/// Whether a product may split itself across threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// One GEMM on the calling thread (for callers that already run in parallel).
    Serial,
    /// Two concurrent halves when the product is large (see [`gemm_split_rows`]).
    SplitInTwo,
}

/// Products with at least this many multiply-adds are split in two concurrent halves.
const SPLIT_MIN_FLOPS: usize = 1 << 22;

/// Sets OpenBLAS's own thread count (no-op without the `blas` feature). The binaries call it
/// with 1: the halves of large products, and independent work such as the two towers, then run
/// on rayon's threads instead of OpenBLAS's, without the two pools competing for the cores.
pub fn set_blas_threads(n_threads: usize) {
    #[cfg(feature = "blas")]
    {
        extern "C" {
            fn openblas_set_num_threads(n: std::os::raw::c_int);
        }
        let n = std::os::raw::c_int::try_from(n_threads.max(1)).unwrap_or(std::os::raw::c_int::MAX);
        // SAFETY: OpenBLAS is linked whenever the `blas` feature is on (`blas_src` below), and
        // this function only stores the thread count it is given.
        #[allow(unsafe_code)]
        unsafe {
            openblas_set_num_threads(n);
        }
    }
    #[cfg(not(feature = "blas"))]
    let _ = n_threads;
}

/// The kernel family OpenBLAS picked for this CPU (`openblas_get_corename`, e.g. `"Haswell"`,
/// `"SkylakeX"`), or `None` without the `blas` feature.
pub fn blas_core() -> Option<String> {
    #[cfg(feature = "blas")]
    {
        extern "C" {
            fn openblas_get_corename() -> *const std::os::raw::c_char;
        }
        // SAFETY: OpenBLAS is linked with the `blas` feature; the function returns a pointer to
        // a static NUL-terminated name.
        #[allow(unsafe_code)]
        let name = unsafe {
            let name = openblas_get_corename();
            (!name.is_null()).then(|| std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned())
        };
        name
    }
    #[cfg(not(feature = "blas"))]
    None
}

/// `c = alpha·a·b + beta·c`, as two concurrent halves of `a`'s rows (and `c`'s) when large.
pub fn gemm_split_rows(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    let (m, k) = a.dim();
    if m < 2 || m * k * b.ncols() < SPLIT_MIN_FLOPS {
        general_mat_mul(alpha, &a, &b, beta, c);
        return;
    }
    let (a_top, a_bottom) = a.split_at(Axis(0), m / 2);
    let (mut c_top, mut c_bottom) = c.view_mut().split_at(Axis(0), m / 2);
    rayon::join(
        || general_mat_mul(alpha, &a_top, &b, beta, &mut c_top),
        || general_mat_mul(alpha, &a_bottom, &b, beta, &mut c_bottom),
    );
}

/// `c = alpha·a·b + beta·c`, as two concurrent halves of `b`'s columns (and `c`'s) when large.
pub fn gemm_split_cols(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    let n = b.ncols();
    if n < 2 || a.nrows() * a.ncols() * n < SPLIT_MIN_FLOPS {
        general_mat_mul(alpha, &a, &b, beta, c);
        return;
    }
    let (b_left, b_right) = b.split_at(Axis(1), n / 2);
    let (mut c_left, mut c_right) = c.view_mut().split_at(Axis(1), n / 2);
    rayon::join(
        || general_mat_mul(alpha, &a, &b_left, beta, &mut c_left),
        || general_mat_mul(alpha, &a, &b_right, beta, &mut c_right),
    );
}

/// `S = Q·Cᵀ`, overwriting `s`.
///
/// # Shapes
/// `q: (batch, dim)`, `c: (n_candidates, dim)`, `s: (batch, n_candidates)`.
///
/// # Panics
/// On mismatched shapes.
#[track_caller]
pub fn scores(
    q: ArrayView2<'_, f32>,
    c: ArrayView2<'_, f32>,
    s: &mut ArrayViewMut2<'_, f32>,
    parallelism: Parallelism,
) {
    assert_eq!(q.ncols(), c.ncols(), "scores: Q {:?} and C {:?} differ in dim", q.dim(), c.dim());
    assert_eq!(s.dim(), (q.nrows(), c.nrows()), "scores: S {:?} for Q {:?}, C {:?}", s.dim(), q.dim(), c.dim());
    match parallelism {
        Parallelism::Serial => general_mat_mul(1.0, &q, &c.t(), 0.0, s),
        Parallelism::SplitInTwo => gemm_split_rows(1.0, q, c.t(), 0.0, s),
    }
}

/// `dQ += dS·C` and `dC += dSᵀ·Q` (the latter computed as `(Qᵀ·dS)ᵀ` through `scratch`).
///
/// # Shapes
/// `ds: (batch, n_candidates)`, `dq: (batch, dim)`, `dc: (n_candidates, dim)`.
///
/// # Panics
/// On mismatched shapes.
#[track_caller]
pub fn scores_backward(
    q: ArrayView2<'_, f32>,
    c: ArrayView2<'_, f32>,
    ds: ArrayView2<'_, f32>,
    dq: &mut ArrayViewMut2<'_, f32>,
    dc: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut Buffer,
) {
    assert_eq!(
        ds.dim(),
        (q.nrows(), c.nrows()),
        "scores_backward: dS {:?} for Q {:?}, C {:?}",
        ds.dim(),
        q.dim(),
        c.dim()
    );
    assert_eq!(dq.dim(), q.dim(), "scores_backward: dQ {:?} vs Q {:?}", dq.dim(), q.dim());
    assert_eq!(dc.dim(), c.dim(), "scores_backward: dC {:?} vs C {:?}", dc.dim(), c.dim());
    gemm_split_rows(1.0, ds, c, 1.0, dq);
    scratch.reshape(c.ncols(), c.nrows());
    gemm_split_cols(1.0, q.t(), ds, 0.0, &mut scratch.view_mut());
    *dc += &scratch.view().t();
}

/// The inputs of [`scores_backward_row_scaled`]: the logit gradient `diag(row_scale)·E` of
/// `S = Q·Cᵀ`, given by its parts.
#[derive(Debug, Clone, Copy)]
pub struct RowScaledLogits<'a> {
    /// Queries, `(batch, dim)`.
    pub q: ArrayView2<'a, f32>,
    /// Candidates, `(n_candidates, dim)`.
    pub c: ArrayView2<'a, f32>,
    /// The unscaled gradient block, `(batch, n_candidates)`.
    pub e: ArrayView2<'a, f32>,
    /// One scale per row, `(batch)`.
    pub row_scale: &'a [f32],
}

/// Scratch buffers of [`scores_backward_row_scaled`].
#[derive(Debug, Clone, Default)]
pub struct RowScaledScratch {
    /// `E·C`, `(batch, dim)`.
    ec: Buffer,
    /// `diag(r)·Q`, `(batch, dim)`.
    scaled_q: Buffer,
    /// `(diag(r)·Q)ᵀ·E`, `(dim, n_candidates)`.
    dct: Buffer,
}

/// The backward products for a logit gradient whose row `i` is `r_i · E_i`, without forming it:
/// `dQ += diag(r)·(E·C)` and `dC += Eᵀ·(diag(r)·Q)` (the latter as `((diag(r)·Q)ᵀ·E)ᵀ`).
/// Folding a softmax's row normalisation into the products saves a pass over the `(batch, N)`
/// block.
///
/// # Shapes
/// `e: (batch, n_candidates)`, `row_scale: (batch)`, `dq: (batch, dim)`, `dc: (n_candidates, dim)`.
///
/// # Panics
/// On mismatched shapes.
#[track_caller]
pub fn scores_backward_row_scaled(
    logits: &RowScaledLogits<'_>,
    dq: &mut ArrayViewMut2<'_, f32>,
    dc: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut RowScaledScratch,
    parallelism: Parallelism,
) {
    let RowScaledLogits { q, c, e, row_scale } = *logits;
    let (batch, dim) = q.dim();
    assert_eq!(
        e.dim(),
        (batch, c.nrows()),
        "scores_backward_row_scaled: E {:?} for Q {:?}, C {:?}",
        e.dim(),
        q.dim(),
        c.dim()
    );
    assert_eq!(row_scale.len(), batch, "scores_backward_row_scaled: {} scales for {batch} rows", row_scale.len());
    assert_eq!(dq.dim(), q.dim(), "scores_backward_row_scaled: dQ {:?} vs Q {:?}", dq.dim(), q.dim());
    assert_eq!(dc.dim(), c.dim(), "scores_backward_row_scaled: dC {:?} vs C {:?}", dc.dim(), c.dim());
    scratch.ec.reshape(batch, dim);
    match parallelism {
        Parallelism::Serial => general_mat_mul(1.0, &e, &c, 0.0, &mut scratch.ec.view_mut()),
        Parallelism::SplitInTwo => gemm_split_rows(1.0, e, c, 0.0, &mut scratch.ec.view_mut()),
    }
    for ((mut dq_row, ec_row), &r) in dq.rows_mut().into_iter().zip(scratch.ec.view().rows()).zip(row_scale) {
        dq_row.scaled_add(r, &ec_row);
    }
    scratch.scaled_q.reshape(batch, dim);
    for ((mut out, q_row), &r) in scratch.scaled_q.view_mut().rows_mut().into_iter().zip(q.rows()).zip(row_scale) {
        out.assign(&q_row);
        out *= r;
    }
    scratch.dct.reshape(dim, c.nrows());
    match parallelism {
        Parallelism::Serial => general_mat_mul(1.0, &scratch.scaled_q.view().t(), &e, 0.0, &mut scratch.dct.view_mut()),
        Parallelism::SplitInTwo => {
            gemm_split_cols(1.0, scratch.scaled_q.view().t(), e, 0.0, &mut scratch.dct.view_mut())
        }
    }
    *dc += &scratch.dct.view().t();
}

/// The textbook triple loop, `A·B`, accumulating in f64 (the reference for tests).
pub fn naive_matmul(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    assert_eq!(a.ncols(), b.nrows(), "naive_matmul: {:?} · {:?}", a.dim(), b.dim());
    Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
        (0..a.ncols()).map(|k| f64::from(a[[i, k]]) * f64::from(b[[k, j]])).sum::<f64>() as f32
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::gradcheck::{assert_close, numeric_gradient, projection};
    use crate::init::uniform;

    fn max_rel_error(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f32::max)
    }

    #[test]
    fn gemm_matches_naive_on_odd_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        for (m, k, n) in [(1, 1, 1), (3, 7, 5), (2049, 32, 33), (8, 9, 10), (33, 2049, 3)] {
            let q = uniform((m, k), 1.0, &mut rng);
            let c = uniform((n, k), 1.0, &mut rng);
            let mut s = Array2::from_elem((m, n), f32::NAN);
            scores(q.view(), c.view(), &mut s.view_mut(), Parallelism::SplitInTwo);
            let reference = naive_matmul(q.view(), c.t());
            let error = max_rel_error(&s, &reference);
            assert!(error < 1e-5 * (k as f32).sqrt(), "{m}x{k}x{n}: max rel error {error}");
        }
    }

    #[test]
    fn split_products_match_naive_above_the_split_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let (a, b) = (uniform((301, 129), 1.0, &mut rng), uniform((129, 203), 1.0, &mut rng));
        const { assert!(301 * 129 * 203 >= SPLIT_MIN_FLOPS, "the test must exercise the split") };
        let reference = naive_matmul(a.view(), b.view());
        for split in [gemm_split_rows, gemm_split_cols] {
            let mut c = Array2::ones((301, 203));
            split(1.0, a.view(), b.view(), 1.0, &mut c.view_mut());
            assert!(max_rel_error(&c, &(&reference + 1.0)) < 1e-5);
        }
    }

    #[test]
    fn backward_matches_naive_and_accumulates() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (q, c) = (uniform((3, 4), 1.0, &mut rng), uniform((5, 4), 1.0, &mut rng));
        let ds = projection((3, 5), &mut rng);
        let mut dq = Array2::ones((3, 4));
        let mut dc = Array2::ones((5, 4));
        scores_backward(q.view(), c.view(), ds.view(), &mut dq.view_mut(), &mut dc.view_mut(), &mut Buffer::default());
        assert!(max_rel_error(&dq, &(naive_matmul(ds.view(), c.view()) + 1.0)) < 1e-6);
        assert!(max_rel_error(&dc, &(naive_matmul(ds.t(), q.view()) + 1.0)) < 1e-6);
    }

    #[test]
    fn row_scaled_backward_equals_the_plain_one_on_the_scaled_block() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let (q, c, e) = (uniform((3, 4), 1.0, &mut rng), uniform((5, 4), 1.0, &mut rng), projection((3, 5), &mut rng));
        let scale = [0.5f32, -2.0, 3.0];
        let mut ds = e.clone();
        for (mut row, &r) in ds.rows_mut().into_iter().zip(&scale) {
            row *= r;
        }
        let (mut dq, mut dc) = (Array2::ones((3, 4)), Array2::ones((5, 4)));
        let (mut dq_ref, mut dc_ref) = (Array2::ones((3, 4)), Array2::ones((5, 4)));
        let mut scratch = RowScaledScratch::default();
        let logits = RowScaledLogits { q: q.view(), c: c.view(), e: e.view(), row_scale: &scale };
        scores_backward_row_scaled(
            &logits,
            &mut dq.view_mut(),
            &mut dc.view_mut(),
            &mut scratch,
            Parallelism::SplitInTwo,
        );
        scores_backward(
            q.view(),
            c.view(),
            ds.view(),
            &mut dq_ref.view_mut(),
            &mut dc_ref.view_mut(),
            &mut Buffer::default(),
        );
        assert!(max_rel_error(&dq, &dq_ref) < 1e-6);
        assert!(max_rel_error(&dc, &dc_ref) < 1e-6);
    }

    #[test]
    fn scores_gradcheck() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let (q, c) = (uniform((3, 4), 1.0, &mut rng), uniform((5, 4), 1.0, &mut rng));
        let r = projection((3, 5), &mut rng);
        let loss = |q: ArrayView2<'_, f32>, c: ArrayView2<'_, f32>| {
            let mut s = Array2::zeros((3, 5));
            scores(q, c, &mut s.view_mut(), Parallelism::Serial);
            s.iter().zip(&r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()
        };
        let mut dq = Array2::zeros((3, 4));
        let mut dc = Array2::zeros((5, 4));
        scores_backward(q.view(), c.view(), r.view(), &mut dq.view_mut(), &mut dc.view_mut(), &mut Buffer::default());
        let num_dq = numeric_gradient(q.as_slice().unwrap(), 1e-3, |v| {
            loss(ArrayView2::from_shape((3, 4), v).unwrap(), c.view())
        });
        let num_dc = numeric_gradient(c.as_slice().unwrap(), 1e-3, |v| {
            loss(q.view(), ArrayView2::from_shape((5, 4), v).unwrap())
        });
        assert_close("scores dQ", dq.as_slice().unwrap(), &num_dq, 1e-3, 1e-2);
        assert_close("scores dC", dc.as_slice().unwrap(), &num_dc, 1e-3, 1e-2);
    }
}

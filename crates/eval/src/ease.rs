//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form
//! item-item baseline that is hard to beat on MovieLens.
//!
//! ```text
//! G = XᵀX + λI              (n × n Gram matrix of the binary user × item matrix X)
//! P = G⁻¹                   (blocked Cholesky G = LLᵀ, then P = L⁻ᵀL⁻¹)
//! B = I − P · diag(1/diag P)   so B_jj = 0
//! score(u, j) = (X B)_uj = Σ_i X_ui B_ij
//! ```
//!
//! The Gram matrix and its inverse are `n²` f64 each, and the inversion costs about `n³` flops
//! through ndarray's GEMM: fine to [`MAX_ITEMS`] items (3.2 GB and a few minutes at 20 000);
//! beyond, [`Ease::fit`] refuses with a message rather than exhausting memory.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

/// The largest catalogue EASE is fitted on.
pub const MAX_ITEMS: usize = 20_000;
/// Rows and columns per block of the Cholesky factorisation and inversion.
const BLOCK: usize = 128;

/// A fitted EASE model: the item-item weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Ease {
    /// `B`, `(n_items, n_items)`, zero diagonal.
    pub weights: Array2<f32>,
}

/// Why EASE cannot be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EaseError {
    /// The catalogue is larger than [`MAX_ITEMS`].
    #[error("EASE needs two dense {n}×{n} matrices (about {gib:.0} GiB) and n³ flops; it is offered up to {MAX_ITEMS} items")]
    TooManyItems {
        /// Items.
        n: usize,
        /// Memory it would take.
        gib: f64,
    },
    /// λ is not a positive finite number.
    #[error("EASE λ must be positive and finite, got {0}")]
    Lambda(f64),
}

impl Ease {
    /// Fits EASE on per-user item sets: `users[u]` lists the items (rows of the catalogue,
    /// below `n_items`) user `u` interacted with; repeats count once.
    ///
    /// # Errors
    /// [`EaseError`] for a catalogue beyond [`MAX_ITEMS`] or a bad λ.
    pub fn fit(users: &[Vec<u32>], n_items: usize, lambda: f64) -> Result<Self, EaseError> {
        if n_items > MAX_ITEMS {
            let gib = 2.0 * (n_items * n_items * 8) as f64 / f64::from(1u32 << 30);
            return Err(EaseError::TooManyItems { n: n_items, gib });
        }
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(EaseError::Lambda(lambda));
        }
        let mut gram = Array2::<f64>::zeros((n_items, n_items));
        for items in users {
            let mut items = items.clone();
            items.sort_unstable();
            items.dedup();
            for &a in &items {
                for &b in &items {
                    gram[[a as usize, b as usize]] += 1.0;
                }
            }
        }
        for j in 0..n_items {
            gram[[j, j]] += lambda;
        }
        let inverse = spd_inverse(gram);
        let weights = Array2::from_shape_fn((n_items, n_items), |(i, j)| {
            if i == j {
                0.0
            } else {
                (-inverse[[i, j]] / inverse[[j, j]]) as f32
            }
        });
        Ok(Self { weights })
    }

    /// Scores of every item for users with the given item sets, `(users.len(), n_items)`:
    /// `Σ_{i ∈ items(u)} B_ij`.
    pub fn scores(&self, users: &[&[u32]]) -> Array2<f32> {
        let n = self.weights.nrows();
        let mut out = Array2::zeros((users.len(), n));
        for (mut row, items) in out.rows_mut().into_iter().zip(users) {
            let mut items = items.to_vec();
            items.sort_unstable();
            items.dedup();
            for &i in &items {
                row += &self.weights.row(i as usize);
            }
        }
        out
    }
}

/// `A⁻¹` of a symmetric positive definite matrix: `A = LLᵀ`, `A⁻¹ = L⁻ᵀ L⁻¹`.
fn spd_inverse(mut a: Array2<f64>) -> Array2<f64> {
    cholesky_in_place(&mut a);
    let l_inv = lower_inverse(a.view());
    let mut out = Array2::zeros(l_inv.raw_dim());
    general_mat_mul(1.0, &l_inv.t(), &l_inv, 0.0, &mut out);
    out
}

/// Overwrites the lower triangle of `a` with `L` (`A = LLᵀ`) and zeroes the upper triangle;
/// right-looking, in blocks, the trailing update through GEMM.
fn cholesky_in_place(a: &mut Array2<f64>) {
    let n = a.nrows();
    for k0 in (0..n).step_by(BLOCK) {
        let k1 = (k0 + BLOCK).min(n);
        // Diagonal block: unblocked Cholesky.
        for j in k0..k1 {
            let mut d = a[[j, j]];
            for p in k0..j {
                d -= a[[j, p]] * a[[j, p]];
            }
            let d = d.max(f64::MIN_POSITIVE).sqrt();
            a[[j, j]] = d;
            for i in j + 1..k1 {
                let mut v = a[[i, j]];
                for p in k0..j {
                    v -= a[[i, p]] * a[[j, p]];
                }
                a[[i, j]] = v / d;
            }
        }
        if k1 == n {
            break;
        }
        // Panel below: L21 = A21 · L11⁻ᵀ, row by row (forward substitution).
        let l11 = a.slice(s![k0..k1, k0..k1]).to_owned();
        {
            let mut panel = a.slice_mut(s![k1..n, k0..k1]);
            for mut row in panel.rows_mut() {
                for j in 0..k1 - k0 {
                    let mut v = row[j];
                    for p in 0..j {
                        v -= row[p] * l11[[j, p]];
                    }
                    row[j] = v / l11[[j, j]];
                }
            }
        }
        // Trailing update: A22 −= L21 L21ᵀ.
        let l21 = a.slice(s![k1..n, k0..k1]).to_owned();
        let mut a22 = a.slice_mut(s![k1..n, k1..n]);
        general_mat_mul(-1.0, &l21, &l21.t(), 1.0, &mut a22);
    }
    for i in 0..n {
        for j in i + 1..n {
            a[[i, j]] = 0.0;
        }
    }
}

/// `L⁻¹` of a lower-triangular `L`, by block columns: `M_jj = L_jj⁻¹`,
/// `M_ij = −L_ii⁻¹ Σ_{j ≤ p < i} L_ip M_pj` for `i > j`.
fn lower_inverse(l: ArrayView2<'_, f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut m = Array2::<f64>::zeros((n, n));
    let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
    let diagonal_inverses: Vec<Array2<f64>> = starts
        .iter()
        .map(|&i0| {
            let i1 = (i0 + BLOCK).min(n);
            small_lower_inverse(l.slice(s![i0..i1, i0..i1]))
        })
        .collect();
    for (jb, &j0) in starts.iter().enumerate() {
        let j1 = (j0 + BLOCK).min(n);
        m.slice_mut(s![j0..j1, j0..j1]).assign(&diagonal_inverses[jb]);
        for (ib, &i0) in starts.iter().enumerate().skip(jb + 1) {
            let i1 = (i0 + BLOCK).min(n);
            // sum = L[i, j0..i0] · M[j0..i0, j]
            let mut sum = Array2::<f64>::zeros((i1 - i0, j1 - j0));
            general_mat_mul(1.0, &l.slice(s![i0..i1, j0..i0]), &m.slice(s![j0..i0, j0..j1]), 0.0, &mut sum);
            let mut block: ArrayViewMut2<'_, f64> = m.slice_mut(s![i0..i1, j0..j1]);
            general_mat_mul(-1.0, &diagonal_inverses[ib], &sum, 0.0, &mut block);
        }
    }
    m
}

/// The inverse of a small lower-triangular matrix, by forward substitution.
fn small_lower_inverse(l: ArrayView2<'_, f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut inv = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        inv[[j, j]] = 1.0 / l[[j, j]];
        for i in j + 1..n {
            let mut v = 0.0;
            for p in j..i {
                v += l[[i, p]] * inv[[p, j]];
            }
            inv[[i, j]] = -v / l[[i, i]];
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn the_inverse_of_a_random_spd_matrix_times_itself_is_the_identity() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 300; // three blocks, the last one partial
        let x = Array2::from_shape_fn((n + 20, n), |_| rng.random_range(-1.0..1.0));
        let mut a = x.t().dot(&x);
        for j in 0..n {
            a[[j, j]] += 1.0;
        }
        let inverse = spd_inverse(a.clone());
        let identity = a.dot(&inverse);
        for ((i, j), v) in identity.indexed_iter() {
            let expected = if i == j { 1.0 } else { 0.0 };
            assert!((v - expected).abs() < 1e-8, "({i}, {j}): {v}");
        }
    }

    #[test]
    fn ease_recommends_the_items_that_co_occur() {
        // Items 0-1 always together, 2-3 always together.
        let users: Vec<Vec<u32>> = (0..40).map(|u| if u % 2 == 0 { vec![0, 1] } else { vec![2, 3] }).collect();
        let ease = Ease::fit(&users, 4, 1.0).unwrap();
        assert!(ease.weights.diag().iter().all(|&w| w == 0.0));
        let scores = ease.scores(&[&[0], &[3]]);
        assert!(scores[[0, 1]] > scores[[0, 2]].max(scores[[0, 3]]), "{scores}");
        assert!(scores[[1, 2]] > scores[[1, 0]].max(scores[[1, 1]]), "{scores}");
    }

    #[test]
    fn oversized_catalogues_and_bad_lambdas_are_refused() {
        assert!(matches!(Ease::fit(&[], MAX_ITEMS + 1, 1.0), Err(EaseError::TooManyItems { .. })));
        assert_eq!(Ease::fit(&[], 3, 0.0), Err(EaseError::Lambda(0.0)));
    }
}

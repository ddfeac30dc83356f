//! `TokenBag`: an embedding table followed by a masked mean over each row's tokens, i.e. Keras'
//! `Embedding(mask_zero=True)` + `GlobalAveragePooling1D`.
//!
//! ```text
//! y[b] = Σ_{t : id_bt ≠ 0} E[id_bt] / #{t : id_bt ≠ 0}
//! dE[id_bt] += dy[b] / #{t : id_bt ≠ 0}      for every non-padding token
//! ```
//!
//! Id 0 is padding and is ignored; `[UNK]` (id 1) is an ordinary row and is averaged in.
//!
//! **All-padding rows.** TF computes 0/0 = NaN there. Here such a row outputs a **zero
//! vector** and sends no gradient, so one empty title cannot poison a whole batch; the pooled
//! value then carries no information, exactly like an absent feature. (ML-100k has no empty
//! titles; `TokenBag::forward` reports how many empty rows it saw so callers can surface it.)

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::init::{uniform, EMBEDDING_INIT_RANGE};
use crate::RowSparseGrad;

/// Ragged rows of token ids in CSR form: row `b` is `ids[offsets[b]..offsets[b + 1]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bags {
    offsets: Vec<usize>,
    ids: Vec<u32>,
}

impl Default for Bags {
    fn default() -> Self {
        Self { offsets: vec![0], ids: Vec::new() }
    }
}

impl Bags {
    /// Removes every row, keeping the allocations.
    pub fn clear(&mut self) {
        self.offsets.truncate(1);
        self.ids.clear();
    }

    /// Appends one row of ids (0 = padding).
    pub fn push(&mut self, ids: &[u32]) {
        self.ids.extend_from_slice(ids);
        self.offsets.push(self.ids.len());
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of row `b`.
    pub fn row(&self, b: usize) -> &[u32] {
        &self.ids[self.offsets[b]..self.offsets[b + 1]]
    }

    /// Reserves room for `n_rows` rows of up to `max_row_len` ids each, so that filling
    /// batches of at most that size never reallocates.
    pub fn reserve(&mut self, n_rows: usize, max_row_len: usize) {
        self.offsets.reserve((n_rows + 1).saturating_sub(self.offsets.len()));
        self.ids.reserve((n_rows * max_row_len).saturating_sub(self.ids.len()));
    }

    /// Copies `other`, growing to its capacity (not just its length) so later copies fit.
    fn copy_from(&mut self, other: &Bags) {
        self.offsets.clear();
        self.offsets.reserve(other.offsets.capacity());
        self.offsets.extend_from_slice(&other.offsets);
        self.ids.clear();
        self.ids.reserve(other.ids.capacity());
        self.ids.extend_from_slice(&other.ids);
    }
}

/// A token embedding table pooled by masked mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenBag {
    /// `(n_tokens, dim)`; row 0 (padding) exists but never receives a gradient.
    pub table: Array2<f32>,
}

/// The bags seen by the last forward pass.
#[derive(Debug, Clone, Default)]
pub struct TokenBagCache {
    bags: Bags,
}

impl TokenBag {
    /// A table of `U(−0.05, 0.05)` values.
    pub fn new(n_tokens: usize, dim: usize, rng: &mut impl Rng) -> Self {
        Self { table: uniform((n_tokens, dim), EMBEDDING_INIT_RANGE, rng) }
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.table.ncols()
    }

    /// `out[b]` = masked mean of the rows of bag `b`; returns the number of all-padding bags
    /// (whose output is zero).
    ///
    /// # Shapes
    /// `bags: (batch, ragged)`, `out: (batch, dim)`.
    ///
    /// # Panics
    /// If an id is outside the table or `out` has the wrong shape.
    #[track_caller]
    pub fn forward(&self, bags: &Bags, cache: &mut TokenBagCache, mut out: ArrayViewMut2<'_, f32>) -> usize {
        assert_eq!(
            out.dim(),
            (bags.len(), self.dim()),
            "TokenBag::forward: out {:?} for {} bags",
            out.dim(),
            bags.len()
        );
        cache.bags.copy_from(bags);
        let mut n_empty = 0;
        let dim = self.dim();
        for (b, mut row) in out.rows_mut().into_iter().enumerate() {
            row.fill(0.0);
            let mut count = 0u32;
            for &id in bags.row(b).iter().filter(|&&id| id != 0) {
                assert!(
                    (id as usize) < self.table.nrows(),
                    "TokenBag::forward: id {id} outside table of {} rows",
                    self.table.nrows()
                );
                // Flat slices when both sides are contiguous (always, for tables and the
                // towers' input blocks): a plain loop the compiler vectorises.
                match (row.as_slice_mut(), self.table.as_slice()) {
                    (Some(out_row), Some(table)) => {
                        let table_row = &table[id as usize * dim..(id as usize + 1) * dim];
                        out_row.iter_mut().zip(table_row).for_each(|(o, &v)| *o += v);
                    }
                    _ => row += &self.table.row(id as usize),
                }
                count += 1;
            }
            if count == 0 {
                n_empty += 1;
            } else {
                row /= count as f32;
            }
        }
        n_empty
    }

    /// Adds `dy[b] / count_b` to the row of every non-padding token of bag `b`.
    ///
    /// # Shapes
    /// `dy: (batch, dim)`.
    #[track_caller]
    pub fn backward(&self, cache: &TokenBagCache, dy: ArrayView2<'_, f32>, grads: &mut RowSparseGrad) {
        assert_eq!(dy.dim(), (cache.bags.len(), self.dim()), "TokenBag::backward: dy {:?}", dy.dim());
        for (b, dy_row) in dy.rows().into_iter().enumerate() {
            let ids = cache.bags.row(b);
            let count = ids.iter().filter(|&&id| id != 0).count();
            if count == 0 {
                continue;
            }
            let scale = 1.0 / count as f32;
            for &id in ids.iter().filter(|&&id| id != 0) {
                grads.add_row_scaled(id, dy_row, scale);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::gradcheck::{assert_close, numeric_gradient, projection};

    fn bags(rows: &[&[u32]]) -> Bags {
        let mut bags = Bags::default();
        for r in rows {
            bags.push(r);
        }
        bags
    }

    #[test]
    fn gradcheck_with_padding_unk_and_repeats() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let pool = TokenBag::new(4, 3, &mut rng);
        let input = bags(&[&[2, 3, 0, 0], &[1, 2], &[3, 3, 2], &[0, 2], &[1]]);
        let r = projection((5, 3), &mut rng);
        let loss = |p: &TokenBag| {
            let mut out = Array2::zeros((5, 3));
            p.forward(&input, &mut TokenBagCache::default(), out.view_mut());
            out.iter().zip(&r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()
        };
        let mut cache = TokenBagCache::default();
        pool.forward(&input, &mut cache, Array2::zeros((5, 3)).view_mut());
        let mut grads = RowSparseGrad::new(4, 3);
        pool.backward(&cache, r.view(), &mut grads);
        let numeric = numeric_gradient(pool.table.as_slice().unwrap(), 1e-3, |v| {
            loss(&TokenBag { table: Array2::from_shape_vec((4, 3), v.to_vec()).unwrap() })
        });
        assert_close("TokenBag dE", grads.to_dense().as_slice().unwrap(), &numeric, 1e-3, 1e-2);
        assert!(!grads.rows().contains(&0), "padding row must get no gradient");

        let mut twice = RowSparseGrad::new(4, 3);
        pool.backward(&cache, r.view(), &mut twice);
        pool.backward(&cache, r.view(), &mut twice);
        assert_eq!(twice.to_dense(), grads.to_dense() * 2.0);
    }

    #[test]
    fn mean_ignores_padding_length() {
        let pool = TokenBag::new(4, 2, &mut ChaCha8Rng::seed_from_u64(7));
        let mut a = Array2::zeros((1, 2));
        let mut b = Array2::zeros((1, 2));
        pool.forward(&bags(&[&[1, 3]]), &mut TokenBagCache::default(), a.view_mut());
        pool.forward(&bags(&[&[1, 3, 0, 0, 0]]), &mut TokenBagCache::default(), b.view_mut());
        assert_eq!(a, b);
        let expected = (&pool.table.row(1) + &pool.table.row(3)) / 2.0;
        assert_eq!(a.row(0), expected);
    }

    #[test]
    fn all_padding_rows_give_zeros_not_nan() {
        let pool = TokenBag::new(4, 2, &mut ChaCha8Rng::seed_from_u64(8));
        let input = bags(&[&[0, 0], &[], &[2]]);
        let mut out = Array2::from_elem((3, 2), f32::NAN);
        let mut cache = TokenBagCache::default();
        let n_empty = pool.forward(&input, &mut cache, out.view_mut());
        assert_eq!(n_empty, 2);
        assert!(out.iter().all(|v| v.is_finite()));
        assert_eq!(out.row(0).to_vec(), [0.0, 0.0]);
        let mut grads = RowSparseGrad::new(4, 2);
        pool.backward(&cache, Array2::ones((3, 2)).view(), &mut grads);
        assert_eq!(grads.rows(), [2]);
    }
}

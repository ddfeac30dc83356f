//! `Embedding`: `y[i] = E[ids[i]]`, Keras' `Embedding` with its `U(−0.05, 0.05)` initialiser.
//!
//! Backward scatters `dy[i]` into row `ids[i]` of a [`RowSparseGrad`], summing repeated ids.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::init::{uniform, EMBEDDING_INIT_RANGE};
use crate::prefetch::{prefetch, ROWS_AHEAD};
use crate::RowSparseGrad;

/// An embedding table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// `(n_rows, dim)`.
    pub table: Array2<f32>,
}

/// The ids looked up by the last forward pass.
#[derive(Debug, Clone, Default)]
pub struct EmbeddingCache {
    /// `(batch)`.
    ids: Vec<u32>,
}

impl Embedding {
    /// A table of `U(−0.05, 0.05)` values.
    pub fn new(n_rows: usize, dim: usize, rng: &mut impl Rng) -> Self {
        Self { table: uniform((n_rows, dim), EMBEDDING_INIT_RANGE, rng) }
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.table.ncols()
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.table.nrows()
    }

    /// `out[i] = E[ids[i]]`, written into `out` (typically a column block of a concatenation).
    ///
    /// # Shapes
    /// `ids: (batch)`, `out: (batch, dim)`.
    ///
    /// # Panics
    /// If an id is outside the table or `out` has the wrong shape.
    #[track_caller]
    pub fn forward(&self, ids: &[u32], cache: &mut EmbeddingCache, mut out: ArrayViewMut2<'_, f32>) {
        assert_eq!(
            out.dim(),
            (ids.len(), self.dim()),
            "Embedding::forward: out {:?} for {} ids of dim {}",
            out.dim(),
            ids.len(),
            self.dim()
        );
        cache.ids.clear();
        cache.ids.extend_from_slice(ids);
        let (n_rows, dim) = self.table.dim();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= n_rows) {
            panic!("Embedding::forward: id {id} outside table of {n_rows} rows");
        }
        let table = self.table.as_slice();
        for (i, (mut row, &id)) in out.rows_mut().into_iter().zip(ids).enumerate() {
            if let (Some(table), Some(&ahead)) = (table, ids.get(i + ROWS_AHEAD)) {
                prefetch(&table[ahead as usize * dim..][..dim]);
            }
            match (row.as_slice_mut(), table) {
                (Some(row), Some(table)) => row.copy_from_slice(&table[id as usize * dim..][..dim]),
                _ => row.assign(&self.table.row(id as usize)),
            }
        }
    }

    /// Adds `dy[i]` to row `ids[i]` of `grads`.
    ///
    /// # Shapes
    /// `dy: (batch, dim)`.
    #[track_caller]
    pub fn backward(&self, cache: &EmbeddingCache, dy: ArrayView2<'_, f32>, grads: &mut RowSparseGrad) {
        assert_eq!(dy.dim(), (cache.ids.len(), self.dim()), "Embedding::backward: dy {:?}", dy.dim());
        for (i, (row, &id)) in dy.rows().into_iter().zip(&cache.ids).enumerate() {
            if let Some(&ahead) = cache.ids.get(i + 2 * ROWS_AHEAD) {
                grads.prefetch_slot(ahead);
            }
            if let Some(&ahead) = cache.ids.get(i + ROWS_AHEAD) {
                grads.prefetch_values(ahead);
            }
            match row.as_slice() {
                Some(row) => grads.add_slice(id, row),
                None => grads.add_row(id, row),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::gradcheck::{assert_close, numeric_gradient, projection};

    #[test]
    fn gradcheck_with_repeated_ids() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let emb = Embedding::new(3, 4, &mut rng);
        let ids = [2u32, 0, 2, 1, 2];
        let r = projection((5, 4), &mut rng);
        let loss = |e: &Embedding| {
            let mut out = Array2::zeros((5, 4));
            e.forward(&ids, &mut EmbeddingCache::default(), out.view_mut());
            out.iter().zip(&r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()
        };
        let mut cache = EmbeddingCache::default();
        emb.forward(&ids, &mut cache, Array2::zeros((5, 4)).view_mut());
        let mut grads = RowSparseGrad::new(3, 4);
        emb.backward(&cache, r.view(), &mut grads);
        let numeric = numeric_gradient(emb.table.as_slice().unwrap(), 1e-3, |v| {
            loss(&Embedding { table: Array2::from_shape_vec((3, 4), v.to_vec()).unwrap() })
        });
        assert_close("Embedding dE", grads.to_dense().as_slice().unwrap(), &numeric, 1e-3, 1e-2);

        let mut twice = RowSparseGrad::new(3, 4);
        emb.backward(&cache, r.view(), &mut twice);
        emb.backward(&cache, r.view(), &mut twice);
        assert_eq!(twice.to_dense(), grads.to_dense() * 2.0);
    }

    #[test]
    fn strided_rows_take_the_element_wise_path_to_the_same_values() {
        use ndarray::ShapeBuilder;
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let emb = Embedding::new(7, 5, &mut rng);
        let ids = [3u32, 0, 6, 3];
        let (mut standard, mut column_major) = (Array2::zeros((4, 5)), Array2::zeros((4, 5).f()));
        let mut cache = EmbeddingCache::default();
        emb.forward(&ids, &mut cache, column_major.view_mut());
        emb.forward(&ids, &mut cache, standard.view_mut());
        assert_eq!(standard, column_major);
        assert_eq!(standard.row(3), emb.table.row(3));
        let dy = projection((4, 5), &mut rng);
        let mut dy_column_major = Array2::zeros((4, 5).f());
        dy_column_major.assign(&dy);
        let (mut contiguous, mut strided) = (RowSparseGrad::new(7, 5), RowSparseGrad::new(7, 5));
        emb.backward(&cache, dy.view(), &mut contiguous);
        emb.backward(&cache, dy_column_major.view(), &mut strided);
        assert_eq!(contiguous, strided);
        assert_eq!(contiguous.rows(), [3, 0, 6]);
    }

    #[test]
    fn init_range_is_keras() {
        let emb = Embedding::new(100, 32, &mut ChaCha8Rng::seed_from_u64(5));
        let max = emb.table.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max <= 0.05 && max > 0.045);
    }
}

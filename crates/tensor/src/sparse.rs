//! `RowSparseGrad`: the gradient of an embedding table, stored only for the rows a batch touched.
//!
//! A row used several times in a batch receives the **sum** of its gradients (never the last one
//! written), as TF's `IndexedSlices` after Keras' `_deduplicate_sparse_grad`.

use ndarray::{Array2, ArrayView1};

use crate::prefetch::prefetch;

const ABSENT: u32 = u32::MAX;

/// Gradients for a subset of the rows of an `(n_rows, dim)` table.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSparseGrad {
    dim: usize,
    /// Touched rows, in order of first touch, `(n_touched)`.
    rows: Vec<u32>,
    /// Their summed gradients, `(n_touched, dim)` row-major.
    values: Vec<f32>,
    /// For each table row, its slot in `rows`, or `ABSENT`; `(n_rows)`.
    slot_of_row: Vec<u32>,
}

impl RowSparseGrad {
    /// An empty gradient for an `(n_rows, dim)` table. Capacity for every row is reserved up front
    /// (the size of a dense gradient), so accumulating never allocates afterwards.
    pub fn new(n_rows: usize, dim: usize) -> Self {
        Self {
            dim,
            rows: Vec::with_capacity(n_rows),
            values: Vec::with_capacity(n_rows * dim),
            slot_of_row: vec![ABSENT; n_rows],
        }
    }

    /// Adds `grad` to row `row`.
    ///
    /// # Panics
    /// If `row` is outside the table or `grad` has the wrong width.
    #[track_caller]
    pub fn add_row(&mut self, row: u32, grad: ArrayView1<'_, f32>) {
        assert_eq!(grad.len(), self.dim, "RowSparseGrad::add_row: width {} != {}", grad.len(), self.dim);
        let slot = self.slot_mut(row);
        let values = &mut self.values[slot * self.dim..(slot + 1) * self.dim];
        match grad.as_slice() {
            Some(grad) => values.iter_mut().zip(grad).for_each(|(v, g)| *v += g),
            None => values.iter_mut().zip(grad).for_each(|(v, g)| *v += g),
        }
    }

    /// Adds `grad` to row `row`: [`Self::add_row`] for a contiguous row, inlined into the
    /// caller's loop.
    ///
    /// # Panics
    /// If `row` is outside the table or `grad` has the wrong width.
    #[track_caller]
    #[inline]
    pub fn add_slice(&mut self, row: u32, grad: &[f32]) {
        assert_eq!(grad.len(), self.dim, "RowSparseGrad::add_slice: width {} != {}", grad.len(), self.dim);
        let slot = self.slot_mut(row);
        let values = &mut self.values[slot * self.dim..(slot + 1) * self.dim];
        values.iter_mut().zip(grad).for_each(|(v, g)| *v += g);
    }

    /// Adds `scale · grad` to row `row` (for pooling, where each token gets `dy / len`).
    #[track_caller]
    pub fn add_row_scaled(&mut self, row: u32, grad: ArrayView1<'_, f32>, scale: f32) {
        assert_eq!(grad.len(), self.dim, "RowSparseGrad::add_row_scaled: width {} != {}", grad.len(), self.dim);
        let slot = self.slot_mut(row);
        let values = &mut self.values[slot * self.dim..(slot + 1) * self.dim];
        match grad.as_slice() {
            Some(grad) => values.iter_mut().zip(grad).for_each(|(v, g)| *v += scale * g),
            None => values.iter_mut().zip(grad).for_each(|(v, g)| *v += scale * g),
        }
    }

    /// Forgets every row, keeping the allocations.
    pub fn zero(&mut self) {
        for &row in &self.rows {
            self.slot_of_row[row as usize] = ABSENT;
        }
        self.rows.clear();
        self.values.clear();
    }

    /// The touched rows, in order of first touch.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// The summed gradient of the `i`-th touched row.
    pub fn row_grad(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows of the table this gradient belongs to.
    pub fn n_rows(&self) -> usize {
        self.slot_of_row.len()
    }

    /// The dense `(n_rows, dim)` equivalent, zeros in untouched rows (for tests).
    pub fn to_dense(&self) -> Array2<f32> {
        let mut dense = Array2::zeros((self.n_rows(), self.dim));
        for (i, &row) in self.rows.iter().enumerate() {
            dense.row_mut(row as usize).assign(&ArrayView1::from(self.row_grad(i)));
        }
        dense
    }

    /// Hints that `row` will be added to soon: the cache line of its slot entry (call this
    /// [`ROWS_AHEAD`](crate::prefetch::ROWS_AHEAD) iterations before [`Self::prefetch_values`]).
    #[inline]
    pub fn prefetch_slot(&self, row: u32) {
        if let Some(slot) = self.slot_of_row.get(row as usize) {
            prefetch(std::slice::from_ref(slot));
        }
    }

    /// Hints that `row` will be added to soon: its summed gradient, when it has one already.
    #[inline]
    pub fn prefetch_values(&self, row: u32) {
        if let Some(&slot) = self.slot_of_row.get(row as usize) {
            if slot != ABSENT {
                prefetch(&self.values[slot as usize * self.dim..][..self.dim]);
            }
        }
    }

    #[track_caller]
    #[inline]
    fn slot_mut(&mut self, row: u32) -> usize {
        let n_rows = self.slot_of_row.len();
        let Some(slot) = self.slot_of_row.get_mut(row as usize) else { outside_table(row, n_rows) };
        if *slot == ABSENT {
            *slot = self.rows.len() as u32;
            self.rows.push(row);
            self.values.resize(self.values.len() + self.dim, 0.0);
        }
        *slot as usize
    }
}

#[cold]
#[track_caller]
fn outside_table(row: u32, n_rows: usize) -> ! {
    panic!("RowSparseGrad: row {row} outside table of {n_rows} rows")
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn repeated_rows_are_summed_like_a_dense_scatter_add() {
        let mut grad = RowSparseGrad::new(5, 2);
        let updates = [(1u32, array![1.0f32, 2.0]), (3, array![5.0, 6.0]), (1, array![3.0, 4.0])];
        let mut dense = Array2::<f32>::zeros((5, 2));
        for (row, g) in &updates {
            grad.add_row(*row, g.view());
            let mut r = dense.row_mut(*row as usize);
            r += g;
        }
        let mut by_slice = RowSparseGrad::new(5, 2);
        for (row, g) in &updates {
            by_slice.add_slice(*row, g.as_slice().unwrap());
        }
        assert_eq!(by_slice, grad, "add_slice is add_row for a contiguous row");
        assert_eq!(grad.rows(), [1, 3]);
        assert_eq!(grad.row_grad(0), [4.0, 6.0]);
        assert_eq!(grad.to_dense(), dense);
        // Prefetch hints for touched, untouched and out-of-table rows change nothing.
        for row in [1, 3, 4, 5, 1_000] {
            grad.prefetch_slot(row);
            grad.prefetch_values(row);
        }
        let mut by_slice = RowSparseGrad::new(5, 2);
        for (row, g) in &updates {
            by_slice.add_slice(*row, g.as_slice().unwrap());
        }
        assert_eq!(by_slice, grad, "add_slice is add_row for a contiguous row");
        assert_eq!(grad.rows(), [1, 3]);
        assert_eq!(grad.to_dense(), dense);
        grad.zero();
        assert!(grad.rows().is_empty());
        assert_eq!(grad.to_dense(), Array2::zeros((5, 2)));
    }
}

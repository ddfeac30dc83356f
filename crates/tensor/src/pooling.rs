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
use crate::prefetch::{prefetch, ROWS_AHEAD};
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
        let n_rows = self.table.nrows();
        if let Some(&id) = bags.ids.iter().find(|&&id| id as usize >= n_rows) {
            panic!("TokenBag::forward: id {id} outside table of {n_rows} rows");
        }
        match (self.table.as_slice(), self.dim()) {
            (Some(table), 16) => pool_rows::<16>(table, bags, out),
            (Some(table), 32) => pool_rows::<32>(table, bags, out),
            (Some(table), 64) => pool_rows::<64>(table, bags, out),
            _ => {
                let mut n_empty = 0;
                for (b, mut row) in out.rows_mut().into_iter().enumerate() {
                    row.fill(0.0);
                    let mut count = 0u32;
                    for &id in bags.row(b).iter().filter(|&&id| id != 0) {
                        row += &self.table.row(id as usize);
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
        }
    }

    /// Adds `dy[b] / count_b` to the row of every non-padding token of bag `b`.
    ///
    /// # Shapes
    /// `dy: (batch, dim)`.
    #[track_caller]
    pub fn backward(&self, cache: &TokenBagCache, dy: ArrayView2<'_, f32>, grads: &mut RowSparseGrad) {
        assert_eq!(dy.dim(), (cache.bags.len(), self.dim()), "TokenBag::backward: dy {:?}", dy.dim());
        let all_ids = &cache.bags.ids;
        // One buffer for every bag's scaled row, overwritten (not zeroed) per bag.
        let mut scaled_buffer = [0f32; MAX_SCALED_WIDTH];
        for (b, dy_row) in dy.rows().into_iter().enumerate() {
            let span = cache.bags.offsets[b]..cache.bags.offsets[b + 1];
            let count = all_ids[span.clone()].iter().filter(|&&id| id != 0).count();
            if count == 0 {
                continue;
            }
            let scale = 1.0 / count as f32;
            // `scale · dy[b]` once per bag (the same products `add_row_scaled` forms per token),
            // then a plain add per token.
            let scaled = match dy_row.as_slice() {
                Some(dy_row) if dy_row.len() <= MAX_SCALED_WIDTH => {
                    let scaled = &mut scaled_buffer[..dy_row.len()];
                    scaled.iter_mut().zip(dy_row).for_each(|(s, &d)| *s = scale * d);
                    Some(&*scaled)
                }
                _ => None,
            };
            for position in span {
                // Two stages: the slot entry of the token 2·ROWS_AHEAD on, then (its entry now
                // cached) the gradient row of the token ROWS_AHEAD on.
                if let Some(&ahead) = all_ids.get(position + 2 * ROWS_AHEAD) {
                    grads.prefetch_slot(ahead);
                }
                if let Some(&ahead) = all_ids.get(position + ROWS_AHEAD) {
                    grads.prefetch_values(ahead);
                }
                let id = all_ids[position];
                match (id, scaled) {
                    (0, _) => {}
                    (_, Some(scaled)) => grads.add_slice(id, scaled),
                    (_, None) => grads.add_row_scaled(id, dy_row, scale),
                }
            }
        }
    }
}

/// Widths up to which [`TokenBag::backward`] scales each bag's gradient once, on the stack.
const MAX_SCALED_WIDTH: usize = 128;

/// [`TokenBag::forward`] for a standard-layout table of width `D`: each bag's sum in registers
/// (tokens in order, as the generic loop adds them into the output row, so the same bits),
/// with the row [`ROWS_AHEAD`] tokens on prefetched. Ids are in range (checked by the caller).
fn pool_rows<const D: usize>(table: &[f32], bags: &Bags, mut out: ArrayViewMut2<'_, f32>) -> usize {
    let mut n_empty = 0;
    for (b, mut out_row) in out.rows_mut().into_iter().enumerate() {
        let mut sum = [0f32; D];
        let mut count = 0u32;
        for position in bags.offsets[b]..bags.offsets[b + 1] {
            if let Some(&ahead) = bags.ids.get(position + ROWS_AHEAD) {
                prefetch(&table[ahead as usize * D..][..D]);
            }
            let id = bags.ids[position] as usize;
            if id == 0 {
                continue;
            }
            let row: &[f32; D] = table[id * D..][..D].try_into().expect("a row of D values");
            sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
            count += 1;
        }
        if count == 0 {
            n_empty += 1;
            out_row.fill(0.0);
        } else {
            // The mean in place (`array::map` here compiled to an out-of-line call that copied the
            // array: 6 % of a candidate tower's forward pass in `perf`).
            let count = count as f32;
            sum.iter_mut().for_each(|s| *s /= count);
            // A row of a column block is contiguous: one copy, not an element-wise walk.
            match out_row.as_slice_mut() {
                Some(out_row) => out_row.copy_from_slice(&sum),
                None => out_row.iter_mut().zip(sum).for_each(|(o, m)| *o = m),
            }
        }
    }
    n_empty
}

#[cfg(test)]
mod tests {
    use ndarray::ShapeBuilder;
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
    fn register_sums_equal_the_generic_loop_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for dim in [16, 32, 64, 24] {
            let pool = TokenBag::new(50, dim, &mut rng);
            // The generic loop runs on a column-major copy of the same table.
            let mut column_major = Array2::zeros((50, dim).f());
            column_major.assign(&pool.table);
            let generic = TokenBag { table: column_major };
            assert!(generic.table.as_slice().is_none());
            let rows: Vec<Vec<u32>> =
                (0..40).map(|b| (0..b % 23).map(|t| ((b * 31 + t * 17) % 50) as u32).collect()).collect();
            let input = bags(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>());
            let (mut fast, mut slow) = (Array2::from_elem((40, dim), f32::NAN), Array2::from_elem((40, dim), 7.0));
            let n_empty = pool.forward(&input, &mut TokenBagCache::default(), fast.view_mut());
            assert_eq!(n_empty, generic.forward(&input, &mut TokenBagCache::default(), slow.view_mut()));
            assert_eq!(n_empty, 2, "bags 0 and 23 have no tokens");
            let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "dim {dim}");
        }
    }

    #[test]
    fn scaled_once_per_bag_equals_a_scaled_add_per_token_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let bits = |g: &RowSparseGrad| g.to_dense().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // 32: scaled on the stack; 130: wider than the stack buffer, scaled per token.
        for dim in [32, MAX_SCALED_WIDTH + 2] {
            let pool = TokenBag::new(30, dim, &mut rng);
            let rows: Vec<Vec<u32>> =
                (0..25).map(|b| (0..b % 7).map(|t| ((b * 13 + t * 7) % 30) as u32).collect()).collect();
            let input = bags(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>());
            let mut cache = TokenBagCache::default();
            pool.forward(&input, &mut cache, Array2::zeros((25, dim)).view_mut());
            let dy = projection((25, dim), &mut rng);
            let mut reference = RowSparseGrad::new(30, dim);
            for (row, dy_row) in rows.iter().zip(dy.rows()) {
                let count = row.iter().filter(|&&id| id != 0).count();
                for &id in row.iter().filter(|&&id| id != 0) {
                    reference.add_row_scaled(id, dy_row, 1.0 / count as f32);
                }
            }
            let mut fast = RowSparseGrad::new(30, dim);
            pool.backward(&cache, dy.view(), &mut fast);
            assert_eq!(bits(&fast), bits(&reference), "dim {dim}");
            // A column-major `dy` (rows not contiguous) takes the per-token path.
            let mut column_major = Array2::zeros((25, dim).f());
            column_major.assign(&dy);
            let mut strided = RowSparseGrad::new(30, dim);
            pool.backward(&cache, column_major.view(), &mut strided);
            assert_eq!(bits(&strided), bits(&reference), "dim {dim}, strided dy");
            // And a column-major output (rows not contiguous) gets the same means.
            let (mut standard, mut strided_out) = (Array2::zeros((25, dim)), Array2::zeros((25, dim).f()));
            pool.forward(&input, &mut cache, standard.view_mut());
            pool.forward(&input, &mut cache, strided_out.view_mut());
            assert_eq!(standard, strided_out, "dim {dim}, strided output");
        }
    }

    #[test]
    #[should_panic(expected = "id 9 outside table of 4 rows")]
    fn an_id_outside_the_table_is_named() {
        let pool = TokenBag::new(4, 32, &mut ChaCha8Rng::seed_from_u64(13));
        pool.forward(&bags(&[&[1, 2], &[3, 9]]), &mut TokenBagCache::default(), Array2::zeros((2, 32)).view_mut());
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

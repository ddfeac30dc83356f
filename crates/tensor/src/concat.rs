//! Concatenation along columns in a fixed order, as `tf.concat([...], axis=1)`.
//!
//! Forward copies each part into its column block; backward hands each part the matching
//! column block of the upstream gradient. Towers usually skip the copy by writing each
//! feature straight into its block ([`ColumnLayout::block_mut`]).

use std::ops::Range;

use ndarray::{s, ArrayView2, ArrayViewMut2};

/// The widths of the concatenated parts, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnLayout {
    widths: Vec<usize>,
}

impl ColumnLayout {
    /// A layout of parts with these widths.
    pub fn new(widths: Vec<usize>) -> Self {
        Self { widths }
    }

    /// The parts' widths, in order.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Total width.
    pub fn width(&self) -> usize {
        self.widths.iter().sum()
    }

    /// The columns of part `i`.
    pub fn range(&self, i: usize) -> Range<usize> {
        let start: usize = self.widths[..i].iter().sum();
        start..start + self.widths[i]
    }

    /// `out = [parts[0] | parts[1] | …]`.
    ///
    /// # Panics
    /// If the parts do not match the layout or `out`.
    #[track_caller]
    pub fn concat(&self, parts: &[ArrayView2<'_, f32>], mut out: ArrayViewMut2<'_, f32>) {
        assert_eq!(
            parts.len(),
            self.widths.len(),
            "ColumnLayout::concat: {} parts for {} blocks",
            parts.len(),
            self.widths.len()
        );
        assert_eq!(
            out.ncols(),
            self.width(),
            "ColumnLayout::concat: out has {} columns, layout {}",
            out.ncols(),
            self.width()
        );
        for (i, part) in parts.iter().enumerate() {
            self.block_mut(out.view_mut(), i).assign(part);
        }
    }

    /// Part `i`'s block of a concatenated matrix (forward: write into it).
    pub fn block_mut<'a>(&self, m: ArrayViewMut2<'a, f32>, i: usize) -> ArrayViewMut2<'a, f32> {
        m.slice_move(s![.., self.range(i)])
    }

    /// Part `i`'s block of the upstream gradient (backward: its gradient).
    pub fn block<'a>(&self, dy: ArrayView2<'a, f32>, i: usize) -> ArrayView2<'a, f32> {
        dy.slice_move(s![.., self.range(i)])
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{array, Array2};

    use super::*;
    use crate::gradcheck::{assert_close, numeric_gradient};

    #[test]
    fn concat_in_order_and_gradcheck() {
        let layout = ColumnLayout::new(vec![2, 1]);
        let a = array![[1.0f32, 2.0], [3.0, 4.0]];
        let b = array![[5.0f32], [6.0]];
        let mut out = Array2::zeros((2, 3));
        layout.concat(&[a.view(), b.view()], out.view_mut());
        assert_eq!(out, array![[1.0, 2.0, 5.0], [3.0, 4.0, 6.0]]);

        let r = array![[0.3f32, -0.7, 0.2], [0.9, 0.1, -0.4]];
        let loss = |a: &[f32]| {
            let mut out = Array2::zeros((2, 3));
            layout.concat(&[ArrayView2::from_shape((2, 2), a).unwrap(), b.view()], out.view_mut());
            out.iter().zip(&r).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>()
        };
        let numeric = numeric_gradient(a.as_slice().unwrap(), 1e-3, loss);
        let analytic = layout.block(r.view(), 0).to_owned();
        assert_close("concat da", analytic.as_standard_layout().as_slice().unwrap(), &numeric, 1e-4, 1e-3);
        assert_eq!(layout.block(r.view(), 1), array![[0.2f32], [-0.4]]);
    }
}

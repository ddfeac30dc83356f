//! A reusable 2-D f32 buffer: reshaping within its capacity never allocates.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Row-major storage that keeps its capacity across reshapes, so that a smaller last batch
/// followed by a full one does not reallocate.
#[derive(Debug, Clone, Default)]
pub struct Buffer {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl Buffer {
    /// A `rows × cols` buffer of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { data: vec![0.0; rows * cols], rows, cols }
    }

    /// Sets the shape; contents are unspecified afterwards (callers overwrite them).
    /// Allocates only when `rows · cols` exceeds every size seen before.
    pub fn reshape(&mut self, rows: usize, cols: usize) {
        if self.data.len() < rows * cols {
            self.data.resize(rows * cols, 0.0);
        }
        self.rows = rows;
        self.cols = cols;
    }

    /// Sets the shape and fills with zeros.
    pub fn reshape_zeroed(&mut self, rows: usize, cols: usize) {
        self.reshape(rows, cols);
        self.data[..rows * cols].fill(0.0);
    }

    /// `(rows, cols)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// A view of the current shape.
    pub fn view(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.rows, self.cols), &self.data[..self.rows * self.cols])
            .expect("Buffer: length always covers rows × cols")
    }

    /// A mutable view of the current shape.
    pub fn view_mut(&mut self) -> ArrayViewMut2<'_, f32> {
        ArrayViewMut2::from_shape((self.rows, self.cols), &mut self.data[..self.rows * self.cols])
            .expect("Buffer: length always covers rows × cols")
    }

    /// The current contents as a flat row-major slice.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.rows * self.cols]
    }

    /// The current contents as a flat mutable row-major slice.
    pub fn as_slice_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.rows * self.cols]
    }

    /// Allocated capacity in elements (for allocation tests).
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_and_regrowing_keeps_the_allocation() {
        let mut b = Buffer::zeros(4, 3);
        let ptr = b.as_slice().as_ptr();
        b.reshape(2, 3);
        assert_eq!(b.view().dim(), (2, 3));
        b.reshape(4, 3);
        assert_eq!(b.as_slice().as_ptr(), ptr);
    }
}

//! `prefetch`: ask the CPU to bring a table row into cache ahead of its use.
//!
//! Embedding lookups, pooled bags and the optimizer's row updates read rows of tables that
//! outgrow the caches at scale (162 541 users × 32 floats is 21 MB, with as much again for the
//! Adagrad accumulators). Their row ids are known a few iterations ahead, so each loop asks
//! for the row it will need [`ROWS_AHEAD`] iterations later: the misses then overlap instead
//! of stalling one after another. A prefetch is only a hint; results never depend on it.

/// How many iterations ahead the row loops prefetch.
pub const ROWS_AHEAD: usize = 8;

/// Hints that the cache lines of `row` will be read soon (a no-op off x86-64).
#[inline(always)]
pub fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE_BYTES: usize = 64;
        for line in row.chunks((LINE_BYTES / size_of::<T>().max(1)).max(1)) {
            // SAFETY: `line` is a live slice, so its pointer is valid; a prefetch never faults
            // and has no effect the program can observe.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast::<i8>())
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_row_can_be_asked_for() {
        // Empty rows, rows of one line and of several, unaligned starts, and a zero-sized type
        // (whose chunk length must not become 0, which would panic).
        let values: Vec<f32> = (0..100).map(|i| i as f32).collect();
        for range in [0..0, 0..1, 3..35, 0..100] {
            prefetch(&values[range]);
        }
        prefetch(&[(); 7]);
        prefetch(&[0u8; 200]);
        assert_eq!(values[99], 99.0);
    }
}

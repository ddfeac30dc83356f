//! One ranking task's exclusion lists as per-tile bitmaps, built once per distinct list.
//!
//! Every query of a user excludes the same rows (its training items), and evaluation ranks a
//! user's queries next to one another, so a task's consecutive queries mostly share one list.
//! Each distinct list is kept in ascending order with a cursor, and for each catalogue tile
//! its rows in the tile become a bitmap (bit `j − tile start`), which the band count ANDs with
//! its "above" masks. The cost of exclusions is then a bit per distinct list's row plus a
//! bitmap per query and tile, instead of a score lookup per query and excluded row (with the
//! most active users the most queried, Σ queries × seen rows was 1.8 G lookups for 1.1 M
//! queries of the 5M-shaped data).

use std::borrow::Cow;

/// Bitmap words per tile of `tile_width` catalogue rows.
pub(crate) const fn words_per_tile(tile_width: usize) -> usize {
    tile_width.div_ceil(64)
}

/// The exclusion lists of one task's queries, deduplicated, with a cursor per list.
#[derive(Debug, Default)]
pub(crate) struct TaskExclusions<'a> {
    /// The distinct lists, each in ascending order (borrowed when it already was).
    lists: Vec<Cow<'a, [u32]>>,
    /// For each query, its list in `lists`.
    list_of: Vec<usize>,
    /// For each list, how many of its rows lie before the current tile.
    cursors: Vec<usize>,
    /// For each list, whether it has rows in the current tile.
    has_rows: Vec<bool>,
    /// Bitmap words per list and tile.
    words: usize,
}

impl<'a> TaskExclusions<'a> {
    /// The lists of queries `0..lists.len()`, for tiles of at most `tile_width` rows.
    /// Consecutive queries whose lists are the same slice share one entry (one sortedness
    /// check, one bitmap per tile); lists out of order are sorted copies.
    pub(crate) fn new<E: AsRef<[u32]>>(per_query: &'a [E], tile_width: usize) -> Self {
        let mut task = Self { words: words_per_tile(tile_width), ..Self::default() };
        let mut previous: Option<&[u32]> = None;
        for rows in per_query {
            let rows = rows.as_ref();
            if !previous.is_some_and(|p| std::ptr::eq(p, rows)) {
                task.lists.push(if rows.is_sorted() {
                    Cow::Borrowed(rows)
                } else {
                    let mut sorted = rows.to_vec();
                    sorted.sort_unstable();
                    Cow::Owned(sorted)
                });
                previous = Some(rows);
            }
            task.list_of.push(task.lists.len() - 1);
        }
        task.cursors = vec![0; task.lists.len()];
        task.has_rows = vec![false; task.lists.len()];
        task
    }

    /// Moves every list to the tile of rows `start..end` (tiles in increasing order, each at
    /// most `tile_width` rows), writing into `bits` the bitmap of each list with rows in it.
    pub(crate) fn fill_tile(&mut self, start: usize, end: usize, bits: &mut Vec<u64>) {
        debug_assert!(end - start <= self.words * 64, "fill_tile: tile wider than the bitmaps");
        bits.resize(self.lists.len() * self.words, 0);
        for (k, rows) in self.lists.iter().enumerate() {
            let cursor = &mut self.cursors[k];
            let in_tile = rows[*cursor..].iter().take_while(|&&r| (r as usize) < end).count();
            self.has_rows[k] = in_tile > 0;
            if in_tile == 0 {
                continue;
            }
            let map = &mut bits[k * self.words..(k + 1) * self.words];
            map.fill(0);
            for &r in &rows[*cursor..*cursor + in_tile] {
                let j = r as usize - start;
                map[j / 64] |= 1 << (j % 64);
            }
            *cursor += in_tile;
        }
    }

    /// Query `query`'s bitmap in the current tile, `None` if it excludes nothing there.
    pub(crate) fn in_tile<'b>(&self, query: usize, bits: &'b [u64]) -> Option<&'b [u64]> {
        let k = *self.list_of.get(query)?;
        self.has_rows[k].then(|| &bits[k * self.words..(k + 1) * self.words])
    }

    /// Distinct lists (for tests).
    #[cfg(test)]
    fn n_lists(&self) -> usize {
        self.lists.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tile_gets_the_bits_of_its_rows() {
        let shared = vec![1u32, 5, 64, 70, 200];
        let per_query: Vec<&[u32]> = vec![&shared, &shared, &[3, 130, 0], &[], &shared];
        let mut task = TaskExclusions::new(&per_query, 128);
        // The first two queries share a list; the last one's is the same slice but not next to it.
        assert_eq!(task.n_lists(), 4);
        let mut bits = Vec::new();
        let rows_of = |task: &TaskExclusions<'_>, bits: &[u64], query: usize, start: usize| -> Vec<usize> {
            task.in_tile(query, bits)
                .map(|map| (0..128).filter(|&j| map[j / 64] >> (j % 64) & 1 == 1).map(|j| j + start).collect())
                .unwrap_or_default()
        };
        let expected: [[Vec<usize>; 5]; 2] = [
            [vec![1, 5, 64, 70], vec![1, 5, 64, 70], vec![0, 3], vec![], vec![1, 5, 64, 70]],
            [vec![200], vec![200], vec![130], vec![], vec![200]],
        ];
        for (tile, expected) in expected.iter().enumerate() {
            let start = tile * 128;
            task.fill_tile(start, start + 128, &mut bits);
            for (query, rows) in expected.iter().enumerate() {
                assert_eq!(&rows_of(&task, &bits, query, start), rows, "tile {tile}, query {query}");
                assert_eq!(task.in_tile(query, &bits).is_some(), !rows.is_empty());
            }
        }
        // A third tile holds nothing; no stale bits survive.
        task.fill_tile(256, 300, &mut bits);
        assert!((0..5).all(|query| task.in_tile(query, &bits).is_none()));
        assert!(task.in_tile(5, &bits).is_none(), "a query without a list excludes nothing");
    }
}

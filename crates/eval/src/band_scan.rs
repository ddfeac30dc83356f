//! The two scans `true_rank` runs over each query's row of a score tile: how many scores lie
//! above and at or above a band `[lo, hi]` around the true score, and which lie inside it.
//!
//! Both are a compare and an add (or an or) per score on sixteen lanes, built for AVX2 when
//! the CPU has it (the crate's baseline is SSE2: four lanes), and give the same result on
//! every path: they count and compare, nothing is rounded.

/// Lanes of counters and flags.
const LANES: usize = 16;

/// `(#{v > hi}, #{v ≥ lo})` over `row` (NaN counts in neither).
pub(crate) fn count_band(row: &[f32], lo: f32, hi: f32) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        #[allow(unsafe_code)]
        return unsafe { count_band_avx2(row, lo, hi) };
    }
    count_band_lanes(row, lo, hi)
}

/// Calls `visit(j)` for every `j` with `lo ≤ row[j] ≤ hi`, in increasing order. Chunks of
/// sixteen scores are tested at once; only a chunk holding one is looked at score by score.
pub(crate) fn for_each_in_band(row: &[f32], lo: f32, hi: f32, mut visit: impl FnMut(usize)) {
    for (index, chunk) in row.chunks(LANES).enumerate() {
        if chunk_touches_band(chunk, lo, hi) {
            for (offset, &v) in chunk.iter().enumerate() {
                if v >= lo && v <= hi {
                    visit(index * LANES + offset);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_band_avx2(row: &[f32], lo: f32, hi: f32) -> (u32, u32) {
    count_band_lanes(row, lo, hi)
}

#[inline(always)]
fn count_band_lanes(row: &[f32], lo: f32, hi: f32) -> (u32, u32) {
    let (mut certain, mut possible) = ([0u32; LANES], [0u32; LANES]);
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        let chunk = <&[f32; LANES]>::try_from(chunk).expect("chunks_exact gives whole chunks");
        for lane in 0..LANES {
            certain[lane] += u32::from(chunk[lane] > hi);
            possible[lane] += u32::from(chunk[lane] >= lo);
        }
    }
    let (mut certain, mut possible) = (certain.iter().sum::<u32>(), possible.iter().sum::<u32>());
    for &v in chunks.remainder() {
        certain += u32::from(v > hi);
        possible += u32::from(v >= lo);
    }
    (certain, possible)
}

/// Whether any score of `chunk` lies in `[lo, hi]`, without branching per score.
#[inline(always)]
fn chunk_touches_band(chunk: &[f32], lo: f32, hi: f32) -> bool {
    chunk.iter().fold(0u32, |any, &v| any | u32::from(v >= lo && v <= hi)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> impl Iterator<Item = Vec<f32>> {
        [0, 1, 15, 16, 17, 100, 2048].into_iter().map(|len| {
            let mut row: Vec<f32> = (0..len).map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0).collect();
            if len > 3 {
                row[3] = f32::NAN;
            }
            row
        })
    }

    const BANDS: [(f32, f32); 4] = [(-1.0, 1.0), (0.0, 0.0), (-10.0, 10.0), (2.5, 4.0)];

    #[test]
    fn band_counts_equal_a_plain_count_at_every_length() {
        for row in rows() {
            for (lo, hi) in BANDS {
                let expected =
                    (row.iter().filter(|&&v| v > hi).count() as u32, row.iter().filter(|&&v| v >= lo).count() as u32);
                assert_eq!(count_band(&row, lo, hi), expected, "length {}, band [{lo}, {hi}]", row.len());
                assert_eq!(count_band_lanes(&row, lo, hi), expected, "portable, length {}", row.len());
            }
        }
    }

    #[test]
    fn the_rows_in_the_band_are_visited_in_order() {
        for row in rows() {
            for (lo, hi) in BANDS {
                let expected: Vec<usize> = (0..row.len()).filter(|&j| row[j] >= lo && row[j] <= hi).collect();
                let mut visited = Vec::new();
                for_each_in_band(&row, lo, hi, |j| visited.push(j));
                assert_eq!(visited, expected, "length {}, band [{lo}, {hi}]", row.len());
            }
        }
    }
}

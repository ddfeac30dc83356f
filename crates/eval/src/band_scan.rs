//! The scans over a query's row of block scores: for `true_rank`, how many scores lie above
//! and at or above a band `[lo, hi]` around the true score, and which lie inside it; for
//! `BruteForceIndex::top_k`, which are not below a rising threshold.
//!
//! Counting is a load, two compares and two counter updates per sixteen scores, written out
//! with intrinsics: on AVX-512 the compares give masks and each counter adds 1 under its mask
//! (`vpsubd` of −1); on AVX2 each compare gives −1 or 0 per lane, subtracted from the counters.
//! The compiler's own vectorisation of the portable loop (kept for other CPUs and as the
//! reference) built its vectors lane by lane and spilled the counters: a third of a 20 000 ×
//! 1682 evaluation (`perf`, Zen 5) went there. Every path counts and compares, nothing is
//! rounded, so all give the same result (tested against a plain count).

/// Lanes of counters and flags.
const LANES: usize = 16;

/// `(#{v > hi}, #{v ≥ lo})` over `row` (NaN counts in neither).
pub(crate) fn count_band(row: &[f32], lo: f32, hi: f32) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    {
        if tensor::lanes::avx512_enabled() {
            // SAFETY: the CPU supports AVX-512F (checked by `avx512_enabled`).
            #[allow(unsafe_code)]
            return unsafe { x86::count_band_avx512(row, lo, hi) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            #[allow(unsafe_code)]
            return unsafe { x86::count_band_avx2(row, lo, hi) };
        }
    }
    count_band_lanes(row, lo, hi)
}

/// Calls `visit(j)` for every `j` with `lo ≤ row[j] ≤ hi`, in increasing order. Chunks of
/// sixteen scores are tested at once; only a chunk holding one is looked at score by score.
pub(crate) fn for_each_in_band(row: &[f32], lo: f32, hi: f32, mut visit: impl FnMut(usize)) {
    for (index, chunk) in row.chunks(LANES).enumerate() {
        if chunk_any(chunk, |v| v >= lo && v <= hi) {
            for (offset, &v) in chunk.iter().enumerate() {
                if v >= lo && v <= hi {
                    visit(index * LANES + offset);
                }
            }
        }
    }
}

/// Calls `visit(j)` for every `j` whose `row[j]` is not below the threshold (NaN included), in
/// increasing order, starting from `threshold` and then from what each visit returns: a top-k
/// scan raises its threshold as it keeps better rows. Chunks of sixteen scores are tested at
/// once; only a chunk holding one is looked at score by score.
// `!(v < t)` on purpose: a NaN score is "not below" and must reach exact rescoring.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub(crate) fn for_each_not_below(row: &[f32], mut threshold: f32, mut visit: impl FnMut(usize) -> f32) {
    for (index, chunk) in row.chunks(LANES).enumerate() {
        if chunk_any(chunk, |v| !(v < threshold)) {
            for (offset, &v) in chunk.iter().enumerate() {
                if !(v < threshold) {
                    threshold = visit(index * LANES + offset);
                }
            }
        }
    }
}

/// The counting scans with intrinsics.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::{
        __m256i, __m512i, _mm256_add_epi32, _mm256_castps_si256, _mm256_cmp_ps, _mm256_loadu_ps, _mm256_set1_ps,
        _mm256_setzero_si256, _mm256_storeu_si256, _mm256_sub_epi32, _mm512_mask_cmp_ps_mask, _mm512_mask_sub_epi32,
        _mm512_maskz_loadu_ps, _mm512_reduce_add_epi32, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_si512,
        _CMP_GE_OQ, _CMP_GT_OQ,
    };

    /// [`super::count_band`] on sixteen lanes of masks.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn count_band_avx512(row: &[f32], lo: f32, hi: f32) -> (u32, u32) {
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let minus_one = _mm512_set1_epi32(-1);
        // Counters in two pairs, so that consecutive chunks do not wait on one another's add.
        let (mut certain, mut possible) = ([_mm512_setzero_si512(); 2], [_mm512_setzero_si512(); 2]);
        // Adds the lanes `live` of chunk `start..start + 16` to one pair of counters.
        let count = |start: usize, live: u16, certain: &mut __m512i, possible: &mut __m512i| {
            // SAFETY: the lanes outside `live` are neither read nor compared, and the lanes in
            // it lie inside `row` (below).
            unsafe {
                let v = _mm512_maskz_loadu_ps(live, row.as_ptr().add(start));
                let above = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(live, v, hi);
                let at_least = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(live, v, lo);
                *certain = _mm512_mask_sub_epi32(*certain, above, *certain, minus_one);
                *possible = _mm512_mask_sub_epi32(*possible, at_least, *possible, minus_one);
            }
        };
        let [c0, c1] = &mut certain;
        let [p0, p1] = &mut possible;
        let whole = row.len() / 16;
        for pair in 0..whole / 2 {
            count(32 * pair, u16::MAX, c0, p0);
            count(32 * pair + 16, u16::MAX, c1, p1);
        }
        if whole % 2 == 1 {
            count(16 * (whole - 1), u16::MAX, c0, p0);
        }
        let tail = row.len() % 16;
        if tail > 0 {
            count(16 * whole, (1u16 << tail) - 1, c1, p1);
        }
        let total =
            |c: [__m512i; 2]| (_mm512_reduce_add_epi32(c[0]) as u32).wrapping_add(_mm512_reduce_add_epi32(c[1]) as u32);
        (total(certain), total(possible))
    }

    /// [`super::count_band`] on eight lanes of −1/0 compares.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn count_band_avx2(row: &[f32], lo: f32, hi: f32) -> (u32, u32) {
        let (lo_v, hi_v) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let (mut certain, mut possible) = ([_mm256_setzero_si256(); 2], [_mm256_setzero_si256(); 2]);
        let mut chunks = row.chunks_exact(16);
        for chunk in &mut chunks {
            for (half, values) in chunk.chunks_exact(8).enumerate() {
                // SAFETY: `values` is 8 floats long.
                let v = unsafe { _mm256_loadu_ps(values.as_ptr()) };
                // Each compare is −1 where it holds, 0 elsewhere (and for NaN).
                let above = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(v, hi_v));
                let at_least = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(v, lo_v));
                certain[half] = _mm256_sub_epi32(certain[half], above);
                possible[half] = _mm256_sub_epi32(possible[half], at_least);
            }
        }
        let total = |c: [__m256i; 2]| {
            let mut lanes = [0u32; 8];
            // SAFETY: `lanes` is 8 u32 long.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_add_epi32(c[0], c[1])) };
            lanes.iter().fold(0u32, |sum, &l| sum.wrapping_add(l))
        };
        let (mut certain, mut possible) = (total(certain), total(possible));
        for &v in chunks.remainder() {
            certain += u32::from(v > hi);
            possible += u32::from(v >= lo);
        }
        (certain, possible)
    }
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

/// Whether `holds` for any score of `chunk`, without branching per score (so that the chunk's
/// test compiles to vector compares).
#[inline(always)]
fn chunk_any(chunk: &[f32], holds: impl Fn(f32) -> bool) -> bool {
    chunk.iter().fold(0u32, |any, &v| any | u32::from(holds(v))) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> impl Iterator<Item = Vec<f32>> {
        // Every tail length of both vector widths; NaN, ±∞ and ±0 among the scores.
        [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 47, 100, 2048].into_iter().map(|len| {
            let mut row: Vec<f32> = (0..len).map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0).collect();
            for (at, value) in
                [(3, f32::NAN), (5, f32::INFINITY), (6, f32::NEG_INFINITY), (len / 2, -0.0), (len - 1, f32::NAN)]
            {
                if let Some(v) = row.get_mut(at) {
                    *v = value;
                }
            }
            row
        })
    }

    const BANDS: [(f32, f32); 5] = [(-1.0, 1.0), (0.0, 0.0), (-10.0, 10.0), (2.5, 4.0), (-0.0, 0.0)];

    #[test]
    fn band_counts_equal_a_plain_count_at_every_length() {
        for row in rows() {
            for (lo, hi) in BANDS {
                let expected =
                    (row.iter().filter(|&&v| v > hi).count() as u32, row.iter().filter(|&&v| v >= lo).count() as u32);
                assert_eq!(count_band(&row, lo, hi), expected, "length {}, band [{lo}, {hi}]", row.len());
                assert_eq!(count_band_lanes(&row, lo, hi), expected, "portable, length {}", row.len());
                #[cfg(target_arch = "x86_64")]
                // SAFETY: each kernel runs only where the CPU has its instructions.
                #[allow(unsafe_code)]
                unsafe {
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        assert_eq!(x86::count_band_avx512(&row, lo, hi), expected, "AVX-512, length {}", row.len());
                    }
                    if std::arch::is_x86_feature_detected!("avx2") {
                        assert_eq!(x86::count_band_avx2(&row, lo, hi), expected, "AVX2, length {}", row.len());
                    }
                }
            }
        }
    }

    #[test]
    fn scores_not_below_a_rising_threshold_are_visited_in_order() {
        for row in rows() {
            for start in [f32::NEG_INFINITY, -1.0, 2.0, f32::INFINITY] {
                // Each visit raises the threshold to the score just seen (a top-1 scan), so
                // later scores must beat it; NaN never lowers it and is always visited.
                let mut expected = Vec::new();
                let mut threshold = start;
                for (j, &v) in row.iter().enumerate() {
                    if v >= threshold || v.is_nan() {
                        expected.push(j);
                        threshold = if v.is_nan() { threshold } else { v };
                    }
                }
                let mut visited = Vec::new();
                let mut threshold = start;
                for_each_not_below(&row, start, |j| {
                    visited.push(j);
                    if !row[j].is_nan() {
                        threshold = row[j];
                    }
                    threshold
                });
                assert_eq!(visited, expected, "length {}, from {start}", row.len());
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

//! The scans over a query's row of block scores: for `true_rank`, how many scores lie above
//! and at or above a band `[lo, hi]` around the true score (and how many of those above are
//! excluded for the query), and which lie inside it; for `BruteForceIndex::top_k`, which are
//! not below a rising threshold.
//!
//! Counting is written out with intrinsics: on AVX-512 the compares give masks and each
//! counter adds 1 under its mask (`vpsubd` of −1); on AVX2 each compare gives −1 or 0 per lane,
//! subtracted from the counters. Most of a row lies below a true score's band, so a run of 64
//! scores (32 on AVX2) is first compared with `lo` alone, and counted only if one score is at
//! or above it: a load and a compare per sixteen scores in the common case. Exclusions come as a bitmap (bit `j` of word `j / 64` for score `j`): on AVX-512 sixteen of
//! its bits are one more mask, ANDed with the "above" mask; on AVX2 eight bits are spread to
//! lanes by one compare. The compiler's own vectorisation of the portable loop (kept for other
//! CPUs and as the reference) built its vectors lane by lane and spilled the counters: a third
//! of a 20 000 × 1682 evaluation (`perf`, Zen 5) went there. Every path counts and compares,
//! nothing is rounded, so all give the same result (tested against a plain count).

/// Lanes of counters and flags.
const LANES: usize = 16;

/// What [`count_band`] counts over a row of scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BandCounts {
    /// `#{j : row[j] > hi}`: certainly above.
    pub(crate) above: u32,
    /// `#{j : row[j] ≥ lo}`: possibly above.
    pub(crate) at_least_lo: u32,
    /// `#{j : row[j] > hi, j excluded}`: certainly above but excluded.
    pub(crate) excluded_above: u32,
}

/// Whether bit `j` of `bits` is set (bit `j % 64` of word `j / 64`).
#[inline(always)]
pub(crate) fn bit(bits: &[u64], j: usize) -> bool {
    bits[j / 64] >> (j % 64) & 1 == 1
}

/// [`BandCounts`] of `row` (NaN counts nowhere); `excluded`, if given, holds a bit per score
/// (at least `row.len()` bits).
///
/// # Panics
/// If `lo > hi` (or either is NaN), or `excluded` has fewer than `row.len()` bits.
pub(crate) fn count_band(row: &[f32], lo: f32, hi: f32, excluded: Option<&[u64]>) -> BandCounts {
    assert!(lo <= hi, "count_band: band [{lo}, {hi}] is empty");
    if let Some(bits) = excluded {
        assert!(
            bits.len() * 64 >= row.len(),
            "count_band: {} exclusion bits for {} scores",
            bits.len() * 64,
            row.len()
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        if tensor::lanes::avx512_enabled() {
            // SAFETY: the CPU supports AVX-512F (checked by `avx512_enabled`); the bitmap is
            // long enough (checked above).
            #[allow(unsafe_code)]
            return unsafe {
                match excluded {
                    Some(bits) => x86::count_band_avx512::<true>(row, lo, hi, bits),
                    None => x86::count_band_avx512::<false>(row, lo, hi, &[]),
                }
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above; the bitmap is long enough.
            #[allow(unsafe_code)]
            return unsafe {
                match excluded {
                    Some(bits) => x86::count_band_avx2::<true>(row, lo, hi, bits),
                    None => x86::count_band_avx2::<false>(row, lo, hi, &[]),
                }
            };
        }
    }
    count_band_lanes(row, lo, hi, excluded)
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
        __m256, __m256i, __m512, __m512i, _mm256_add_epi32, _mm256_and_si256, _mm256_castps_si256, _mm256_cmp_ps,
        _mm256_cmpeq_epi32, _mm256_loadu_ps, _mm256_movemask_ps, _mm256_or_ps, _mm256_set1_epi32, _mm256_set1_ps,
        _mm256_setr_epi32, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_sub_epi32, _mm512_cmp_ps_mask,
        _mm512_mask_cmp_ps_mask, _mm512_mask_sub_epi32, _mm512_maskz_loadu_ps, _mm512_reduce_add_epi32,
        _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_si512, _CMP_GE_OQ, _CMP_GT_OQ,
    };

    use super::{bit, BandCounts};

    /// [`super::count_band`] on sixteen lanes of masks; `EXCLUDE` counts the excluded scores
    /// above as well.
    ///
    /// Most scores lie below the band (a tile holds few rows above a true candidate), so each
    /// run of sixty-four is first compared with `lo` alone, and only a run with a score at or
    /// above it is counted; a score above `hi ≥ lo` is at or above `lo`, so a run without one
    /// counts nothing. That takes the common path from ten instructions per sixteen scores to
    /// three.
    ///
    /// # Safety
    /// The CPU supports AVX-512F. With `EXCLUDE`, `excluded` holds `row.len()` bits or more.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn count_band_avx512<const EXCLUDE: bool>(
        row: &[f32],
        lo: f32,
        hi: f32,
        excluded: &[u64],
    ) -> BandCounts {
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let minus_one = _mm512_set1_epi32(-1);
        let [mut above_n, mut at_least_n, mut excluded_n] = [_mm512_setzero_si512(); 3];
        // The lanes `live` of chunk `start..start + 16`.
        let load = |start: usize, live: u16| {
            // SAFETY: the lanes outside `live` are not read, and the lanes in it lie inside
            // `row` (below).
            unsafe { _mm512_maskz_loadu_ps(live, row.as_ptr().add(start)) }
        };
        // Counts chunk `v` whose lanes at or above `lo` are `at_least` and whose exclusion bits
        // are `bits`.
        let mut count = |v: __m512, at_least: u16, bits: u16| {
            let above = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(at_least, v, hi);
            above_n = _mm512_mask_sub_epi32(above_n, above, above_n, minus_one);
            at_least_n = _mm512_mask_sub_epi32(at_least_n, at_least, at_least_n, minus_one);
            if EXCLUDE {
                excluded_n = _mm512_mask_sub_epi32(excluded_n, above & bits, excluded_n, minus_one);
            }
        };
        let words = row.len() / 64;
        for (word, _) in row.chunks_exact(64).enumerate() {
            let start = 64 * word;
            let v = [
                load(start, u16::MAX),
                load(start + 16, u16::MAX),
                load(start + 32, u16::MAX),
                load(start + 48, u16::MAX),
            ];
            let at_least = v.map(|v| _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, lo));
            if at_least.iter().fold(0, |any, &m| any | m) != 0 {
                let bits = if EXCLUDE { excluded[word] } else { 0 };
                for (quarter, (&v, &at_least)) in v.iter().zip(&at_least).enumerate() {
                    count(v, at_least, (bits >> (16 * quarter)) as u16);
                }
            }
        }
        let rest = 64 * words;
        let bits = if EXCLUDE && rest < row.len() { excluded[words] } else { 0 };
        for (quarter, start) in (rest..row.len()).step_by(16).enumerate() {
            let live = if row.len() - start >= 16 { u16::MAX } else { (1u16 << (row.len() - start)) - 1 };
            let v = load(start, live);
            count(v, _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(live, v, lo), (bits >> (16 * quarter)) as u16);
        }
        let total = |counter: __m512i| _mm512_reduce_add_epi32(counter) as u32;
        BandCounts { above: total(above_n), at_least_lo: total(at_least_n), excluded_above: total(excluded_n) }
    }

    /// [`super::count_band`] on eight lanes of −1/0 compares; `EXCLUDE` counts the excluded
    /// scores above as well. Runs of thirty-two scores with none at or above `lo` are skipped
    /// after that one compare, as on AVX-512.
    ///
    /// # Safety
    /// The CPU supports AVX2. With `EXCLUDE`, `excluded` holds `row.len()` bits or more.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn count_band_avx2<const EXCLUDE: bool>(
        row: &[f32],
        lo: f32,
        hi: f32,
        excluded: &[u64],
    ) -> BandCounts {
        let (lo_v, hi_v) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        // Lane `l` tests bit `l` of a byte of exclusion bits.
        let lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let mut counters = [[_mm256_setzero_si256(); 2]; 3];
        let mut chunks = row.chunks_exact(32);
        for (index, chunk) in (&mut chunks).enumerate() {
            // SAFETY: `chunk` is 32 floats long.
            let v: [__m256; 4] = std::array::from_fn(|q| unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * q)) });
            // Each compare is −1 where it holds, 0 elsewhere (and for NaN).
            let at_least = v.map(|v| _mm256_cmp_ps::<_CMP_GE_OQ>(v, lo_v));
            let any = _mm256_or_ps(_mm256_or_ps(at_least[0], at_least[1]), _mm256_or_ps(at_least[2], at_least[3]));
            if _mm256_movemask_ps(any) == 0 {
                continue;
            }
            let bits = if EXCLUDE { (excluded[index / 2] >> (32 * (index % 2))) as u32 } else { 0 };
            for (q, (&v, &at_least)) in v.iter().zip(&at_least).enumerate() {
                let half = q % 2;
                let above = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(v, hi_v));
                counters[0][half] = _mm256_sub_epi32(counters[0][half], above);
                counters[1][half] = _mm256_sub_epi32(counters[1][half], _mm256_castps_si256(at_least));
                if EXCLUDE {
                    let byte = _mm256_set1_epi32((bits >> (8 * q) & 0xff) as i32);
                    let lanes = _mm256_cmpeq_epi32(_mm256_and_si256(byte, lane_bit), lane_bit);
                    counters[2][half] = _mm256_sub_epi32(counters[2][half], _mm256_and_si256(above, lanes));
                }
            }
        }
        let total = |c: [__m256i; 2]| {
            let mut lanes = [0u32; 8];
            // SAFETY: `lanes` is 8 u32 long.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_add_epi32(c[0], c[1])) };
            lanes.iter().fold(0u32, |sum, &l| sum.wrapping_add(l))
        };
        let mut counts = BandCounts {
            above: total(counters[0]),
            at_least_lo: total(counters[1]),
            excluded_above: total(counters[2]),
        };
        let done = row.len() - chunks.remainder().len();
        for (j, &v) in chunks.remainder().iter().enumerate() {
            counts.above += u32::from(v > hi);
            counts.at_least_lo += u32::from(v >= lo);
            counts.excluded_above += u32::from(EXCLUDE && v > hi && bit(excluded, done + j));
        }
        counts
    }
}

#[inline(always)]
fn count_band_lanes(row: &[f32], lo: f32, hi: f32, excluded: Option<&[u64]>) -> BandCounts {
    let (mut above, mut at_least_lo) = ([0u32; LANES], [0u32; LANES]);
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        let chunk = <&[f32; LANES]>::try_from(chunk).expect("chunks_exact gives whole chunks");
        for lane in 0..LANES {
            above[lane] += u32::from(chunk[lane] > hi);
            at_least_lo[lane] += u32::from(chunk[lane] >= lo);
        }
    }
    let mut counts = BandCounts {
        above: above.iter().sum(),
        at_least_lo: at_least_lo.iter().sum(),
        excluded_above: excluded
            .map_or(0, |bits| row.iter().enumerate().filter(|&(j, &v)| v > hi && bit(bits, j)).count() as u32),
    };
    for &v in chunks.remainder() {
        counts.above += u32::from(v > hi);
        counts.at_least_lo += u32::from(v >= lo);
    }
    counts
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

    /// Bands holding many scores, and near the top, where most runs of 64 hold no score at or
    /// above `lo` (the common case of a ranking) and a few do (the scores 5.0 and +∞).
    const BANDS: [(f32, f32); 7] =
        [(-1.0, 1.0), (0.0, 0.0), (-10.0, 10.0), (2.5, 4.0), (-0.0, 0.0), (4.95, 4.99), (4.95, 5.0)];

    /// Exclusion bitmaps for a row of `len` scores: none set, all set, and an irregular
    /// pattern (with bits set past the row's end, which must not count).
    fn bitmaps(len: usize) -> [Vec<u64>; 3] {
        let words = len.div_ceil(64).max(1);
        let pattern = (0..words as u64).map(|w| (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x00ff_0f0f_3333_5555);
        [vec![0; words], vec![u64::MAX; words], pattern.collect()]
    }

    #[test]
    fn band_counts_equal_a_plain_count_at_every_length() {
        for row in rows() {
            for (lo, hi) in BANDS {
                let plain = |excluded: Option<&[u64]>| BandCounts {
                    above: row.iter().filter(|&&v| v > hi).count() as u32,
                    at_least_lo: row.iter().filter(|&&v| v >= lo).count() as u32,
                    excluded_above: excluded.map_or(0, |bits| {
                        (0..row.len()).filter(|&j| row[j] > hi && bits[j / 64] & (1 << (j % 64)) != 0).count() as u32
                    }),
                };
                let maps = bitmaps(row.len());
                for excluded in [None].into_iter().chain(maps.iter().map(|m| Some(m.as_slice()))) {
                    let expected = plain(excluded);
                    let what =
                        format!("length {}, band [{lo}, {hi}], excluded {:?}", row.len(), excluded.map(|m| m[0]));
                    assert_eq!(count_band(&row, lo, hi, excluded), expected, "{what}");
                    assert_eq!(count_band_lanes(&row, lo, hi, excluded), expected, "portable, {what}");
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: each kernel runs only where the CPU has its instructions, with
                    // bitmaps of a bit per score or more.
                    #[allow(unsafe_code)]
                    unsafe {
                        let bits = excluded.unwrap_or(&[]);
                        type Kernel = unsafe fn(&[f32], f32, f32, &[u64]) -> BandCounts;
                        let (avx512, avx2): (Kernel, Kernel) = match excluded {
                            Some(_) => (x86::count_band_avx512::<true>, x86::count_band_avx2::<true>),
                            None => (x86::count_band_avx512::<false>, x86::count_band_avx2::<false>),
                        };
                        if std::arch::is_x86_feature_detected!("avx512f") {
                            assert_eq!(avx512(&row, lo, hi, bits), expected, "AVX-512, {what}");
                        }
                        if std::arch::is_x86_feature_detected!("avx2") {
                            assert_eq!(avx2(&row, lo, hi, bits), expected, "AVX2, {what}");
                        }
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

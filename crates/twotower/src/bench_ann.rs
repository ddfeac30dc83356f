//! `twotower bench-ann`: the approximate indexes (IVF lists and the HNSW graph) against exact
//! search on a seeded synthetic catalogue (default 1 000 000 items at d = 32 and 64): recall@k
//! against the exact top-k, queries per second (batched, every core), build time and the memory
//! each index adds.
//!
//! The catalogue imitates trained item embeddings: 1000 cluster centres, per-item noise and norms
//! that vary by a factor of four (popular items have longer embeddings), so the inner-product
//! search is not a plain cosine search.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use eval::{AnnConfig, BruteForceIndex, HnswIndex, IvfConfig, IvfIndex};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Flags of `bench-ann`.
#[derive(Debug, Args)]
pub struct AnnBenchArgs {
    /// Catalogue size.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(100..=20_000_000))]
    items: u32,
    /// Embedding widths to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,64")]
    dims: Vec<usize>,
    /// Queries timed (the exact top-k of each is the reference).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    queries: u32,
    /// HNSW search widths (ef) to sweep, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,20,50,100,200")]
    ef: Vec<usize>,
    /// IVF lists scanned per query to sweep, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,16,32,64,128")]
    n_probe: Vec<usize>,
    /// Noise around the 1000 cluster centres (0.5: clear clusters; 2: noise dominates, the hard
    /// case for both indexes).
    #[arg(long, default_value_t = 0.5, value_parser = parse_noise)]
    noise: f32,
    /// Measure only the IVF index (the HNSW build takes about 12 minutes at 1M items).
    #[arg(long)]
    skip_hnsw: bool,
    /// Where to write the report.
    #[arg(long, default_value = "ann.json")]
    out: PathBuf,
}

/// `--noise`: a finite amplitude from 0 to 100.
fn parse_noise(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to 100, got {text:?}")),
    }
}

/// A clustered catalogue (or query set) of `n` rows of width `d`, with per-coordinate noise of
/// amplitude `noise` around the centres (whose coordinates are within ±1).
fn clustered(n: usize, d: usize, seed: u64, noise: f32) -> Array2<f32> {
    let mut centres_rng = ChaCha8Rng::seed_from_u64(7);
    let centres = Array2::from_shape_fn((1000, d), |_| centres_rng.random_range(-1.0f32..1.0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Array2::zeros((n, d));
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        let centre = centres.row(rng.random_range(0..1000));
        let scale = 0.5 + 1.5 * (i % 97) as f32 / 96.0;
        for (v, c) in row.iter_mut().zip(centre) {
            *v = scale * (c + noise * rng.random_range(-1.0f32..1.0));
        }
    }
    out
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`), if readable.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl AnnBenchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let (n, n_queries, k) = (self.items as usize, self.queries as usize, 10);
        let mut results = Vec::new();
        for &d in &self.dims {
            eprintln!("bench-ann: {n} items, d = {d}: exact top-{k} of {n_queries} queries");
            let items = clustered(n, d, 1, self.noise);
            let queries = clustered(n_queries, d, 2, self.noise);
            let ids: Vec<u32> = (0..n as u32).collect();
            let exact_index = BruteForceIndex::new(items.clone(), ids.clone());
            let started = Instant::now();
            let exact = exact_index.top_k(queries.view(), k, None);
            let exact_seconds = started.elapsed().as_secs_f64();
            drop(exact_index);
            let measure = |approx: &[eval::Neighbours], seconds: f64| {
                let hits: usize =
                    exact.iter().zip(approx).map(|(e, a)| a.rows.iter().filter(|r| e.rows.contains(r)).count()).sum();
                let recall = hits as f64 / (k * n_queries) as f64;
                let qps = n_queries as f64 / seconds;
                (recall, qps, qps * exact_seconds / n_queries as f64)
            };

            eprintln!(
                "bench-ann: building IVF ({} lists)",
                IvfConfig::default().n_lists.map_or("4·√n".into(), |l| l.to_string())
            );
            let before = resident_bytes();
            let started = Instant::now();
            let mut ivf = IvfIndex::build(items.clone(), ids.clone(), IvfConfig::default());
            let ivf_build_seconds = started.elapsed().as_secs_f64();
            let ivf_added = before.zip(resident_bytes()).map(|(b, a)| a.saturating_sub(b));
            let mut ivf_sweep = Vec::new();
            for &n_probe in &self.n_probe {
                ivf.set_n_probe(n_probe);
                let started = Instant::now();
                let approx = ivf.top_k(queries.view(), k, None);
                let (recall, qps, speedup) = measure(&approx, started.elapsed().as_secs_f64());
                eprintln!("  n_probe {n_probe:>4}: recall@{k} {recall:.4}, {qps:.0} queries/s ({speedup:.1}x exact)");
                ivf_sweep.push(json!({ "n_probe": n_probe, "recall_at_10": recall, "queries_per_second": qps,
                    "speedup_over_exact": speedup }));
            }
            let ivf_report = json!({
                "build_seconds": ivf_build_seconds,
                "index_resident_bytes_added": ivf_added,
                "lists": ivf.n_lists(),
                "config": format!("{:?}", IvfConfig::default()),
                "sweep": ivf_sweep,
            });
            drop(ivf);

            let hnsw_report = if self.skip_hnsw {
                serde_json::Value::Null
            } else {
                eprintln!(
                    "bench-ann: building HNSW (M {}, ef_construction {})",
                    AnnConfig::default().max_connections,
                    AnnConfig::default().ef_construction
                );
                let before = resident_bytes();
                let started = Instant::now();
                let mut ann = HnswIndex::build(items, ids, AnnConfig::default());
                let build_seconds = started.elapsed().as_secs_f64();
                let added = before.zip(resident_bytes()).map(|(b, a)| a.saturating_sub(b));
                let mut sweep = Vec::new();
                for &ef in &self.ef {
                    ann.set_ef_search(ef);
                    let started = Instant::now();
                    let approx = ann.top_k(queries.view(), k, None);
                    let (recall, qps, speedup) = measure(&approx, started.elapsed().as_secs_f64());
                    eprintln!("  ef {ef:>4}: recall@{k} {recall:.4}, {qps:.0} queries/s ({speedup:.1}x exact)");
                    sweep.push(json!({ "ef_search": ef, "recall_at_10": recall, "queries_per_second": qps,
                        "speedup_over_exact": speedup }));
                }
                json!({
                    "build_seconds": build_seconds,
                    "index_resident_bytes_added": added,
                    "config": { "max_connections": AnnConfig::default().max_connections, "ef_construction": AnnConfig::default().ef_construction },
                    "sweep": sweep,
                })
            };
            results.push(json!({
                "items": n, "dim": d, "queries": n_queries,
                "exact_queries_per_second": n_queries as f64 / exact_seconds,
                "exact_note": "BruteForceIndex::top_k over all queries at once (blocked GEMM filter + exact rescoring, both cores)",
                "ivf": ivf_report,
                "hnsw": hnsw_report,
            }));
        }
        let report = json!({
            "catalogue": format!("seeded synthetic: 1000 cluster centres in [-1, 1]^d, uniform noise of amplitude {}, norms varying 0.5x..2x", self.noise),
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "results": results,
        });
        crate::bench::write_report(&report, &self.out)
    }
}

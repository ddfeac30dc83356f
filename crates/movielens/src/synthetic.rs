//! A seeded generator of MovieLens-shaped CSV releases (`ratings.csv`, `movies.csv`), for
//! benchmarks and scale tests that must not need (or redistribute) the real data.
//!
//! Shape, as MovieLens 25M: `n_users` users with heavy-tailed activity (a user's share is
//! proportional to `1 / rank^0.8`, every user at least 1 rating), `n_candidates` movies with
//! Zipf-like popularity (`1 / rank^1.0`), ratings in half stars, timestamps over 1995–2019,
//! titles with years (some quoted, with commas) and 1–3 genres from the 20 of the README.

use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The size of a synthetic release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Users.
    pub n_users: usize,
    /// Movies.
    pub n_candidates: usize,
    /// Ratings.
    pub n_ratings: usize,
}

impl Shape {
    /// MovieLens 25M: 162 541 users, 62 423 movies, 25 000 095 ratings.
    pub const ML_25M: Self = Self { n_users: 162_541, n_candidates: 62_423, n_ratings: 25_000_095 };
}

const GENRES: [&str; 20] = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "(no genres listed)",
];

/// Cumulative weights `Σ_{r ≤ i} 1 / (r + 1)^exponent`, for sampling ranks by binary search.
fn cumulative(n: usize, exponent: f64) -> Vec<f64> {
    let mut total = 0.0;
    (0..n)
        .map(|r| {
            total += 1.0 / ((r + 1) as f64).powf(exponent);
            total
        })
        .collect()
}

fn sample(cumulative: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let u = rng.random::<f64>() * cumulative[cumulative.len() - 1];
    cumulative.partition_point(|&c| c < u).min(cumulative.len() - 1)
}

/// Writes `ratings.csv` and `movies.csv` of `shape` into `dir`, deterministic in `seed`.
/// Ratings are grouped by user and sorted by time within a user, as in the real files.
///
/// # Errors
/// The I/O error.
pub fn write_csv_release(dir: &Path, shape: Shape, seed: u64) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    std::fs::create_dir_all(dir)?;
    let mut movies = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("movies.csv"))?);
    writeln!(movies, "movieId,title,genres")?;
    // Movie ids are sparse in the real data; keep them sparse (every id × 2 + 1).
    let movie_id = |m: usize| m * 2 + 1;
    for m in 0..shape.n_candidates {
        let year = 1900 + (m * 7919) % 120;
        let n_genres = 1 + rng.random_range(0..3);
        let genres: Vec<&str> = (0..n_genres).map(|_| GENRES[rng.random_range(0..GENRES.len() - 1)]).collect();
        let genres = if m % 97 == 0 { GENRES[19].to_string() } else { genres.join("|") };
        if m % 5 == 0 {
            writeln!(movies, "{},\"Movie {m}, The ({year})\",{genres}", movie_id(m))?;
        } else {
            writeln!(movies, "{},Movie {m} ({year}),{genres}", movie_id(m))?;
        }
    }
    movies.flush()?;
    let activity = cumulative(shape.n_users, 0.8);
    let popularity = cumulative(shape.n_candidates, 1.0);
    // Ratings per user: one each, the rest by heavy-tailed activity.
    let mut per_user = vec![1usize; shape.n_users];
    for _ in shape.n_users..shape.n_ratings.max(shape.n_users) {
        per_user[sample(&activity, &mut rng)] += 1;
    }
    let mut ratings = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(dir.join("ratings.csv"))?);
    writeln!(ratings, "userId,movieId,rating,timestamp")?;
    let (start, end) = (789_652_009i64, 1_574_327_703i64);
    let mut written = 0;
    for (user, &count) in per_user.iter().enumerate() {
        let count = count.min(shape.n_ratings - written);
        let mut time = rng.random_range(start..end - 1_000_000);
        for _ in 0..count {
            let movie = sample(&popularity, &mut rng);
            let stars = rng.random_range(1..=10u32);
            time += rng.random_range(1..600);
            writeln!(
                ratings,
                "{},{},{}.{},{time}",
                user + 1,
                movie_id(movie),
                stars / 2,
                if stars % 2 == 1 { 5 } else { 0 }
            )?;
        }
        written += count;
    }
    ratings.flush()
}

//! Helpers shared by the binary's integration tests: scratch directories, a seeded
//! MovieLens-format dataset, and running the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("twotower-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `u.data` and `u.item` with 40 users, 30 movies and 2400 ratings (a small LCG, seeded).
pub fn write_dataset(dir: &Path, n_ratings: usize) {
    let mut state = 42u64;
    let mut next = |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut ratings = String::new();
    for i in 0..n_ratings {
        let user = 1 + next(40);
        let movie = 1 + (user * 3 + next(8)) % 30;
        ratings.push_str(&format!("{user}\t{movie}\t{}\t{}\n", 1 + next(5), 880_000_000 + i as u64 * 600));
    }
    let mut movies = String::new();
    for m in 1..=30 {
        movies.push_str(&format!(
            "{m}|Film number {} (199{})|01-Jan-1995||http://example.invalid/|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
            m % 27,
            m % 10
        ));
    }
    std::fs::write(dir.join("u.data"), ratings).unwrap();
    std::fs::write(dir.join("u.item"), movies).unwrap();
}

pub fn twotower(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twotower")).args(args).env_remove("MOVIELENS_DIR").output().unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

//! The popularity baseline: every query gets the same scores, each candidate's training count.

use ndarray::Array1;

/// Scores for the popularity baseline: `scores[row] = Σ counts of rows with the same key`, where
/// `key_of_row` groups rows that are the same candidate (TFRS keys movies by title, so the 18
/// duplicated ML-100k titles share their counts) and `train_rows` lists the catalogue row of
/// every training interaction.
pub fn popularity_scores(key_of_row: &[u32], train_rows: impl IntoIterator<Item = u32>) -> Array1<f32> {
    let n_keys = key_of_row.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut per_key = vec![0u64; n_keys];
    for row in train_rows {
        per_key[key_of_row[row as usize] as usize] += 1;
    }
    key_of_row.iter().map(|&key| per_key[key as usize] as f32).collect()
}

//! Keras-exact preprocessing on your own strings: a user vocabulary, a tokenizer, buckets.
//!
//! Run with `cargo run -p features --example vocabulary`.

use features::{Buckets, StringLookup, TextVectorizer, Vocabulary};

fn main() {
    // `StringLookup(vocabulary=np.unique(users))`: OOV at 0, entries from 1, in byte order.
    let users = Vocabulary::from_sorted_unique(["u10", "u2", "u1", "u2"]);
    assert_eq!(users.entries(), ["u1", "u10", "u2"]);
    println!("u10 → {}, a stranger → {}", users.lookup("u10"), users.lookup("stranger"));

    // Two OOV indices and a mask token, as `StringLookup(num_oov_indices=2, mask_token="")`.
    let genres = StringLookup::new(vec!["Comedy".into(), "Drama".into()], 2, Some(String::new())).unwrap();
    println!("Drama → {}, mask → {}, unknown → {}", genres.lookup("Drama"), genres.lookup(""), genres.lookup("Noir"));

    // `TextVectorization(max_tokens=10_000)`: lower-case, strip punctuation, split on whitespace.
    let titles = TextVectorizer::adapt(["The Rock (1996)", "The Net (1995)", "Rock Star (2001)"], 10_000);
    println!("\"the rock!\" → {:?} (0 = padding, 1 = [UNK])", titles.encode("the rock!"));

    // `Discretization(bin_boundaries=np.linspace(min, max, 4))` on times.
    let buckets = Buckets::linspace(0.0, 300.0, 4);
    let times = [-5i64, 0, 99, 100, 300, 1000];
    let ids: Vec<u32> = times.iter().map(|&t| buckets.bucketize(t)).collect();
    println!("times {times:?} → buckets {ids:?} of {}", buckets.n_buckets());
    assert_eq!(ids, [0, 1, 1, 2, 4, 4]);
}

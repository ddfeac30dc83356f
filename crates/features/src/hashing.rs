//! `Hashing(num_bins, salt)`: strings to bins without a vocabulary, as Keras does it.
//!
//! * Without a salt, `tf.strings.to_hash_bucket_fast`: FarmHash `Fingerprint64` (farmhash-na
//!   `Hash64`, stable across platforms) modulo `num_bins`.
//! * With a salt, `tf.strings.to_hash_bucket_strong`: SipHash-2-4 keyed by the two 64-bit salt
//!   words (an integer salt `s` is the key `[s, s]`) modulo `num_bins`.
//!
//! The same hash gives the out-of-vocabulary bucket of a lookup with several OOV indices.

use std::hash::Hasher;

use serde::{Deserialize, Serialize};

/// A frozen hashing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashing {
    num_bins: u64,
    salt: Option<[u64; 2]>,
}

/// `num_bins` was 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Hashing: num_bins must be at least 1")]
pub struct ZeroBins;

impl Hashing {
    /// `Hashing(num_bins)`, or `Hashing(num_bins, salt=[k0, k1])`.
    ///
    /// # Errors
    /// [`ZeroBins`] for `num_bins = 0`.
    pub fn new(num_bins: u64, salt: Option<[u64; 2]>) -> Result<Self, ZeroBins> {
        if num_bins == 0 {
            return Err(ZeroBins);
        }
        Ok(Self { num_bins, salt })
    }

    /// Number of bins (the embedding table's rows).
    pub fn num_bins(&self) -> u64 {
        self.num_bins
    }

    /// The bin of `text` (its UTF-8 bytes), in `0..num_bins`.
    pub fn bin(&self, text: &str) -> u64 {
        let hash = match self.salt {
            None => fingerprint64(text.as_bytes()),
            Some([k0, k1]) => {
                let mut hasher = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
                hasher.write(text.as_bytes());
                hasher.finish()
            }
        };
        hash % self.num_bins
    }
}

/// FarmHash `Fingerprint64`, TensorFlow's string fingerprint.
pub fn fingerprint64(bytes: &[u8]) -> u64 {
    farmhash::fingerprint64(bytes)
}

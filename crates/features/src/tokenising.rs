//! `TextVectorization(max_tokens=…)` with the default standardisation and whitespace split.
//!
//! * Lowercase **ASCII only** (`tf.strings.lower` with no encoding): `Á` stays `Á`.
//! * Remove the 32 ASCII punctuation characters `` !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ ``.
//! * Split on runs of ASCII whitespace (space, `\t \n \v \f \r`), dropping empty pieces.
//! * Vocabulary: `''` at 0 (padding), `'[UNK]'` at 1, then tokens by count descending, ties by
//!   bytes descending; `max_tokens` counts the two reserved entries.

use serde::{Deserialize, Serialize};

use crate::vocab::{adapt_order, Vocabulary};

/// The padding id (masked out by pooling).
pub const PAD_INDEX: u32 = 0;
/// The id of out-of-vocabulary words (averaged in by pooling).
pub const UNK_INDEX: u32 = 1;

/// A frozen text vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextVectorizer {
    /// Real tokens; token `i` of this vocabulary has id `i + 2` (its own index is `i + 1`).
    tokens: Vocabulary,
}

impl TextVectorizer {
    /// Adapts on `texts`, keeping at most `max_tokens − 2` tokens.
    pub fn adapt<'a>(texts: impl IntoIterator<Item = &'a str>, max_tokens: usize) -> Self {
        let standardized: Vec<String> = texts.into_iter().map(standardize).collect();
        let ordered = adapt_order(standardized.iter().flat_map(|t| split_whitespace(t)));
        let keep = max_tokens.saturating_sub(2);
        let tokens = Vocabulary::new(ordered.into_iter().take(keep).map(|(t, _)| t));
        Self { tokens: tokens.expect("adapt_order yields each token once") }
    }

    /// The id of one (already standardised) token: [`UNK_INDEX`] when unknown.
    pub fn lookup(&self, token: &str) -> u32 {
        match self.tokens.lookup(token) {
            0 => UNK_INDEX,
            i => i + 1,
        }
    }

    /// The token ids of `text`, unpadded (an empty or punctuation-only text gives `[]`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        split_whitespace(&standardize(text)).map(|t| self.lookup(t)).collect()
    }

    /// The whole vocabulary in id order: `''`, `'[UNK]'`, then the tokens.
    pub fn vocabulary(&self) -> Vec<&str> {
        ["", "[UNK]"].into_iter().chain(self.tokens.entries().iter().map(String::as_str)).collect()
    }

    /// Rows of an embedding table over these ids (vocabulary size, reserved entries included).
    pub fn len(&self) -> usize {
        self.tokens.entries().len() + 2
    }

    /// Always false: the two reserved entries are always there.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// `lower_and_strip_punctuation`: ASCII lowercase, then the 32 ASCII punctuation characters removed.
pub fn standardize(text: &str) -> String {
    text.chars().filter(|c| !c.is_ascii_punctuation()).map(|c| c.to_ascii_lowercase()).collect()
}

fn split_whitespace(text: &str) -> impl Iterator<Item = &str> {
    text.split([' ', '\t', '\n', '\x0b', '\x0c', '\r']).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vectorizer: &TextVectorizer, text: &str, expected: &[&str]) {
        let ids = vectorizer.encode(text);
        let vocab = vectorizer.vocabulary();
        let tokens: Vec<&str> = ids.iter().map(|&i| vocab[i as usize]).collect();
        assert_eq!(tokens, expected, "{text:?}");
    }

    #[test]
    fn standardises_like_keras() {
        let v = TextVectorizer::adapt(["L.A. Confidential (1997)", "Don't Look", "Á köldum klaka", "jlgjlg"], 100);
        check(&v, "L.A. Confidential (1997)", &["la", "confidential", "1997"]);
        check(&v, "DON'T  look\t", &["dont", "look"]);
        check(&v, "Á KÖLDUM", &["Á", "[UNK]"]);
        check(&v, "JLG/JLG", &["jlgjlg"]);
        check(&v, "!!!", &[]);
        check(&v, "", &[]);
        check(&v, "unseen", &["[UNK]"]);
    }

    #[test]
    fn max_tokens_counts_the_reserved_entries() {
        let v = TextVectorizer::adapt(["a a a b b c"], 4);
        assert_eq!(v.vocabulary(), ["", "[UNK]", "a", "b"]);
        assert_eq!(v.encode("c b"), [UNK_INDEX, 3]);
    }
}

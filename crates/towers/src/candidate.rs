//! `CandidateTower`: `[title emb | masked mean of token embs] → head`, the tutorials' `MovieModel`.

use ndarray::ArrayView2;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::{Bags, Buffer, ColumnLayout, Embedding, EmbeddingCache, RowSparseGrad, TokenBag, TokenBagCache};

use crate::{CandidateFeatures, Head, HeadCache, HeadGrads, ValidModelConfig, Vocabularies};

/// The candidate tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateTower {
    /// Title-id embedding, `(n_titles, dim)`.
    pub title: Embedding,
    /// Title-token embedding with masked mean pooling, `(n_tokens, dim)`, when text is used.
    pub text: Option<TokenBag>,
    /// Dense layers over the concatenation.
    pub head: Head,
    /// Column blocks: title id, then text.
    layout: ColumnLayout,
}

/// The features of a batch of candidates.
#[derive(Debug, Clone, Copy)]
pub struct CandidateBatch<'a> {
    /// Title indices (from the title vocabulary), `(batch)`.
    pub titles: &'a [u32],
    /// Title token ids, one bag per example; ignored without text.
    pub tokens: &'a Bags,
}

/// What backward needs, in reusable buffers.
#[derive(Debug, Clone, Default)]
pub struct CandidateCache {
    /// The concatenated features, `(batch, width)`.
    features: Buffer,
    title: EmbeddingCache,
    text: TokenBagCache,
    head: HeadCache,
}

/// Gradients of a [`CandidateTower`], field for field.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateGrads {
    /// Rows of the title table.
    pub title: RowSparseGrad,
    /// Rows of the token table.
    pub text: Option<RowSparseGrad>,
    /// The dense layers.
    pub head: HeadGrads,
}

impl CandidateTower {
    /// A freshly initialised tower.
    pub fn new(config: &ValidModelConfig, sizes: &Vocabularies, rng: &mut impl Rng) -> Self {
        let dim = config.embedding_dim;
        let title = Embedding::new(sizes.n_titles, dim, rng);
        let (text, layout) = match config.candidate_features {
            CandidateFeatures::TitleId => (None, ColumnLayout::new(vec![dim])),
            CandidateFeatures::TitleIdAndText => {
                (Some(TokenBag::new(sizes.n_tokens, dim, rng)), ColumnLayout::new(vec![dim, dim]))
            }
        };
        let head = Head::new(layout.width(), &config.layer_sizes, rng);
        Self { title, text, head, layout }
    }

    /// The concatenated features' column blocks.
    pub fn layout(&self) -> &ColumnLayout {
        &self.layout
    }

    /// Output (embedding) width.
    pub fn out_dim(&self) -> usize {
        self.head.out_dim(self.layout.width())
    }

    /// Candidate embeddings.
    ///
    /// # Shapes
    /// `batch: (B)` per feature → `(B, out_dim)`, a view into `cache`.
    ///
    /// # Panics
    /// If text is used and the bags are for a different batch, or an index is out of range.
    #[track_caller]
    pub fn forward<'c>(&self, batch: &CandidateBatch<'_>, cache: &'c mut CandidateCache) -> ArrayView2<'c, f32> {
        let CandidateCache { features, title, text, head } = cache;
        features.reshape(batch.titles.len(), self.layout.width());
        self.title.forward(batch.titles, title, self.layout.block_mut(features.view_mut(), 0));
        if let Some(bag) = &self.text {
            assert_eq!(batch.tokens.len(), batch.titles.len(), "CandidateTower: token bags for a different batch");
            bag.forward(batch.tokens, text, self.layout.block_mut(features.view_mut(), 1));
        }
        self.head.forward(features.view(), head)
    }

    /// Adds the gradients of every parameter for upstream `dy: (B, out_dim)`.
    pub fn backward(&self, cache: &mut CandidateCache, dy: ArrayView2<'_, f32>, grads: &mut CandidateGrads) {
        let CandidateCache { features: _, title, text, head } = cache;
        let dfeatures = self.head.backward(head, dy, &mut grads.head);
        self.title.backward(title, self.layout.block(dfeatures, 0), &mut grads.title);
        if let (Some(bag), Some(dtext)) = (&self.text, &mut grads.text) {
            bag.backward(text, self.layout.block(dfeatures, 1), dtext);
        }
    }
}

impl CandidateGrads {
    /// Empty gradients for `tower`.
    pub fn zeros_like(tower: &CandidateTower) -> Self {
        let CandidateTower { title, text, head, layout: _ } = tower;
        Self {
            title: RowSparseGrad::new(title.n_rows(), title.dim()),
            text: text.as_ref().map(|t| RowSparseGrad::new(t.table.nrows(), t.dim())),
            head: HeadGrads::zeros_like(head),
        }
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        let Self { title, text, head } = self;
        title.zero();
        if let Some(t) = text {
            t.zero();
        }
        head.zero();
    }
}

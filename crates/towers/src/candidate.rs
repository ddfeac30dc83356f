//! `CandidateTower`: `[candidate-id emb | masked mean of token embs] → head`, the tutorials' `MovieModel`.

use ndarray::ArrayView2;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::{Bags, Buffer, ColumnLayout, Embedding, EmbeddingCache, RowSparseGrad, TokenBag, TokenBagCache};

use crate::{CandidateFeatures, Head, HeadCache, HeadGrads, ValidModelConfig, Vocabularies};

/// The candidate tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateTower {
    /// Candidate-id embedding, `(n_candidate_ids, dim)`.
    pub id: Embedding,
    /// Text-token embedding with masked mean pooling, `(n_tokens, dim)`, when text is used.
    pub text: Option<TokenBag>,
    /// Dense layers over the concatenation.
    pub head: Head,
    /// Column blocks: candidate id, then text.
    layout: ColumnLayout,
}

/// The features of a batch of candidates.
#[derive(Debug, Clone, Copy)]
pub struct CandidateBatch<'a> {
    /// Candidate-id indices (from the candidate-id vocabulary), `(batch)`.
    pub ids: &'a [u32],
    /// Text token ids, one bag per example; ignored without text.
    pub tokens: &'a Bags,
}

/// What backward needs, in reusable buffers.
#[derive(Debug, Clone, Default)]
pub struct CandidateCache {
    /// The concatenated features, `(batch, width)`.
    features: Buffer,
    id: EmbeddingCache,
    text: TokenBagCache,
    head: HeadCache,
}

/// Gradients of a [`CandidateTower`], field for field.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateGrads {
    /// Rows of the candidate-id table.
    pub id: RowSparseGrad,
    /// Rows of the token table.
    pub text: Option<RowSparseGrad>,
    /// The dense layers.
    pub head: HeadGrads,
}

impl CandidateTower {
    /// A freshly initialised tower.
    pub fn new(config: &ValidModelConfig, sizes: &Vocabularies, rng: &mut impl Rng) -> Self {
        let dim = config.embedding_dim;
        let id = Embedding::new(sizes.n_candidate_ids, dim, rng);
        let (text, layout) = match config.candidate_features {
            CandidateFeatures::Id => (None, ColumnLayout::new(vec![dim])),
            CandidateFeatures::IdAndText => {
                (Some(TokenBag::new(sizes.n_tokens, dim, rng)), ColumnLayout::new(vec![dim, dim]))
            }
        };
        let head = Head::new(layout.width(), &config.layer_sizes, rng);
        Self { id, text, head, layout }
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
        let CandidateCache { features, id, text, head } = cache;
        features.reshape(batch.ids.len(), self.layout.width());
        self.id.forward(batch.ids, id, self.layout.block_mut(features.view_mut(), 0));
        if let Some(bag) = &self.text {
            assert_eq!(batch.tokens.len(), batch.ids.len(), "CandidateTower: token bags for a different batch");
            bag.forward(batch.tokens, text, self.layout.block_mut(features.view_mut(), 1));
        }
        self.head.forward(features.view(), head)
    }

    /// Adds the gradients of every parameter for upstream `dy: (B, out_dim)`.
    pub fn backward(&self, cache: &mut CandidateCache, dy: ArrayView2<'_, f32>, grads: &mut CandidateGrads) {
        let CandidateCache { features: _, id, text, head } = cache;
        let dfeatures = self.head.backward(head, dy, &mut grads.head);
        self.id.backward(id, self.layout.block(dfeatures, 0), &mut grads.id);
        if let (Some(bag), Some(dtext)) = (&self.text, &mut grads.text) {
            bag.backward(text, self.layout.block(dfeatures, 1), dtext);
        }
    }
}

impl CandidateGrads {
    /// Empty gradients for `tower`.
    pub fn zeros_like(tower: &CandidateTower) -> Self {
        let CandidateTower { id, text, head, layout: _ } = tower;
        Self {
            id: RowSparseGrad::new(id.n_rows(), id.dim()),
            text: text.as_ref().map(|t| RowSparseGrad::new(t.table.nrows(), t.dim())),
            head: HeadGrads::zeros_like(head),
        }
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        let Self { id, text, head } = self;
        id.zero();
        if let Some(t) = text {
            t.zero();
        }
        head.zero();
    }
}

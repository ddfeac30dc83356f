//! `QueryTower`: `[query-id emb | time-bucket emb | normalised timestamp] → head`, the tutorials' `UserModel`.

use ndarray::{ArrayView1, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::{Buffer, ColumnLayout, Embedding, EmbeddingCache, RowSparseGrad};

use crate::{Head, HeadCache, HeadGrads, QueryFeatures, ValidModelConfig, Vocabularies};

/// The query tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryTower {
    /// Query-id embedding, `(n_query_ids, dim)`.
    pub id: Embedding,
    /// Timestamp-bucket embedding, `(n_buckets, dim)`, when timestamps are used.
    pub timestamp: Option<Embedding>,
    /// Dense layers over the concatenation.
    pub head: Head,
    /// Column blocks of the concatenation: query id, then time bucket and normalised timestamp.
    layout: ColumnLayout,
}

/// The features of a batch of queries, one entry per example.
#[derive(Debug, Clone, Copy)]
pub struct QueryBatch<'a> {
    /// User indices (from the id vocabulary), `(batch)`.
    pub ids: &'a [u32],
    /// Timestamp buckets, `(batch)`; ignored without timestamps.
    pub buckets: &'a [u32],
    /// Normalised timestamps, `(batch)`; ignored without timestamps.
    pub normalized_timestamps: &'a [f32],
}

/// What backward needs, in reusable buffers.
#[derive(Debug, Clone, Default)]
pub struct QueryCache {
    /// The concatenated features, `(batch, width)`.
    features: Buffer,
    id: EmbeddingCache,
    bucket: EmbeddingCache,
    head: HeadCache,
}

/// Gradients of a [`QueryTower`], field for field.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryGrads {
    /// Rows of the query-id table.
    pub id: RowSparseGrad,
    /// Rows of the bucket table.
    pub timestamp: Option<RowSparseGrad>,
    /// The dense layers.
    pub head: HeadGrads,
}

impl QueryTower {
    /// A freshly initialised tower.
    pub fn new(config: &ValidModelConfig, sizes: &Vocabularies, rng: &mut impl Rng) -> Self {
        let dim = config.embedding_dim;
        let id = Embedding::new(sizes.n_query_ids, dim, rng);
        let (timestamp, layout) = match config.query_features {
            QueryFeatures::Id => (None, ColumnLayout::new(vec![dim])),
            QueryFeatures::IdAndTime => {
                (Some(Embedding::new(sizes.n_buckets, dim, rng)), ColumnLayout::new(vec![dim, dim, 1]))
            }
        };
        let head = Head::new(layout.width(), &config.layer_sizes, rng);
        Self { id, timestamp, head, layout }
    }

    /// The concatenated features' column blocks.
    pub fn layout(&self) -> &ColumnLayout {
        &self.layout
    }

    /// Output (embedding) width.
    pub fn out_dim(&self) -> usize {
        self.head.out_dim(self.layout.width())
    }

    /// Query embeddings.
    ///
    /// # Shapes
    /// `batch: (B)` per feature → `(B, out_dim)`, a view into `cache`.
    ///
    /// # Panics
    /// If timestamps are used and their lengths differ from `ids`, or an index is out of range.
    #[track_caller]
    pub fn forward<'c>(&self, batch: &QueryBatch<'_>, cache: &'c mut QueryCache) -> ArrayView2<'c, f32> {
        let QueryCache { features, id, bucket, head } = cache;
        features.reshape(batch.ids.len(), self.layout.width());
        self.id.forward(batch.ids, id, self.layout.block_mut(features.view_mut(), 0));
        if let Some(timestamp) = &self.timestamp {
            assert_eq!(batch.buckets.len(), batch.ids.len(), "QueryTower: buckets for a different batch");
            assert_eq!(
                batch.normalized_timestamps.len(),
                batch.ids.len(),
                "QueryTower: timestamps for a different batch"
            );
            timestamp.forward(batch.buckets, bucket, self.layout.block_mut(features.view_mut(), 1));
            self.layout
                .block_mut(features.view_mut(), 2)
                .column_mut(0)
                .assign(&ArrayView1::from(batch.normalized_timestamps));
        }
        self.head.forward(features.view(), head)
    }

    /// Adds the gradients of every parameter for upstream `dy: (B, out_dim)`.
    pub fn backward(&self, cache: &mut QueryCache, dy: ArrayView2<'_, f32>, grads: &mut QueryGrads) {
        let QueryCache { features: _, id, bucket, head } = cache;
        let dfeatures = self.head.backward(head, dy, &mut grads.head);
        self.id.backward(id, self.layout.block(dfeatures, 0), &mut grads.id);
        if let (Some(timestamp), Some(dtimestamp)) = (&self.timestamp, &mut grads.timestamp) {
            timestamp.backward(bucket, self.layout.block(dfeatures, 1), dtimestamp);
        }
    }
}

impl QueryGrads {
    /// Empty gradients for `tower`.
    pub fn zeros_like(tower: &QueryTower) -> Self {
        let QueryTower { id, timestamp, head, layout: _ } = tower;
        Self {
            id: RowSparseGrad::new(id.n_rows(), id.dim()),
            timestamp: timestamp.as_ref().map(|t| RowSparseGrad::new(t.n_rows(), t.dim())),
            head: HeadGrads::zeros_like(head),
        }
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        let Self { id, timestamp, head } = self;
        id.zero();
        if let Some(t) = timestamp {
            t.zero();
        }
        head.zero();
    }
}

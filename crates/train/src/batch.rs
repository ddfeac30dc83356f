//! Batching: a seeded shuffle of the training rows, and the input columns of one batch,
//! gathered from the encoded sources into buffers reused from batch to batch.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tensor::prefetch::{prefetch, ROWS_AHEAD};
use tensor::Bags;
use towers::InputColumn;

use crate::encode::{EncodedColumn, EncodedInput};
use crate::fitted::Encoding;
use crate::{Encoded, Shuffle};

/// Yields the order of training rows for each epoch (serialisable, so a checkpoint resumes the
/// same sequence of batches).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shuffler {
    order: Vec<usize>,
    mode: Shuffle,
    rng: ChaCha8Rng,
    shuffled_once: bool,
}

impl Shuffler {
    /// A shuffler over `rows`, seeded (its own ChaCha8 stream, independent of initialisation).
    pub fn new(rows: &[usize], mode: Shuffle, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Self { order: rows.to_vec(), mode, rng, shuffled_once: false }
    }

    /// The order for the next epoch: reshuffled each time, or once and then replayed.
    pub fn next_epoch(&mut self) -> &[usize] {
        if self.mode == Shuffle::EachEpoch || !self.shuffled_once {
            self.order.shuffle(&mut self.rng);
            self.shuffled_once = true;
        }
        &self.order
    }
}

/// The most features a tower may have (the batch's column views live on the stack).
pub const MAX_FEATURES: usize = 32;

/// One input column of a batch, in a reusable buffer.
#[derive(Debug, Clone)]
pub(crate) enum ColumnBuffer {
    Ids(Vec<u32>),
    Bags(Bags),
    Values(Vec<f32>),
}

impl ColumnBuffer {
    fn for_input(input: &EncodedInput) -> Self {
        match input {
            EncodedInput::Gathered { column: EncodedColumn::Ids(_), .. } => Self::Ids(Vec::new()),
            EncodedInput::Gathered { column: EncodedColumn::Values(_), .. } => Self::Values(Vec::new()),
            EncodedInput::Gathered { column: EncodedColumn::Bags(_), .. } | EncodedInput::History { .. } => {
                Self::Bags(Bags::default())
            }
        }
    }

    /// Gathers `input` for `examples` into this buffer.
    fn gather(&mut self, input: &EncodedInput, examples: impl Iterator<Item = usize> + Clone) {
        match (self, input) {
            (Self::Ids(out), EncodedInput::Gathered { column: EncodedColumn::Ids(ids), of_example }) => {
                out.clear();
                out.extend(examples.map(|e| ids[source_row(of_example.as_deref(), e)]));
            }
            (Self::Values(out), EncodedInput::Gathered { column: EncodedColumn::Values(values), of_example }) => {
                out.clear();
                out.extend(examples.map(|e| values[source_row(of_example.as_deref(), e)]));
            }
            (Self::Bags(out), EncodedInput::Gathered { column: EncodedColumn::Bags(bags), of_example }) => {
                out.clear();
                for e in examples {
                    out.push(bags.row(source_row(of_example.as_deref(), e)));
                }
            }
            (Self::Bags(out), EncodedInput::History { items, starts, ends }) => {
                out.clear();
                // Each example's span is read at random from arrays of every interaction: ask
                // for the span 2·ROWS_AHEAD examples on, then for the items of the one
                // ROWS_AHEAD on (its span now cached), so that the misses overlap.
                let mut far = examples.clone().skip(2 * ROWS_AHEAD);
                let mut near = examples.clone().skip(ROWS_AHEAD);
                for e in examples {
                    if let Some(far) = far.next() {
                        prefetch(&starts[far..=far]);
                        prefetch(&ends[far..=far]);
                    }
                    if let Some(near) = near.next() {
                        prefetch(&items[starts[near] as usize..ends[near] as usize]);
                    }
                    out.push(&items[starts[e] as usize..ends[e] as usize]);
                }
            }
            _ => unreachable!("buffers are made for their input (ColumnBuffer::for_input)"),
        }
    }

    /// An empty buffer for inputs of `kind`.
    pub fn for_kind(kind: towers::InputKind) -> Self {
        match kind {
            towers::InputKind::Lookup => Self::Ids(Vec::new()),
            towers::InputKind::Bag => Self::Bags(Bags::default()),
            towers::InputKind::Numeric => Self::Values(Vec::new()),
        }
    }

    /// Appends one example's encoding.
    ///
    /// # Panics
    /// If the encoding is of another kind than the buffer (the fitted feature decides both).
    pub fn push(&mut self, encoding: &Encoding) {
        match (self, encoding) {
            (Self::Ids(ids), Encoding::Index(i)) => ids.push(*i),
            (Self::Bags(bags), Encoding::Indices(ids)) => bags.push(ids),
            (Self::Values(values), Encoding::Number(x)) => values.push(*x),
            (buffer, encoding) => panic!("ColumnBuffer: {encoding:?} for a {buffer:?} buffer"),
        }
    }

    fn view(&self) -> InputColumn<'_> {
        match self {
            Self::Ids(ids) => InputColumn::Ids(ids),
            Self::Bags(bags) => InputColumn::Bags(bags),
            Self::Values(values) => InputColumn::Values(values),
        }
    }
}

fn source_row(of_example: Option<&[u32]>, example: usize) -> usize {
    of_example.map_or(example, |rows| rows[example] as usize)
}

/// Gathers `inputs` for `examples` into `buffers` (made on first use).
pub(crate) fn gather_inputs(
    inputs: &[EncodedInput],
    examples: impl Iterator<Item = usize> + Clone,
    buffers: &mut Vec<ColumnBuffer>,
) {
    if buffers.len() != inputs.len() {
        *buffers = inputs.iter().map(ColumnBuffer::for_input).collect();
    }
    for (buffer, input) in buffers.iter_mut().zip(inputs) {
        buffer.gather(input, examples.clone());
    }
}

/// Calls `f` with the buffers as the towers' column views, without allocating.
pub(crate) fn with_views<T>(buffers: &[ColumnBuffer], f: impl FnOnce(&[InputColumn<'_>]) -> T) -> T {
    assert!(buffers.len() <= MAX_FEATURES, "at most {MAX_FEATURES} features per tower (checked by the config)");
    let mut views = [InputColumn::Values(&[]); MAX_FEATURES];
    for (view, buffer) in views.iter_mut().zip(buffers) {
        *view = buffer.view();
    }
    f(&views[..buffers.len()])
}

/// The feature columns of one batch, in reusable buffers.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchColumns {
    /// One buffer per query feature.
    pub query: Vec<ColumnBuffer>,
    /// One buffer per candidate feature.
    pub candidate: Vec<ColumnBuffer>,
    /// Catalogue rows of the candidates: the positives, then any extra negatives.
    pub candidate_rows: Vec<u32>,
    /// Their identities (for accidental hits).
    pub candidate_ids: Vec<u32>,
    /// Their sampling probabilities (for logQ).
    pub probabilities: Vec<f32>,
}

impl BatchColumns {
    /// Gathers interactions `rows` and the extra candidate rows `extra`; `candidate_probability`
    /// (per identity) feeds the logQ correction.
    pub fn fill(&mut self, data: &Encoded, rows: &[usize], extra: &[u32], candidate_probability: Option<&[f32]>) {
        // The two sides on two threads: at scale (tables far larger than the caches) each side's
        // gathers wait on memory for as long as a tower's forward pass. The candidate side runs on
        // the calling worker, where its tower runs next (see `Trainer::step`).
        let Self { query, candidate, candidate_rows, candidate_ids, probabilities } = self;
        rayon::join(
            || {
                candidate_rows.clear();
                candidate_rows.extend(rows.iter().map(|&r| data.candidate_row[r]));
                candidate_rows.extend_from_slice(extra);
                gather_inputs(&data.candidate, candidate_rows.iter().map(|&r| r as usize), candidate);
                candidate_ids.clear();
                candidate_ids.extend(candidate_rows.iter().map(|&r| data.candidate_identity[r as usize]));
                probabilities.clear();
                if let Some(p) = candidate_probability {
                    probabilities.extend(candidate_ids.iter().map(|&t| p[t as usize]));
                }
            },
            || gather_inputs(&data.query, rows.iter().copied(), query),
        );
    }

    /// Gathers only the query columns of interactions `rows`.
    pub fn fill_queries(&mut self, data: &Encoded, rows: &[usize]) {
        gather_inputs(&data.query, rows.iter().copied(), &mut self.query);
    }
}

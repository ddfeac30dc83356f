//! `Retriever`: recommendations from a loaded model file — encode a raw query, embed the
//! catalogue once, exclude what the user saw, take the exact top-k.
//!
//! The binaries only parse flags and print; every rule about queries lives here, so the
//! `recommend` command, the server and the export cannot get it subtly different.

use std::collections::HashMap;

use eval::BruteForceIndex;
use ndarray::{s, Array2};
use towers::TowerCache;

use crate::batch::{gather_inputs, with_views, ColumnBuffer};
use crate::encode::EncodedInput;
use crate::fitted::{Encoding, FittedFeature, Value};
use crate::query::{QueryError, Request, UserQuery};
use crate::spec::{KEY, TIMESTAMP};
use crate::ModelFile;

/// Queries embedded per forward pass when embedding every known user.
const USER_CHUNK: usize = 4096;

/// An approximate index over the catalogue.
#[derive(Debug)]
enum Approximate {
    #[cfg(feature = "ann")]
    Hnsw(eval::HnswIndex),
    Ivf(eval::IvfIndex),
}

/// A model file with its catalogue embedded, ready for queries.
#[derive(Debug)]
pub struct Retriever {
    file: ModelFile,
    index: BruteForceIndex,
    /// The approximate index, when asked for ([`Retriever::use_ivf`], [`Retriever::use_ann`]).
    approximate: Option<Approximate>,
    user_index: HashMap<String, u32>,
    item_index: HashMap<String, u32>,
    rows_of_identity: HashMap<u32, Vec<u32>>,
}

/// One recommended catalogue row.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The catalogue row.
    pub row: u32,
    /// The candidate key in the source data.
    pub key: String,
    /// What to show: its text (e.g. the title), else its key.
    pub name: String,
    /// Its exact score `q·c`.
    pub score: f32,
}

/// A request checked and resolved against the model: what to encode and what to exclude.
struct Resolved {
    encodings: Vec<Encoding>,
    exclusions: Vec<u32>,
}

impl Retriever {
    /// Embeds the catalogue of a (validated) model file.
    pub fn new(file: ModelFile) -> Self {
        let inputs: Vec<EncodedInput> = file
            .catalogue
            .inputs
            .iter()
            .map(|column| EncodedInput::Gathered { column: column.clone(), of_example: None })
            .collect();
        let mut buffers = Vec::new();
        gather_inputs(&inputs, 0..file.catalogue.len(), &mut buffers);
        let catalogue: Array2<f32> =
            with_views(&buffers, |batch| file.model.candidate.forward(batch, &mut TowerCache::default()).to_owned());
        // The index names rows by their catalogue row, so exclusions are rows too.
        let rows: Vec<u32> = (0..file.catalogue.len() as u32).collect();
        let index = BruteForceIndex::new(catalogue, rows);
        let user_index = file.users.iter().enumerate().map(|(i, u)| (u.key.clone(), i as u32)).collect();
        let item_index = file.catalogue.keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u32)).collect();
        let mut rows_of_identity: HashMap<u32, Vec<u32>> = HashMap::new();
        for (row, &identity) in file.catalogue.identity.iter().enumerate() {
            rows_of_identity.entry(identity).or_default().push(row as u32);
        }
        Self { file, index, approximate: None, user_index, item_index, rows_of_identity }
    }

    /// Answers from now on with an approximate HNSW index over the catalogue (built here, on
    /// every core): for catalogues where exact search is too slow. Scores stay exact; which items
    /// make the list is approximate (see `eval::HnswIndex`).
    #[cfg(feature = "ann")]
    pub fn use_ann(&mut self, config: eval::AnnConfig) {
        let rows: Vec<u32> = (0..self.file.catalogue.len() as u32).collect();
        self.approximate =
            Some(Approximate::Hnsw(eval::HnswIndex::build(self.index.candidates().to_owned(), rows, config)));
    }

    /// Answers from now on with an approximate IVF index (k-means lists, `config.n_probe` of
    /// them scanned per query; built here in seconds, deterministic). Scores stay exact; which
    /// items make the list is approximate (see `eval::IvfIndex`).
    pub fn use_ivf(&mut self, config: eval::IvfConfig) {
        let rows: Vec<u32> = (0..self.file.catalogue.len() as u32).collect();
        self.approximate =
            Some(Approximate::Ivf(eval::IvfIndex::build(self.index.candidates().to_owned(), rows, config)));
    }

    /// Top-k through the approximate index if one is in use, else exactly.
    fn top_k(&self, queries: ndarray::ArrayView2<'_, f32>, k: usize, exclusions: &[Vec<u32>]) -> Vec<eval::Neighbours> {
        match &self.approximate {
            #[cfg(feature = "ann")]
            Some(Approximate::Hnsw(index)) => index.top_k(queries, k, Some(exclusions)),
            Some(Approximate::Ivf(index)) => index.top_k(queries, k, Some(exclusions)),
            None => self.index.top_k(queries, k, Some(exclusions)),
        }
    }

    /// The model file.
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// The catalogue rows excluded by default for known user `user` (an index into `file().users`).
    pub fn seen(&self, user: u32) -> &[u32] {
        self.file.users.get(user as usize).map_or(&[], |u| u.seen.as_slice())
    }

    /// The user's index in `file().users`, or why there is none.
    ///
    /// # Errors
    /// [`QueryError::UnknownUser`].
    pub fn user_index(&self, user: &str) -> Result<u32, QueryError> {
        self.user_index
            .get(user)
            .copied()
            .ok_or_else(|| QueryError::UnknownUser { user: user.to_string(), n_known: self.file.users.len() })
    }

    /// The catalogue row of a candidate key.
    pub fn item_row(&self, key: &str) -> Option<u32> {
        self.item_index.get(key).copied()
    }

    /// The best `k` items for a known user, best first.
    ///
    /// # Errors
    /// [`QueryError`] for an unknown user, `k = 0` or a time out of range.
    pub fn recommend(&self, query: &UserQuery<'_>) -> Result<Vec<Recommendation>, QueryError> {
        self.answer(std::slice::from_ref(&Request::from(query))).pop().expect("one answer per query")
    }

    /// [`Self::recommend`] for many known users at once.
    pub fn recommend_many(&self, queries: &[UserQuery<'_>]) -> Vec<Result<Vec<Recommendation>, QueryError>> {
        let requests: Vec<Request> = queries.iter().map(Request::from).collect();
        self.answer(&requests)
    }

    /// Answers raw requests (known users, unknown users with a history or attributes) with one
    /// forward pass of the query tower and one scoring pass over the catalogue. Answers are in
    /// the order of `requests`; a bad request gets its own error and does not affect the others.
    pub fn answer(&self, requests: &[Request]) -> Vec<Result<Vec<Recommendation>, QueryError>> {
        let resolved: Vec<Result<Resolved, QueryError>> = requests.iter().map(|r| self.resolve(r)).collect();
        let valid: Vec<usize> = (0..requests.len()).filter(|&i| resolved[i].is_ok()).collect();
        let mut answers: Vec<Result<Vec<Recommendation>, QueryError>> =
            resolved.iter().map(|r| r.as_ref().map(|_| Vec::new()).map_err(Clone::clone)).collect();
        if valid.is_empty() {
            return answers;
        }
        let encoded: Vec<&Resolved> = valid.iter().map(|&i| resolved[i].as_ref().expect("valid")).collect();
        let embedded = self.embed_resolved(&encoded);
        let exclusions: Vec<Vec<u32>> = encoded.iter().map(|r| r.exclusions.clone()).collect();
        let k_max = valid.iter().map(|&i| requests[i].k).max().unwrap_or(1);
        let tops = self.top_k(embedded.view(), k_max, &exclusions);
        for (&i, top) in valid.iter().zip(tops) {
            let items = top
                .rows
                .iter()
                .zip(&top.scores)
                .take(requests[i].k)
                .map(|(&row, &score)| Recommendation {
                    row,
                    key: self.file.catalogue.keys[row as usize].clone(),
                    name: self.file.catalogue.names[row as usize].clone(),
                    score,
                })
                .collect();
            answers[i] = Ok(items);
        }
        answers
    }

    /// The catalogue embeddings, `(n_rows, d)`, row `i` for catalogue row `i`.
    pub fn catalogue_embeddings(&self) -> ndarray::ArrayView2<'_, f32> {
        self.index.candidates()
    }

    /// The query embedding of every known user (in `file().users` order) at Unix time `at`
    /// (`None`: the latest training time), `(n_users, d)`.
    ///
    /// # Errors
    /// [`QueryError`] when `at` is out of range.
    pub fn embed_known_users(&self, at: Option<i64>) -> Result<Array2<f32>, QueryError> {
        let mut out = Array2::zeros((self.file.users.len(), self.file.model.query.out_dim()));
        for (chunk_idx, chunk) in self.file.users.chunks(USER_CHUNK).enumerate() {
            let resolved: Vec<Resolved> = chunk
                .iter()
                .map(|u| self.resolve(&Request { user: Some(u.key.clone()), at, k: 1, ..Request::default() }))
                .collect::<Result<_, _>>()?;
            let start = chunk_idx * USER_CHUNK;
            let refs: Vec<&Resolved> = resolved.iter().collect();
            out.slice_mut(s![start..start + chunk.len(), ..]).assign(&self.embed_resolved(&refs));
        }
        Ok(out)
    }

    /// Query embeddings of resolved requests, `(n, d)`.
    fn embed_resolved(&self, resolved: &[&Resolved]) -> Array2<f32> {
        let mut buffers: Vec<ColumnBuffer> =
            self.file.features.query.iter().map(|f| ColumnBuffer::for_kind(f.fitted.input_kind())).collect();
        for r in resolved {
            for (buffer, encoding) in buffers.iter_mut().zip(&r.encodings) {
                buffer.push(encoding);
            }
        }
        with_views(&buffers, |batch| self.file.model.query.forward(batch, &mut TowerCache::default()).to_owned())
    }

    /// Checks a request and encodes its query features.
    fn resolve(&self, request: &Request) -> Result<Resolved, QueryError> {
        if request.k == 0 {
            return Err(QueryError::ZeroK);
        }
        let known = match request.user.as_deref().map(|u| (u, self.user_index.get(u))) {
            Some((_, Some(&index))) => Some(&self.file.users[index as usize]),
            Some((user, None)) if request.history.is_none() && request.attributes.is_empty() => {
                return Err(QueryError::UnknownUser { user: user.to_string(), n_known: self.file.users.len() })
            }
            None if request.history.is_none() && request.attributes.is_empty() => return Err(QueryError::Empty),
            _ => None,
        };
        let features = &self.file.features.query;
        if let Some(column) = request.attributes.keys().find(|c| !features.iter().any(|f| &f.column == *c)) {
            let read: Vec<&str> = features
                .iter()
                .filter(|f| !f.column.is_empty() && f.column != KEY && f.column != TIMESTAMP)
                .map(|f| f.column.as_str())
                .collect();
            let known = if read.is_empty() { "no query-table column".to_string() } else { read.join(", ") };
            return Err(QueryError::UnusedAttribute { column: column.clone(), known });
        }
        let history: std::borrow::Cow<'_, [u32]> = match &request.history {
            Some(keys) => keys
                .iter()
                .map(|key| self.item_row(key).ok_or_else(|| QueryError::UnknownItem { key: key.clone() }))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
            None => known.map_or(&[][..], |u| &u.history[..]).into(),
        };
        let at = self.time_of(request.at)?;
        let mut encodings = Vec::with_capacity(features.len());
        for feature in features {
            let bad = |problem: String| QueryError::BadValue { feature: feature.name.clone(), problem };
            let encoding = match (&feature.fitted, feature.column.as_str()) {
                (FittedFeature::History { length, .. }, _) => {
                    let recent = &history[history.len().saturating_sub(*length)..];
                    Encoding::Indices(recent.iter().map(|&row| row + 1).collect())
                }
                (fitted, KEY) => fitted.encode(Value::Str(request.user.as_deref().unwrap_or(""))).map_err(bad)?,
                (fitted, TIMESTAMP) => fitted.encode(Value::Int(at)).map_err(bad)?,
                (fitted, column) => {
                    let value = request
                        .attributes
                        .get(column)
                        .or_else(|| known.and_then(|u| u.attributes.iter().find(|(c, _)| c == column).map(|(_, v)| v)))
                        .ok_or_else(|| QueryError::MissingAttribute {
                            feature: feature.name.clone(),
                            column: column.to_string(),
                        })?;
                    value.with_value(|v| fitted.encode(v)).map_err(bad)?
                }
            };
            encodings.push(encoding);
        }
        let exclusions = if request.include_seen {
            Vec::new()
        } else {
            let mut rows: Vec<u32> = known.map(|u| u.seen.clone()).unwrap_or_default();
            if request.history.is_some() {
                for &row in history.iter() {
                    let identity = self.file.catalogue.identity[row as usize];
                    rows.extend(self.rows_of_identity.get(&identity).into_iter().flatten());
                }
                rows.sort_unstable();
                rows.dedup();
            }
            rows
        };
        Ok(Resolved { encodings, exclusions })
    }

    /// The query time: `at`, or the latest training time; must lie within the span the time
    /// features were fitted on, widened by that span on each side.
    fn time_of(&self, at: Option<i64>) -> Result<i64, QueryError> {
        let features = &self.file.features;
        let Some(at) = at else { return Ok(features.latest_time()) };
        let Some((first, last)) = features.time_range else { return Ok(at) };
        let span = (last - first).max(1);
        let (lo, hi) = (first.saturating_sub(span), last.saturating_add(span));
        if (lo..=hi).contains(&at) {
            Ok(at)
        } else {
            Err(QueryError::TimeOutOfRange { at, lo, hi, first, last })
        }
    }
}

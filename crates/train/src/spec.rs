//! The feature spec: which features feed each tower, declared as data (TOML or any serde format).
//!
//! ```toml
//! [model]
//! embedding_dim = 32
//! [model.query]
//! layers = [32]
//! features = [
//!   { kind = "id", column = "$key" },
//!   { kind = "bucketized", column = "$timestamp", boundaries = { linspace = 1000 } },
//!   { kind = "numeric", column = "$timestamp" },
//! ]
//! [model.candidate]
//! layers = [32]
//! features = [{ kind = "id", column = "title" }, { kind = "text", column = "title" }]
//! ```
//!
//! A column is `$key` (the query or candidate key), `$timestamp` (the interaction's time, query
//! tower only) or a column of the tower's table (the query table, the candidate table). Every
//! layer, cache, gradient, optimizer state, batch column, encoder and server input is built from
//! these lists, so adding a feature is one line here.

use serde::{Deserialize, Serialize};

/// The key of the tower's table: the user key (query tower) or the item key (candidate tower).
pub const KEY: &str = "$key";
/// The interaction's timestamp (query tower only).
pub const TIMESTAMP: &str = "$timestamp";
/// `TextVectorization(max_tokens=10_000)`, the tutorials' default.
pub const DEFAULT_MAX_TOKENS: usize = 10_000;
/// Items kept by a history feature unless `length` says otherwise.
pub const DEFAULT_HISTORY_LENGTH: usize = 50;

/// What a feature is and how it is embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A categorical value: `StringLookup` (sorted unique values, `num_oov` OOV indices) or
    /// `Hashing(hash_bins)`, then an embedding.
    Id,
    /// A number cut into buckets (`Discretization`), then an embedding.
    Bucketized,
    /// A number standardised by `Normalization`, fed as one column.
    Numeric,
    /// Text: `TextVectorization` tokens, masked mean of their embeddings.
    Text,
    /// A list of strings (genres, tags): lookup, masked mean of their embeddings.
    Multi,
    /// The candidates the user interacted with before this example (training rows only), the
    /// most recent `length`, masked mean of their embeddings (query tower only).
    History,
}

/// Where bucket boundaries come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundaries {
    /// `np.linspace(min, max, n)` over the fitted values (the tutorials' time buckets, n = 1000).
    Linspace(usize),
    /// `Discretization(num_bins=n).adapt(values)`: approximate quantiles, bit-exact with Keras.
    Quantiles(usize),
    /// Given boundaries, strictly increasing.
    Values(Vec<f64>),
}

/// One feature of a tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// What it is.
    pub kind: FeatureKind,
    /// `$key`, `$timestamp` or a table column; none for `history`.
    #[serde(default)]
    pub column: Option<String>,
    /// Its name in the model and in server requests (default: `kind:column`, or `history`).
    #[serde(default)]
    pub name: Option<String>,
    /// Embedding width (default: the model's `embedding_dim`; `numeric` is always 1 column).
    #[serde(default)]
    pub dim: Option<usize>,
    /// `id`: hash values into this many bins instead of a vocabulary.
    #[serde(default)]
    pub hash_bins: Option<usize>,
    /// `id`, `multi`: out-of-vocabulary indices (default 1).
    #[serde(default)]
    pub num_oov: Option<usize>,
    /// `bucketized`: the boundaries.
    #[serde(default)]
    pub boundaries: Option<Boundaries>,
    /// `text`: vocabulary size including padding and `[UNK]` (default 10 000).
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// `history`: the most recent items kept (default 50).
    #[serde(default)]
    pub length: Option<usize>,
}

/// One tower: its features, in concatenation order, and its dense layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TowerSpec {
    /// The features.
    pub features: Vec<FeatureSpec>,
    /// Dense layer sizes, ReLU between them (empty: the concatenation is the embedding).
    #[serde(default)]
    pub layers: Vec<usize>,
    /// Divide the output by its L2 norm (pair with a temperature below 1).
    #[serde(default)]
    pub l2_normalize: bool,
}

/// Both towers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Default width of every embedding (the tutorials use 32).
    pub embedding_dim: usize,
    /// The query (user) tower.
    pub query: TowerSpec,
    /// The candidate (item) tower.
    pub candidate: TowerSpec,
}

/// Which tower a feature belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// The query tower: `$key` is the user key; columns are of the query table.
    Query,
    /// The candidate tower: `$key` is the item key; columns are of the candidate table.
    Candidate,
}

impl Side {
    /// `query` or `candidate`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Candidate => "candidate",
        }
    }
}

/// Why a spec is impossible, naming the tower, the feature and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model.{tower}.features[{index}] ({kind}): {problem}")]
pub struct SpecError {
    /// `query` or `candidate`.
    pub tower: &'static str,
    /// 0-based position in the list.
    pub index: usize,
    /// The feature's kind, for the message.
    pub kind: String,
    /// What is wrong and what was expected.
    pub problem: String,
}

impl FeatureKind {
    /// The name used in specs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Bucketized => "bucketized",
            Self::Numeric => "numeric",
            Self::Text => "text",
            Self::Multi => "multi",
            Self::History => "history",
        }
    }
}

impl FeatureSpec {
    /// A feature of `kind` on `column` with every option at its default.
    pub fn new(kind: FeatureKind, column: &str) -> Self {
        Self {
            kind,
            column: Some(column.to_string()),
            name: None,
            dim: None,
            hash_bins: None,
            num_oov: None,
            boundaries: None,
            max_tokens: None,
            length: None,
        }
    }

    /// The feature's name: given, else `kind:column` (`history` for a history).
    pub fn name(&self) -> String {
        match (&self.name, &self.column) {
            (Some(name), _) => name.clone(),
            (None, Some(column)) => format!("{}:{column}", self.kind.name()),
            (None, None) => self.kind.name().to_string(),
        }
    }

    /// The column it reads (`""` for a history, which reads the interactions).
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or("")
    }

    /// Checks the options that apply to its kind and side.
    fn check(&self, side: Side) -> Result<(), String> {
        use FeatureKind::{Bucketized, History, Id, Multi, Text};
        let options: [(&str, bool, &[FeatureKind]); 6] = [
            ("hash_bins", self.hash_bins.is_some(), &[Id]),
            ("num_oov", self.num_oov.is_some(), &[Id, Multi]),
            ("boundaries", self.boundaries.is_some(), &[Bucketized]),
            ("max_tokens", self.max_tokens.is_some(), &[Text]),
            ("length", self.length.is_some(), &[History]),
            ("dim", self.dim.is_some(), &[Id, Bucketized, Text, Multi, History]),
        ];
        for (option, given, kinds) in options {
            if given && !kinds.contains(&self.kind) {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(format!("`{option}` applies only to {}", names.join(", ")));
            }
        }
        match (self.kind, self.column.as_deref()) {
            (History, Some(column)) => {
                return Err(format!("a history reads the interactions, not a column (remove column = {column:?})"))
            }
            (History, None) if side == Side::Candidate => {
                return Err("a history describes a user: it belongs in the query tower".to_string())
            }
            (History, None) => {}
            (_, None) => {
                return Err("`column` is required: \"$key\", \"$timestamp\" or a column of the table".to_string())
            }
            (_, Some(TIMESTAMP)) if side == Side::Candidate => {
                return Err("\"$timestamp\" is the interaction's time: only the query tower sees it".to_string())
            }
            (Text | Multi, Some(column @ (KEY | TIMESTAMP))) => {
                return Err(format!("{column:?} is not text or a list; name a string or list column"))
            }
            (_, Some(_)) => {}
        }
        let positive = [
            ("dim", self.dim),
            ("hash_bins", self.hash_bins),
            ("max_tokens", self.max_tokens.map(|t| t.saturating_sub(2))),
            ("length", self.length),
        ];
        if let Some((option, _)) = positive.iter().find(|(_, v)| *v == Some(0)) {
            return Err(format!(
                "`{option}` must be at least 1{}",
                if *option == "max_tokens" { " beyond padding and [UNK] (at least 3)" } else { "" }
            ));
        }
        if self.dim.is_some_and(|d| d > towers::MAX_WIDTH) {
            return Err(format!("`dim` {}: at most {}", self.dim.unwrap_or(0), towers::MAX_WIDTH));
        }
        if self.hash_bins.is_some_and(|b| b > towers::MAX_ROWS) || self.num_oov.is_some_and(|n| n > 1 << 20) {
            return Err("`hash_bins` or `num_oov` too large for a table".to_string());
        }
        match &self.boundaries {
            None if self.kind == Bucketized => {
                Err("`boundaries` is required: { linspace = N }, { quantiles = N } or { values = [...] }".to_string())
            }
            Some(Boundaries::Linspace(n) | Boundaries::Quantiles(n)) if *n < 2 => {
                Err(format!("boundaries: {n} is too few (at least 2)"))
            }
            Some(Boundaries::Values(values)) => {
                if values.iter().any(|v| !v.is_finite()) || values.windows(2).any(|w| w[0] >= w[1]) {
                    Err(format!("boundaries: {values:?} must be finite and strictly increasing"))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

impl TowerSpec {
    /// Checks every feature and that names are unique.
    ///
    /// # Errors
    /// [`SpecError`] for the first impossible feature.
    pub fn check(&self, side: Side) -> Result<(), SpecError> {
        let fail = |index: usize, feature: &FeatureSpec, problem: String| SpecError {
            tower: side.name(),
            index,
            kind: feature.kind.name().to_string(),
            problem,
        };
        if self.features.is_empty() {
            return Err(SpecError {
                tower: side.name(),
                index: 0,
                kind: "none".into(),
                problem: "a tower needs at least one feature".into(),
            });
        }
        for (index, feature) in self.features.iter().enumerate() {
            feature.check(side).map_err(|problem| fail(index, feature, problem))?;
            if let Some(other) = self.features[..index].iter().position(|f| f.name() == feature.name()) {
                return Err(fail(
                    index,
                    feature,
                    format!("its name {:?} repeats features[{other}]; give one a `name`", feature.name()),
                ));
            }
        }
        Ok(())
    }
}

impl ModelSpec {
    /// Checks both towers.
    ///
    /// # Errors
    /// [`SpecError`] for the first impossible feature.
    pub fn check(&self) -> Result<(), SpecError> {
        self.query.check(Side::Query)?;
        self.candidate.check(Side::Candidate)
    }

    /// The tower on `side`.
    pub fn tower(&self, side: Side) -> &TowerSpec {
        match side {
            Side::Query => &self.query,
            Side::Candidate => &self.candidate,
        }
    }

    /// The width of `feature`'s embedding.
    pub fn dim_of(&self, feature: &FeatureSpec) -> usize {
        match feature.kind {
            FeatureKind::Numeric => 1,
            _ => feature.dim.unwrap_or(self.embedding_dim),
        }
    }

    /// Sets both towers' dense layers.
    pub fn set_layers(&mut self, layers: &[usize]) {
        self.query.layers = layers.to_vec();
        self.candidate.layers = layers.to_vec();
    }
}

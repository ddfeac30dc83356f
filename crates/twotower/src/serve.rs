//! `twotower serve`: recommendations over HTTP from a model file, through `train::Retriever`.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | `{"status": "ok", "generation": n}` |
//! | `GET /model` | the model's configuration, catalogue and user counts, where it was loaded from |
//! | `GET /recommend?user=ID&k=K[&exclude_seen=false][&at=UNIX]` | one known user's top K |
//! | `POST /recommend` | `{"user", "k", "exclude_seen", "at", "history": [item keys], "attributes": {column: value}}`, or `{"queries": [...]}` for up to 1024 at once |
//! | `POST /admin/reload` | on the admin address only (loopback): load the model file again |
//!
//! A POST may describe a user the model never saw: its `history` (candidate keys, oldest first)
//! feeds the spec's history feature and `attributes` its query-table features; `user` is then
//! optional. For a known user, anything given replaces what the model remembers of it.
//!
//! Answers are JSON; errors are `{"error": "…"}` with 400 (malformed request), 404 (unknown
//! user without features), 413 (body over 1 MiB), 422 (k outside 1..=1000, a time out of range,
//! an unknown history item, a missing or mistyped attribute, a batch over 1024). `SIGHUP` reloads the model like the admin route; in-flight requests finish on the model
//! they started with, and a file that fails to load leaves the old model serving. `SIGTERM` or
//! Ctrl-C stops accepting connections and drains the open ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};
use train::{ModelFile, OwnedValue, QueryError, Retriever};

/// The largest `k` served.
const MAX_K: usize = 1000;
/// The most queries in one batch request.
const MAX_BATCH: usize = 1024;
/// The largest request body.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A model.bin written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// Where to listen for recommendation requests.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where to listen for `POST /admin/reload`; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:0")]
    admin_addr: SocketAddr,
    /// Serve from an approximate HNSW index with this search width (ef), rebuilt on reload.
    #[cfg(feature = "ann")]
    #[arg(long, value_name = "EF", value_parser = clap::value_parser!(u32).range(1..=100_000), conflicts_with = "ivf")]
    ann: Option<u32>,
    /// Serve from an approximate IVF index scanning this many lists per query, rebuilt on reload.
    #[arg(long, value_name = "N_PROBE", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    ivf: Option<u32>,
}

/// Which index answers requests.
#[derive(Debug, Clone, Copy)]
enum IndexChoice {
    Exact,
    /// HNSW with this search width.
    #[cfg_attr(not(feature = "ann"), allow(dead_code))]
    Hnsw(u32),
    /// IVF scanning this many lists.
    Ivf(u32),
}

/// The model being served, swapped whole on reload.
struct Served {
    retriever: RwLock<Arc<Retriever>>,
    model_path: PathBuf,
    generation: AtomicU64,
    /// The index requests are answered from, rebuilt on reload.
    index: IndexChoice,
}

/// A retriever over `file`, with the approximate index `index` asks for.
fn retriever(file: ModelFile, index: IndexChoice) -> Retriever {
    let mut retriever = Retriever::new(file);
    match index {
        IndexChoice::Exact => {}
        #[cfg(feature = "ann")]
        IndexChoice::Hnsw(ef) => {
            retriever.use_ann(eval::AnnConfig { ef_search: ef as usize, ..eval::AnnConfig::default() })
        }
        #[cfg(not(feature = "ann"))]
        IndexChoice::Hnsw(_) => {}
        IndexChoice::Ivf(n_probe) => {
            retriever.use_ivf(eval::IvfConfig { n_probe: n_probe as usize, ..eval::IvfConfig::default() })
        }
    }
    retriever
}

impl Served {
    fn current(&self) -> Arc<Retriever> {
        Arc::clone(&self.retriever.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Loads the model file again; the old model keeps serving if it fails.
    fn reload(&self) -> Result<u64, String> {
        let file = ModelFile::load(&self.model_path).map_err(|e| e.to_string())?;
        let retriever = Arc::new(retriever(file, self.index));
        *self.retriever.write().unwrap_or_else(std::sync::PoisonError::into_inner) = retriever;
        Ok(self.generation.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

/// A JSON error with its status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let status = if error.is_not_found() { StatusCode::NOT_FOUND } else { StatusCode::UNPROCESSABLE_ENTITY };
        Self(status, error.to_string())
    }
}

/// One query, as a query string or a JSON object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    user: Option<String>,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default = "default_exclude_seen")]
    exclude_seen: bool,
    at: Option<i64>,
    /// Candidate keys the user interacted with, oldest first (POST only).
    #[serde(default)]
    history: Option<Vec<String>>,
    /// Query-table values by column (POST only).
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

impl Request {
    /// The library's request, or a 422 for an attribute of an unusable type.
    fn to_query(&self) -> Result<train::Request, ApiError> {
        if self.k > MAX_K {
            return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("k {}: at most {MAX_K}", self.k)));
        }
        let attributes = self
            .attributes
            .iter()
            .map(|(column, value)| {
                OwnedValue::from_json(value)
                    .map(|v| (column.clone(), v))
                    .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("attribute {column:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(train::Request {
            user: self.user.clone(),
            at: self.at,
            attributes,
            history: self.history.clone(),
            k: self.k,
            include_seen: !self.exclude_seen,
        })
    }
}

fn default_k() -> usize {
    10
}

fn default_exclude_seen() -> bool {
    true
}

/// A POST body: one query or a batch.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    Batch { queries: Vec<Request> },
    One(Request),
}

fn items_json(items: &[train::Recommendation]) -> Vec<Value> {
    items.iter().map(|r| json!({ "key": r.key, "name": r.name, "score": r.score })).collect()
}

fn answer(retriever: &Retriever, request: &Request) -> Result<Value, ApiError> {
    let query = request.to_query()?;
    let items = retriever.answer(std::slice::from_ref(&query)).pop().expect("one answer per query")?;
    Ok(json!({ "user": request.user, "items": items_json(&items) }))
}

/// A batch in one pass (`Retriever::answer`); a bad query gets its own error entry.
fn answer_many(retriever: &Retriever, requests: &[Request]) -> Vec<Value> {
    let error = |r: &Request, e: ApiError| json!({ "user": r.user, "error": e.1, "status": e.0.as_u16() });
    let converted: Vec<Result<train::Request, ApiError>> = requests.iter().map(Request::to_query).collect();
    let queries: Vec<train::Request> = converted.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let mut answers = retriever.answer(&queries).into_iter();
    requests
        .iter()
        .zip(converted)
        .map(|(r, converted)| match converted {
            Err(e) => error(r, e),
            Ok(_) => match answers.next().expect("one answer per query") {
                Ok(items) => json!({ "user": r.user, "items": items_json(&items) }),
                Err(e) => error(r, ApiError::from(e)),
            },
        })
        .collect()
}

async fn recommend_get(
    State(served): State<Arc<Served>>,
    query: Result<Query<Request>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(request) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    if request.user.is_none() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "GET /recommend needs ?user=ID (POST a history for a new user)".into(),
        ));
    }
    Ok(Json(answer(&served.current(), &request)?))
}

async fn recommend_post(
    State(served): State<Arc<Served>>,
    body: Result<Json<Body>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| {
        // Too large stays 413; everything else about the body is a malformed request.
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { e.status() } else { StatusCode::BAD_REQUEST };
        ApiError(status, e.body_text())
    })?;
    let retriever = served.current();
    match body {
        Body::One(request) => Ok(Json(answer(&retriever, &request)?)),
        Body::Batch { queries } => {
            if queries.len() > MAX_BATCH {
                let message = format!("{} queries: at most {MAX_BATCH} per request", queries.len());
                return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, message));
            }
            Ok(Json(json!({ "results": answer_many(&retriever, &queries) })))
        }
    }
}

async fn model_info(State(served): State<Arc<Served>>) -> Json<Value> {
    let retriever = served.current();
    let file = retriever.file();
    Json(json!({
        "model": served.model_path.display().to_string(),
        "generation": served.generation.load(Ordering::SeqCst),
        "experiment": file.config.name,
        "config": file.config,
        "spec": file.config.to_toml(),
        "query_features": file.features.query.iter().map(|f| json!({ "name": f.name, "column": f.column })).collect::<Vec<_>>(),
        "candidate_features": file.features.candidate.iter().map(|f| json!({ "name": f.name, "column": f.column })).collect::<Vec<_>>(),
        "features_fitted_on": file.features.fitted_on,
        "catalogue": file.catalogue.len(),
        "users": file.users.len(),
        "dim": retriever.catalogue_embeddings().ncols(),
        "index": match served.index {
            IndexChoice::Exact => json!({ "kind": "exact" }),
            IndexChoice::Hnsw(ef) => json!({ "kind": "hnsw", "ef_search": ef }),
            IndexChoice::Ivf(n_probe) => json!({ "kind": "ivf", "n_probe": n_probe }),
        },
    }))
}

async fn healthz(State(served): State<Arc<Served>>) -> Json<Value> {
    Json(json!({ "status": "ok", "generation": served.generation.load(Ordering::SeqCst) }))
}

async fn reload(State(served): State<Arc<Served>>) -> Result<Json<Value>, ApiError> {
    let worker = Arc::clone(&served);
    let result = tokio::task::spawn_blocking(move || worker.reload())
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match result {
        Ok(generation) => Ok(Json(json!({ "status": "reloaded", "generation": generation }))),
        Err(problem) => {
            Err(ApiError(StatusCode::CONFLICT, format!("reload failed, still serving the previous model: {problem}")))
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

impl ServeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        if !self.admin_addr.ip().is_loopback() {
            anyhow::bail!("--admin-addr {}: must be a loopback address (127.0.0.1 or ::1)", self.admin_addr);
        }
        let file = ModelFile::load(&self.model).context("loading the model")?;
        #[cfg(feature = "ann")]
        let hnsw = self.ann;
        #[cfg(not(feature = "ann"))]
        let hnsw: Option<u32> = None;
        let index = match (hnsw, self.ivf) {
            (Some(ef), _) => IndexChoice::Hnsw(ef),
            (None, Some(n_probe)) => IndexChoice::Ivf(n_probe),
            (None, None) => IndexChoice::Exact,
        };
        let served = Arc::new(Served {
            retriever: RwLock::new(Arc::new(retriever(file, index))),
            model_path: self.model.clone(),
            generation: AtomicU64::new(1),
            index,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
        runtime.block_on(async move {
            let app = Router::new()
                .route("/healthz", get(healthz))
                .route("/model", get(model_info))
                .route("/recommend", get(recommend_get).post(recommend_post))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                .with_state(Arc::clone(&served));
            let admin = Router::new().route("/admin/reload", post(reload)).with_state(Arc::clone(&served));
            let listener =
                tokio::net::TcpListener::bind(self.addr).await.with_context(|| format!("--addr {}", self.addr))?;
            let admin_listener = tokio::net::TcpListener::bind(self.admin_addr)
                .await
                .with_context(|| format!("--admin-addr {}", self.admin_addr))?;
            println!("listening on http://{} (admin http://{})", listener.local_addr()?, admin_listener.local_addr()?);
            let hangups = Arc::clone(&served);
            tokio::spawn(async move {
                let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                    return;
                };
                while hangup.recv().await.is_some() {
                    let worker = Arc::clone(&hangups);
                    match tokio::task::spawn_blocking(move || worker.reload()).await {
                        Ok(Ok(generation)) => eprintln!("SIGHUP: reloaded the model (generation {generation})"),
                        Ok(Err(problem)) => {
                            eprintln!("SIGHUP: reload failed, still serving the previous model: {problem}")
                        }
                        Err(e) => eprintln!("SIGHUP: reload failed: {e}"),
                    }
                }
            });
            tokio::spawn(async move {
                let _ = axum::serve(admin_listener, admin).await;
            });
            axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving")?;
            eprintln!("shut down");
            anyhow::Ok(())
        })
    }
}

//! `twotower serve` on random loopback ports: every endpoint, bad requests with their statuses,
//! reloads (admin route and SIGHUP, a new model and a broken file), and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

mod common;
use common::{stderr, twotower, write_dataset, Scratch};

/// A running server, killed if the test fails before shutting it down.
struct Server {
    child: Child,
    base: String,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn start(model: &std::path::Path) -> Server {
    start_with(model, &[])
}

fn start_with(model: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twotower"))
        .args(["serve", "--model", model.to_str().unwrap(), "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    // "listening on http://ADDR (admin http://ADDR)"
    let urls: Vec<&str> = line.split_whitespace().filter(|w| w.contains("http://")).collect();
    assert_eq!(urls.len(), 2, "{line}");
    let clean = |u: &str| u.trim_start_matches('(').trim_end_matches(')').to_string();
    Server { child, base: clean(urls[0]), admin: clean(urls[1]) }
}

fn agent() -> ureq::Agent {
    // A bounded wait: a hung server fails the test instead of hanging CI.
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

fn get(url: &str) -> (u16, Value) {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap())
}

fn post(url: &str, body: &str) -> (u16, Value) {
    let mut response = agent().post(url).header("content-type", "application/json").send(body).unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.body_mut().read_to_string().unwrap_or_default()).unwrap_or(Value::Null))
}

/// Posts a 2 MiB body: the server answers 413 once it has read past its 1 MiB limit, and may
/// close the connection while the client is still writing, so a broken pipe or a reset is the
/// same refusal seen from the client's side. Returns the status, or 413 for such an error.
fn post_huge_body(base: &str) -> u16 {
    let body = format!(r#"{{"user": "{}"}}"#, "x".repeat(2 << 20));
    match agent().post(&format!("{base}/recommend")).header("content-type", "application/json").send(&body) {
        Ok(response) => response.status().as_u16(),
        Err(ureq::Error::Io(e))
            if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset) =>
        {
            413
        }
        Err(e) => panic!("oversized body: {e}"),
    }
}

/// User id, time and the user's history in the query tower; title and its words in the
/// candidate tower.
const SPEC: &str = r#"
name = "with-history"
batch_size = 256
epochs = 1
learning_rate = 0.1
[model]
embedding_dim = 8
[model.query]
layers = [8]
features = [
  { kind = "id", column = "$key" },
  { kind = "bucketized", column = "$timestamp", boundaries = { linspace = 20 } },
  { kind = "history", length = 10 },
]
[model.candidate]
layers = [8]
features = [{ kind = "id", column = "title" }, { kind = "text", column = "title" }]
"#;

fn train(scratch: &Scratch, out: &str, seed: &str) -> std::path::PathBuf {
    let dir = scratch.0.join(out);
    let spec = scratch.0.join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let output = twotower(&[
        "train",
        "--data",
        scratch.0.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--config",
        spec.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--seed",
        seed,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    dir.join("model.bin")
}

#[test]
fn the_server_answers_refuses_reloads_and_shuts_down() {
    let scratch = Scratch::new("serve");
    write_dataset(&scratch.0, 2400);
    let model = train(&scratch, "run-a", "1");
    let other = train(&scratch, "run-b", "2");
    let served = scratch.0.join("served.bin");
    std::fs::copy(&model, &served).unwrap();
    let server = start(&served);
    let base = &server.base;

    assert_eq!(get(&format!("{base}/healthz")), (200, serde_json::json!({ "status": "ok", "generation": 1 })));
    let (status, info) = get(&format!("{base}/model"));
    assert_eq!((status, info["catalogue"].as_u64(), info["config"]["seed"].as_u64()), (200, Some(30), Some(1)));

    let (status, top) = get(&format!("{base}/recommend?user=3&k=5"));
    assert_eq!(status, 200);
    let items = top["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    // The same answer by POST, and the CLI's recommend agrees.
    let (status, posted) = post(&format!("{base}/recommend"), r#"{"user": "3", "k": 5}"#);
    assert_eq!((status, &posted), (200, &top));
    let cli = twotower(&["recommend", "--model", served.to_str().unwrap(), "--user", "3", "-k", "5"]);
    let listing = String::from_utf8_lossy(&cli.stdout);
    for item in items {
        assert!(listing.contains(&format!("(key {},", item["key"].as_str().unwrap())), "{listing}");
    }
    let (status, batch) = post(&format!("{base}/recommend"), r#"{"queries": [{"user": "3"}, {"user": "nobody"}]}"#);
    assert_eq!(status, 200);
    assert_eq!(batch["results"][0]["items"].as_array().unwrap().len(), 10);
    assert_eq!(batch["results"][1]["status"], 404);

    // A user the model never saw, described by its history: answered, and the history excluded.
    let (status, fresh) = post(&format!("{base}/recommend"), r#"{"history": ["1", "4", "7"], "k": 5}"#);
    assert_eq!(status, 200, "{fresh}");
    let keys: Vec<&str> = fresh["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 5);
    assert!(keys.iter().all(|k| !["1", "4", "7"].contains(k)), "{keys:?}");
    let (status, named) =
        post(&format!("{base}/recommend"), r#"{"user": "brand-new", "history": ["1", "4", "7"], "k": 5}"#);
    assert_eq!((status, &named["items"]), (200, &fresh["items"]), "an unknown key is the OOV id either way");
    let (status, different) = post(&format!("{base}/recommend"), r#"{"history": ["2", "5"], "k": 5}"#);
    assert_eq!(status, 200);
    assert_ne!(different["items"], fresh["items"], "the history personalises");
    for (body, expected, needle) in [
        (r#"{"history": ["no-such-item"]}"#, 422, "history item \"no-such-item\""),
        (r#"{"history": ["1"], "attributes": {"occupation": "writer"}}"#, 422, "the model reads no such column"),
        (r#"{"user": "3", "attributes": {"occupation": {"a": 1}}}"#, 422, "attribute \"occupation\""),
        (r#"{"k": 3}"#, 422, "names no user"),
        (r#"{"user": "nobody"}"#, 404, "not a user of this model"),
    ] {
        let (status, answer) = post(&format!("{base}/recommend"), body);
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(needle), "{body}: {answer}");
    }
    let (status, info) = get(&format!("{base}/model"));
    assert_eq!(status, 200);
    assert!(info["spec"].as_str().unwrap().contains("kind = \"history\""), "{info}");

    // Bad requests: JSON errors with the right status, never a 500.
    for (url, expected) in [
        (format!("{base}/recommend?user=nobody"), 404),
        (format!("{base}/recommend?user=3&k=abc"), 400),
        (format!("{base}/recommend?k=3"), 400),
        (format!("{base}/recommend?user=3&k=0"), 422),
        (format!("{base}/recommend?user=3&k=5000"), 422),
        (format!("{base}/recommend?user=3&at=99999999999"), 422),
    ] {
        let (status, body) = get(&url);
        assert_eq!(status, expected, "{url}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{url}: {body}");
    }
    assert_eq!(post(&format!("{base}/recommend"), r#"{"user": 3"#).0, 400);
    assert_eq!(post(&format!("{base}/recommend"), r#"{"user": "3", "colour": "red"}"#).0, 400);
    assert_eq!(post_huge_body(base), 413, "a body over 1 MiB is refused");
    assert_eq!(get(&format!("{base}/healthz")).0, 200, "and the server carries on");
    let many = format!(r#"{{"queries": [{}]}}"#, vec![r#"{"user": "3"}"#; 1025].join(","));
    assert_eq!(post(&format!("{base}/recommend"), &many).0, 422);

    // Reload a new model through the admin route, then a broken file, then by SIGHUP.
    std::fs::copy(&other, &served).unwrap();
    let (status, reloaded) = post(&format!("{}/admin/reload", server.admin), "");
    assert_eq!((status, reloaded["generation"].as_u64()), (200, Some(2)));
    assert_eq!(get(&format!("{base}/model")).1["config"]["seed"], 2);
    std::fs::write(&served, b"TWOTOWER broken").unwrap();
    let (status, refused) = post(&format!("{}/admin/reload", server.admin), "");
    assert_eq!(status, 409, "{refused}");
    assert_eq!(get(&format!("{base}/recommend?user=3&k=2")).0, 200, "the previous model still serves");
    std::fs::copy(&model, &served).unwrap();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(&format!("{base}/healthz")).1["generation"] != 3 {
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(get(&format!("{base}/model")).1["config"]["seed"], 1);

    // SIGTERM: a clean exit.
    let mut server = server;
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// `--ivf` serves from the k-means lists; scanning every list answers as the exact index, and
/// `/model` says which index answers.
#[test]
fn the_ivf_index_serves_the_exact_answer_when_it_scans_every_list() {
    let scratch = Scratch::new("serve-ivf");
    write_dataset(&scratch.0, 2400);
    let model = train(&scratch, "run", "1");
    let exact = start(&model);
    let ivf = start_with(&model, &["--ivf", "1000"]);
    assert_eq!(get(&format!("{}/model", ivf.base)).1["index"], serde_json::json!({ "kind": "ivf", "n_probe": 1000 }));
    assert_eq!(get(&format!("{}/model", exact.base)).1["index"], serde_json::json!({ "kind": "exact" }));
    for user in ["1", "3", "7"] {
        let url = |base: &str| format!("{base}/recommend?user={user}&k=10");
        assert_eq!(get(&url(&ivf.base)), get(&url(&exact.base)), "user {user}");
    }
}

//! The download path end to end against a local HTTP server serving a zip built here: success,
//! a wrong checksum, a connection cut halfway, and an HTTP error. Every failure must leave
//! nothing behind in the destination's directory.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use md5::{Digest, Md5};
use movielens::download::{fetch, Checksum, Source};
use movielens::Error;

use crate::fixture;

/// What the server does with each request.
#[derive(Clone, Copy)]
enum Behaviour {
    Full,
    CutHalfway,
    NotFound,
}

/// Serves `body` on an ephemeral port for one request; returns the URL.
fn serve(body: Vec<u8>, behaviour: Behaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ml-100k.zip", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let (status, sent) = match behaviour {
            Behaviour::Full => ("200 OK", &body[..]),
            Behaviour::CutHalfway => ("200 OK", &body[..body.len() / 2]),
            Behaviour::NotFound => ("404 Not Found", &b""[..]),
        };
        let length = if matches!(behaviour, Behaviour::NotFound) { 0 } else { body.len() };
        let header = format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(header.as_bytes());
        let _ = stream.write_all(sent);
        let _ = stream.flush();
    });
    url
}

/// A zip shaped like GroupLens' archive, with the good fixture's files under `ml-100k/`.
fn archive() -> Vec<u8> {
    archive_of("good", "ml-100k", &["u.data", "u.item"])
}

/// A zip holding the fixture `release`'s `files` under `folder/`.
fn archive_of(release: &str, folder: &str, files: &[&str]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.add_directory(format!("{folder}/"), options).unwrap();
    for name in files {
        zip.start_file(format!("{folder}/{name}"), options).unwrap();
        zip.write_all(&std::fs::read(fixture(release).join(name)).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    buffer.into_inner()
}

/// Serves each of `files` (path → body) once, in any order; returns the base URL.
fn serve_paths(files: Vec<(String, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for _ in 0..files.len() {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or_default().to_string();
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            let body = files.iter().find(|(p, _)| *p == path).map(|(_, b)| b.clone());
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", Vec::new()),
            };
            let header = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(header.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    base
}

/// The 100k layout at `url` with a fixed MD5.
fn source(url: String, md5: String) -> Source {
    Source { url, checksum: Checksum::Md5(md5), ..Source::ml_100k() }
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh empty directory, and the destination inside it.
fn scratch(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("movielens-download-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("ml-100k");
    (dir, dest)
}

fn leftovers(dir: &PathBuf) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn success_unpacks_into_place_with_progress() {
    let body = archive();
    let source = source(serve(body.clone(), Behaviour::Full), md5_hex(&body));
    let (dir, dest) = scratch("ok");
    let mut last = 0;
    fetch(&source, &dest, &mut |p| last = p.received).unwrap();
    assert_eq!(last, body.len() as u64);
    let data = movielens::Dataset::load(&dest).unwrap();
    assert_eq!(data.movies[1].title, "Première Nuit (1995)");
    assert_eq!(leftovers(&dir), ["ml-100k"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_checksum_is_an_error_and_leaves_nothing() {
    let body = archive();
    let source = source(serve(body, Behaviour::Full), "0e33842e24a9c977be4e0107933c0723".into());
    let (dir, dest) = scratch("checksum");
    let error = fetch(&source, &dest, &mut |_| {}).unwrap_err();
    assert!(matches!(error, Error::Checksum { .. }), "{error}");
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connection_cut_halfway_is_an_error_and_leaves_nothing() {
    let body = archive();
    let source = source(serve(body.clone(), Behaviour::CutHalfway), md5_hex(&body));
    let (dir, dest) = scratch("cut");
    let error = fetch(&source, &dest, &mut |_| {}).unwrap_err();
    eprintln!("{error}");
    assert!(matches!(error, Error::Download { .. }), "{error}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn http_error_is_an_error_and_leaves_nothing() {
    let source = source(serve(Vec::new(), Behaviour::NotFound), md5_hex(b""));
    let (dir, dest) = scratch("404");
    let error = fetch(&source, &dest, &mut |_| {}).unwrap_err();
    assert!(matches!(error, Error::Download { .. }), "{error}");
    assert!(error.to_string().contains("404"), "{error}");
    assert!(leftovers(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_named_release_checks_the_published_md5_sidecar_and_loads() {
    let body = archive_of("ml-latest-small", "ml-latest-small", &["ratings.csv", "movies.csv", "tags.csv"]);
    let sidecar = format!("MD5 (ml-latest-small.zip) = {}\n", md5_hex(&body)).into_bytes();
    let base = serve_paths(vec![("/ml-latest-small.zip.md5".into(), sidecar), ("/ml-latest-small.zip".into(), body)]);
    let source = Source::named_at("ml-latest-small", &base).unwrap();
    let (dir, _) = scratch("named");
    let dest = dir.join("ml-latest-small");
    fetch(&source, &dest, &mut |_| {}).unwrap();
    let data = movielens::load(&dest).unwrap();
    assert_eq!(data.candidates.column("title").unwrap().string(1), Some("American President, The (1995)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_named_release_with_a_fixed_md5_rejects_other_bytes() {
    // Our fixture is not GroupLens' ml-1m.zip, so its MD5 cannot match the published one.
    let body = archive_of("ml-1m", "ml-1m", &["ratings.dat", "movies.dat", "users.dat"]);
    let base = serve_paths(vec![("/ml-1m.zip".into(), body)]);
    let source = Source::named_at("ml-1m", &base).unwrap();
    let (dir, dest) = scratch("named-1m");
    let error = fetch(&source, &dest, &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("c4d9eecfca2ab87c1945afe126590906"), "{error}");
    assert!(leftovers(&dir).is_empty());
    assert!(Source::named("ml-2m").is_none());
    assert_eq!(movielens::download::release_names().len(), 7);
    std::fs::remove_dir_all(&dir).unwrap();
}

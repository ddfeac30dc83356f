//! The download path end to end against a local HTTP server serving a zip built here: success,
//! a wrong checksum, a connection cut halfway, and an HTTP error. Every failure must leave
//! nothing behind in the destination's directory.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use md5::{Digest, Md5};
use movielens::download::{fetch, Source};
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
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.add_directory("ml-100k/", options).unwrap();
    for name in ["u.data", "u.item"] {
        zip.start_file(format!("ml-100k/{name}"), options).unwrap();
        zip.write_all(&std::fs::read(fixture("good").join(name)).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    buffer.into_inner()
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
    let source = Source { url: serve(body.clone(), Behaviour::Full), md5: md5_hex(&body) };
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
    let source = Source { url: serve(body, Behaviour::Full), md5: "0e33842e24a9c977be4e0107933c0723".into() };
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
    let source = Source { url: serve(body.clone(), Behaviour::CutHalfway), md5: md5_hex(&body) };
    let (dir, dest) = scratch("cut");
    let error = fetch(&source, &dest, &mut |_| {}).unwrap_err();
    eprintln!("{error}");
    assert!(matches!(error, Error::Download { .. }), "{error}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn http_error_is_an_error_and_leaves_nothing() {
    let source = Source { url: serve(Vec::new(), Behaviour::NotFound), md5: md5_hex(b"") };
    let (dir, dest) = scratch("404");
    let error = fetch(&source, &dest, &mut |_| {}).unwrap_err();
    assert!(matches!(error, Error::Download { .. }), "{error}");
    assert!(error.to_string().contains("404"), "{error}");
    assert!(leftovers(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

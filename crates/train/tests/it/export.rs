//! The export reads back: `.npy` headers and values, keys, Qdrant points; the top-k computed from
//! the exported arrays equals the retriever's, and a batch of queries answers as its queries
//! one by one (both up to near-ties, since the embeddings come from different GEMM calls).

use train::{Retriever, UserQuery};

use crate::tiny_model_file;

/// Two rankings computed through different GEMM calls (a batch of users against one user, an
/// export read back) may differ in the scores' last bits: the scores must agree within 1e-5
/// relative, and the keys wherever a score is not within 1e-4 of a neighbour's (a near-tie may
/// come out in either order on another CPU).
fn assert_same_ranking(what: &str, a: &[(String, f64)], b: &[(String, f64)]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let tied = |list: &[(String, f64)], i: usize| {
        let near = |j: usize| list.get(j).is_some_and(|other| (other.1 - list[i].1).abs() < 1e-4);
        (i > 0 && near(i - 1)) || near(i + 1)
    };
    for i in 0..a.len() {
        assert!((a[i].1 - b[i].1).abs() <= 1e-5 * a[i].1.abs().max(1.0), "{what}: score {i}: {} vs {}", a[i].1, b[i].1);
        if !tied(a, i) && !tied(b, i) {
            assert_eq!(a[i].0, b[i].0, "{what}: key at {i}");
        }
    }
}

fn ranked(items: &[train::Recommendation]) -> Vec<(String, f64)> {
    items.iter().map(|r| (r.key.clone(), f64::from(r.score))).collect()
}

/// A minimal NPY 1.0 reader for `<f4` C-order matrices: `(rows, cols, values)`.
fn read_npy(bytes: &[u8]) -> (usize, usize, Vec<f32>) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "the data starts 64-byte aligned");
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False") && header.ends_with('\n'));
    let shape = &header[header.find("'shape': (").unwrap() + 10..];
    let shape = &shape[..shape.find(')').unwrap()];
    let dims: Vec<usize> = shape.split(',').map(|d| d.trim().parse().unwrap()).collect();
    let values: Vec<f32> =
        bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(values.len(), dims[0] * dims[1]);
    (dims[0], dims[1], values)
}

#[test]
fn exported_embeddings_give_the_same_top_10_as_the_retriever() {
    let (file, _, _) = tiny_model_file();
    let retriever = Retriever::new(file.clone());
    let dir = std::env::temp_dir().join(format!("train-export-{}", std::process::id()));
    let summary = train::export::export(&retriever, &dir).unwrap();
    let (n, d, candidates) = read_npy(&std::fs::read(dir.join("candidates.npy")).unwrap());
    assert_eq!((n, d), (file.catalogue.len(), summary.dim));
    let (n_users, _, queries) = read_npy(&std::fs::read(dir.join("queries.npy")).unwrap());
    let users: Vec<String> = serde_json::from_slice(&std::fs::read(dir.join("query_keys.json")).unwrap()).unwrap();
    assert_eq!(users.len(), n_users);
    let keys: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("candidate_keys.json")).unwrap()).unwrap();
    let points = std::fs::read_to_string(dir.join("qdrant_points.jsonl")).unwrap();
    assert_eq!(points.lines().count(), n);
    let first: serde_json::Value = serde_json::from_str(points.lines().next().unwrap()).unwrap();
    assert_eq!(first["vector"].as_array().unwrap().len(), d);
    assert_eq!(first["payload"]["key"], keys[0]["key"]);
    for (u, user) in users.iter().enumerate() {
        // Scores from the exported arrays, ranked as the model ranks: score, then lower row.
        let q = &queries[u * d..(u + 1) * d];
        let mut scored: Vec<(f64, usize)> = (0..n)
            .map(|r| {
                (q.iter().zip(&candidates[r * d..(r + 1) * d]).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum(), r)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let exported: Vec<(String, f64)> =
            scored.iter().take(3).map(|&(s, r)| (keys[r]["key"].as_str().unwrap().to_string(), s)).collect();
        let top = retriever.recommend(&UserQuery { user, at: None, k: 3, include_seen: true }).unwrap();
        assert_same_ranking(&format!("user {user}"), &exported, &ranked(&top));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_batch_of_queries_answers_as_the_queries_one_by_one() {
    let (file, _, _) = tiny_model_file();
    let retriever = Retriever::new(file);
    let latest = retriever.file().features.latest_time();
    let queries = [
        UserQuery { user: "3", at: None, k: 4, include_seen: false },
        UserQuery { user: "nobody", at: None, k: 4, include_seen: false },
        UserQuery { user: "5", at: Some(latest - 3600 * 10), k: 2, include_seen: true },
        UserQuery { user: "1", at: None, k: 0, include_seen: true },
        UserQuery { user: "8", at: None, k: 100, include_seen: false },
    ];
    let batch = retriever.recommend_many(&queries);
    for (query, answer) in queries.iter().zip(batch) {
        match (answer, retriever.recommend(query)) {
            (Ok(many), Ok(one)) => assert_same_ranking(&format!("{query:?}"), &ranked(&many), &ranked(&one)),
            (many, one) => assert_eq!(many, one, "{query:?}: the same error"),
        }
    }
}

//! Mutation test of the model file format, under an allocator that refuses any single
//! allocation above 256 MiB (the process aborts, failing the test): whatever a forged length
//! field says, loading allocates no more than the file justifies.

use std::alloc::{GlobalAlloc, Layout, System};

use train::{seal, ModelFile, Retriever, UserQuery, HEADER_LEN};

#[path = "common/tiny.rs"]
mod tiny;

/// Refuses allocations above [`CAP`].
struct Capped;

const CAP: usize = 256 << 20;

// SAFETY: forwards to the system allocator, refusing (null) only above the cap.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn load(bytes: &[u8]) -> Result<ModelFile, train::ModelFileError> {
    ModelFile::from_bytes(bytes, std::path::Path::new("model.bin"))
}

/// Every plausible length or dimension field of the payload (any 8 bytes reading as a u64 in
/// 1..=100 000) set to 0, v+1, 2³²+v and 2⁶², resealed with a valid checksum; then random
/// payloads and every truncation of the payload. Each must load as an error or as a model that
/// serves without a panic. (The allocator above bounds memory.)
fn mutations() -> Vec<Vec<u8>> {
    let (file, _, _) = tiny::tiny_model_file();
    let bytes = file.to_bytes();
    let payload = &bytes[HEADER_LEN..];
    let mut out = Vec::new();
    for offset in 0..payload.len().saturating_sub(8) {
        let v = u64::from_le_bytes(payload[offset..offset + 8].try_into().unwrap());
        if !(1..=100_000).contains(&v) {
            continue;
        }
        for replacement in [0, v + 1, (1 << 32) + v, 1 << 62] {
            let mut mutated = payload.to_vec();
            mutated[offset..offset + 8].copy_from_slice(&u64::to_le_bytes(replacement));
            out.push(seal(&mutated));
        }
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..64 {
        let mutated: Vec<u8> = (0..payload.len())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        out.push(seal(&mutated));
    }
    for cut in (0..payload.len()).step_by(7) {
        out.push(seal(&payload[..cut]));
    }
    out
}

#[test]
fn mutated_model_files_are_errors_or_serve_never_panic() {
    let cases = mutations();
    assert!(cases.len() > 200, "only {} mutations", cases.len());
    let (mut errors, mut loaded) = (0, 0);
    for bytes in cases {
        match load(&bytes) {
            Err(error) => {
                let message = error.to_string();
                assert!(!message.is_empty() && !message.contains(": :"), "{message}");
                errors += 1;
            }
            Ok(file) => {
                // A file that loads is consistent: serving it cannot panic.
                let user = file.users.first().map(|u| u.key.clone()).unwrap();
                let retriever = Retriever::new(file);
                retriever.recommend(&UserQuery { user: &user, at: None, k: 3, include_seen: false }).unwrap();
                let item = retriever.file().catalogue.keys[0].clone();
                let fresh = train::Request { history: Some(vec![item]), k: 3, ..Default::default() };
                let _ = retriever.answer(&[fresh]);
                loaded += 1;
            }
        }
    }
    eprintln!("mutations: {errors} rejected, {loaded} loaded and served");
    assert!(errors > 0);
}

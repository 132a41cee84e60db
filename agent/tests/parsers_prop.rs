//! Property tests: no parser panics on arbitrary or mutated bytes, and hostile headers fail
//! fast. (Allocation bounds are checked in `alloc_bounds.rs`, which needs a process of its own.)

// Test code fails by panicking; helpers outside #[test] functions need the same allowance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use aiscout_agent::formats::{self, ProbeInput, HEAD_LEN, REGISTRY};
use proptest::prelude::*;

/// File names that route bytes into every prober, including the name-gated ones.
const NAMES: &[&str] = &[
    "m.7z",
    "m.gguf",
    "m.safetensors",
    "m.onnx",
    "m.pt",
    "m.pkl",
    "m.joblib",
    "m.npy",
    "m.npz",
    "m.h5",
    "m.keras",
    "m.tflite",
    "m.mlmodel",
    "m.xml",
    "saved_model.pb",
    "mlmodel",
    "m.bin",
    "blob",
];

fn fixture_models() -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let dirs = [root.join("models"), root.join("safety/benign"), root.join("safety/hostile")];
    let mut out = Vec::new();
    for entry in dirs.iter().flat_map(|d| std::fs::read_dir(d).unwrap().flatten()) {
        if entry.metadata().map(|m| m.len() > 256 * 1024).unwrap_or(true) {
            continue;
        }
        let p = entry.path();
        if p.is_file() {
            let name = p.file_name().unwrap().to_string_lossy().to_lowercase();
            out.push((name, std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn probe_all(name: &str, bytes: &[u8]) {
    let head = &bytes[..bytes.len().min(HEAD_LEN)];
    let input = ProbeInput { source: &bytes, size: bytes.len() as u64, head, name };
    for (_, probe) in REGISTRY {
        let _ = probe(&input);
    }
    // Whatever identifies is also assessed for safety (the pickle machine, containers, Keras).
    if let Ok(Some(detection)) = formats::identify_bytes(name, bytes) {
        let report = aiscout_agent::safety::assess(std::path::Path::new("/nonexistent/m"), &input, &detection);
        assert_ne!(report.verdict, aiscout_agent::safety::Verdict::Unknown);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..8192), n in 0..NAMES.len()) {
        probe_all(NAMES[n], &bytes);
    }

    #[test]
    fn magic_prefixed_bytes_never_panic(
        magic in prop::sample::select(vec![
            b"GGUF\x03\x00\x00\x00".to_vec(), b"\x93NUMPY\x01\x00".to_vec(), b"PK\x03\x04".to_vec(),
            b"\x80\x04\x95".to_vec(), b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e".to_vec(),
            b"\x89HDF\r\n\x1a\n".to_vec(), b"\x08\x07\x12".to_vec(), b"\x1f\x8b\x08".to_vec(), b"BZh9".to_vec(),
            b"\xfd7zXZ\x00".to_vec(), b"\x04\x22\x4d\x18".to_vec(), b"\x78\x9c".to_vec(), b"\x1c\x00\x00\x00TFL3".to_vec(),
        ]),
        rest in proptest::collection::vec(any::<u8>(), 0..4096),
        n in 0..NAMES.len(),
    ) {
        let mut bytes = magic;
        bytes.extend(rest);
        probe_all(NAMES[n], &bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let fixtures = fixture_models();
        let (name, original) = &fixtures[which.index(fixtures.len())];
        let mut bytes = original.clone();
        for (at, value, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = value,
                1 => bytes[i] ^= 1 << (value % 8),
                // A length-like field set to a huge value.
                2 => { let end = (i + 8).min(bytes.len()); bytes[i..end].fill(0xff); }
                _ => { bytes.insert(i, value); }
            }
        }
        if truncate && !bytes.is_empty() {
            bytes.truncate(cut.index(bytes.len()));
        }
        probe_all(name, &bytes);
    }

    #[test]
    fn gguf_counts_are_bounded(tensors in any::<u64>(), kvs in any::<u64>(), rest in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b.extend(rest);
        let started = std::time::Instant::now();
        let r = formats::identify_bytes("x.gguf", &b);
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(2));
        if tensors > 1 << 20 || kvs > 1 << 20 {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn safetensors_header_length_is_bounded(len in any::<u64>(), rest in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut b = len.to_le_bytes().to_vec();
        b.extend(b"{\"");
        b.extend(rest);
        let r = formats::identify_bytes("x.safetensors", &b);
        if len > b.len() as u64 {
            prop_assert!(r.is_err());
        }
    }
}

/// Names of the safety fixtures made not to parse (`format: unknown`, or cut short:
/// `truncated_of`), from the corpus's answer key.
fn unparseable_by_design() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/safety/expected.json");
    let key: serde_json::Value = serde_json::from_slice(&std::fs::read(root).unwrap()).unwrap();
    let entries = ["benign", "hostile"].into_iter().flat_map(|k| key[k].as_array().unwrap().iter());
    entries
        .filter(|e| e["format"] == "unknown" || e.get("truncated_of").is_some())
        .map(|e| e["path"].as_str().unwrap().rsplit('/').next().unwrap().to_lowercase())
        .collect()
}

#[test]
fn every_fixture_is_still_identified_after_a_clean_copy() {
    // Guards the mutation test: the originals themselves parse, but for those made not to.
    let skip = unparseable_by_design();
    assert!(skip.len() >= 3, "{skip:?}");
    for (name, bytes) in fixture_models() {
        if skip.contains(&name) {
            continue;
        }
        let r = formats::identify_bytes(&name, &bytes);
        assert!(matches!(r, Ok(Some(_))), "{name}: {r:?}");
    }
}

//! Inputs kept from fuzzing (`scripts/fuzz.sh`, targets in `agent/fuzz/fuzz_targets/`): every
//! file in `tests/fuzz_regressions/` is named `<target>-<hash>` and must be probed without a
//! panic, both by `identify_bytes` under the target's file name and by the target's own prober.
//! Either `Ok` or `Err` is fine: only a panic (or a hang) fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use aiscout_agent::formats::reader::Cursor;
use aiscout_agent::formats::{identify_bytes, pickle, ProbeInput, FUZZ_NAMES, HEAD_LEN, REGISTRY};

/// The file name each per-prober fuzz target gives its input.
fn target_name(target: &str) -> Option<&'static str> {
    Some(match target {
        "gguf" => "model.gguf",
        "tf_savedmodel" => "saved_model.pb",
        "mlflow" => "mlmodel",
        "openvino" => "model.xml",
        "safetensors" => "model.safetensors",
        "numpy" => "weights.npy",
        "zip" => "model.pt",
        "pytorch_legacy" => "model.pt",
        "joblib" => "model.joblib",
        "tflite" => "model.tflite",
        "keras_h5" => "model.h5",
        "coreml" => "model.mlmodel",
        "onnx" => "model.onnx",
        "pickle" | "pickle_walk" => "model.pkl",
        _ => return None,
    })
}

fn regressions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fuzz_regressions")
}

/// Replays one kept input the way its fuzz target ran it, then through `identify_bytes`.
fn replay(target: &str, data: &[u8]) {
    if target == "identify_all" {
        if let Some((&first, content)) = data.split_first() {
            let name = FUZZ_NAMES[usize::from(first) % FUZZ_NAMES.len()];
            if let Ok(Some(d)) = identify_bytes(name, content) {
                serde_json::to_string(&d).unwrap();
            }
        }
        return;
    }
    let name = target_name(target).unwrap_or_else(|| panic!("unknown fuzz target {target}"));
    if target == "pickle_walk" {
        let mut cur = Cursor::new("pickle", &data, data.len() as u64, 0);
        let _ = pickle::walk(&mut cur, pickle::MAX_OPS);
    } else {
        let (_, probe) = REGISTRY.iter().find(|(n, _)| *n == target).unwrap();
        let head = &data[..data.len().min(HEAD_LEN)];
        let _ = probe(&ProbeInput { source: &data, size: data.len() as u64, head, name });
    }
    let _ = identify_bytes(name, data);
}

#[test]
fn fuzz_regressions_do_not_panic() {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(regressions_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", regressions_dir().display());
    let mut failures = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let target = file.rsplit_once('-').map(|(t, _)| t).unwrap_or_else(|| panic!("{file}: not <target>-<hash>"));
        let data = std::fs::read(path).unwrap();
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| replay(target, &data))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            failures.push(format!("{file}: {msg}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} inputs panicked:\n{}", failures.len(), files.len(), failures.join("\n"));
}

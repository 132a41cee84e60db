//! Fuzzes the safety analysis: arbitrary bytes, named after the first byte among model file
//! names, are identified and, when they identify, assessed (pickle machine, containers, Keras,
//! SavedModel, 7z, GGUF chat templates). It must return, never panic, hang or allocate past the bounds.
#![no_main]

use std::path::Path;

use aiscout_agent::formats::{identify_bytes, ProbeInput, HEAD_LEN};
use aiscout_agent::safety::assess;
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "model.pkl", "model.pt", "model.joblib", "weights.npy", "bundle.npz", "model.h5", "model.keras",
    "saved_model.pb", "model.onnx", "archive.7z", "pytorch_model.bin", "mlmodel", "model.gguf",
];

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else { return };
    let name = NAMES[usize::from(*first) % NAMES.len()];
    if let Ok(Some(detection)) = identify_bytes(name, rest) {
        let head = rest.get(..rest.len().min(HEAD_LEN)).unwrap_or_default();
        let input = ProbeInput { source: &rest, size: rest.len() as u64, head, name };
        let report = assess(Path::new("/nonexistent/model"), &input, &detection);
        let _ = serde_json::to_string(&report);
    }
});

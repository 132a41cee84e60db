//! Fuzzes `safety::keras::judge_bytes`, the Keras config reader (a `.keras` `config.json` or an
//! HDF5 `model_config`), on arbitrary bytes. It must return, never panic, hang or allocate past
//! the bounds.
#![no_main]

use aiscout_agent::safety::{keras, SafetyReport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut report = SafetyReport::default();
    keras::judge_bytes(data, "config.json", &mut report);
    let _ = serde_json::to_string(&report.finish());
});

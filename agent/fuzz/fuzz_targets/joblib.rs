//! Fuzzes the `joblib` prober of `formats::REGISTRY` on arbitrary bytes named `model.joblib`
//! (the name is passed to the inner pickle probe). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use aiscout_agent::formats::{ProbeInput, HEAD_LEN, REGISTRY};
use libfuzzer_sys::fuzz_target;

const PROBER: &str = "joblib";
const NAME: &str = "model.joblib";

fuzz_target!(|data: &[u8]| {
    let Some((_, probe)) = REGISTRY.iter().find(|(n, _)| *n == PROBER) else {
        panic!("no prober named {PROBER} in formats::REGISTRY");
    };
    let head = data.get(..data.len().min(HEAD_LEN)).unwrap_or_default();
    let input = ProbeInput { source: &data, size: data.len() as u64, head, name: NAME };
    let _ = probe(&input);
});

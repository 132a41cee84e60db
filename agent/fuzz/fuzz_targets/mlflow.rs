//! Fuzzes the `mlflow` prober of `formats::REGISTRY` on arbitrary bytes named `mlmodel`
//! (it probes only files with that name). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use aiscout_agent::formats::{ProbeInput, HEAD_LEN, REGISTRY};
use libfuzzer_sys::fuzz_target;

const PROBER: &str = "mlflow";
const NAME: &str = "mlmodel";

fuzz_target!(|data: &[u8]| {
    let Some((_, probe)) = REGISTRY.iter().find(|(n, _)| *n == PROBER) else {
        panic!("no prober named {PROBER} in formats::REGISTRY");
    };
    let head = data.get(..data.len().min(HEAD_LEN)).unwrap_or_default();
    let input = ProbeInput { source: &data, size: data.len() as u64, head, name: NAME };
    let _ = probe(&input);
});

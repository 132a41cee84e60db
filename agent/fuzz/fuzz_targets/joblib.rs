//! Fuzzes the `joblib` prober of `formats::REGISTRY` on arbitrary bytes named `model.joblib`
//! (the name is passed to the inner pickle probe). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiscout_agent_fuzz::probe("joblib", "model.joblib", data));

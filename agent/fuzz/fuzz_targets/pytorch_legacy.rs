//! Fuzzes the `pytorch_legacy` prober of `formats::REGISTRY` on arbitrary bytes named `model.pt`
//! (the name does not matter to it). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiscout_agent_fuzz::probe("pytorch_legacy", "model.pt", data));

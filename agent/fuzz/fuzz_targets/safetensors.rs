//! Fuzzes the `safetensors` prober of `formats::REGISTRY` on arbitrary bytes named `model.safetensors`
//! (the extension for which it reports errors). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiscout_agent_fuzz::probe("safetensors", "model.safetensors", data));

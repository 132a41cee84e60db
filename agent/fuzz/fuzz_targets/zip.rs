//! Fuzzes the `zip` prober of `formats::REGISTRY` on arbitrary bytes named `model.pt`
//! (an extension for which a damaged zip is an error). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiscout_agent_fuzz::probe("zip", "model.pt", data));

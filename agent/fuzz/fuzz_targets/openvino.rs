//! Fuzzes the `openvino` prober of `formats::REGISTRY` on arbitrary bytes named `model.xml`
//! (it probes only `.xml` files). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiscout_agent_fuzz::probe("openvino", "model.xml", data));

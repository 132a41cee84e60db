//! Fuzzes the `mlflow` prober of `formats::REGISTRY` on arbitrary bytes named `mlmodel`
//! (it probes only files with that name). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiscout_agent_fuzz::probe("mlflow", "mlmodel", data));

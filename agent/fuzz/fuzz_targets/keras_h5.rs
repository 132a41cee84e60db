//! Fuzzes the `keras_h5` prober of `formats::REGISTRY` on arbitrary bytes named `model.h5`
//! (the extension that makes it look for a shifted HDF5 superblock). It must return `Ok` or `Err`, never panic, hang or allocate past the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiscout_agent_fuzz::probe("keras_h5", "model.h5", data));

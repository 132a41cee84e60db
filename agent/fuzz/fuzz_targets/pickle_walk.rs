//! Fuzzes `formats::pickle::walk`, the pickle opcode walker that the pickle, joblib, PyTorch
//! and legacy PyTorch probers share, from offset 0 with the full opcode budget.
#![no_main]

use aiscout_agent::formats::pickle;
use aiscout_agent::formats::reader::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new("pickle", &data, data.len() as u64, 0);
    let _ = pickle::walk(&mut cur, pickle::MAX_OPS);
});

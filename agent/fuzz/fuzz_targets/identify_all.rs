//! Fuzzes `formats::identify_bytes`, the whole registry in order. The first input byte picks
//! the file name (probers use names to choose among containers and to decide whether a broken
//! structure is an error); the rest is the content. A detection must also serialize to JSON.
#![no_main]

use aiscout_agent::formats::{identify_bytes, FUZZ_NAMES as NAMES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, content)) = data.split_first() else {
        return;
    };
    let name = NAMES.get(usize::from(first) % NAMES.len()).copied().unwrap_or("data.bin");
    if let Ok(Some(detection)) = identify_bytes(name, content) {
        let _ = serde_json::to_string(&detection);
    }
});

//! Fuzzes the Hugging Face remote-code reader ([`aiscout_agent::safety::remote_code`]): the
//! first byte cuts the rest into a `config.json` and the source every `.py` of a fake model
//! directory reads as. `auto_map_refs`, `scan_python` and `assess_dir` must never panic, hang
//! or grow past their bounds.
#![no_main]

use aiscout_agent::safety::remote_code::{assess_dir, auto_map_refs, scan_python, ReadOutcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let (config, python) = rest.split_at(rest.len() * usize::from(cut) / 256);
    let _ = auto_map_refs(config);
    let _ = scan_python(python);
    let read = |rel: &str, limit: u64| -> Result<Option<ReadOutcome>, String> {
        let bytes = if rel.ends_with(".json") { config } else { python };
        let keep = bytes.get(..bytes.len().min(usize::try_from(limit).unwrap_or(usize::MAX))).unwrap_or_default();
        Ok(Some(ReadOutcome { data: keep.to_vec(), size: bytes.len() as u64 }))
    };
    let _ = assess_dir(&read);
});

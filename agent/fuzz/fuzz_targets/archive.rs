//! Fuzzes the archive walker (`formats::archive`): arbitrary bytes, named `archive.bin` so that
//! only content decides, walked as the container they start like (zip through both its views,
//! tar, gzip, bzip2, xz, 7z, nested), then assessed as an archive entry would be. It must
//! return, never panic, hang or allocate past the bounds (smaller here than a scan's, to stay
//! under libFuzzer's memory limit).
#![no_main]

use aiscout_agent::formats::archive::{container_of, walk, Bounds, BOUNDS};
use aiscout_agent::formats::{ProbeInput, HEAD_LEN};
use aiscout_agent::safety::assess_archive_within;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let head = data.get(..data.len().min(HEAD_LEN)).unwrap_or_default();
    let input = ProbeInput { source: &data, size: data.len() as u64, head, name: "archive.bin" };
    let Some(kind) = container_of(&input) else { return };
    let bounds = Bounds { total: 32 << 20, member: 8 << 20, ..BOUNDS };
    let mut events = 0usize;
    walk(&input, kind, bounds, &mut |_| {
        events += 1;
        true
    });
    let report = assess_archive_within(&input, bounds);
    let _ = serde_json::to_string(&report);
});

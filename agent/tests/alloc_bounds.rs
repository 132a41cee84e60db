//! Parsers never allocate past their bound: for any input of at most 64 KiB, identification
//! allocates (in total, not just at peak) less than [`BOUND`]. One test in its own process, so
//! the instrumented global allocator counts this test's allocations only.

// Test code fails by panicking; helpers outside #[test] functions need the same allowance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use aiscout_agent::formats;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Total bytes identification may allocate for one input of at most 64 KiB: the decompression
/// sniff (256 KiB output plus the decoders' own tables, bzip2's being the largest at ~3.6 MiB),
/// the read windows and the pickle machine's bounded stack and memo.
const BOUND: usize = 24 * 1024 * 1024;

const NAMES: &[&str] =
    &["m.gguf", "m.safetensors", "m.onnx", "m.pt", "m.pkl", "m.joblib", "m.npy", "m.npz", "m.h5", "m.bin"];

fn allocated_by(name: &str, bytes: &[u8]) -> usize {
    let region = Region::new(GLOBAL);
    let _ = formats::identify_bytes(name, bytes);
    region.change().bytes_allocated
}

#[test]
fn identification_allocation_is_bounded() {
    let mut runner = TestRunner::new(Config { cases: 1024, ..Config::default() });
    let prefixes = vec![
        b"GGUF\x03\x00\x00\x00".to_vec(),
        b"\x80\x04\x95".to_vec(),
        b"PK\x03\x04".to_vec(),
        b"\x93NUMPY\x01\x00".to_vec(),
        b"\x1f\x8b\x08\x00".to_vec(),
        b"BZh9".to_vec(),
        b"\xfd7zXZ\x00".to_vec(),
        b"\x5d\x00\x00\x80\x00".to_vec(),
        Vec::new(),
    ];
    let strategy = (prop::sample::select(prefixes), proptest::collection::vec(any::<u8>(), 0..65536), 0..NAMES.len());
    runner
        .run(&strategy, |(prefix, rest, n)| {
            let mut bytes = prefix;
            bytes.extend(rest);
            let used = allocated_by(NAMES[n], &bytes);
            prop_assert!(used < BOUND, "{} allocated {used} bytes for {} input bytes", NAMES[n], bytes.len());
            Ok(())
        })
        .unwrap();

    // Hostile headers that claim enormous sizes.
    let mut gguf = b"GGUF\x03\x00\x00\x00".to_vec();
    gguf.extend(0u64.to_le_bytes());
    gguf.extend((1u64 << 60).to_le_bytes());
    let mut st = (1u64 << 63).to_le_bytes().to_vec();
    st.extend(b"{\"a\":1}");
    let mut npy = b"\x93NUMPY\x02\x00".to_vec();
    npy.extend(u32::MAX.to_le_bytes());
    for (name, bytes) in [("x.gguf", gguf), ("x.safetensors", st), ("x.npy", npy)] {
        let used = allocated_by(name, &bytes);
        assert!(used < 1024 * 1024, "{name}: {used} bytes allocated for a hostile header");
    }
}

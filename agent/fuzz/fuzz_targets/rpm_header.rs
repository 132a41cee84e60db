//! Fuzzes the rpm header parser (`detectors::owners::rpm`): arbitrary bytes as a blob of the
//! rpm database's `Packages` table. It must return, never panic, hang or allocate past the
//! bounds, and a parsed package's version string must be built without a panic either.
#![no_main]

use aiscout_agent::detectors::owners::rpm::parse_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pkg) = parse_header(data) {
        let _ = pkg.evr();
    }
});

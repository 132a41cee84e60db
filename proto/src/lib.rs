//! The aiscout wire protocol and the release channel's signed metadata.
//!
//! # Layout
//! - [`v1`]: package `aiscout.v1`, compiled from `proto/aiscout/v1/*.proto` by `build.rs`.
//! - [`release`]: signed release metadata (DSSE envelopes, ed25519), its verification and the
//!   rollout decision, shared by the collector (which serves it) and the agent (which verifies
//!   it before updating itself).
//! - [`bom`]: the CycloneDX 1.6 bill of materials of an inventory (components, services,
//!   dependencies from scan entries, written as a stream), shared by the collector's fleet export
//!   and the agent's `scan --format cyclonedx`.

pub mod bom;
pub mod release;

/// Package `aiscout.v1`.
#[allow(missing_debug_implementations, unused_qualifications, clippy::all)]
pub mod v1 {
    tonic::include_proto!("aiscout.v1");
}

/// Formats a byte count with binary units (`512 B`, `1.5 GiB`): the agent's text output and the
/// collector's dashboard.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {name}")
    }
}

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

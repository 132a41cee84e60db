//! The agent's side of the fleet protocol (`proto/aiscout/v1/fleet.proto`).
//!
//! # Layout
//! - [`payload`]: from a [`crate::report::ScanReport`] to wire assets (kind, local key, advisory
//!   identity, entry JSON) and host facts.
//! - [`state`]: what was last spooled for the collector (a sled tree of entry hashes), the
//!   snapshot or delta that brings the collector up to date, and its split into batches.

pub mod payload;
pub mod state;
pub mod transport;

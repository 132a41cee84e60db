//! The agent's side of the fleet (`proto/aiscout/v1/fleet.proto`): who this host is, how it
//! holds a certificate from the collector, what it sends and how.
//!
//! # Layout
//! - [`identity`]: the host identity facts and the machine fingerprint sent at enrollment.
//! - [`enroll`]: enrollment (token and CSR for a client certificate), the TLS state in
//!   `state_dir/tls/`, and certificate renewal.
//! - [`payload`]: from a [`crate::report::ScanReport`] to wire assets (kind, local key, advisory
//!   identity, entry JSON) and host facts.
//! - [`state`]: what was last spooled for the collector (a sled tree of entry hashes), the
//!   snapshot or delta that brings the collector up to date, and its split into batches.
//! - [`transport`]: draining the spool over one `Inventory.Stream`, acknowledgements.
//! - [`daemon`]: `aiscout-agent run`: schedule, collection, spooling, sending, backoff.

pub mod daemon;
pub mod enroll;
pub mod identity;
pub mod payload;
pub mod state;
pub mod transport;
pub mod watch;

//! The agent's side of the fleet (`proto/aiscout/v1/fleet.proto`): who this host is, how it
//! holds a certificate from the collector, what it sends and how.
//!
//! # Layout
//! - [`host_identity`]: the host identity facts and the machine fingerprint sent at enrollment.
//! - [`credentials`]: the agent's id, key, certificate and trusted CAs in `state_dir/tls/`:
//!   checked, saved all at once, loaded back.
//! - [`channel`]: the TLS channel to the collector (endpoint, trust, client certificate,
//!   connect), for every call.
//! - [`ca_pin`]: trusting the collector at enrollment by a pinned CA digest
//!   (`collector.ca_sha256`): a rustls verifier and the connector that uses it.
//! - [`enroll`]: the enrollment protocol (token and CSR for a client certificate) and renewal.
//! - [`token_file`]: the enrollment token file: read only when private and reached without a
//!   symbolic link, deleted once used.
//! - [`payload`]: from a [`crate::report::ScanReport`] to wire assets (kind, local key, entry
//!   JSON) and host facts.
//! - [`sent`]: what was last spooled for the collector (a sled tree of change hashes) and the
//!   delta that brings the collector up to date.
//! - [`batch`]: a snapshot or a delta cut into batches under count and byte limits.
//! - [`transport`]: draining the spool over one `Inventory.Stream`, acknowledgements.
//! - [`watch`]: file events in model directories between full inventories.
//! - [`schedule`]: what the daemon does next, decided from the time and the events alone.
//! - [`status`]: the daemon's health in `state_dir/status.json`, for `aiscout-agent status`.
//! - [`daemon`]: `aiscout-agent run`: opens the stores and carries out the schedule's steps,
//!   reloading its configuration on SIGHUP.
//!
//! Unit tests live in `tests/`, one file per module, sharing `tests/support.rs` (a throwaway
//! CA, a fake collector, hand-built reports).

pub mod batch;
pub mod ca_pin;
pub mod channel;
pub mod credentials;
pub mod daemon;
pub mod enroll;
pub mod host_identity;
pub mod payload;
pub mod schedule;
pub mod sent;
pub mod status;
pub mod token_file;
pub mod transport;
pub mod watch;

#[cfg(test)]
#[path = "tests/support.rs"]
pub(crate) mod test_support;

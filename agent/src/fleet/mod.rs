//! The agent's membership in a fleet: who this host is and how it holds a certificate from the
//! collector.
//!
//! # Layout
//! - [`identity`]: the host identity facts and the machine fingerprint sent at enrollment.
//! - [`enroll`]: enrollment (token and CSR for a client certificate), the TLS state in
//!   `state_dir/tls/`, and certificate renewal.

pub mod enroll;
pub mod identity;

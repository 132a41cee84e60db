//! aiscout collector.
//!
//! The collector enrolls agents, receives their inventory streams over mutual TLS, deduplicates
//! assets across the fleet and serves the inventory. This crate is a skeleton until the fleet
//! pipeline lands (issue 5); today it only names the protocol it will speak.
//!
//! # Layout
//! - this file: the protocol the collector speaks.
//! - [`pki`]: the certificate authority (dev CA, server certificate, agent certificates).
//! - [`store`]: the fleet inventory store: the [`store::Store`] trait, its domain types and
//!   identity rules, and the embedded SQLite backend.

pub mod pki;
pub mod store;

/// The wire protocol package this collector speaks.
pub const PROTOCOL_PACKAGE: &str = "aiscout.v1";

/// Returns a model message from the shared protocol crate, proving the crates link.
pub fn protocol_model_type() -> &'static str {
    std::any::type_name::<aiscout_proto::v1::ModelArtifact>()
}

#[cfg(test)]
mod tests {
    #[test]
    fn protocol_crate_links() {
        assert!(super::protocol_model_type().ends_with("ModelArtifact"));
    }
}

//! Generated types of the aiscout wire protocol.
//!
//! # Layout
//! - [`v1`]: package `aiscout.v1`, compiled from `proto/aiscout/v1/*.proto` by `build.rs`.

#![allow(missing_debug_implementations, unused_qualifications, clippy::all)]

/// Package `aiscout.v1`.
pub mod v1 {
    tonic::include_proto!("aiscout.v1");
}

//! Detectors: each finds one kind of AI asset on the host.
//!
//! - [`models`]: model files and directories, identified by content.

pub mod models;

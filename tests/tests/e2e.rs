//! End-to-end tests: the real `aiscout-agent` binary against real model files.
//!
//! One test binary that `mod`s every area (ripgrep's layout).

// Test code fails by panicking; helpers outside #[test] functions need the same allowance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod archives;
mod cache;
mod cmdb;
mod daemon_control;
mod dashboard;
mod exports;
mod findings;
mod fixtures;
mod fleet;
mod fleet_auth;
mod fleet_hosts;
mod fleet_resilience;
mod fleet_sim;
mod fleet_watch;
mod frameworks;
mod hazards;
mod listing;
mod load_time;
mod netns;
mod owner;
mod redaction;
mod release_channel;
mod remote_code;
mod replicas;
mod rotation;
mod runtimes;
mod safety;
mod self_update;
mod siem;
mod tokens;
mod tooling;
mod walk_race;

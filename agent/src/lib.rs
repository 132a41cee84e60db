//! aiscout agent: finds the machine-learning models on a host and identifies them by content.
//!
//! # Layout
//! - [`scan`]: one scan from options to report (roots, cache, detectors, stats).
//! - [`check`]: the safety verdicts alone, with CI exit codes, as text, JSON or a SARIF 2.1.0
//!   log ([`check::sarif`]).
//! - [`config`]: the daemon's TOML configuration: loading, defaults and validation.
//! - [`detectors`]: one module per kind of asset; [`detectors::models`] walks, picks candidate
//!   files, identifies, digests, attributes and groups models, noting [`detectors::markers`]
//!   for [`detectors::frameworks`] and [`detectors::tooling`]; [`detectors::owners`] gives the
//!   files that installed packages shipped their owner; [`detectors::gpus`] and
//!   [`detectors::runtimes`] read the running system.
//! - [`formats`]: one file per model format, each a bounded content prober registered once in
//!   [`formats::REGISTRY`].
//! - [`walk`]: the parallel walk on directory handles (no symlink at any component) with exclusion rules.
//! - [`roots`]: default roots, cache locations and mounts.
//! - [`fileio`]: safe opening for scanning (no FIFOs, devices, links), bounded reads, file stamps.
//! - [`hash`]: SHA-256 of files (SHA-NI where present) and tree digests.
//! - [`cache`]: the sled hash cache keyed by file stamp.
//! - [`listing`]: per-directory listing records that let rescans skip unchanged directories.
//! - [`fleet`]: the fleet: host identity, credentials, the channel to the collector, enrollment,
//!   payload, sent state and batches, transport, file watching, the schedule and the `run`
//!   daemon.
//! - [`spool`]: the durable sled queue of reports awaiting the collector's acknowledgement.
//! - [`state_dir`]: the state directory's layout (cache, spool, sent state, credentials, install
//!   key) and every private-file operation on it.
//! - [`safety`]: load-time code execution verdicts (pickle machine, Keras configs:
//!   [`safety::keras`], SavedModel, ONNX, GGUF chat templates: [`safety::chat_template`],
//!   Hugging Face remote code: [`safety::remote_code`], archives and the code bundles carry)
//!   and the allow/deny [`safety::policy`].
//! - [`report`]: the public JSON document and its vocabulary ([`report::Section`]): model
//!   entries, host facts, host-inventory entries (frameworks, GPUs, runtimes, tooling).
//! - [`redact`] (a folder: names, argv, shell, pairs, urls, tokens): keeps secret values out of
//!   command lines, environments, MCP configurations and URLs, judging values, not only names.
//! - [`output`]: the human-readable table and progress bar.
//! - [`log_once`]: messages a daemon would repeat every cycle, logged once and on change.
//! - [`update`]: signed self-update: check the release channel, verify, download, stage.
//!
//! This file: tracing setup and the clock ([`now_ms`]).

pub mod cache;
pub mod check;
pub mod config;
pub mod detectors;
pub mod fileio;
pub mod fleet;
pub mod formats;
pub mod hash;
pub mod listing;
pub mod log_once;
pub mod output;
pub mod redact;
pub mod report;
pub mod roots;
pub mod safety;
pub mod scan;
pub mod spool;
pub mod state_dir;
pub mod throttle;
pub mod update;
pub mod walk;

/// The version this build states: the binary stamps it at start ([`set_version`]); the
/// library alone (its tests) states the crate's.
static VERSION: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Sets the version the agent states (once, at start; later calls change nothing). The binary
/// passes its build's version, which `AISCOUT_BUILD_VERSION` at build time overrides.
pub fn set_version(version: &'static str) {
    let _ = VERSION.set(version);
}

/// The version the agent states to the collector, in its status and to the release channel.
pub fn version() -> &'static str {
    VERSION.get().copied().unwrap_or(env!("CARGO_PKG_VERSION"))
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Sets up `tracing` on stderr: human-readable, or JSON lines when `json` is set. The level
/// comes from `AISCOUT_LOG` when it is set, else `default_level` (a filter directive such as
/// `"warn"`).
pub fn init_tracing(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AISCOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour only on a terminal: files and the journal get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

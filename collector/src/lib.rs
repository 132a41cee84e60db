//! aiscout collector.
//!
//! The collector enrolls agents, receives their inventory streams over mutual TLS, deduplicates
//! assets across the fleet and serves the inventory. Data flows one way: [`grpc`] (enrollment,
//! inventory streams) → [`ingest`] (wire → domain) → [`store`] → [`api`] (reads).
//!
//! # Layout
//! - this file: tracing and the small helpers every module shares: [`now_ms`], [`blocking`],
//!   [`create_private_dir`].
//! - [`config`]: the TOML configuration and its validation.
//! - [`server`]: `serve`: the gRPC (TLS) and HTTP listeners until shutdown.
//! - [`grpc`]: the `Enrollment` and `Inventory` services, authentication, gRPC statuses.
//! - [`ingest`]: wire batches into store batches.
//! - [`api`]: the read-only HTTP API with bearer tokens, HTTP statuses.
//! - [`error_code`]: the one classification of domain errors, and its gRPC code and HTTP status.
//! - [`pki`]: the certificate authority (dev CA, server certificate, agent certificates).
//! - [`store`]: the fleet inventory store: the [`store::Store`] trait, its domain types and
//!   identity rules, and the embedded SQLite backend.

pub mod api;
pub mod config;
pub mod error_code;
pub mod grpc;
pub mod ingest;
pub mod pki;
pub mod rate;
pub mod server;
pub mod store;

/// Sets up `tracing` on stderr; the level comes from `AISCOUT_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AISCOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: files and the journal get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// Unix milliseconds now (0 before 1970, `i64::MAX` past year 292 million).
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Runs `work` (a store call, signing) on tokio's blocking pool, off the async runtime. A worker
/// that panicked or was cancelled becomes `worker_died("worker failed: …")`, in the caller's
/// error type (a gRPC status, an API error).
pub async fn blocking<T, E>(
    worker_died: impl FnOnce(String) -> E,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(worker_died(format!("worker failed: {e}"))),
    }
}

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

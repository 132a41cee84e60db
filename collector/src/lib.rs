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
//! - [`tls`]: the TLS material the configuration names, read and checked in one place, and the
//!   listeners' rustls configurations.
//! - [`listener`]: TLS accept loops: handshakes off the accept path, failures logged once per
//!   peer per minute.
//! - [`grpc`]: the `Enrollment` and `Inventory` services, authentication, gRPC statuses.
//! - [`metrics`]: the collector's own counters and histograms, served at `/metrics`.
//! - [`rate`]: the per-agent batch rate limit the `Inventory` service applies.
//! - [`ingest`]: wire batches into store batches.
//! - [`api`]: the read-only HTTP API with bearer tokens and their scopes, HTTP statuses.
//! - [`operator`]: what the operator commands print (token listings, never a secret).
//! - [`error_code`]: the one classification of domain errors, and its gRPC code and HTTP status.
//! - [`pki`]: the certificate authority (dev CA, server certificate, agent certificates).
//! - [`keys`]: private keys in the formats operators have (PKCS#8 plain or encrypted, PKCS#1,
//!   SEC1), read into PKCS#8.
//! - [`store`]: the fleet inventory store: the [`store::Store`] trait, its domain types and
//!   identity rules, bounds on what an agent can store (`store::limits`), the embedded
//!   SQLite backend and the PostgreSQL one several collectors share.
//! - [`release`]: the release manager's commands (keygen, sign, publish) and the published
//!   release channel.
//! - [`untrusted`]: agent-supplied text escaped and cut for log lines.
//! - [`graph`]: the process ↔ model ↔ host ↔ exposure picture of a host or a model.
//! - [`policy`]: the security team's policy file (approved models, version floors, licences,
//!   severity overrides, exceptions), checked key by key.
//! - [`siem`]: finding events pushed to webhooks, Splunk HEC and Elastic, from the audit trail
//!   as a durable outbox.
//! - [`export`]: the inventory as CSV, JSON lines, CycloneDX 1.6 and SPDX 3.0.1, streamed in
//!   chunks (`aiscout-collector export`, `GET /api/v1/export`).
//! - [`findings`]: the rules evaluated over the whole inventory, their framework mappings and
//!   the advisories they match versions against.
//! - [`cmdb`]: hosts, inference servers and models pushed to ServiceNow (Identification and
//!   Reconciliation API) or a signed JSON webhook, on demand or on a schedule.

pub mod api;
pub mod cmdb;
pub mod config;
pub mod error_code;
pub mod export;
pub mod findings;
pub mod graph;
pub mod grpc;
pub mod ingest;
pub mod keys;
pub mod listener;
pub mod metrics;
pub mod operator;
pub mod pki;
pub mod policy;
pub mod rate;
pub mod release;
pub mod server;
pub mod siem;
pub mod store;
pub mod tls;
pub mod ui;
pub mod untrusted;

/// Sets up `tracing` on stderr at `level` (`[log]`), which `AISCOUT_LOG` overrides when set;
/// JSON lines when `json`.
pub fn init_tracing(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AISCOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: files and the journal get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Unix milliseconds now (0 before 1970, `i64::MAX` past year 292 million).
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds (`2026-12-05T09:31:17.123Z`) of Unix milliseconds; empty
/// for a time `time` cannot represent.
pub fn rfc3339_ms(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// RFC 3339 in UTC to the second (`2026-12-05T09:31:17Z`): SPDX 3's `DateTime`, which allows no
/// fraction.
pub fn rfc3339_seconds(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Largest secret file read (`secret_file` of SIEM and CMDB targets): a password, a token or a
/// key is far smaller, and a wrong path must not read a huge file into memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// The text of a secret file of at most [`MAX_SECRET_FILE_BYTES`] (read no further, whatever
/// its size says: `/dev/zero` says 0).
pub fn read_secret_file(file: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(file)?.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB: not a secret", MAX_SECRET_FILE_BYTES >> 10),
        ));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not utf-8 text"))
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

/// Creates `path` for writing, which must not exist (a link planted there is not followed),
/// with `mode` (set again against the umask).
pub fn create_new_file(path: &std::path::Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(f)
}

/// Creates `path` (which must not exist) with `mode` ([`create_new_file`]), writes `contents`
/// and syncs it.
pub fn write_new_file(path: &std::path::Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = create_new_file(path, mode)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Creates `dir` (and missing parents) as a `0700` directory, or tightens an existing one to
/// `0700` when others may read it. A symlink or a non-directory at `dir` is refused, so the
/// database and the dev keys never land where someone else chose.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    const DIR_MODE: u32 = 0o700;
    let private = || std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE));
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o077 == 0 {
                Ok(())
            } else {
                private()
            }
        }
        Ok(_) => Err(Error::new(ErrorKind::AlreadyExists, format!("{}: exists and is not a directory", dir.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // The umask may have narrowed the mode asked for; say it again.
            std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
            private()
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_dir_is_created_tightened_and_never_a_symlink_or_file() {
        let tmp = tempfile::tempdir().unwrap();
        let created = tmp.path().join("a/b");
        create_private_dir(&created).unwrap();
        assert_eq!(mode(&created), 0o700);

        let wide = tmp.path().join("wide");
        std::fs::create_dir(&wide).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&wide).unwrap();
        assert_eq!(mode(&wide), 0o700);

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&wide, &link).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = create_private_dir(&link).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("link: exists and is not a directory"), "{err}");
        assert_eq!(mode(&wide), 0o755, "the symlink's target is left alone");

        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(create_private_dir(&file).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    }
}

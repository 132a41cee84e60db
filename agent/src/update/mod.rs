//! Signed self-update, agent side: check the collector's release channel, verify what it
//! serves, download the release this agent should take, verify it and stage it.
//!
//! Nothing the collector says is trusted by itself: the metadata must verify against the
//! release keys in `update.public_keys` ([`aiscout_proto::release::verify`]: signature,
//! channel, no replay of an older sequence, expiry), and the archive must have the digest and
//! size the signed metadata gives. A refused document leaves the running agent as it is.
//!
//! # Steps of [`check_and_stage`]
//! 1. ask the collector for the channel's envelope over the agent's mutual-TLS channel; none
//!    published: nothing to do;
//! 2. verify it against the last accepted sequence ([`UpdateState::accepted`]), then remember
//!    this one (so an older document is a replay from now on, even after a restart);
//! 3. decide ([`aiscout_proto::release::decide`]): the newest release for this target and
//!    cohort, newer than this agent, whose rollout includes this agent (or any newer one when
//!    this version is below the minimum);
//! 4. download the archive by its digest into `state_dir/update/versions/<version>/`, at most
//!    the signed size, hashing as it arrives; a digest or size that differs refuses it;
//! 5. verify the archive's own zipsign signature by a release key, extract `aiscout-agent` from
//!    its top level (at most [`MAX_BINARY_BYTES`]) and install it as a private executable in
//!    the same directory; steps 4 and 5 are `self_update`'s custom backend run over the agent's
//!    gRPC channel ([`install`]);
//! 6. smoke-test it: `--version` must print `aiscout-agent <version>` and `validate --config`
//!    must accept the running configuration, each within [`SMOKE_TIMEOUT`].
//!
//! The staged binary is recorded in `state_dir/update/state.json`. The daemon then switches the
//! `state_dir/bin/aiscout-agent` link the service starts to it, and the guard run before every
//! start rolls it back when it does not prove healthy in time ([`switch`]). Every check tells
//! the collector where this agent stands ([`UpdateState::report`]), so that it can pause a
//! cohort whose rollout fails; a paused cohort is offered nothing.
//!
//! # Layout
//! ```text
//! state_dir/update/              0700
//!   state.json                   accepted sequence, last check, last error, staged version,
//!                                pending switch, rolled-back versions, last outcome
//!   versions/<version>/          0700
//!     archive                    the verified download
//!     aiscout-agent              the extracted, smoke-tested binary (0700)
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aiscout_proto::release::{self, Accepted, Decision, PublicKey, Release};
use aiscout_proto::v1;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::fleet::channel::{self, ChannelError};
use crate::fleet::credentials::Enrolled;
use crate::fleet::transport;
use crate::state_dir::{self, StateDir};

mod install;
pub mod switch;

/// Largest archive downloaded, whatever the metadata says.
pub const MAX_ARCHIVE_BYTES: u64 = 512 * 1024 * 1024;
/// Largest binary extracted.
pub const MAX_BINARY_BYTES: u64 = 256 * 1024 * 1024;
/// Longest a smoke-test command may run.
pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest state file read back.
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// The Rust target this agent was built for, as releases name it.
pub const TARGET: &str =
    if cfg!(target_arch = "aarch64") { "aarch64-unknown-linux-gnu" } else { "x86_64-unknown-linux-gnu" };

/// What the updater remembers between checks (`state_dir/update/state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The last metadata accepted: an older sequence is a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Accepted>,
    /// When the channel was last checked (ms since the epoch).
    #[serde(default)]
    pub last_check_ms: i64,
    /// Why the last check failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The version staged and smoke-tested, waiting to be switched to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
    /// The switch waiting for the new binary's first acknowledged send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<switch::Pending>,
    /// Versions rolled back: never taken again (oldest first, at most 32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolled_back: Vec<String>,
    /// How the last switch ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<switch::Outcome>,
}

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The channel has nothing published.
    NothingPublished,
    /// The collector paused the rollout for this agent's cohort.
    Paused {
        /// Why, as the collector says.
        reason: String,
    },
    /// Nothing to take now (up to date, or not this agent's turn).
    Stay {
        /// The metadata's sequence.
        sequence: u64,
    },
    /// A release was downloaded, verified, extracted and smoke-tested.
    Staged {
        /// Its version.
        version: String,
        /// The binary.
        binary: PathBuf,
    },
}

/// Why a check failed. The running agent is never touched.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// `update.public_keys` holds no usable key.
    #[error("update.public_keys: no valid release key")]
    NoKeys,
    /// No channel to the collector.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The collector refused or failed a call.
    #[error("release channel: {0}")]
    Call(String),
    /// The metadata was refused.
    #[error(transparent)]
    Refused(#[from] release::ReleaseError),
    /// The archive is not what the signed metadata says.
    #[error("release {version}: {reason}")]
    Archive {
        /// The release.
        version: String,
        /// What is wrong.
        reason: String,
    },
    /// The staged binary failed its smoke test.
    #[error("release {version}: smoke test failed: {reason}")]
    Smoke {
        /// The release.
        version: String,
        /// What failed.
        reason: String,
    },
    /// A file of the state directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError + '_ {
    move |source| UpdateError::Io { path: path.display().to_string(), source }
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl UpdateState {
    fn path(state: &StateDir) -> PathBuf {
        state.update().join("state.json")
    }

    /// The state kept in `state` (default when there is none or it cannot be read).
    pub fn load(state: &StateDir) -> Self {
        let path = Self::path(state);
        match crate::fileio::read_bounded_if_present(&path, MAX_STATE_BYTES, crate::fileio::Oversize::Refuse) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "update state unreadable; starting afresh");
                Self::default()
            }),
            Ok(None) => Self::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "update state unreadable; starting afresh");
                Self::default()
            }
        }
    }

    /// Where this agent stands, as the collector is told with every check: `switching`,
    /// `rolled_back` or `updated` (the last switch and its version), `staged`, `error` (the
    /// last check failed), else `current`.
    pub fn report(&self, running: &str) -> v1::UpdateReport {
        let (state, version, detail, at_ms) = if let Some(p) = &self.pending {
            ("switching", p.version.as_str(), String::new(), p.switched_at_ms)
        } else if let Some(o) = self.last_outcome.as_ref().filter(|o| o.kind == "rolled_back" || o.version == running) {
            (o.kind.as_str(), o.version.as_str(), o.detail.clone(), o.at_ms)
        } else if let Some(v) = &self.staged {
            ("staged", v.as_str(), String::new(), self.last_check_ms)
        } else if let Some(e) = &self.last_error {
            ("error", "", e.clone(), self.last_check_ms)
        } else {
            ("current", running, String::new(), self.last_check_ms)
        };
        v1::UpdateReport { state: state.into(), version: version.into(), detail, at_ms }
    }

    /// Writes it to `state`, replacing the file whole.
    pub fn save(&self, state: &StateDir) -> Result<(), UpdateError> {
        let dir = state.update();
        state_dir::create_private_dir(&dir).map_err(io(&dir))?;
        let path = Self::path(state);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| UpdateError::Io { path: path.display().to_string(), source: std::io::Error::other(e) })?;
        let temp = state_dir::temp_path(&path).map_err(io(&path))?;
        state_dir::write_new_private(&temp, &json).map_err(io(&temp))?;
        std::fs::rename(&temp, &path).map_err(io(&path))
    }
}

/// Checks the channel and stages the release this agent should take (module docs).
/// `config_path` is the running configuration, which the new binary must accept.
pub async fn check_and_stage(
    config: &Config,
    config_path: &Path,
    state: &StateDir,
    enrolled: &Enrolled,
) -> Result<CheckOutcome, UpdateError> {
    let mut kept = UpdateState::load(state);
    kept.last_check_ms = crate::now_ms();
    let result = check(config, config_path, state, enrolled, &mut kept).await;
    kept.last_error = result.as_ref().err().map(|e| e.to_string());
    if let Ok(CheckOutcome::Staged { version, .. }) = &result {
        kept.staged = Some(version.clone());
    }
    kept.save(state)?;
    result
}

async fn check(
    config: &Config,
    config_path: &Path,
    state: &StateDir,
    enrolled: &Enrolled,
    kept: &mut UpdateState,
) -> Result<CheckOutcome, UpdateError> {
    let keys: Vec<PublicKey> = config.update.public_keys.iter().filter_map(|k| PublicKey::from_hex(k).ok()).collect();
    if keys.is_empty() {
        return Err(UpdateError::NoKeys);
    }
    let tls = channel::with_client_certificate(config, enrolled);
    let mut client = transport::client(channel::connect(config, tls).await?);
    let request = v1::ReleaseMetadataRequest {
        channel: config.update.channel.clone(),
        cohort: config.update.cohort.clone(),
        agent_version: crate::version().to_string(),
        report: Some(kept.report(crate::version())),
    };
    let response = client
        .get_release_metadata(request)
        .await
        .map_err(|s| UpdateError::Call(s.message().to_string()))?
        .into_inner();
    if !response.paused.is_empty() {
        tracing::info!(cohort = %config.update.cohort, reason = ?response.paused, "rollout paused for this cohort");
        return Ok(CheckOutcome::Paused { reason: response.paused });
    }
    if response.envelope.is_empty() {
        return Ok(CheckOutcome::NothingPublished);
    }
    let verified =
        release::verify(&response.envelope, &keys, &config.update.channel, kept.accepted.as_ref(), now_secs())?;
    kept.accepted = Some(verified.accepted.clone());
    // A release rolled back on this host is never taken again.
    let mut offered = verified.metadata.clone();
    offered.releases.retain(|r| !kept.rolled_back.contains(&r.version));
    let decision = release::decide(&offered, crate::version(), TARGET, &config.update.cohort, &enrolled.agent_id);
    let Decision::Update(chosen) = decision else {
        return Ok(CheckOutcome::Stay { sequence: verified.metadata.sequence });
    };
    let dir = version_dir(state, &chosen)?;
    let (runtime, release, into) = (tokio::runtime::Handle::current(), chosen.clone(), dir.clone());
    let binary = tokio::task::spawn_blocking(move || install::install(runtime, client, &release, &into, &keys))
        .await
        .map_err(|e| UpdateError::Call(e.to_string()))??;
    let (bin, cfg, version) = (binary.clone(), config_path.to_path_buf(), chosen.version.clone());
    tokio::task::spawn_blocking(move || smoke_test(&bin, &cfg, &version))
        .await
        .map_err(|e| UpdateError::Call(e.to_string()))??;
    tracing::info!(version = %chosen.version, sequence = verified.metadata.sequence, "release staged");
    Ok(CheckOutcome::Staged { version: chosen.version, binary })
}

/// `state_dir/update/versions/<version>/`, created private and emptied.
fn version_dir(state: &StateDir, r: &Release) -> Result<PathBuf, UpdateError> {
    // The version is semver (checked with the signature), so it is one plain path component.
    let version = semver::Version::parse(&r.version)
        .map_err(|e| UpdateError::Archive { version: r.version.clone(), reason: e.to_string() })?;
    let versions = state.update().join("versions");
    state_dir::create_private_dir(&versions).map_err(io(&versions))?;
    let dir = versions.join(version.to_string());
    if std::fs::symlink_metadata(&dir).is_ok() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    state_dir::create_private_dir(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Downloads `r`'s archive to `to`, checking size and digest as the signed metadata gives them.
pub(super) async fn download(
    client: &mut v1::inventory_client::InventoryClient<tonic::transport::Channel>,
    r: &Release,
    to: &Path,
) -> Result<(), UpdateError> {
    let bad = |reason: String| UpdateError::Archive { version: r.version.clone(), reason };
    if r.size > MAX_ARCHIVE_BYTES {
        return Err(bad(format!("{} bytes, more than {MAX_ARCHIVE_BYTES}", r.size)));
    }
    let mut stream = client
        .download_release(v1::DownloadReleaseRequest { sha256: r.sha256.clone() })
        .await
        .map_err(|s| UpdateError::Call(s.message().to_string()))?
        .into_inner();
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(to).map_err(io(to))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.message().await.map_err(|s| UpdateError::Call(s.message().to_string()))? {
        size = size.saturating_add(chunk.data.len() as u64);
        if size > r.size {
            return Err(bad(format!("more than the {} bytes the signed metadata gives", r.size)));
        }
        hasher.update(&chunk.data);
        file.write_all(&chunk.data).map_err(io(to))?;
    }
    file.sync_all().map_err(io(to))?;
    if size != r.size {
        return Err(bad(format!("{size} bytes, the signed metadata gives {}", r.size)));
    }
    let digest = hex::encode(hasher.finalize());
    if !digest.eq_ignore_ascii_case(&r.sha256) {
        return Err(bad(format!("digest {digest} is not the signed {}", r.sha256)));
    }
    Ok(())
}

/// Runs `binary args…`, killed after [`SMOKE_TIMEOUT`]; its exit success and stdout.
fn run_bounded(binary: &Path, args: &[&std::ffi::OsStr]) -> Result<(bool, String), String> {
    let mut child = std::process::Command::new(binary)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(stdout) = child.stdout.as_mut() {
                    let _ = stdout.take(64 * 1024).read_to_string(&mut out);
                }
                return Ok((status.success(), out));
            }
            Ok(None) if started.elapsed() > SMOKE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {SMOKE_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Step 6: `--version` names `version`, and `validate --config config` accepts the running
/// configuration.
fn smoke_test(binary: &Path, config: &Path, version: &str) -> Result<(), UpdateError> {
    let fail = |reason: String| UpdateError::Smoke { version: version.to_string(), reason };
    let (ok, out) = run_bounded(binary, &["--version".as_ref()]).map_err(|e| fail(format!("--version: {e}")))?;
    let want = format!("aiscout-agent {version}");
    if !ok || out.trim() != want {
        return Err(fail(format!("--version printed {:?}, not {want:?}", out.trim())));
    }
    let (ok, _) = run_bounded(binary, &["validate".as_ref(), "--config".as_ref(), config.as_os_str()])
        .map_err(|e| fail(format!("validate: {e}")))?;
    if !ok {
        return Err(fail(format!("validate --config {} failed", config.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_test_wants_the_version_and_a_valid_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
            p
        };
        let config = dir.path().join("agent.toml");
        let good = script("good", "[ \"$1\" = --version ] && echo 'aiscout-agent 2.0.0'; exit 0");
        smoke_test(&good, &config, "2.0.0").unwrap();
        let e = smoke_test(&good, &config, "3.0.0").unwrap_err().to_string();
        assert!(e.contains("not \"aiscout-agent 3.0.0\""), "{e}");
        let refuses = script("refuses", "[ \"$1\" = --version ] && { echo 'aiscout-agent 2.0.0'; exit 0; }; exit 64");
        assert!(smoke_test(&refuses, &config, "2.0.0").unwrap_err().to_string().contains("validate"));
        let hangs = script("hangs", "sleep 60");
        let started = std::time::Instant::now();
        assert!(smoke_test(&hangs, &config, "2.0.0").unwrap_err().to_string().contains("did not finish"));
        assert!(started.elapsed() < SMOKE_TIMEOUT + Duration::from_secs(5));
    }
}

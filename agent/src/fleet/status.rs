//! The daemon's health, for `aiscout-agent status` and for whoever rolls the agent out.
//!
//! The daemon writes `state_dir/status.json` ([`crate::state_dir::StateDir::status`]) when it
//! starts, after every collection, every send and every configuration reload, and when it
//! stops: the facts only (when, how many, the last error), never a path, a model or a secret.
//! The file is replaced whole (temporary name, then rename), so a reader never sees half of it.
//!
//! `aiscout-agent status` reads it back and judges it ([`AgentStatus::problems`]); the
//! verdict is the exit status (0 healthy, 1 a problem, 2 no status to read). A problem is:
//! 1. the daemon is not running: the process that wrote the file is gone, or its pid now
//!    belongs to another process (its start time in `/proc/<pid>/stat` differs);
//! 2. the agent is not enrolled;
//! 3. the last send failed (the spool keeps what was not acknowledged);
//! 4. the spool is more than [`SPOOL_FULL_WARNING`] percent full (it drops the oldest
//!    batches when full);
//! 5. the last configuration reload was refused (the daemon runs on the previous one);
//! 6. the last release channel check failed or its metadata or archive was refused (the
//!    agent runs on unchanged; a refusal may mean a tampered channel).

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fileio::{self, Oversize};
use crate::state_dir;

/// Largest status file read back.
const MAX_STATUS_BYTES: u64 = 64 * 1024;
/// Longest error message kept (the cause of a failed send or reload).
const MAX_ERROR_CHARS: usize = 512;
/// Spool fill level, in percent of `spool.max_bytes`, from which the spool is a problem.
pub const SPOOL_FULL_WARNING: u64 = 80;

/// What the daemon says of itself (module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's start time in clock ticks since boot (`/proc/<pid>/stat` field 22), to
    /// tell a pid reused by another process.
    pub pid_start_ticks: u64,
    /// When the daemon started (ms since the epoch).
    pub started_at_ms: i64,
    /// When this file was written (ms since the epoch).
    pub updated_at_ms: i64,
    /// `running`, or `stopped` once the daemon has ended cleanly.
    pub state: String,
    /// The configuration file.
    pub config_path: String,
    /// The agent id given by the collector, once enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Why the last enrollment failed, while not enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_error: Option<String>,
    /// The last full inventory, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inventory: Option<InventoryStatus>,
    /// When the last collection of any kind ended (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_collection_at_ms: Option<i64>,
    /// Batches in the spool, not yet acknowledged.
    pub spool_records: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// The spool's cap (`spool.max_bytes`).
    pub spool_max_bytes: u64,
    /// When a send last ended with everything acknowledged (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_send_ok_at_ms: Option<i64>,
    /// Failed sends in a row.
    pub failed_sends: u32,
    /// Why the last send failed, while sends fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_send_error: Option<String>,
    /// Configuration reloads applied since start (SIGHUP).
    pub reloads: u32,
    /// Why the last reload was refused, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
    /// Keys changed by a reload that take effect only at the next start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_pending: Vec<String>,
    /// When the release channel was last checked (ms since the epoch), when updates are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_checked_at_ms: Option<i64>,
    /// The release staged and smoke-tested, waiting to be switched to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_staged: Option<String>,
    /// Why the last check failed or was refused (the running agent is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_error: Option<String>,
    /// Where updating stands, as the collector is told: current, staged, switching, updated,
    /// rolled_back or error (`crate::update::UpdateState::report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_state: Option<String>,
    /// The release that state concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_version: Option<String>,
    /// Why, for rolled_back and error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_detail: Option<String>,
    /// Set when the collector paused the rollout for this agent's cohort: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_paused: Option<String>,
}

/// The last full inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryStatus {
    /// When it ended (ms since the epoch).
    pub finished_at_ms: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// Models found.
    pub models: u64,
    /// Entries that could not be read.
    pub errors: u64,
}

/// Errors reading the status file.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// There is no status file: the daemon never ran with this state directory.
    #[error("no status at {path}: the agent has not run with this state directory")]
    Missing {
        /// The file.
        path: String,
    },
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a status document.
    #[error("{path} is not a status document: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Cuts an error message to [`MAX_ERROR_CHARS`] characters.
pub fn error_text(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text,
    }
}

/// The start time (clock ticks since boot) of process `pid`, from `/proc/<pid>/stat`.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = fileio::read_bounded(Path::new(&format!("/proc/{pid}/stat")), 4096, Oversize::Prefix).ok()?;
    let text = String::from_utf8_lossy(&stat);
    // The command name (field 2) is in parentheses and may hold spaces or parentheses: the
    // fields after it start after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    // Field 22 overall is the 20th after the name (fields 3.. are rest's 1..).
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl AgentStatus {
    /// Writes the status to `path`, replacing the file whole.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let temp = state_dir::temp_path(path)?;
        state_dir::write_new_private(&temp, &json)?;
        if let Err(e) = std::fs::rename(&temp, path) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        Ok(())
    }

    /// Reads the status at `path` (bounded, never through a link).
    pub fn read(path: &Path) -> Result<Self, StatusError> {
        let shown = || path.display().to_string();
        let bytes = match fileio::read_bounded_if_present(path, MAX_STATUS_BYTES, Oversize::Refuse) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(StatusError::Missing { path: shown() }),
            Err(source) => return Err(StatusError::Read { path: shown(), source }),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| StatusError::Parse { path: shown(), message: e.to_string().to_lowercase() })
    }

    /// Whether the process that wrote this status still runs (same pid, same start time).
    pub fn daemon_alive(&self) -> bool {
        self.state == "running" && process_start_ticks(self.pid).is_some_and(|t| t == self.pid_start_ticks)
    }

    /// The problems of this status, given whether the daemon is alive (module docs); empty when
    /// healthy.
    pub fn problems(&self, alive: bool) -> Vec<String> {
        let mut out = Vec::new();
        if !alive {
            out.push(if self.state == "stopped" {
                "the daemon is stopped".to_string()
            } else {
                format!("the daemon (pid {}) is not running", self.pid)
            });
        }
        if self.agent_id.is_none() {
            let why = self.enrollment_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            out.push(format!("not enrolled{why}"));
        }
        if self.failed_sends > 0 {
            let why = self.last_send_error.as_deref().unwrap_or("unknown error");
            out.push(format!("the last {} send(s) failed: {why}", self.failed_sends));
        }
        if self.spool_max_bytes > 0 && self.spool_bytes.saturating_mul(100) / self.spool_max_bytes >= SPOOL_FULL_WARNING
        {
            out.push(format!("the spool is {} of {} bytes full", self.spool_bytes, self.spool_max_bytes));
        }
        if let Some(e) = &self.reload_error {
            out.push(format!("the last configuration reload was refused: {e}"));
        }
        if let Some(e) = &self.update_error {
            out.push(format!("the last release channel check failed: {e}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> AgentStatus {
        AgentStatus {
            state: "running".into(),
            agent_id: Some("a-1".into()),
            spool_max_bytes: 100,
            ..AgentStatus::default()
        }
    }

    #[test]
    fn each_problem_of_the_module_doc_is_named() {
        assert!(healthy().problems(true).is_empty());
        assert_eq!(healthy().problems(false), ["the daemon (pid 0) is not running"]);
        let s = AgentStatus { agent_id: None, enrollment_error: Some("token expired".into()), ..healthy() };
        assert_eq!(s.problems(true), ["not enrolled: token expired"]);
        let s = AgentStatus { failed_sends: 3, last_send_error: Some("connection refused".into()), ..healthy() };
        assert_eq!(s.problems(true), ["the last 3 send(s) failed: connection refused"]);
        let s = AgentStatus { spool_bytes: 80, ..healthy() };
        assert_eq!(s.problems(true), ["the spool is 80 of 100 bytes full"]);
        let s = AgentStatus { spool_bytes: 79, ..healthy() };
        assert!(s.problems(true).is_empty());
        let s = AgentStatus { reload_error: Some("scan.roots: must be absolute".into()), ..healthy() };
        assert_eq!(s.problems(true), ["the last configuration reload was refused: scan.roots: must be absolute"]);
        let s =
            AgentStatus { update_error: Some("release metadata is not signed by a trusted key".into()), ..healthy() };
        assert_eq!(
            s.problems(true),
            ["the last release channel check failed: release metadata is not signed by a trusted key"]
        );
    }

    #[test]
    fn the_status_round_trips_privately_and_a_bad_file_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        assert!(matches!(AgentStatus::read(&path), Err(StatusError::Missing { .. })));
        let s = AgentStatus { version: "1.2.3".into(), reloads: 2, ..healthy() };
        s.write(&path).unwrap();
        s.write(&path).unwrap();
        assert_eq!(AgentStatus::read(&path).unwrap(), s);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        std::fs::write(&path, "{not json").unwrap();
        let e = AgentStatus::read(&path).unwrap_err().to_string();
        assert!(e.contains("status.json") && e.contains("not a status document"), "{e}");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(AgentStatus::read(&link), Err(StatusError::Read { .. })));
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let pid = std::process::id();
        let ticks = process_start_ticks(pid).unwrap();
        let s = AgentStatus { pid, pid_start_ticks: ticks, ..healthy() };
        assert!(s.daemon_alive());
        assert!(!AgentStatus { pid_start_ticks: ticks + 1, ..s.clone() }.daemon_alive());
        assert!(!AgentStatus { state: "stopped".into(), ..s }.daemon_alive());
    }

    #[test]
    fn long_errors_are_cut() {
        let long = "x".repeat(2000);
        let cut = error_text(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 1);
        assert_eq!(error_text(&"short"), "short");
    }
}

//! Facts about the host the scan ran on.

use serde::{Deserialize, Serialize};

/// The `host` object of the scan document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name (`uname -n`).
    pub hostname: String,
    /// Operating system (`PRETTY_NAME` of `/etc/os-release`).
    pub os: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU architecture.
    pub arch: String,
    /// Version of the agent that scanned.
    pub agent_version: String,
    /// When the scan started (RFC 3339, UTC).
    pub scanned_at: String,
}

impl HostInfo {
    /// Reads the facts of this host.
    pub fn collect() -> Self {
        let uname = rustix::system::uname();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        Self {
            hostname: uname.nodename().to_string_lossy().into_owned(),
            os,
            kernel: uname.release().to_string_lossy().into_owned(),
            arch: std::env::consts::ARCH.to_string(),
            agent_version: crate::version().to_string(),
            scanned_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

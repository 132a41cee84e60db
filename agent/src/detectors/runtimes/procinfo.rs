//! What `/proc/<pid>` says of one process: mapped files, open files and sockets, cgroup,
//! network namespace, environment. Each read may be refused (another user's process without
//! `CAP_SYS_PTRACE`): the refusal is recorded by name, never an error of the scan.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use procfs::process::{FDTarget, MMapPath, Process};
use procfs::ProcError;

use crate::fileio::Oversize;
use crate::report::inventory::ContainerRef;

/// Largest `/proc/<pid>/cgroup` read.
const MAX_CGROUP_BYTES: u64 = 64 * 1024;

/// The parts of `/proc/<pid>` read for a process.
#[derive(Debug, Default)]
pub struct ProcessFiles {
    /// Distinct file-backed mappings (paths as the process sees them).
    pub mapped: Vec<String>,
    /// Distinct regular paths of open descriptors.
    pub open: Vec<String>,
    /// Inodes of open sockets.
    pub sockets: Vec<u64>,
    /// Parts that could not be read for lack of permission (`maps`, `fd`).
    pub unreadable: Vec<&'static str>,
    /// Whether the process vanished while being read.
    pub gone: bool,
}

/// Strips the ` (deleted)` the kernel appends to unlinked files; `None` for those.
fn live_path(p: &std::path::Path) -> Option<String> {
    let s = p.to_string_lossy();
    if s.ends_with(" (deleted)") || !s.starts_with('/') {
        return None;
    }
    Some(s.into_owned())
}

fn refused(e: &ProcError) -> bool {
    matches!(e, ProcError::PermissionDenied(_))
        || matches!(e, ProcError::Io(io, _) if io.kind() == std::io::ErrorKind::PermissionDenied)
}

fn gone(e: &ProcError) -> bool {
    matches!(e, ProcError::NotFound(_))
}

/// Reads the mappings and descriptors of `process`.
pub fn files(process: &Process) -> ProcessFiles {
    let mut out = ProcessFiles::default();
    match process.maps() {
        Ok(maps) => {
            for m in maps.iter() {
                if let MMapPath::Path(p) = &m.pathname {
                    if let Some(p) = live_path(p) {
                        out.mapped.push(p);
                    }
                }
            }
            out.mapped.sort();
            out.mapped.dedup();
        }
        Err(e) if refused(&e) => out.unreadable.push("maps"),
        Err(e) if gone(&e) => out.gone = true,
        Err(e) => tracing::debug!(pid = process.pid, error = %e, "cannot read maps"),
    }
    match process.fd() {
        Ok(fds) => {
            let mut resolved = 0usize;
            for fd in fds.flatten() {
                resolved += 1;
                match fd.target {
                    FDTarget::Path(p) => {
                        if let Some(p) = live_path(&p) {
                            out.open.push(p);
                        }
                    }
                    FDTarget::Socket(inode) => out.sockets.push(inode),
                    _ => {}
                }
            }
            out.open.sort();
            out.open.dedup();
            out.sockets.sort_unstable();
            out.sockets.dedup();
            // The list can be readable while its links are not (CAP_DAC_READ_SEARCH without
            // CAP_SYS_PTRACE), and procfs skips the links it cannot resolve: descriptors listed
            // with none resolved mean `fd` is unreadable, not empty.
            if resolved == 0 && process.fd_count().is_ok_and(|n| n > 0) {
                out.unreadable.push("fd");
            }
        }
        Err(e) if refused(&e) => out.unreadable.push("fd"),
        Err(e) if gone(&e) => out.gone = true,
        Err(e) => tracing::debug!(pid = process.pid, error = %e, "cannot read fds"),
    }
    out
}

/// The process's environment, or the reason it could not be read (`environ`).
pub fn environ(process: &Process) -> Result<BTreeMap<String, OsString>, &'static str> {
    match process.environ() {
        Ok(env) => Ok(env.into_iter().map(|(k, v)| (k.to_string_lossy().into_owned(), v)).collect()),
        Err(e) if refused(&e) => Err("environ"),
        Err(_) => Ok(BTreeMap::new()),
    }
}

/// The network namespace of `pid` (`net:[4026531840]`), when readable.
pub fn netns(pid: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let text = link.as_os_str().as_bytes();
    let digits: Vec<u8> = text.iter().copied().filter(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// The container `pid` runs in, from its cgroup path.
pub fn container(pid: i32) -> Option<ContainerRef> {
    let path = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = crate::fileio::read_bounded(&path, MAX_CGROUP_BYTES, Oversize::Prefix).ok()?;
    container_from_cgroup(&String::from_utf8_lossy(&text))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses `/proc/<pid>/cgroup` text (v1 or v2) for a container id. Rules, first match wins:
/// 1. a path component `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
///    `libpod-<id>.scope` names its runtime;
/// 2. a 64-hex component after `/docker/`, `/kubepods…/`, `/libpod_parent/` or `/lxc.payload`;
/// 3. `/lxc/<name>` or `lxc.payload.<name>` is an LXC container by name.
pub fn container_from_cgroup(text: &str) -> Option<ContainerRef> {
    const SCOPES: &[(&str, &str)] =
        &[("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman")];
    for line in text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            let stem = part.strip_suffix(".scope").unwrap_or(part);
            for (prefix, runtime) in SCOPES {
                if let Some(id) = stem.strip_prefix(prefix).filter(|id| is_container_id(id)) {
                    return Some(ContainerRef { runtime: (*runtime).to_string(), id: id.to_string() });
                }
            }
            if is_container_id(part) {
                let parent = i.checked_sub(1).and_then(|j| parts.get(j)).copied().unwrap_or_default();
                let runtime = if parts.iter().any(|p| p.starts_with("kubepods")) {
                    "kubepods"
                } else if parent == "docker" {
                    "docker"
                } else if parent.starts_with("libpod") {
                    "podman"
                } else {
                    "unknown"
                };
                return Some(ContainerRef { runtime: runtime.to_string(), id: (*part).to_string() });
            }
            if *part == "lxc" || part.starts_with("lxc.payload") {
                let name = part.strip_prefix("lxc.payload.").or_else(|| parts.get(i + 1).copied());
                if let Some(name) = name.filter(|n| !n.is_empty()) {
                    return Some(ContainerRef { runtime: "lxc".to_string(), id: name.to_string() });
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b";

    #[test]
    fn container_ids_from_cgroup_paths() {
        let docker = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_from_cgroup(&docker), Some(ContainerRef { runtime: "docker".into(), id: ID.into() }));
        let v1 = format!("12:memory:/docker/{ID}\n");
        assert_eq!(container_from_cgroup(&v1).map(|c| c.runtime), Some("docker".into()));
        let k8s = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(container_from_cgroup(&k8s).map(|c| c.runtime), Some("containerd".into()));
        let k8s_v1 = format!("4:cpu:/kubepods/burstable/pod7/{ID}\n");
        assert_eq!(container_from_cgroup(&k8s_v1).map(|c| c.runtime), Some("kubepods".into()));
        assert_eq!(container_from_cgroup("0::/lxc.payload.web1/init.scope\n").map(|c| c.id), Some("web1".into()));
        assert_eq!(container_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n"), None);
        assert_eq!(container_from_cgroup("garbage"), None);
    }

    #[test]
    fn own_process_files_are_readable() {
        let me = Process::myself().unwrap();
        let f = files(&me);
        assert!(f.unreadable.is_empty());
        assert!(!f.mapped.is_empty(), "the test binary maps at least itself");
        assert!(netns(me.pid).is_some());
    }
}

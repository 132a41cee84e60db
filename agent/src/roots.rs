//! Where to look: default roots, model cache locations, mounts and excludes.
//!
//! Default roots, in order (only those that exist are walked):
//! 1. every user's home directory (from `/etc/passwd`, uid 0 and uid ≥ 1000, plus `$HOME`);
//! 2. `/opt`, `/srv`, `/data`, `/models`, `/mnt`, `/var/lib` (Ollama's service store is
//!    `/usr/share/ollama/.ollama/models` and some packages use `/var/lib/ollama`);
//! 3. cache locations named by the environment (`HF_HOME`, `HF_HUB_CACHE`, `OLLAMA_MODELS`,
//!    `TORCH_HOME`, `KERAS_HOME`, `LLAMA_CACHE`, `SENTENCE_TRANSFORMERS_HOME`, `TFHUB_CACHE_DIR`,
//!    `VLLM_CACHE_ROOT`) and fixed system stores (`/usr/share/ollama/.ollama/models`,
//!    `/tmp/.keras`, `/tmp/tfhub_modules`);
//! 4. local file systems mounted below any root (the walk itself never crosses a mount point,
//!    so each mount is its own root); pseudo and network file systems are not walked.
//!
//! A root inside another root on the same device is dropped, so nothing is walked twice.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Directory names never descended into.
pub const DEFAULT_EXCLUDED_DIRS: &[&str] = &[
    "node_modules",
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradle",
];

/// Directory names that are build output when they hold a `CACHEDIR.TAG` (Rust's `target/`, …).
pub const BUILD_OUTPUT_DIRS: &[&str] = &["target", "build", "dist", "out", "_build"];

/// Absolute paths never walked by default.
pub const DEFAULT_EXCLUDED_PATHS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/lib/docker/overlay2",
    "/var/lib/containers/storage/overlay",
    "/var/lib/aiscout",
    "/var/cache/aiscout",
];

/// File system types that hold no files worth scanning.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "efivarfs",
    "nsfs",
    "ramfs",
    "rpc_pipefs",
    "overlay",
    "squashfs",
    "fuse.lxcfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
];

/// Network file systems: walked only when asked, scanning a shared volume from every host is costly.
const NETWORK_FS: &[&str] =
    &["nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "ceph", "glusterfs", "fuse.s3fs", "afs"];

/// Environment variables that name model caches.
pub const CACHE_ENV: &[&str] = &[
    "HF_HOME",
    "HF_HUB_CACHE",
    "OLLAMA_MODELS",
    "TORCH_HOME",
    "KERAS_HOME",
    "LLAMA_CACHE",
    "SENTENCE_TRANSFORMERS_HOME",
    "TFHUB_CACHE_DIR",
    "VLLM_CACHE_ROOT",
];

/// Fixed system stores outside the default roots.
const SYSTEM_STORES: &[&str] = &["/usr/share/ollama/.ollama/models", "/tmp/.keras", "/tmp/tfhub_modules"];

/// Home directories of real users (root and uids 1000–65533 in `/etc/passwd`, and `$HOME`),
/// existing, distinct.
pub fn homes() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            let (Some(uid), Some(home)) = (f.get(2).and_then(|u| u.parse::<u32>().ok()), f.get(5)) else {
                continue;
            };
            if (uid == 0 || (1000..65534).contains(&uid)) && home.starts_with('/') && *home != "/" {
                out.push(PathBuf::from(home));
            }
        }
    }
    if let Some(h) = std::env::var_os("HOME") {
        out.push(PathBuf::from(h));
    }
    out.retain(|h| h.is_dir());
    out.sort();
    out.dedup();
    out
}

/// A mount point from `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
struct Mount {
    path: PathBuf,
    fstype: String,
}

fn mounts() -> Vec<Mount> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let path = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            Some(Mount { path: PathBuf::from(unescape_mount(path)), fstype: fstype.to_string() })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// The default roots for this host (see the module doc).
pub fn default_roots(scan_network_fs: bool) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = homes();
    roots.extend(["/opt", "/srv", "/data", "/models", "/mnt", "/var/lib"].iter().map(PathBuf::from));
    for var in CACHE_ENV {
        if let Some(v) = std::env::var_os(var) {
            roots.push(PathBuf::from(v));
        }
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        roots.push(PathBuf::from(xdg));
    }
    roots.extend(SYSTEM_STORES.iter().map(PathBuf::from));
    with_mounts(roots, scan_network_fs)
}

/// `roots` normalised, plus the local file systems mounted below them (the walk never crosses
/// a mount point by itself). Applies to explicit roots as well as to the defaults.
pub fn with_mounts(roots: Vec<PathBuf>, scan_network_fs: bool) -> Vec<PathBuf> {
    let mut roots = normalize(roots);
    roots.extend(mounts_below(&roots, &mounts(), scan_network_fs));
    normalize(roots)
}

/// The mounts from `mounts` strictly below one of `roots` that are worth walking.
fn mounts_below(roots: &[PathBuf], mounts: &[Mount], scan_network_fs: bool) -> Vec<PathBuf> {
    mounts
        .iter()
        .filter(|m| {
            let fstype = m.fstype.as_str();
            !PSEUDO_FS.contains(&fstype) && (scan_network_fs || !NETWORK_FS.contains(&fstype))
        })
        .filter(|m| roots.iter().any(|r| m.path.starts_with(r) && m.path != *r) && !is_excluded_path(&m.path))
        .map(|m| m.path.clone())
        .collect()
}

/// Whether `path` is under one of the default excluded paths.
pub fn is_excluded_path(path: &Path) -> bool {
    DEFAULT_EXCLUDED_PATHS.iter().any(|p| path.starts_with(p))
}

/// Canonicalises, keeps existing directories, and drops roots nested in another root on the
/// same device. Order is stable (sorted).
pub fn normalize(roots: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut canon: BTreeSet<(PathBuf, u64)> = BTreeSet::new();
    for r in roots {
        let Ok(c) = std::fs::canonicalize(&r) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&c) else {
            continue;
        };
        if meta.is_dir() || meta.is_file() {
            canon.insert((c, meta.dev()));
        }
    }
    let all: Vec<(PathBuf, u64)> = canon.into_iter().collect();
    all.iter()
        .filter(|(p, dev)| !all.iter().any(|(q, qdev)| q != p && p.starts_with(q) && qdev == dev))
        .map(|(p, _)| p.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mounts_below_roots_become_roots() {
        let mount = |p: &str, t: &str| Mount { path: PathBuf::from(p), fstype: t.into() };
        let mounts = [
            mount("/data/disk", "ext4"),
            mount("/data/proc", "proc"),
            mount("/data/nfs", "nfs4"),
            mount("/other", "xfs"),
            mount("/data", "ext4"),
        ];
        let roots = [PathBuf::from("/data")];
        assert_eq!(mounts_below(&roots, &mounts, false), vec![PathBuf::from("/data/disk")]);
        assert_eq!(mounts_below(&roots, &mounts, true), vec![PathBuf::from("/data/disk"), PathBuf::from("/data/nfs")]);
    }

    #[test]
    fn nested_roots_on_one_device_collapse() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        assert_eq!(normalize(vec![root.join("a/b"), root.join("a")]), vec![root.join("a")]);
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount("/mnt/my\\040disk"), "/mnt/my disk");
    }
}

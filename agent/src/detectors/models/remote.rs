//! Hugging Face remote code beside the models found ([`crate::safety::remote_code`]).
//!
//! After the walk, the directory each model logically sits in (the snapshot directory of a
//! Hugging Face blob, the file's own directory otherwise) is read once for the config files
//! whose `auto_map` names Python modules. Outside snapshots, only directories where the walk
//! met one of those config files (a marker, kept by the listing records) are opened: the others
//! have none, and looking would cost five failed lookups per directory on every scan. Inside a
//! snapshot the configs are links, which the walk does not hand over, so those are looked at. The findings join the safety report of every model in
//! that directory, so each shard of a sharded group carries them; directory models (SavedModel,
//! MLflow, …) are left alone.
//!
//! Reading, never following a symlink out of the directory or the cache:
//! 1. the directory is opened with no symlink at any component ([`open_no_links`]);
//! 2. a file in it is looked at with `lstat`: a regular file is opened beneath the directory
//!    ([`open_regular_in`]);
//! 3. in a Hugging Face snapshot (`<cache>/models--org--name/snapshots/<rev>/`), where every file
//!    is a symlink into `../../blobs/`, the link is read (never followed): its target must be
//!    `../../blobs/<name>` (one more `..` per subdirectory of the snapshot) with `<name>` a
//!    single plain component, and `blobs/<name>` is opened beneath the repository folder. Any
//!    other link, and every link outside a snapshot, is refused;
//! 4. reads are bounded by the caller's limit ([`crate::fileio::read_open`]).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, OFlags};

use super::Found;
use crate::fileio::{is_absent, open_beneath, open_no_links, open_regular_in, read_open, Oversize};
use crate::safety::remote_code::{self, ReadOutcome};
use crate::safety::SafetyReport;

/// Deepest subdirectory of a snapshot a model is looked for in.
const MAX_SNAPSHOT_DEPTH: usize = 8;

/// Adds the remote-code findings of each model's directory to its safety report. `configs`:
/// the directories known to hold a config file, when the walk noted them (else all are read).
pub fn attach(models: &mut [Found], configs: Option<&HashSet<PathBuf>>) {
    let mut by_dir: HashMap<PathBuf, Option<SafetyReport>> = HashMap::new();
    for m in models.iter_mut() {
        if m.entry.group.as_ref().is_some_and(|g| g.kind == "directory") {
            continue;
        }
        let Some(dir) = m.logical.dir.join(&m.logical.name).parent().map(Path::to_path_buf) else { continue };
        let found = by_dir.entry(dir).or_insert_with_key(|dir| {
            let worth = configs.is_none_or(|c| c.contains(dir)) || snapshot_of(dir).is_some();
            worth.then(|| assess(dir)).flatten()
        });
        let Some(found) = found else { continue };
        let mut safety = std::mem::take(&mut m.entry.safety);
        for f in &found.findings {
            safety.add(&f.kind, &f.subject, &f.detail, f.severity, f.location.as_deref());
        }
        m.entry.safety = safety.finish();
    }
}

/// The remote-code report of the directory at `dir`, `None` when it has no `auto_map`.
pub fn assess(dir: &Path) -> Option<SafetyReport> {
    let fd = match open_no_links(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!(path = %dir.display(), error = %e, "cannot open model directory for remote code");
            return None;
        }
    };
    let snapshot = snapshot_of(dir);
    let read = |rel: &str, limit: u64| {
        read_rel(fd.as_fd(), snapshot.as_ref(), rel, limit).map_err(|e| e.to_string().to_lowercase())
    };
    remote_code::assess_dir(&read)
}

/// A Hugging Face snapshot holding a directory: the repository folder and how deep below the
/// snapshot's root the directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    /// `<cache>/models--org--name`.
    repo: PathBuf,
    /// Subdirectories between the snapshot's root and the directory (0 at the root).
    depth: usize,
}

/// The snapshot `dir` is in, if it is in one.
fn snapshot_of(dir: &Path) -> Option<Snapshot> {
    for (depth, at) in dir.ancestors().enumerate().take(MAX_SNAPSHOT_DEPTH + 1) {
        let snapshots = at.parent()?;
        if snapshots.file_name().is_some_and(|n| n == "snapshots") {
            let repo = snapshots.parent()?;
            let name = repo.file_name()?.to_string_lossy();
            if ["models--", "datasets--", "spaces--"].iter().any(|p| name.starts_with(p)) {
                return Some(Snapshot { repo: repo.to_path_buf(), depth });
            }
        }
    }
    None
}

/// The blob name a snapshot link at `link_depth` directories below the snapshot's root points
/// to, when its target is exactly `../` × (`link_depth` + 2) `blobs/<name>`.
fn blob_of(target: &Path, link_depth: usize) -> Option<String> {
    let parts: Vec<Component<'_>> = target.components().collect();
    let ups = link_depth + 2;
    let (up, rest) = (parts.get(..ups)?, parts.get(ups..)?);
    if !up.iter().all(|c| *c == Component::ParentDir) {
        return None;
    }
    match rest {
        [Component::Normal(blobs), Component::Normal(name)] if *blobs == "blobs" => {
            Some(name.to_string_lossy().into_owned())
        }
        _ => None,
    }
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

/// Reads `rel` below the directory open as `dir`, at most `limit` bytes; `Ok(None)` when there
/// is nothing there. See the module doc for the rules.
fn read_rel(
    dir: BorrowedFd<'_>,
    snapshot: Option<&Snapshot>,
    rel: &str,
    limit: u64,
) -> io::Result<Option<ReadOutcome>> {
    let rel = Path::new(rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a plain relative path", rel.display()),
        ));
    }
    let name = rel.file_name().ok_or_else(not_found)?;
    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
    let parent_fd: Option<OwnedFd> = match parent {
        Some(p) => match open_beneath(dir, p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC) {
            Ok(fd) => Some(fd),
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        },
        None => None,
    };
    let at = parent_fd.as_ref().map_or(dir, |fd| fd.as_fd());
    let st = match rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(e) => {
            let e = io::Error::from(e);
            return if is_absent(&e) { Ok(None) } else { Err(e) };
        }
    };
    let (file, stamp) = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => open_regular_in(at, Path::new(name))?,
        FileType::Symlink => {
            let Some(snap) = snapshot else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "is a symlink (not followed)"));
            };
            let target = rustix::fs::readlinkat(at, name, Vec::new()).map_err(io::Error::from)?;
            let target = PathBuf::from(<OsString as std::os::unix::ffi::OsStringExt>::from_vec(target.into_bytes()));
            let link_depth = snap.depth + parent.map_or(0, |p| p.components().count());
            let Some(blob) = blob_of(&target, link_depth) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("is a symlink to {}, not to a blob of the cache (not followed)", target.display()),
                ));
            };
            let repo = open_no_links(&snap.repo, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)?;
            match open_regular_in(repo.as_fd(), &Path::new("blobs").join(&blob)) {
                Ok(opened) => opened,
                // A dangling link: the blob was never downloaded or was pruned.
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file")),
    };
    let size = stamp.size;
    let data = read_open(file, &stamp, limit, Oversize::Prefix)?;
    Ok(Some(ReadOutcome { data, size }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_links_must_point_into_blobs() {
        assert_eq!(blob_of(Path::new("../../blobs/abc"), 0).as_deref(), Some("abc"));
        assert_eq!(blob_of(Path::new("../../../blobs/abc"), 1).as_deref(), Some("abc"));
        assert_eq!(blob_of(Path::new("../../../blobs/abc"), 0), None);
        assert_eq!(blob_of(Path::new("../../blobs/../x"), 0), None);
        assert_eq!(blob_of(Path::new("/etc/passwd"), 0), None);
        assert_eq!(blob_of(Path::new("../../blobs/a/b"), 0), None);
        assert_eq!(blob_of(Path::new("../../other/abc"), 0), None);
    }

    #[test]
    fn snapshots_are_found_above_the_directory() {
        let s = snapshot_of(Path::new("/c/models--a--b/snapshots/rev/sub")).unwrap();
        assert_eq!((s.repo.as_path(), s.depth), (Path::new("/c/models--a--b"), 1));
        assert_eq!(snapshot_of(Path::new("/c/models--a--b/snapshots/rev")).map(|s| s.depth), Some(0));
        assert_eq!(snapshot_of(Path::new("/home/u/models/rev")), None);
        assert_eq!(snapshot_of(Path::new("/c/other/snapshots/rev")), None);
    }

    fn write(p: &Path, data: &[u8]) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn a_snapshot_is_read_through_its_blob_links_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let repo = root.join("models--acme--tiny");
        let snap = repo.join("snapshots/0123");
        std::fs::create_dir_all(&snap).unwrap();
        write(&repo.join("blobs/c1"), br#"{"auto_map": {"AutoModel": "modeling_tiny.Tiny"}}"#);
        write(&repo.join("blobs/p1"), b"import os\nos.system('id')\n");
        std::os::unix::fs::symlink("../../blobs/c1", snap.join("config.json")).unwrap();
        std::os::unix::fs::symlink("../../blobs/p1", snap.join("modeling_tiny.py")).unwrap();
        let r = assess(&snap).unwrap();
        assert_eq!(r.verdict, crate::safety::Verdict::Dangerous, "{r:?}");
        assert!(r.findings.iter().any(|f| f.subject == "modeling_tiny.py" && f.detail.contains("os.system")));

        // A link out of the cache is not followed: the module reads as unreadable, not dangerous.
        write(&root.join("outside.py"), b"os.system('id')\n");
        std::fs::remove_file(snap.join("modeling_tiny.py")).unwrap();
        std::os::unix::fs::symlink(root.join("outside.py"), snap.join("modeling_tiny.py")).unwrap();
        let r = assess(&snap).unwrap();
        assert_eq!(r.verdict, crate::safety::Verdict::Suspicious, "{r:?}");
        assert!(r.findings.iter().any(|f| f.detail.contains("not followed")), "{r:?}");

        // Outside a snapshot no link is followed at all.
        let plain = root.join("plain");
        write(&plain.join("modeling_tiny.py"), b"class Tiny:\n    pass\n");
        std::os::unix::fs::symlink(repo.join("blobs/c1"), plain.join("config.json")).unwrap();
        assert!(assess(&plain).is_none());
        std::fs::remove_file(plain.join("config.json")).unwrap();
        write(&plain.join("config.json"), br#"{"auto_map": {"AutoModel": "modeling_tiny.Tiny"}}"#);
        let r = assess(&plain).unwrap();
        assert_eq!(r.verdict, crate::safety::Verdict::Suspicious, "{r:?}");
    }
}

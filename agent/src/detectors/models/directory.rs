//! Models that are directories: TensorFlow SavedModel (`saved_model.pb` + `variables/`),
//! MLflow (`MLmodel` + artifacts), OpenVINO IR (`<stem>.xml` + `<stem>.bin`) and Core ML
//! packages (`<name>.mlpackage/` holding `Manifest.json` and
//! `Data/com.apple.CoreML/model.mlmodel`).
//!
//! The defining file is identified by content; the model is then the set of its files. Its
//! `sha256` is the tree digest of those files ([`crate::hash::tree_digest`], reproducible with
//! `sha256sum`), its size their sum, and its `group` lists them. Member files are hashed through
//! the cache like any other file, so an unchanged directory costs only `lstat`s on a rescan.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, OFlags, RawDir};

use crate::fileio::DirHandle;
use crate::formats::{Detection, ModelFormat};
use crate::report::ModelGroup;

/// Most files a directory model may hold before it is reported as an error.
pub const MAX_MEMBERS: usize = 10_000;
/// Deepest directory nesting followed inside a directory model.
const MAX_DEPTH: usize = 16;

/// Member files of a directory model: (path relative to the handle of its [`Layout`], path).
pub type Members = Vec<(String, PathBuf)>;

/// Regular files under the directory open as `root` (no symlink followed at any level: each
/// subdirectory is opened relative to its parent, [`crate::fileio::open_beneath`]), paths
/// relative to `root` sorted.
fn members(root: &DirHandle) -> Result<Members, String> {
    use std::os::unix::ffi::OsStrExt;
    let fail = |rel: &Path, e: std::io::Error| format!("cannot list {}: {e}", root.path().join(rel).display());
    let mut out = Vec::new();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 16 * 1024];
    // A descriptor of its own: the walker may be reading `root`'s.
    let first = root.open_dir(Path::new(".")).map_err(|e| fail(Path::new(""), e))?;
    let mut stack = vec![(first, PathBuf::new(), 0usize)];
    while let Some((fd, rel_dir, depth)) = stack.pop() {
        let mut entries = RawDir::new(&fd, &mut buf);
        let mut listed: Vec<(std::ffi::OsString, FileType)> = Vec::new();
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(|e| fail(&rel_dir, e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                listed.push((std::ffi::OsStr::from_bytes(name).to_os_string(), entry.file_type()));
            }
        }
        for (name, ft) in listed {
            let ft = match ft {
                FileType::Unknown => match rustix::fs::statat(&fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(_) => continue,
                },
                t => t,
            };
            let rel = rel_dir.join(&name);
            if ft == FileType::Directory && depth < MAX_DEPTH {
                let sub = crate::fileio::open_beneath(fd.as_fd(), Path::new(&name), OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(|e| fail(&rel, e))?;
                stack.push((sub, rel, depth + 1));
            } else if ft == FileType::RegularFile {
                let path = root.path().join(&rel);
                out.push((rel.to_string_lossy().into_owned(), path));
                if out.len() > MAX_MEMBERS {
                    return Err(format!("directory model holds more than {MAX_MEMBERS} files"));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The directory model whose defining file `defining` was identified as `detection`.
/// `Ok(None)` when the companion files are missing (an OpenVINO XML without its `.bin`).
/// The `.mlpackage` directory a Core ML specification sits in, if any.
fn mlpackage(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .take(4)
        .find(|a| a.extension().is_some_and(|e| e.eq_ignore_ascii_case("mlpackage")))
        .map(Path::to_path_buf)
}

/// Whether a file identified as `format` at `path` defines a directory model.
pub fn is_directory_model(path: &Path, format: ModelFormat) -> bool {
    match format {
        ModelFormat::TfSavedmodel | ModelFormat::Mlflow | ModelFormat::Openvino => true,
        ModelFormat::Coreml => mlpackage(path).is_some(),
        _ => false,
    }
}

/// Where a directory model is and what it holds.
#[derive(Debug)]
pub struct Layout {
    /// The path the model is reported at.
    pub root: PathBuf,
    /// The open directory its members are opened from (by their relative paths).
    pub handle: Arc<DirHandle>,
    /// Its member files.
    pub files: Members,
}

/// The directory open in the walk as `dir` or one of the directories it was opened from, whose
/// path is `path`; opened by path when it is above the walk's root.
fn ancestor(dir: &Arc<DirHandle>, path: &Path) -> Result<Arc<DirHandle>, String> {
    let mut at = Some(dir);
    while let Some(h) = at {
        if h.path() == path {
            return Ok(Arc::clone(h));
        }
        at = h.parent();
    }
    DirHandle::open_path(path).map(Arc::new).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The layout of the directory model whose defining file `defining`, in the directory open as
/// `dir`, was identified as `detection`. `Ok(None)` when the companion files are missing (an
/// OpenVINO XML without its `.bin`).
pub fn layout(dir: &Arc<DirHandle>, defining: &Path, detection: &Detection) -> Result<Option<Layout>, String> {
    match detection.format {
        ModelFormat::Coreml => match mlpackage(defining) {
            Some(root) => {
                let handle = ancestor(dir, &root)?;
                let files = members(&handle)?;
                Ok(Some(Layout { root, handle, files }))
            }
            None => Ok(None),
        },
        ModelFormat::Openvino => {
            let bin = defining.with_extension("bin");
            let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match crate::fileio::stat_in(dir.fd(), name(&bin).as_str()) {
                Ok(Some(_)) => {}
                _ => return Ok(None),
            }
            let files = vec![(name(&bin), bin.clone()), (name(defining), defining.to_path_buf())];
            Ok(Some(Layout { root: defining.to_path_buf(), handle: Arc::clone(dir), files }))
        }
        _ => Ok(Some(Layout { root: dir.path().to_path_buf(), handle: Arc::clone(dir), files: members(dir)? })),
    }
}

/// The group describing a directory model's files.
pub fn group(root: &Path, digest: &str, files: &[(String, PathBuf)]) -> ModelGroup {
    ModelGroup {
        id: digest.to_string(),
        kind: "directory".into(),
        root: root.display().to_string(),
        members: files.iter().map(|(_, p)| p.display().to_string()).collect(),
        missing: Vec::new(),
    }
}

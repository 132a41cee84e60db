//! Reading for the frameworks detector: every file through [`fileio::read_bounded`] (opened
//! with `open_regular`: never a FIFO, socket, device or final symlink) and bounded before
//! allocating; directories listed one level
//! at a time, so a link loop can cost one failed `stat` but never a recursion. Problems are
//! collected into [`Errors`] rather than returned: nothing here aborts the detector.

use std::fs::FileType;
use std::io;
use std::path::{Path, PathBuf};

use crate::fileio::{self, is_absent, Oversize};
use crate::report::FileError;

/// Files and directories that could not be read or parsed, in the order met.
#[derive(Debug, Default)]
pub(super) struct Errors(Vec<FileError>);

impl Errors {
    /// Notes that `what` at `path` could not be read because of `error`.
    pub(super) fn io(&mut self, path: &Path, what: &str, error: &io::Error) {
        self.note(path, format!("cannot read {what}: {}", error.to_string().to_lowercase()));
    }

    /// Notes a problem with `path` (a lowercase message).
    pub(super) fn note(&mut self, path: &Path, error: String) {
        tracing::debug!(path = %path.display(), error = %error, "frameworks: skipped");
        self.0.push(FileError { path: path.display().to_string(), error });
    }

    /// The errors, sorted by path and distinct.
    pub(super) fn into_sorted(self) -> Vec<FileError> {
        let mut v = self.0;
        v.sort_by(|a, b| (&a.path, &a.error).cmp(&(&b.path, &b.error)));
        v.dedup();
        v
    }
}

/// The first `limit` bytes of the regular file `path` (fewer when it is shorter); `None`
/// without an error when it is absent, and other failures noted as `what` in `errors`.
pub(super) fn read_optional(path: &Path, limit: u64, what: &str, errors: &mut Errors) -> Option<Vec<u8>> {
    fileio::read_bounded_if_present(path, limit, Oversize::Prefix).unwrap_or_else(|e| {
        errors.io(path, what, &e);
        None
    })
}

/// One entry of a directory listing.
#[derive(Debug)]
pub(super) struct Entry {
    /// File name (lossy UTF-8).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Type of the entry itself (a symlink is a symlink).
    pub file_type: FileType,
}

/// The entries of `dir`, sorted by name; empty, without an error, when `dir` is absent.
pub(super) fn list_dir(dir: &Path, errors: &mut Errors) -> Vec<Entry> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if is_absent(&e) => return Vec::new(),
        Err(e) => {
            errors.io(dir, "directory", &e);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in read {
        match entry.and_then(|e| Ok((e.file_type()?, e))) {
            Ok((file_type, e)) => {
                out.push(Entry { name: e.file_name().to_string_lossy().into_owned(), path: e.path(), file_type })
            }
            Err(e) => errors.io(dir, "directory entry", &e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The subdirectories of `dir` (a link to a directory counts), sorted by name.
pub(super) fn subdirs(dir: &Path, errors: &mut Errors) -> Vec<PathBuf> {
    list_dir(dir, errors)
        .into_iter()
        .filter(|e| e.file_type.is_dir() || (e.file_type.is_symlink() && is_dir(&e.path)))
        .map(|e| e.path)
        .collect()
}

/// Whether `path` is a directory, following links (a linked `lib64` or `/opt/x` counts).
pub(super) fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Whether `path` is a regular file itself (not a link to one).
pub(super) fn is_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Whether anything (even a dangling link) is at `path`.
pub(super) fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The canonical form of `path`; `None` when absent, and other failures (a link loop, a
/// directory that cannot be searched) noted as `what`.
pub(super) fn canonical(path: &Path, what: &str, errors: &mut Errors) -> Option<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Some(p),
        Err(e) if is_absent(&e) => None,
        Err(e) => {
            errors.io(path, what, &e);
            None
        }
    }
}

/// The prefix of an interpreter or script path: the parent of the `bin` directory holding it.
pub(super) fn bin_prefix(executable: &Path) -> Option<&Path> {
    let bin = executable.parent()?;
    (bin.file_name()? == "bin").then(|| bin.parent()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_read_stops_at_the_limit_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(fileio::read_bounded(&f, 4, Oversize::Prefix).unwrap(), b"0123");
        assert_eq!(fileio::read_bounded(&f, 100, Oversize::Prefix).unwrap(), b"0123456789");
        std::os::unix::fs::symlink(&f, dir.path().join("l")).unwrap();
        assert!(fileio::read_bounded(&dir.path().join("l"), 4, Oversize::Prefix).is_err());
        let mut errors = Errors::default();
        assert_eq!(read_optional(&dir.path().join("missing"), 4, "x", &mut errors), None);
        assert!(errors.into_sorted().is_empty());
    }

    #[test]
    fn prefix_is_the_parent_of_bin() {
        assert_eq!(bin_prefix(Path::new("/e/v/bin/python")), Some(Path::new("/e/v")));
        assert_eq!(bin_prefix(Path::new("/e/v/Scripts/python")), None);
        assert_eq!(bin_prefix(Path::new("python")), None);
    }

    #[test]
    fn errors_are_lowercase_and_name_the_path() {
        let mut errors = Errors::default();
        errors.io(Path::new("/x"), "directory", &io::Error::from(io::ErrorKind::PermissionDenied));
        let e = errors.into_sorted();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "/x");
        assert!(e[0].error.starts_with("cannot read directory: "), "{}", e[0].error);
        assert_eq!(e[0].error, e[0].error.to_lowercase());
    }
}

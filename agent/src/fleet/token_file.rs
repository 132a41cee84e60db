//! The enrollment token file (`collector.enrollment_token_file`): read only when no one but the
//! agent's user could have read or chosen it, deleted once the agent is enrolled.
//!
//! The token is a secret that enrolls a machine into the fleet, and the agent runs as root and
//! sends what it reads to the collector. So, before reading:
//! 1. **No symbolic link anywhere on the path.** The file is opened with `openat2` and
//!    `RESOLVE_NO_SYMLINKS`, so a link in any component, planted or swapped in, fails the open
//!    instead of making the agent read (and send as a token) a file someone else chose. On a
//!    kernel without `openat2` (before 5.6, or a seccomp filter refusing it), each ancestor is
//!    checked not to be a link and the file is opened with `O_NOFOLLOW`.
//! 2. **A regular file, owned by the agent's user, with no permission for group or others**
//!    (`0600` or `0400`), checked on the open descriptor (`fstat`), so what is checked is what
//!    is read. Anyone else able to read it could have copied the token; anyone else able to
//!    write it or chmod it could have chosen it.
//! 3. At most 64 KiB is read; the token is the file's text without surrounding whitespace.
//!
//! After a successful enrollment (credentials saved) the file is deleted: a token left on disk
//! is one more copy of a secret, and a multi-use one still enrolls machines. When it cannot be
//! (a read-only mount such as a Kubernetes secret, a directory the agent may not write), the
//! agent says so at WARN and goes on: the agent is enrolled and never reads it again.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Most bytes read from the token file.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Why the token file was not read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// It could not be opened or read.
    #[error("{}: cannot read the enrollment token: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// It is not safe to use (module docs).
    #[error("{}: refusing the enrollment token file: {reason}", path.display())]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        reason: String,
    },
    /// It holds nothing but whitespace.
    #[error("{}: the enrollment token file is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The token in `path`, if the file passes the module docs' rules.
pub fn read(path: &Path) -> Result<String, TokenFileError> {
    let unsafe_file = |reason: String| TokenFileError::Unsafe { path: path.to_path_buf(), reason };
    let read_error = |source: io::Error| TokenFileError::Read { path: path.to_path_buf(), source };
    let file = open_without_links(path).map_err(|e| match e.raw_os_error() {
        Some(code) if code == Errno::LOOP.raw_os_error() => {
            unsafe_file("it is reached through a symbolic link; give the real path of a regular file".into())
        }
        _ => read_error(e),
    })?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.file_type().is_file() {
        return Err(unsafe_file("not a regular file".into()));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(unsafe_file(format!(
            "owned by uid {}, not by the agent's user (uid {euid}), who alone may have chosen it",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_file(format!(
            "mode {mode:04o} lets group or others read or change it; chmod 600 {}",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE_BYTES).read_to_string(&mut text).map_err(read_error)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty { path: path.to_path_buf() });
    }
    Ok(token.to_string())
}

/// Opens `path` read-only, failing with `ELOOP` when any component is a symbolic link.
fn open_without_links(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
    match rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
        Ok(fd) => Ok(File::from(fd)),
        Err(e) if e == Errno::NOSYS || e == Errno::PERM => {
            // No openat2 here: the same rule, component by component, then O_NOFOLLOW.
            for ancestor in path.ancestors().skip(1) {
                if std::fs::symlink_metadata(ancestor)?.file_type().is_symlink() {
                    return Err(Errno::LOOP.into());
                }
            }
            let fd = rustix::fs::open(path, flags, Mode::empty())?;
            Ok(File::from(fd))
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes the token file after a successful enrollment (module docs); says why at WARN when
/// it cannot.
pub fn remove_used(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "enrollment token file deleted: the agent is enrolled"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "cannot delete the enrollment token file; the agent is enrolled and will not read it again: delete it by hand"
        ),
    }
}

#[cfg(test)]
#[path = "tests/token_file.rs"]
mod tests;

//! The spool directory and the permissions of what sled puts in it.
//!
//! Reports name every model path on the host, so only the agent's user may read them: the
//! directory is `0700` and its files `0600`. sled creates files with the process umask (often
//! leaving them `0644`), at open and later (`blobs/`, `snap.*`), so [`restrict`] runs after open
//! and after every append; the `0700` directory already keeps other users out in between.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Mode of the spool directory and of directories sled makes in it.
const DIR_MODE: u32 = 0o700;
/// Mode of the files in it.
const FILE_MODE: u32 = 0o600;
/// How deep sled nests directories (`blobs/`); deeper entries are left alone.
const MAX_DEPTH: usize = 2;

pub use crate::fileio::create_private_dir as prepare_dir;

/// Removes group and other permissions from everything under `dir`. Failures are logged: the
/// `0700` directory still protects the files.
pub fn restrict(dir: &Path) {
    restrict_below(dir, 0);
}

fn restrict_below(dir: &Path, depth: usize) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "cannot list spool directory");
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let result = if meta.is_dir() {
            if depth < MAX_DEPTH {
                restrict_below(&path, depth + 1);
            }
            tighten(&path, &meta, DIR_MODE)
        } else if meta.is_file() {
            tighten(&path, &meta, FILE_MODE)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot restrict spool file permissions");
        }
    }
}

/// Sets `mode` on `path` when its current mode grants anything to group or others.
fn tighten(path: &Path, meta: &fs::Metadata, mode: u32) -> io::Result<()> {
    if meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_directories_and_tightens_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state/spool");
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::create_dir(dir.join("blobs")).unwrap();
        fs::set_permissions(dir.join("blobs"), fs::Permissions::from_mode(0o755)).unwrap();
        for file in ["conf", "blobs/17"] {
            fs::write(dir.join(file), b"x").unwrap();
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).unwrap();
        }
        restrict(&dir);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        assert_eq!(mode(&dir.join("conf")), 0o600);
        assert_eq!(mode(&dir.join("blobs/17")), 0o600);
    }

    #[test]
    fn an_existing_open_directory_is_tightened_and_a_file_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(prepare_dir(&file).is_err());
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(prepare_dir(&link).is_err());
    }
}

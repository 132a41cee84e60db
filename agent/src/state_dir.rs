//! The agent's state directory: its layout, and every operation that keeps what is in it
//! private.
//!
//! Everything the agent keeps between runs names the host's models, or is its key: only the
//! agent's user may read any of it. [`StateDir`] is the one place that knows where each part
//! lives; the modules that own a part receive its path from here and never join names onto
//! the state directory themselves.
//!
//! # Layout
//! ```text
//! path          what                                                     owner
//! cache/        sled: verdicts and digests by file stamp, listing        crate::cache, crate::listing
//!               records by directory
//! spool/        sled: batches not yet acknowledged by the collector      crate::spool
//! fleet/        sled: the change hash of every entry last spooled        crate::fleet::sent
//! tls/          agent.id, agent.key, agent.crt, ca.pem                   crate::fleet::credentials
//! .tls.new/     a new tls/ being prepared; renamed over tls/ when whole  crate::fleet::credentials
//! install.key   32 random bytes in hex, made once                        crate::fleet::host_identity
//! status.json   the daemon's health, replaced whole                      crate::fleet::status
//! update/       release channel state and staged versions                crate::update
//! ```
//! `aiscout-agent scan` uses only `cache/` (in its own state directory, `--state-dir`).
//!
//! # Private files
//! 1. Directories are `0700` ([`PRIVATE_DIR_MODE`]): created with that mode and set to it again
//!    against the umask; an existing one that grants group or others anything is tightened; a
//!    symlink or anything else but a directory at the path is refused ([`create_private_dir`]).
//! 2. Files are `0600` ([`PRIVATE_FILE_MODE`]): created new (never through an existing name),
//!    set to that mode against the umask, written and synced ([`write_new_private`]).
//! 3. A file or directory that must appear whole is prepared under another name ([`temp_path`],
//!    `.tls.new/`), then linked or renamed into place, then its directory is synced
//!    ([`sync_dir`]) so the new name survives a crash.
//! 4. sled creates its files with the process umask, at open and later: [`open_sled`] makes the
//!    directory private before sled opens it and tightens what sled made after
//!    ([`restrict_tree`]); the spool tightens again after every append.
//! 5. A private file found readable by others is tightened to `0600` with a warning
//!    ([`tighten_file`]), never refused: the agent repairs its own state.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every directory the agent creates in its state directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file the agent creates in its state directory.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// How deep [`restrict_tree`] descends (sled nests `blobs/` one level).
const RESTRICT_DEPTH: usize = 2;
/// Longest wait for a sled database whose lock a dropped handle still holds ([`open_sled`]).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Pause between attempts to take that lock.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// The state directory, created private; hands out the path of each part (module docs,
/// *Layout*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    /// The directory itself.
    root: PathBuf,
}

impl StateDir {
    /// Creates `root` (and missing parents) as a private directory, or tightens an existing
    /// one; refuses a symlink or a non-directory there.
    pub fn open(root: &Path) -> io::Result<Self> {
        create_private_dir(root)?;
        Ok(Self { root: root.to_path_buf() })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The scan cache's database directory.
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// The spool's database directory.
    pub fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// The sent state's database directory.
    pub fn sent(&self) -> PathBuf {
        self.root.join("fleet")
    }

    /// The enrollment credentials' directory.
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// Where new credentials are prepared before they replace [`StateDir::tls`].
    pub fn tls_staging(&self) -> PathBuf {
        self.root.join(".tls.new")
    }

    /// The install key file.
    pub fn install_key(&self) -> PathBuf {
        self.root.join("install.key")
    }

    /// The updater's directory (state and staged versions).
    pub fn update(&self) -> PathBuf {
        self.root.join("update")
    }

    /// The daemon's status file.
    pub fn status(&self) -> PathBuf {
        Self::status_in(&self.root)
    }

    /// The status file of the state directory `root`, for a reader that must not create or
    /// tighten anything there (`aiscout-agent status`).
    pub fn status_in(root: &Path) -> PathBuf {
        root.join("status.json")
    }
}

/// Creates `path` (and missing parents) as a `0700` directory, or tightens an existing one.
/// A symlink or a non-directory at `path` is refused (rule 1).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o077 == 0 {
                return Ok(());
            }
            fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_DIR_MODE))
        }
        Ok(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(path)?;
            fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_DIR_MODE))
        }
        Err(e) => Err(e),
    }
}

/// Creates `path` (which must not exist) with mode `0600`, writes `contents` and syncs it
/// (rule 2).
pub fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE_MODE).open(path)?;
    // The mode given at creation is filtered by the umask; state files are never wider than 0600.
    file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A fresh, unused name next to `path` for a temporary file (`.NAME.RANDOM.tmp`, rule 3).
pub fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.{}.tmp", hex::encode(suffix))))
}

/// Syncs the directory `dir`, so the names created or renamed in it survive a crash (rule 3).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Removes group and other permissions from the private file at `path`, logging what it does
/// and any failure (rule 5).
pub fn tighten_file(path: &Path) {
    let Ok(meta) = fs::metadata(path) else { return };
    if meta.permissions().mode() & 0o077 == 0 {
        return;
    }
    tracing::warn!(path = %path.display(), mode = %format_args!("{:o}", meta.permissions().mode() & 0o777), "private file readable by others; restricting it to 0600");
    if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_FILE_MODE)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict private file permissions");
    }
}

/// Removes group and other permissions from everything below `dir` (directories `0700`, files
/// `0600`; rule 4). Failures are logged: the private directory still protects the files.
pub fn restrict_tree(dir: &Path) {
    restrict_below(dir, 0);
}

fn restrict_below(dir: &Path, depth: usize) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "cannot list private directory");
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let mode = if meta.is_dir() {
            if depth < RESTRICT_DEPTH {
                restrict_below(&path, depth + 1);
            }
            PRIVATE_DIR_MODE
        } else if meta.is_file() {
            PRIVATE_FILE_MODE
        } else {
            continue;
        };
        if meta.permissions().mode() & 0o077 == 0 {
            continue;
        }
        if let Err(e) = fs::set_permissions(&path, fs::Permissions::from_mode(mode)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot restrict private file permissions");
        }
    }
}

/// Opens (creating) the sled database in the private directory `path` as the agent keeps all
/// of its own: low-space mode and a page cache of at most `cache_bytes` (sled's default is
/// 1 GiB). The directory is made private first and what sled created is tightened after
/// (rule 4).
///
/// sled releases its file lock when the last of its background jobs lets go of the file, which
/// can be a moment after the database is dropped; opening waits up to [`LOCK_WAIT`] for a lock
/// held that way before it reports the database as in use.
pub fn open_sled(path: &Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    create_private_dir(path).map_err(sled::Error::Io)?;
    let config = sled::Config::new().path(path).cache_capacity(cache_bytes).mode(sled::Mode::LowSpace);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let db = loop {
        match config.open() {
            Err(sled::Error::Io(e)) if is_lock_held(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY);
            }
            other => break other?,
        }
    };
    restrict_tree(path);
    Ok(db)
}

/// Whether sled refused to open a database because its file lock is held.
fn is_lock_held(e: &io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn every_part_has_its_place_below_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        let root = tmp.path().join("state");
        assert_eq!(state.root(), root);
        let parts = [
            (state.cache(), "cache"),
            (state.spool(), "spool"),
            (state.sent(), "fleet"),
            (state.tls(), "tls"),
            (state.tls_staging(), ".tls.new"),
            (state.install_key(), "install.key"),
            (state.status(), "status.json"),
            (state.update(), "update"),
        ];
        for (path, name) in parts {
            assert_eq!(path, root.join(name));
        }
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn creates_private_directories_and_tightens_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state/spool");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::create_dir(dir.join("blobs")).unwrap();
        fs::set_permissions(dir.join("blobs"), fs::Permissions::from_mode(0o755)).unwrap();
        for file in ["conf", "blobs/17"] {
            fs::write(dir.join(file), b"x").unwrap();
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).unwrap();
        }
        restrict_tree(&dir);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        assert_eq!(mode(&dir.join("conf")), 0o600);
        assert_eq!(mode(&dir.join("blobs/17")), 0o600);
    }

    #[test]
    fn an_existing_open_directory_is_tightened_and_a_file_or_link_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(create_private_dir(&file).is_err());
        assert!(StateDir::open(&file).is_err());
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(create_private_dir(&link).is_err());
    }

    #[test]
    fn sled_databases_are_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        for (path, make) in [(state.cache(), true), (state.sent(), false)] {
            if make {
                // A directory left open by an older agent is tightened too.
                fs::create_dir(&path).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
            let db = open_sled(&path, 1024 * 1024).unwrap();
            db.insert(b"k", b"v").unwrap();
            db.flush().unwrap();
            restrict_tree(&path);
            assert_eq!(mode(&path), 0o700, "{}", path.display());
            for entry in fs::read_dir(&path).unwrap() {
                let entry = entry.unwrap().path();
                let expected = if entry.is_dir() { 0o700 } else { 0o600 };
                assert_eq!(mode(&entry), expected, "{}", entry.display());
            }
        }
    }

    #[test]
    fn a_lock_released_late_is_waited_for_and_a_lock_held_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        let first = open_sled(&path, 1024 * 1024).unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let second = open_sled(&path, 1024 * 1024).unwrap();
        released.join().unwrap();
        // A lock that stays held ends in sled's error once the wait is over.
        let err = open_sled(&path, 1024 * 1024).unwrap_err();
        assert!(matches!(&err, sled::Error::Io(e) if is_lock_held(e)), "{err}");
        drop(second);
    }

    #[test]
    fn private_files_are_new_0600_and_loose_ones_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("install.key");
        write_new_private(&path, b"secret").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(write_new_private(&path, b"again").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        tighten_file(&path);
        assert_eq!(mode(&path), 0o600);
        let temp = temp_path(&path).unwrap();
        assert_eq!(temp.parent(), path.parent());
        assert!(temp.file_name().unwrap().to_string_lossy().starts_with(".install.key."));
        assert_ne!(temp, temp_path(&path).unwrap());
    }
}

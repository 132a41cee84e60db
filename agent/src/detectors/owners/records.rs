//! Reading package records once: each record file (a wheel's `RECORD`, a conda-meta JSON, a
//! dpkg `.list`, a `package.json`) is read only when its stamp (inode, size, mtime) differs
//! from the one kept in the `owners-v1` sled tree beside the listing records, and only the
//! model-candidate paths it names are kept, so an entry stays small even for torch's RECORD.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fileio::{self, FileStamp, Oversize};
use crate::report::FileError;

/// Name of the sled tree; bump the suffix when what an entry means changes.
pub const TREE: &str = "owners-v1";
/// Lines of one record file read at most (torch's RECORD has ~20,000).
pub const MAX_RECORD_LINES: usize = 1_000_000;

/// What one record file says about its package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Package name.
    pub name: String,
    /// Installed version, when the records give one.
    pub version: Option<String>,
    /// Absolute, lexically normalised paths of the model-candidate files it lists.
    pub paths: Vec<String>,
}

/// A record with the stamp of the file it was read from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stamped {
    /// Inode of the record file when read.
    ino: u64,
    /// Its size.
    size: u64,
    /// Its mtime (ns).
    mtime_ns: i128,
    /// What it said.
    record: Record,
}

/// Handle to the record entries in the scan cache's database.
#[derive(Debug, Clone)]
pub struct RecordCache {
    /// The sled tree.
    tree: sled::Tree,
}

impl RecordCache {
    /// Opens (creating) the tree in `db`.
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(Self { tree: db.open_tree(TREE)? })
    }

    fn key(path: &Path) -> &[u8] {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes()
    }

    fn get(&self, path: &Path, stamp: &FileStamp) -> Option<Record> {
        let raw = self.tree.get(Self::key(path)).ok()??;
        let s: Stamped = postcard::from_bytes(&raw).ok()?;
        (s.ino == stamp.ino && s.size == stamp.size && s.mtime_ns == stamp.mtime_ns).then_some(s.record)
    }

    fn put(&self, path: &Path, stamp: &FileStamp, record: &Record) {
        let s = Stamped { ino: stamp.ino, size: stamp.size, mtime_ns: stamp.mtime_ns, record: record.clone() };
        let Ok(raw) = postcard::to_allocvec(&s) else { return };
        if let Err(e) = self.tree.insert(Self::key(path), raw) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write owner record cache entry");
        }
    }

    /// The records kept for a file that yields many (the rpm database) under `stamp`.
    pub(super) fn get_many<S: Serialize + serde::de::DeserializeOwned + PartialEq>(
        &self,
        path: &Path,
        stamp: &S,
    ) -> Option<Vec<Record>> {
        let raw = self.tree.get(Self::key(path)).ok()??;
        let (s, records): (S, Vec<Record>) = postcard::from_bytes(&raw).ok()?;
        (s == *stamp).then_some(records)
    }

    /// Keeps `records` for `path` under `stamp`.
    pub(super) fn put_many<S: Serialize>(&self, path: &Path, stamp: &S, records: &[Record]) {
        let Ok(raw) = postcard::to_allocvec(&(stamp, records)) else { return };
        if let Err(e) = self.tree.insert(Self::key(path), raw) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write owner record cache entry");
        }
    }

    /// Drops the entries of every record file not in `keep` (after a scan of the default roots,
    /// which loads every record a model needs: the rest belong to removed packages or to
    /// directories that no longer hold a model, and are read again if one appears).
    pub fn retain(&self, keep: &HashSet<PathBuf>) {
        use std::os::unix::ffi::OsStrExt;
        for key in self.tree.iter().keys().flatten() {
            if !keep.contains(Path::new(std::ffi::OsStr::from_bytes(&key))) {
                let _ = self.tree.remove(key);
            }
        }
    }

    /// Number of entries (tests).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

/// Reads record files through the cache, counting and collecting errors.
#[derive(Debug, Default)]
pub(super) struct Reader<'a> {
    /// The cache, when the scan has a state directory.
    pub cache: Option<&'a RecordCache>,
    /// Record files read (cache misses).
    pub read: u64,
    /// Record files answered by the cache.
    pub cached: u64,
    /// Record files that could not be read or parsed.
    pub errors: Vec<FileError>,
    /// Every record file looked up (read, cached or failed), for [`RecordCache::retain`].
    pub touched: HashSet<PathBuf>,
}

impl Reader<'_> {
    /// Notes a problem with `path`.
    pub fn error(&mut self, path: &Path, error: String) {
        tracing::debug!(path = %path.display(), error = %error, "owners: record skipped");
        self.errors.push(FileError { path: path.display().to_string(), error });
    }

    /// What the record file at `path` says: from the cache when its stamp is unchanged, else
    /// read (at most `limit` bytes, never through a link) and parsed by `parse`. `None`
    /// without an error when there is no regular file at `path`.
    pub fn load(
        &mut self,
        path: &Path,
        limit: u64,
        parse: impl FnOnce(&[u8]) -> Result<Record, String>,
    ) -> Option<Record> {
        let meta = std::fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
        self.touched.insert(path.to_path_buf());
        let stamp = FileStamp::of(&meta);
        if let Some(record) = self.cache.and_then(|c| c.get(path, &stamp)) {
            self.cached += 1;
            return Some(record);
        }
        let bytes = match fileio::read_found_if_present(path, limit, Oversize::Refuse) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                self.error(path, format!("cannot read package record: {}", e.to_string().to_lowercase()));
                return None;
            }
        };
        self.read += 1;
        match parse(&bytes) {
            Ok(record) => {
                if let Some(c) = self.cache {
                    c.put(path, &stamp, &record);
                }
                Some(record)
            }
            Err(e) => {
                self.error(path, e);
                None
            }
        }
    }
}

/// `rel` (a record's path: relative to `base`, or absolute) as an absolute path, `.` and `..`
/// resolved lexically without touching the file system; `None` when it climbs above `/`.
pub fn normalize(base: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let mut out = if rel.is_absolute() { PathBuf::from("/") } else { base.to_path_buf() };
    for c in rel.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// The lines of a record, at most [`MAX_RECORD_LINES`] (an error beyond), lossy UTF-8.
pub fn lines(bytes: &[u8]) -> Result<Vec<String>, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for line in text.lines() {
        if out.len() == MAX_RECORD_LINES {
            return Err(format!("package record has more than {MAX_RECORD_LINES} lines"));
        }
        out.push(line.to_owned());
    }
    Ok(out)
}

/// `paths` resolved against `base`, keeping the model candidates only, sorted and distinct.
pub fn candidate_paths<S: AsRef<str>>(base: &Path, paths: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut out: Vec<String> = paths
        .into_iter()
        .filter_map(|p| normalize(base, p.as_ref()))
        .filter(|p| crate::detectors::models::is_candidate(p))
        .map(|p| p.display().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_lexical_and_stays_below_root() {
        let site = Path::new("/v/lib/python3.11/site-packages");
        assert_eq!(normalize(site, "a/./b.pkl").unwrap(), Path::new("/v/lib/python3.11/site-packages/a/b.pkl"));
        assert_eq!(normalize(site, "../../../bin/x").unwrap(), Path::new("/v/bin/x"));
        assert_eq!(normalize(site, "/etc/x.pkl").unwrap(), Path::new("/etc/x.pkl"));
        assert_eq!(normalize(Path::new("/a"), "../../x"), None);
    }

    #[test]
    fn only_candidates_are_kept() {
        let got = candidate_paths(Path::new("/s"), ["p/m.pkl", "p/__init__.py", "p/m.pkl", "../x.onnx"]);
        assert_eq!(got, vec!["/s/p/m.pkl".to_owned(), "/x.onnx".to_owned()]);
    }

    #[test]
    fn unchanged_records_are_read_once_and_changed_ones_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        let cache = RecordCache::open(&db).unwrap();
        let record = dir.path().join("RECORD");
        std::fs::write(&record, "a.pkl,,\n").unwrap();
        let parse = |b: &[u8]| Ok(Record { name: "p".into(), version: None, paths: lines(b)? });
        let mut reader = Reader { cache: Some(&cache), ..Reader::default() };
        assert!(reader.load(&record, 1024, parse).is_some());
        assert!(reader.load(&record, 1024, parse).is_some());
        assert_eq!((reader.read, reader.cached), (1, 1));
        std::fs::write(&record, "a.pkl,,\nb.pkl,,\n").unwrap();
        assert_eq!(reader.load(&record, 1024, parse).unwrap().paths.len(), 2);
        assert_eq!(reader.read, 2);
        // Pruning keeps what a scan touched.
        let other = dir.path().join("OTHER");
        std::fs::write(&other, "x.pkl,,\n").unwrap();
        let mut pruned = Reader { cache: Some(&cache), ..Reader::default() };
        assert!(pruned.load(&other, 1024, parse).is_some());
        assert_eq!(cache.len(), 2);
        cache.retain(&pruned.touched);
        assert_eq!(cache.len(), 1);
        assert!(pruned.load(&other, 1024, parse).is_some());
        assert_eq!(pruned.cached, 1);
        // Without the cache, the bound applies and a link is never followed.
        let mut plain = Reader::default();
        assert_eq!(plain.load(&record, 4, parse), None);
        assert!(plain.errors.last().unwrap().error.contains("larger than 4 bytes"), "{:?}", plain.errors);
        std::os::unix::fs::symlink(&record, dir.path().join("link")).unwrap();
        assert_eq!(plain.load(&dir.path().join("link"), 1024, parse), None);
        assert_eq!(plain.read, 0);
    }
}

//! The directory listing cache: what a directory held when it was last walked.
//!
//! A rescan should cost little more than `lstat`s on an unchanged tree. A directory's mtime
//! changes whenever an entry is added, removed or renamed in it, so while the mtime is the one
//! recorded, the recorded listing is still the directory's listing and it need not be read.
//! A record keeps, per directory:
//!
//! 1. the directory's device, inode and mtime (ns) when it was listed, and when it was listed;
//! 2. the names of its subdirectories (after excludes);
//! 3. how many regular files it held that are not model candidates;
//! 4. each candidate file's name, inode, size, mtime and what it was (model, not a model, or
//!    unreadable), so an unchanged non-model needs only its `lstat`.
//!
//! A record is trusted only if the directory's stamp still matches and its mtime was at least
//! [`RACY_WINDOW_NS`] older than the listing (a change within the file system's timestamp
//! granularity right after listing could otherwise keep the mtime). Records are postcard
//! (compact binary) in a sled tree whose name carries a fingerprint of the walk options, so
//! changing excludes starts over.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fileio::FileStamp;

/// Records younger than this (directory mtime to listing time) are not trusted.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// What a candidate file was when last examined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Examined: not a model.
    NotModel,
    /// A model or a shard index: examined again on every scan, which for an unchanged model
    /// is a lookup in the stamp cache ([`crate::cache`]).
    Examine,
    /// Could not be examined (or was not, in a scan without the models section): examine
    /// again next time.
    Error,
    /// A marker file for another detector ([`crate::detectors::markers`]): handed to the
    /// visitor on every scan.
    Marker,
}

/// One candidate file of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// File name.
    pub name: String,
    /// Inode when examined.
    pub ino: u64,
    /// Size when examined.
    pub size: u64,
    /// Modification time (ns) when examined.
    pub mtime_ns: i128,
    /// What it was.
    pub verdict: Verdict,
}

impl CandidateRecord {
    /// Whether `stamp` still describes the content this record was made from.
    pub fn matches(&self, stamp: &FileStamp) -> bool {
        self.ino == stamp.ino && self.size == stamp.size && self.mtime_ns == stamp.mtime_ns
    }
}

/// One directory's listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirRecord {
    /// Device of the directory.
    pub dev: u64,
    /// Inode of the directory.
    pub ino: u64,
    /// The directory's mtime (ns) when listed.
    pub mtime_ns: i128,
    /// When it was listed (ns since the epoch).
    pub listed_at_ns: i128,
    /// Regular files that are not candidates.
    pub other_files: u64,
    /// Subdirectory names.
    pub subdirs: Vec<String>,
    /// Candidate files.
    pub candidates: Vec<CandidateRecord>,
}

impl DirRecord {
    /// Whether this record may stand for the directory whose stamp is `dir`.
    pub fn trusted_for(&self, dir: &FileStamp) -> bool {
        self.dev == dir.dev
            && self.ino == dir.ino
            && self.mtime_ns == dir.mtime_ns
            && self.mtime_ns.saturating_add(RACY_WINDOW_NS) < self.listed_at_ns
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

/// Handle to the listing records.
#[derive(Debug, Clone)]
pub struct ListingCache {
    /// The sled tree of this walk configuration.
    tree: sled::Tree,
}

impl ListingCache {
    /// Opens the listing tree for walk options whose fingerprint is `fingerprint`.
    pub fn open(db: &sled::Db, fingerprint: &str) -> sled::Result<Self> {
        Ok(Self { tree: db.open_tree(format!("listings-v1-{fingerprint}"))? })
    }

    fn key(path: &Path) -> &[u8] {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes()
    }

    /// The record of `dir`, if any (a corrupt record reads as absent).
    pub fn get(&self, dir: &Path) -> Option<DirRecord> {
        let raw = self.tree.get(Self::key(dir)).ok()??;
        postcard::from_bytes(&raw).ok()
    }

    /// Stores the record of `dir`.
    pub fn put(&self, dir: &Path, record: &DirRecord) {
        let Ok(raw) = postcard::to_allocvec(record) else { return };
        if let Err(e) = self.tree.insert(Self::key(dir), raw) {
            tracing::warn!(path = %dir.display(), error = %e, "cannot write listing cache entry");
        }
    }

    /// Forgets the record of `dir`.
    pub fn remove(&self, dir: &Path) {
        let _ = self.tree.remove(Self::key(dir));
    }

    /// Forgets the records of `dir` and of every directory below it.
    pub fn remove_tree(&self, dir: &Path) {
        self.remove(dir);
        let mut prefix = Self::key(dir).to_vec();
        prefix.push(b'/');
        for key in self.tree.scan_prefix(&prefix).keys().flatten() {
            let _ = self.tree.remove(key);
        }
    }

    /// Number of directory records (tests, diagnostics).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mtime_ns: i128) -> FileStamp {
        FileStamp { dev: 1, ino: 2, size: 3, mtime_ns }
    }

    #[test]
    fn record_is_trusted_only_when_unchanged_and_old_enough() {
        let r =
            DirRecord { dev: 1, ino: 2, mtime_ns: 10, listed_at_ns: 10 + RACY_WINDOW_NS + 1, ..DirRecord::default() };
        assert!(r.trusted_for(&stamp(10)));
        assert!(!r.trusted_for(&stamp(11)));
        let racy = DirRecord { listed_at_ns: 10 + RACY_WINDOW_NS, ..r.clone() };
        assert!(!racy.trusted_for(&stamp(10)));
    }

    #[test]
    fn removing_a_tree_removes_descendants_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let l = ListingCache::open(&db, "t").unwrap();
        for p in ["/a", "/a/b", "/a/b/c", "/ab", "/x"] {
            l.put(Path::new(p), &DirRecord::default());
        }
        l.remove_tree(Path::new("/a"));
        assert!(l.get(Path::new("/a/b/c")).is_none());
        assert!(l.get(Path::new("/a")).is_none());
        assert!(l.get(Path::new("/ab")).is_some());
        assert_eq!(l.len(), 2);
    }
}

//! RPM packages: rpm 4.16+ keeps its database as SQLite (`rpmdb.sqlite`), table
//! `Packages(hnum INTEGER PRIMARY KEY, blob BLOB)`, one header per installed package. A header
//! as stored there has no lead and no magic:
//!
//! ```text
//! il: u32 BE          number of index entries
//! dl: u32 BE          bytes of data
//! il × 16 bytes       entries: tag u32 BE, type u32 BE, offset u32 BE (into data), count u32 BE
//! dl bytes            data
//! ```
//!
//! Read here: `NAME` (1000), `VERSION` (1001), `RELEASE` (1002) (STRING 6 or I18NSTRING 9),
//! `EPOCH` (1003, INT32 4) and the file list split over `BASENAMES` (1117, STRING_ARRAY 8),
//! `DIRNAMES` (1118, STRING_ARRAY) and `DIRINDEXES` (1116, INT32 array): file *i* is
//! `DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]`. Every count, offset and length is checked against
//! the blob before use, and the blob, the entries and the files of one package are capped.
//!
//! The database is opened read-only (`SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only`), never
//! through a link (the path is opened with no link at any component and must be a regular
//! file; its inode is compared again after the read), and read in one `SELECT`, the same shared
//! read lock `rpm -qa` takes. `immutable=1` is not used: it would skip the WAL and the locks and
//! could read a half-written database while rpm installs; a read-only connection honours the
//! WAL, sees one committed snapshot, and in WAL mode (rpm's) never blocks a writer. The result
//! is cached under the database's path with the stamps of the database and of its `-wal` file,
//! so a rescan reads nothing while neither changed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};

use super::records::{candidate_paths, Reader, Record};
use super::Index;
use crate::fileio::{self, FileStamp};

/// Where rpm keeps its SQLite database, in the order looked at (Fedora links `/var/lib/rpm`
/// to the first, and a link is never followed).
pub const DB_PATHS: &[&str] = &["/usr/lib/sysimage/rpm/rpmdb.sqlite", "/var/lib/rpm/rpmdb.sqlite"];

/// Bytes of one header blob parsed at most (rpm's own data limit is 256 MiB; a package with
/// 100,000 files has a header of a few MiB).
pub const MAX_BLOB: usize = 64 * 1024 * 1024;
/// Index entries of one header (rpm refuses more than 0xffff).
pub const MAX_ENTRIES: u32 = 0xffff;
/// Files of one package.
pub const MAX_FILES_PER_PACKAGE: u32 = 1_000_000;
/// Files, over all packages, looked at.
pub const MAX_FILES_TOTAL: usize = 10_000_000;
/// Packages read.
const MAX_PACKAGES: usize = 1_000_000;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// Why a header blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than its own lengths say.
    #[error("rpm header truncated")]
    Truncated,
    /// Larger than [`MAX_BLOB`].
    #[error("rpm header of {0} bytes is larger than {MAX_BLOB}")]
    TooLarge(usize),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("rpm header has {0} index entries")]
    TooManyEntries(u32),
    /// A tag with the wrong type, an offset or count outside the data.
    #[error("rpm header tag {tag} is malformed")]
    BadTag {
        /// The tag.
        tag: u32,
    },
    /// No `NAME`.
    #[error("rpm header has no name")]
    NoName,
    /// More than [`MAX_FILES_PER_PACKAGE`] files.
    #[error("rpm header lists {0} files")]
    TooManyFiles(u32),
}

/// What one header says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpmPackage {
    /// `NAME`.
    pub name: String,
    /// `VERSION`.
    pub version: String,
    /// `RELEASE`.
    pub release: String,
    /// `EPOCH`, when set.
    pub epoch: Option<u32>,
    /// Absolute paths of its files (`DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]`), lossy UTF-8.
    pub files: Vec<String>,
}

impl RpmPackage {
    /// `[epoch:]version-release`.
    pub fn evr(&self) -> String {
        let mut out = self.epoch.map(|e| format!("{e}:")).unwrap_or_default();
        out.push_str(&self.version);
        if !self.release.is_empty() {
            out.push('-');
            out.push_str(&self.release);
        }
        out
    }
}

/// One index entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: u32,
    count: u32,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]))
}

/// A parsed header: its entries and its data.
struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Result<Self, HeaderError> {
        if blob.len() > MAX_BLOB {
            return Err(HeaderError::TooLarge(blob.len()));
        }
        let il = be32(blob, 0).ok_or(HeaderError::Truncated)?;
        let dl = be32(blob, 4).ok_or(HeaderError::Truncated)?;
        if il > MAX_ENTRIES {
            return Err(HeaderError::TooManyEntries(il));
        }
        let index_len = (il as usize).checked_mul(16).ok_or(HeaderError::Truncated)?;
        let data_start = index_len.checked_add(8).ok_or(HeaderError::Truncated)?;
        let data_end = data_start.checked_add(dl as usize).ok_or(HeaderError::Truncated)?;
        let data = blob.get(data_start..data_end).ok_or(HeaderError::Truncated)?;
        let mut entries = Vec::with_capacity(il as usize);
        for i in 0..il as usize {
            let at = 8 + i * 16;
            let field = |k: usize| be32(blob, at + k * 4).ok_or(HeaderError::Truncated);
            entries.push(Entry { tag: field(0)?, kind: field(1)?, offset: field(2)?, count: field(3)? });
        }
        Ok(Self { entries, data })
    }

    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.iter().find(|e| e.tag == tag).copied()
    }

    /// The `count` NUL-terminated strings at the entry's offset.
    fn strings(&self, e: Entry, max: u32) -> Result<Vec<&'a [u8]>, HeaderError> {
        let bad = HeaderError::BadTag { tag: e.tag };
        let mut rest = self.data.get(e.offset as usize..).ok_or(bad.clone())?;
        // Each string takes at least one byte: a count beyond the data is a lie.
        if e.count > max || e.count as usize > rest.len() {
            return Err(bad);
        }
        let mut out = Vec::with_capacity(e.count as usize);
        for _ in 0..e.count {
            let end = rest.iter().position(|&b| b == 0).ok_or(bad.clone())?;
            out.push(rest.get(..end).ok_or(bad.clone())?);
            rest = rest.get(end + 1..).ok_or(bad.clone())?;
        }
        Ok(out)
    }

    /// A STRING or I18NSTRING (its first translation) tag.
    fn string(&self, tag: u32) -> Result<Option<String>, HeaderError> {
        let Some(e) = self.entry(tag) else { return Ok(None) };
        match e.kind {
            TYPE_STRING | TYPE_I18NSTRING | TYPE_STRING_ARRAY if e.count >= 1 => {
                let first = self.strings(Entry { count: 1, ..e }, 1)?;
                Ok(first.first().map(|s| String::from_utf8_lossy(s).into_owned()))
            }
            _ => Err(HeaderError::BadTag { tag }),
        }
    }

    /// An INT32 array tag.
    fn int32s(&self, e: Entry, max: u32) -> Result<Vec<u32>, HeaderError> {
        let bad = HeaderError::BadTag { tag: e.tag };
        if e.kind != TYPE_INT32 || e.count > max {
            return Err(bad);
        }
        let len = (e.count as usize).checked_mul(4).ok_or(bad.clone())?;
        let start = e.offset as usize;
        let bytes = self.data.get(start..start.checked_add(len).ok_or(bad.clone())?).ok_or(bad)?;
        Ok(bytes.chunks_exact(4).map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))).collect())
    }

    fn files(&self) -> Result<Vec<String>, HeaderError> {
        let Some(base) = self.entry(TAG_BASENAMES) else { return Ok(Vec::new()) };
        if base.count > MAX_FILES_PER_PACKAGE {
            return Err(HeaderError::TooManyFiles(base.count));
        }
        let bad = |tag| HeaderError::BadTag { tag };
        if base.kind != TYPE_STRING_ARRAY {
            return Err(bad(TAG_BASENAMES));
        }
        let basenames = self.strings(base, MAX_FILES_PER_PACKAGE)?;
        let dirs = self.entry(TAG_DIRNAMES).ok_or(bad(TAG_DIRNAMES))?;
        if dirs.kind != TYPE_STRING_ARRAY {
            return Err(bad(TAG_DIRNAMES));
        }
        let dirnames = self.strings(dirs, MAX_FILES_PER_PACKAGE)?;
        let idx = self.entry(TAG_DIRINDEXES).ok_or(bad(TAG_DIRINDEXES))?;
        let indexes = self.int32s(idx, MAX_FILES_PER_PACKAGE)?;
        if indexes.len() != basenames.len() {
            return Err(bad(TAG_DIRINDEXES));
        }
        basenames
            .iter()
            .zip(&indexes)
            .map(|(b, &i)| {
                let dir = dirnames.get(i as usize).ok_or(bad(TAG_DIRINDEXES))?;
                let mut path = String::from_utf8_lossy(dir).into_owned();
                path.push_str(&String::from_utf8_lossy(b));
                Ok(path)
            })
            .collect()
    }
}

/// Parses one header blob of the `Packages` table.
pub fn parse_header(blob: &[u8]) -> Result<RpmPackage, HeaderError> {
    let h = Header::parse(blob)?;
    let name = h.string(TAG_NAME)?.filter(|n| !n.is_empty()).ok_or(HeaderError::NoName)?;
    let epoch = match h.entry(TAG_EPOCH) {
        Some(e) => h.int32s(e, 1)?.first().copied(),
        None => None,
    };
    Ok(RpmPackage {
        name,
        version: h.string(TAG_VERSION)?.unwrap_or_default(),
        release: h.string(TAG_RELEASE)?.unwrap_or_default(),
        epoch,
        files: h.files()?,
    })
}

/// The first of `paths` that is a regular file reached without a link, with its stamp.
fn find_db<'p>(paths: &[&'p Path]) -> Option<(&'p Path, FileStamp)> {
    paths.iter().find_map(|p| {
        let fd = fileio::open_no_links(p, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC).ok()?;
        let meta = std::fs::File::from(fd).metadata().ok().filter(|m| m.is_file())?;
        Some((*p, FileStamp::of(&meta)))
    })
}

/// The stamp of the database's `-wal` file (changes may sit there while the database's own
/// stamp stays).
fn wal_stamp(db: &Path) -> Option<(u64, u64, i128)> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let m = std::fs::symlink_metadata(wal).ok().filter(|m| m.is_file())?;
    let s = FileStamp::of(&m);
    Some((s.ino, s.size, s.mtime_ns))
}

/// Reads every package header of the database at `db`, keeping the model candidates.
fn read_db(db: &Path, stamp: &FileStamp) -> Result<Vec<Record>, String> {
    use rusqlite::{Connection, OpenFlags};
    let err = |e: rusqlite::Error| format!("cannot read rpm database: {}", e.to_string().to_lowercase());
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(err)?;
    conn.pragma_update(None, "query_only", true).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(2)).map_err(err)?;
    let mut stmt =
        conn.prepare("SELECT CASE WHEN length(blob) <= ?1 THEN blob END, length(blob) FROM Packages").map_err(err)?;
    let mut rows = stmt.query([MAX_BLOB as i64]).map_err(err)?;
    let (mut out, mut files, mut packages) = (Vec::new(), 0usize, 0usize);
    while let Some(row) = rows.next().map_err(err)? {
        packages += 1;
        if packages > MAX_PACKAGES || files >= MAX_FILES_TOTAL {
            tracing::warn!(path = %db.display(), "rpm database larger than the bounds, rest skipped");
            break;
        }
        let Some(blob) = row.get_ref(0).ok().and_then(|v| v.as_blob_or_null().ok().flatten()) else {
            tracing::debug!(path = %db.display(), "rpm header too large or not a blob, skipped");
            continue;
        };
        match parse_header(blob) {
            Ok(pkg) => {
                files += pkg.files.len();
                let version = Some(pkg.evr());
                let paths = candidate_paths(Path::new("/"), pkg.files);
                if !paths.is_empty() {
                    out.push(Record { name: pkg.name, version, paths });
                }
            }
            Err(e) => tracing::debug!(path = %db.display(), error = %e, "rpm header skipped"),
        }
    }
    // The file read must be the one found without a link.
    let again = std::fs::symlink_metadata(db).map_err(|e| format!("cannot stat rpm database: {e}"))?;
    if again.ino() != stamp.ino || again.dev() != stamp.dev {
        return Err("rpm database replaced while read".to_owned());
    }
    Ok(out)
}

/// The rpm result kept in the scan cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RpmStamp {
    /// Inode, size and mtime of the database.
    db: (u64, u64, i128),
    /// Those of its `-wal` file, if any.
    wal: Option<(u64, u64, i128)>,
}

/// Adds the model candidates of every package in the first rpm database of `paths` to `index`.
pub(super) fn read_rpmdb(paths: &[&Path], reader: &mut Reader<'_>, index: &mut Index) {
    let Some((db, stamp)) = find_db(paths) else { return };
    reader.touched.insert(db.to_path_buf());
    let key = RpmStamp { db: (stamp.ino, stamp.size, stamp.mtime_ns), wal: wal_stamp(db) };
    if let Some(records) = reader.cache.and_then(|c| c.get_many(db, &key)) {
        reader.cached += 1;
        records.into_iter().for_each(|r| index.add(r));
        return;
    }
    match read_db(db, &stamp) {
        Ok(records) => {
            reader.read += 1;
            if let Some(c) = reader.cache {
                c.put_many(db, &key, &records);
            }
            records.into_iter().for_each(|r| index.add(r));
        }
        Err(e) => reader.error(db, e),
    }
}

#[cfg(test)]
mod tests;

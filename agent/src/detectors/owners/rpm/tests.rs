use super::*;
use crate::detectors::owners::records::RecordCache;
use proptest::prelude::*;

/// A header blob as the `Packages` table holds it, built from `pkg` (files split into
/// `DIRNAMES` + `BASENAMES` at their last `/`).
fn build(pkg: &RpmPackage) -> Vec<u8> {
    let mut data = Vec::new();
    let mut entries: Vec<(u32, u32, u32, u32)> = Vec::new();
    let mut strings = |data: &mut Vec<u8>, tag, kind, items: &[&str]| {
        entries.push((tag, kind, data.len() as u32, items.len() as u32));
        for s in items {
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        }
    };
    strings(&mut data, TAG_NAME, TYPE_STRING, &[&pkg.name]);
    strings(&mut data, TAG_VERSION, TYPE_STRING, &[&pkg.version]);
    strings(&mut data, TAG_RELEASE, TYPE_STRING, &[&pkg.release]);
    let mut dirs: Vec<&str> = Vec::new();
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for f in &pkg.files {
        let cut = f.rfind('/').map_or(0, |i| i + 1);
        let (d, b) = f.split_at(cut);
        let i = dirs.iter().position(|x| *x == d).unwrap_or_else(|| {
            dirs.push(d);
            dirs.len() - 1
        });
        bases.push(b);
        indexes.push(i as u32);
    }
    if !pkg.files.is_empty() {
        strings(&mut data, TAG_BASENAMES, TYPE_STRING_ARRAY, &bases);
        strings(&mut data, TAG_DIRNAMES, TYPE_STRING_ARRAY, &dirs);
    }
    let mut ints = |data: &mut Vec<u8>, tag, values: &[u32]| {
        while !data.len().is_multiple_of(4) {
            data.push(0);
        }
        entries.push((tag, TYPE_INT32, data.len() as u32, values.len() as u32));
        values.iter().for_each(|v| data.extend_from_slice(&v.to_be_bytes()));
    };
    if let Some(e) = pkg.epoch {
        ints(&mut data, TAG_EPOCH, &[e]);
    }
    if !pkg.files.is_empty() {
        ints(&mut data, TAG_DIRINDEXES, &indexes);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for (tag, kind, offset, count) in entries {
        for v in [tag, kind, offset, count] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.extend_from_slice(&data);
    out
}

fn sample() -> RpmPackage {
    RpmPackage {
        name: "aiscout-rpmtest".into(),
        version: "1.2".into(),
        release: "3".into(),
        epoch: Some(2),
        files: vec!["/usr/share/m/model.pkl".into(), "/usr/share/m/README".into(), "/etc/m.conf".into()],
    }
}

#[test]
fn header_round_trips_and_versions_carry_epoch_and_release() {
    let pkg = sample();
    let got = parse_header(&build(&pkg)).unwrap();
    assert_eq!(got, pkg);
    assert_eq!(got.evr(), "2:1.2-3");
    assert_eq!(RpmPackage { epoch: None, ..got }.evr(), "1.2-3");
}

#[test]
fn lying_headers_are_refused() {
    let good = build(&sample());
    assert_eq!(parse_header(&[]), Err(HeaderError::Truncated));
    assert_eq!(parse_header(good.get(..good.len() - 1).unwrap()), Err(HeaderError::Truncated));
    let mut many = good.clone();
    many.splice(0..4, 0x10000u32.to_be_bytes());
    assert_eq!(parse_header(&many), Err(HeaderError::TooManyEntries(0x10000)));
    // The name's offset past the data.
    let mut far = good.clone();
    far.splice(16..20, 0xffff_fff0u32.to_be_bytes());
    assert_eq!(parse_header(&far), Err(HeaderError::BadTag { tag: TAG_NAME }));
    // A basename count larger than the data.
    let mut lots = good.clone();
    let base_entry = 8 + 3 * 16;
    assert_eq!(be32(&lots, base_entry), Some(TAG_BASENAMES));
    lots.splice(base_entry + 12..base_entry + 16, 900_000u32.to_be_bytes());
    assert!(matches!(parse_header(&lots), Err(HeaderError::BadTag { .. })), "{:?}", parse_header(&lots));
    lots.splice(base_entry + 12..base_entry + 16, (MAX_FILES_PER_PACKAGE + 1).to_be_bytes());
    assert_eq!(parse_header(&lots), Err(HeaderError::TooManyFiles(MAX_FILES_PER_PACKAGE + 1)));
    // A directory index past DIRNAMES.
    let mut bad_dir = good.clone();
    let n = bad_dir.len();
    bad_dir.splice(n - 4..n, 7u32.to_be_bytes());
    assert_eq!(parse_header(&bad_dir), Err(HeaderError::BadTag { tag: TAG_DIRINDEXES }));
    assert_eq!(parse_header(&vec![0; MAX_BLOB + 1]), Err(HeaderError::TooLarge(MAX_BLOB + 1)));
    let no_name = RpmPackage { name: String::new(), ..sample() };
    assert_eq!(parse_header(&build(&no_name)), Err(HeaderError::NoName));
}

/// An rpm database at `dir/rpmdb.sqlite` holding `pkgs`.
fn write_db(dir: &Path, pkgs: &[RpmPackage]) -> std::path::PathBuf {
    let path = dir.join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
    )
    .unwrap();
    for p in pkgs {
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [build(p)]).unwrap();
    }
    conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b"garbage".to_vec()]).unwrap();
    path
}

#[test]
fn database_is_indexed_once_and_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = write_db(dir.path(), &[sample()]);
    let sled_db = sled::Config::new().path(dir.path().join("cache")).open().unwrap();
    let cache = RecordCache::open(&sled_db).unwrap();
    let missing = dir.path().join("missing.sqlite");
    let dbs = [missing.as_path(), db_path.as_path()];
    let mut reader = Reader { cache: Some(&cache), ..Reader::default() };
    let mut index = Index::default();
    read_rpmdb(&dbs, &mut reader, &mut index);
    assert!(reader.errors.is_empty(), "{:?}", reader.errors);
    assert_eq!(index.get(Path::new("/usr/share/m/model.pkl")), Some(("aiscout-rpmtest", Some("2:1.2-3"))));
    assert_eq!(index.get(Path::new("/usr/share/m/README")), None);
    let mut index = Index::default();
    read_rpmdb(&dbs, &mut reader, &mut index);
    assert_eq!((reader.read, reader.cached), (1, 1));
    assert!(index.get(Path::new("/usr/share/m/model.pkl")).is_some());
    let other = RpmPackage { name: "other".into(), files: vec!["/opt/o/w.onnx".into()], ..sample() };
    write_db(dir.path(), &[other]);
    let mut index = Index::default();
    read_rpmdb(&dbs, &mut reader, &mut index);
    assert_eq!(reader.read, 2);
    assert_eq!(index.get(Path::new("/opt/o/w.onnx")).map(|f| f.0), Some("other"));
}

#[test]
fn a_linked_database_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let real = tempfile::tempdir().unwrap();
    let db_path = write_db(real.path(), &[sample()]);
    let link = dir.path().join("rpmdb.sqlite");
    std::os::unix::fs::symlink(&db_path, &link).unwrap();
    let mut reader = Reader::default();
    let mut index = Index::default();
    read_rpmdb(&[link.as_path()], &mut reader, &mut index);
    assert_eq!(reader.read, 0);
    assert!(index.get(Path::new("/usr/share/m/model.pkl")).is_none());
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, b"not sqlite at all, just some bytes long enough to be a page header....").unwrap();
    let mut reader = Reader::default();
    read_rpmdb(&[path.as_path()], &mut reader, &mut Index::default());
    assert_eq!(reader.errors.len(), 1, "{:?}", reader.errors);
    assert_eq!(reader.errors[0].path, path.display().to_string());
    assert!(reader.errors[0].error.starts_with("cannot read rpm database"), "{:?}", reader.errors);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_header(&bytes);
    }

    #[test]
    fn mutated_headers_never_panic(at in 0usize..400, byte in any::<u8>()) {
        let mut blob = build(&sample());
        let len = blob.len();
        if let Some(b) = blob.get_mut(at % len) {
            *b = byte;
        }
        let _ = parse_header(&blob);
    }

    #[test]
    fn built_headers_round_trip(
        name in "[a-z][a-z0-9+._-]{0,20}",
        version in "[0-9a-z.]{1,8}",
        release in "[0-9a-z.]{0,8}",
        epoch in proptest::option::of(any::<u32>()),
        files in proptest::collection::vec("(/[a-z0-9._-]{1,8}){1,4}", 0..20),
    ) {
        let pkg = RpmPackage { name, version, release, epoch, files };
        prop_assert_eq!(parse_header(&build(&pkg)).unwrap(), pkg);
    }
}

//! Debian packages: `/var/lib/dpkg/info/<package>[:<arch>].list` lists every path a package
//! installed (absolute); versions come from `/var/lib/dpkg/status`, read only when a `.list`
//! that names a model candidate had to be read.

use std::collections::HashMap;
use std::path::Path;

use super::records::{candidate_paths, lines, Reader, Record};
use super::Index;
use crate::fileio::{self, Oversize};

/// Bytes of one `.list` read.
const LIST_LIMIT: u64 = 64 * 1024 * 1024;
/// Bytes of `status` read.
const STATUS_LIMIT: u64 = 256 * 1024 * 1024;
/// Entries of the `info` directory looked at.
const MAX_INFO_ENTRIES: usize = 1_000_000;

/// `Package` (and `Package:Architecture`) → `Version` of the installed packages of a dpkg
/// `status` file.
pub(super) fn parse_status(bytes: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for paragraph in String::from_utf8_lossy(bytes).split("\n\n") {
        let (mut name, mut arch, mut version, mut installed) = (None, None, None, false);
        for line in paragraph.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match key {
                "Package" => name = Some(value),
                "Architecture" => arch = Some(value),
                "Version" => version = Some(value),
                "Status" => installed = value.ends_with(" installed"),
                _ => {}
            }
        }
        if let (Some(name), Some(version), true) = (name, version, installed) {
            if let Some(arch) = arch {
                out.insert(format!("{name}:{arch}"), version.to_owned());
            }
            out.insert(name.to_owned(), version.to_owned());
        }
    }
    out
}

/// Adds the model candidates every installed Debian package lists to `index`; `info` is dpkg's
/// `info` directory, its `status` file beside it.
pub(super) fn read_info(info: &Path, reader: &mut Reader<'_>, index: &mut Index) {
    let entries = match std::fs::read_dir(info) {
        Ok(e) => e,
        Err(e) if fileio::is_absent(&e) => return,
        Err(e) => {
            reader.error(info, format!("cannot read dpkg info directory: {}", e.to_string().to_lowercase()));
            return;
        }
    };
    let status_path = info.parent().map(|d| d.join("status"));
    let mut versions: Option<HashMap<String, String>> = None;
    for entry in entries.take(MAX_INFO_ENTRIES).flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(package) = file_name.strip_suffix(".list") else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let record = reader.load(&entry.path(), LIST_LIMIT, |bytes| {
            let paths = candidate_paths(Path::new("/"), lines(bytes)?);
            let version = if paths.is_empty() {
                None
            } else {
                let versions = versions.get_or_insert_with(|| {
                    status_path
                        .as_deref()
                        .and_then(|p| fileio::read_found_if_present(p, STATUS_LIMIT, Oversize::Refuse).ok().flatten())
                        .map(|b| parse_status(&b))
                        .unwrap_or_default()
                });
                versions.get(package).cloned()
            };
            let name = package.split(':').next().unwrap_or(package).to_owned();
            Ok(Record { name, version, paths })
        });
        if let Some(record) = record {
            index.add(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_versions_of_installed_packages() {
        let status = b"Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: b\nStatus: install ok installed\nVersion: 3:4.5\nDescription: x\n y\n";
        let v = parse_status(status);
        assert_eq!(v.get("a").map(String::as_str), Some("1.0-1"));
        assert_eq!(v.get("a:amd64").map(String::as_str), Some("1.0-1"));
        assert_eq!(v.get("b").map(String::as_str), Some("3:4.5"));
        assert!(!v.contains_key("gone"));
    }

    #[test]
    fn lists_are_attributed_with_status_versions() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("info");
        std::fs::create_dir(&info).unwrap();
        std::fs::write(
            dir.path().join("status"),
            b"Package: m\nStatus: install ok installed\nArchitecture: all\nVersion: 1.2\n",
        )
        .unwrap();
        std::fs::write(info.join("m.list"), b"/.\n/usr\n/usr/share/m/model.pkl\n/usr/share/m/README\n").unwrap();
        std::fs::write(info.join("m.md5sums"), b"x").unwrap();
        let mut index = Index::default();
        let mut reader = Reader::default();
        read_info(&info, &mut reader, &mut index);
        let (name, version) = index.get(Path::new("/usr/share/m/model.pkl")).unwrap();
        assert_eq!((name, version), ("m", Some("1.2")));
        assert!(index.get(Path::new("/usr/share/m/README")).is_none());
    }
}

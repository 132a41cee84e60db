//! Python distributions of one site directory: `*.dist-info/RECORD` (CSV whose first field is
//! a path relative to the site directory, quoted when it holds a comma) and
//! `*.egg-info/installed-files.txt` (paths relative to the egg-info directory). Name and version
//! from `METADATA`/`PKG-INFO`, else from the directory's name.

use std::path::Path;

use super::records::{candidate_paths, lines, Reader, Record};
use super::Index;
use crate::detectors::frameworks::{normalize_name, parse_dist_dir_name, parse_metadata};
use crate::fileio::{self, Oversize};

/// Bytes of a `RECORD` or `installed-files.txt` read (torch's is about 2 MiB).
const RECORD_LIMIT: u64 = 64 * 1024 * 1024;
/// Bytes of `METADATA`/`PKG-INFO` read: the header comes first.
const METADATA_LIMIT: u64 = 64 * 1024;
/// Entries of a site directory looked at.
const MAX_SITE_ENTRIES: usize = 100_000;

/// The first CSV field of a `RECORD` line.
fn record_path(line: &str) -> Option<String> {
    let Some(rest) = line.strip_prefix('"') else {
        return line.split(',').next().filter(|p| !p.is_empty()).map(str::to_owned);
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
        } else if chars.peek() == Some(&'"') {
            chars.next();
            out.push('"');
        } else {
            return Some(out);
        }
    }
    None
}

/// Name (PEP 503) and version of the distribution whose metadata directory is `dist`.
fn name_version(dist: &Path, dir_name: &str, metadata_file: &str) -> Option<(String, Option<String>)> {
    let from_file = fileio::read_found_if_present(&dist.join(metadata_file), METADATA_LIMIT, Oversize::Prefix)
        .ok()
        .flatten()
        .and_then(|b| parse_metadata(&b))
        .map(|(n, v)| (n, Some(v)));
    let (name, version) = from_file.or_else(|| parse_dist_dir_name(dir_name))?;
    Some((normalize_name(&name), version))
}

/// Adds the files of every distribution installed in `site` to `index`.
pub(super) fn read_site(site: &Path, reader: &mut Reader<'_>, index: &mut Index) {
    let entries = match std::fs::read_dir(site) {
        Ok(e) => e,
        Err(e) => {
            reader.error(site, format!("cannot read site directory: {}", e.to_string().to_lowercase()));
            return;
        }
    };
    for entry in entries.take(MAX_SITE_ENTRIES).flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        let lower = dir_name.to_ascii_lowercase();
        let dist = entry.path();
        let record = if lower.ends_with(".dist-info") {
            reader.load(&dist.join("RECORD"), RECORD_LIMIT, |bytes| {
                let (name, version) = name_version(&dist, &dir_name, "METADATA")
                    .ok_or_else(|| "cannot tell the distribution's name".to_owned())?;
                let lines = lines(bytes)?;
                Ok(Record { name, version, paths: candidate_paths(site, lines.iter().filter_map(|l| record_path(l))) })
            })
        } else if lower.ends_with(".egg-info") {
            reader.load(&dist.join("installed-files.txt"), RECORD_LIMIT, |bytes| {
                let (name, version) = name_version(&dist, &dir_name, "PKG-INFO")
                    .ok_or_else(|| "cannot tell the distribution's name".to_owned())?;
                let lines = lines(bytes)?;
                Ok(Record { name, version, paths: candidate_paths(&dist, lines.iter().map(|l| l.trim())) })
            })
        } else {
            continue;
        };
        if let Some(record) = record {
            index.add(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_fields() {
        assert_eq!(record_path("joblib/test/data/a.pkl,sha256=x,12").as_deref(), Some("joblib/test/data/a.pkl"));
        assert_eq!(record_path("\"a,\"\"b\"\".pkl\",sha256=x,1").as_deref(), Some("a,\"b\".pkl"));
        assert_eq!(record_path("\"unterminated"), None);
        assert_eq!(record_path(",,"), None);
    }
}

//! Conda packages of one environment: each `conda-meta/*.json` record lists its `files`
//! relative to the environment's root.

use std::path::Path;

use serde::Deserialize;

use super::records::{candidate_paths, Reader, Record};
use super::Index;
use crate::detectors::frameworks::normalize_name;

/// Bytes of a `conda-meta/*.json` read (their `files` lists run to megabytes).
const CONDA_META_LIMIT: u64 = 64 * 1024 * 1024;
/// Records of one `conda-meta` directory looked at.
const MAX_RECORDS: usize = 100_000;

/// The fields of a conda record that attribute files.
#[derive(Debug, Deserialize)]
struct CondaRecord {
    /// Package name.
    name: String,
    /// Version.
    version: String,
    /// Files, relative to the environment's root.
    #[serde(default)]
    files: Vec<String>,
}

/// Parses a record: its name (PEP 503, as the frameworks section reports it), version and the
/// model candidates among its files.
fn parse(root: &Path, bytes: &[u8]) -> Result<Record, String> {
    let r: CondaRecord = serde_json::from_slice(bytes)
        .map_err(|e| format!("cannot parse conda record: {}", e.to_string().to_lowercase()))?;
    if r.files.len() > super::records::MAX_RECORD_LINES {
        return Err(format!("conda record lists more than {} files", super::records::MAX_RECORD_LINES));
    }
    Ok(Record { name: normalize_name(&r.name), version: Some(r.version), paths: candidate_paths(root, &r.files) })
}

/// Adds the files of every conda package of the environment at `root` to `index`.
pub(super) fn read_env(root: &Path, reader: &mut Reader<'_>, index: &mut Index) {
    let meta = root.join("conda-meta");
    let entries = match std::fs::read_dir(&meta) {
        Ok(e) => e,
        Err(e) => {
            reader.error(&meta, format!("cannot read conda-meta: {}", e.to_string().to_lowercase()));
            return;
        }
    };
    for entry in entries.take(MAX_RECORDS).flatten() {
        let is_json = entry.file_name().to_string_lossy().ends_with(".json");
        if !is_json || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let Some(record) = reader.load(&entry.path(), CONDA_META_LIMIT, |b| parse(root, b)) {
            index.add(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_relative_to_the_root() {
        let json = br#"{"name":"PyTorch","version":"2.3.0","build":"x","files":["lib/python3.11/site-packages/t/m.pt","bin/x"]}"#;
        let r = parse(Path::new("/c/envs/e"), json).unwrap();
        assert_eq!(r.name, "pytorch");
        assert_eq!(r.paths, vec!["/c/envs/e/lib/python3.11/site-packages/t/m.pt".to_owned()]);
        assert!(parse(Path::new("/c"), b"[]").unwrap_err().starts_with("cannot parse conda record"));
    }
}

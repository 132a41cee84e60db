//! Installed packages: Python distributions in a site directory (`*.dist-info/METADATA`,
//! `*.egg-info/PKG-INFO` or a PKG-INFO file named `*.egg-info`) and conda packages
//! (`conda-meta/*.json`), their names normalised by [`normalize_name`] (PEP 503), and the
//! GPU-build rules.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::files::{list_dir, read_optional, Errors};
use super::watchlist::{normalize_name, Watchlist};
use crate::fileio::{self, Oversize};
use crate::report::inventory::Ecosystem;

/// Bytes of `METADATA`/`PKG-INFO` read: the header comes first and is small.
const METADATA_LIMIT: u64 = 64 * 1024;
/// Bytes of a `conda-meta/*.json` read (their `files` lists run to megabytes).
const CONDA_META_LIMIT: u64 = 32 * 1024 * 1024;
/// Bytes of an `INSTALLER` file read.
const INSTALLER_LIMIT: u64 = 64;

/// One package of an environment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Package {
    /// Where its name comes from.
    pub ecosystem: Ecosystem,
    /// Normalised name (PEP 503 for pypi and conda; npm and native as they are).
    pub name: String,
    /// Installed version (npm: declared range when not installed).
    pub version: Option<String>,
    /// A GPU build, by the rules of [`is_gpu_build`].
    pub gpu_build: bool,
    /// The executable, for native entries.
    pub path: Option<String>,
}

impl Package {
    /// A package named `name` (normalised by the caller), its GPU build decided from its name,
    /// version and (conda) build string.
    pub(super) fn new(ecosystem: Ecosystem, name: String, version: Option<String>, build: Option<&str>) -> Self {
        let gpu_build = is_gpu_build(&name, version.as_deref(), build);
        Self { ecosystem, name, version, gpu_build, path: None }
    }
}

/// `Name` and `Version` from the header of a `METADATA` or `PKG-INFO` file (the lines before
/// the first blank line; keys case-insensitive, continuation lines skipped). `None` unless both
/// are present and non-empty.
pub fn parse_metadata(bytes: &[u8]) -> Option<(String, String)> {
    let mut name = None;
    let mut version = None;
    for raw in bytes.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            break;
        }
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else { continue };
        let (Some(key), Some(value)) = (line.get(..colon), line.get(colon + 1..)) else { continue };
        let Ok(value) = std::str::from_utf8(value) else { continue };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let slot = if key.eq_ignore_ascii_case(b"name") {
            &mut name
        } else if key.eq_ignore_ascii_case(b"version") {
            &mut version
        } else {
            continue;
        };
        slot.get_or_insert_with(|| value.to_owned());
    }
    Some((name?, version?))
}

/// Name and version from a metadata directory's name: `name-version.dist-info`,
/// `name-version-pyX.Y.egg-info`, or `name.egg-info` (no version). Case of the suffix ignored.
pub fn parse_dist_dir_name(dir_name: &str) -> Option<(String, Option<String>)> {
    let lower = dir_name.to_ascii_lowercase();
    let suffix_len = [".dist-info", ".egg-info"].iter().find(|s| lower.ends_with(*s))?.len();
    let stem = dir_name.get(..dir_name.len().checked_sub(suffix_len)?)?;
    let (name, version) = match stem.split_once('-') {
        Some((name, rest)) => (name, rest.split('-').next().filter(|v| !v.is_empty())),
        None => (stem, None),
    };
    (!name.is_empty()).then(|| (name.to_owned(), version.map(str::to_owned)))
}

/// The fields of a conda package record that the inventory needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CondaPackage {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string (`py3.11_cuda12.1_cudnn8.9.2_0`).
    #[serde(default)]
    pub build: String,
}

/// `name`, `version` and `build` of a `conda-meta/*.json` record; every other field (the
/// megabytes of `files`, `paths_data`) is skipped without being kept.
pub fn parse_conda_meta(bytes: &[u8]) -> Option<CondaPackage> {
    serde_json::from_slice::<CondaPackage>(bytes).ok().filter(|p| !p.name.is_empty())
}

/// The same from a record's file name, `name-version-build.json`.
pub fn parse_conda_file_name(file_name: &str) -> Option<CondaPackage> {
    let stem = file_name.strip_suffix(".json")?;
    let mut parts = stem.rsplitn(3, '-');
    let (build, version, name) = (parts.next()?, parts.next()?, parts.next()?);
    if [name, version, build].iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(CondaPackage { name: name.to_owned(), version: version.to_owned(), build: build.to_owned() })
}

/// Whether a package is a GPU build:
/// 1. a local version `+cuXXX`, `+cudaXX` or `+rocmX` (`2.3.1+cu121`);
/// 2. an `nvidia-*` package (the CUDA runtime wheels);
/// 3. a `-`-separated name part after the first that is `gpu`, `cuda`, `rocm`, or one of those
///    (or `cu`) followed by a digit (`onnxruntime-gpu`, `nvidia-cublas-cu12`, `cupy-cuda12x`);
/// 4. for conda, a `_`-separated build-string part of the same form (`py3.11_cuda12.1_…`,
///    `cuda120_py311h…`).
pub(super) fn is_gpu_build(name: &str, version: Option<&str>, build: Option<&str>) -> bool {
    let name_gpu = name.starts_with("nvidia-") || name.split('-').skip(1).any(|w| w == "gpu" || is_gpu_word(w));
    let build_gpu = build.is_some_and(|b| b.split('_').any(is_gpu_word));
    version.is_some_and(is_gpu_version) || name_gpu || build_gpu
}

/// Rule 1 of [`is_gpu_build`]: a `+cuXXX`, `+cudaXX` or `+rocmX` local version.
pub(super) fn is_gpu_version(version: &str) -> bool {
    version.split_once('+').is_some_and(|(_, local)| is_gpu_word(local))
}

/// `cuda`, `rocm`, or `cu`/`cuda`/`rocm` followed by a digit, at the start of `word`.
fn is_gpu_word(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    let digit_after = |p: &str| w.strip_prefix(p).is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    w == "cuda" || w == "rocm" || ["cu", "cuda", "rocm"].iter().any(|p| digit_after(p))
}

/// The Python distributions of one site directory. With `conda` (the normalised names a conda
/// environment's records list, and the distributions they provide), a distribution conda
/// already lists, or whose `INSTALLER` is `conda`, is left out.
pub(super) fn read_site_dir(dir: &Path, conda: Option<&BTreeSet<String>>, errors: &mut Errors) -> Vec<Package> {
    let mut out = Vec::new();
    for entry in list_dir(dir, errors) {
        let lower = entry.name.to_ascii_lowercase();
        let is_dist_info = lower.ends_with(".dist-info");
        if !is_dist_info && !lower.ends_with(".egg-info") {
            continue;
        }
        let metadata_file = if entry.file_type.is_dir() {
            Some(entry.path.join(if is_dist_info { "METADATA" } else { "PKG-INFO" }))
        } else if entry.file_type.is_file() && !is_dist_info {
            Some(entry.path.clone())
        } else if entry.file_type.is_file() || entry.file_type.is_symlink() {
            None
        } else {
            continue;
        };
        let from_file = metadata_file
            .and_then(|f| read_optional(&f, METADATA_LIMIT, "package metadata", errors))
            .and_then(|bytes| parse_metadata(&bytes))
            .map(|(name, version)| (name, Some(version)));
        let Some((name, version)) = from_file.or_else(|| parse_dist_dir_name(&entry.name)) else {
            continue;
        };
        let name = normalize_name(&name);
        if let Some(listed) = conda {
            if listed.contains(&name) || (entry.file_type.is_dir() && installed_by_conda(&entry.path)) {
                continue;
            }
        }
        out.push(Package::new(Ecosystem::Pypi, name, version, None));
    }
    out
}

/// Whether the distribution's `INSTALLER` file says conda.
fn installed_by_conda(dist_dir: &Path) -> bool {
    fileio::read_bounded(&dist_dir.join("INSTALLER"), INSTALLER_LIMIT, Oversize::Prefix)
        .is_ok_and(|b| b.trim_ascii() == b"conda")
}

/// The packages of a `conda-meta` directory, and the names to leave out of its site
/// directories (each record's name and the distribution it provides).
pub(super) fn read_conda_meta(dir: &Path, errors: &mut Errors) -> (Vec<Package>, BTreeSet<String>) {
    let watchlist = Watchlist::get();
    let mut packages = Vec::new();
    let mut provided = BTreeSet::new();
    for entry in list_dir(dir, errors) {
        if !entry.name.ends_with(".json") || !entry.file_type.is_file() {
            continue;
        }
        let record = read_optional(&entry.path, CONDA_META_LIMIT, "conda package record", errors)
            .and_then(|bytes| parse_conda_meta(&bytes))
            .or_else(|| parse_conda_file_name(&entry.name));
        let Some(record) = record else { continue };
        let name = normalize_name(&record.name);
        if let Some(dist) = watchlist.conda_provides(&name) {
            provided.insert(dist.to_owned());
        }
        provided.insert(name.clone());
        packages.push(Package::new(Ecosystem::Conda, name, Some(record.version), Some(&record.build)));
    }
    (packages, provided)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_header_only() {
        let m = b"Metadata-Version: 2.1\r\nname: torch\r\nVersion: 2.3.1+cu121\r\n\r\nName: not-this\n";
        assert_eq!(parse_metadata(m), Some(("torch".into(), "2.3.1+cu121".into())));
        assert_eq!(parse_metadata(b"Metadata-Version: 2.1\n\nName: x\nVersion: 1\n"), None);
        assert_eq!(parse_metadata(b"Name: x\n"), None);
        assert_eq!(parse_metadata(b"Name:\nVersion: 1\n"), None);
        assert_eq!(parse_metadata(b"Name: x\n  continued: y\nVersion: 1"), Some(("x".into(), "1".into())));
    }

    #[test]
    fn directory_names_give_a_fallback() {
        assert_eq!(
            parse_dist_dir_name("torch-2.3.1+cu121.dist-info"),
            Some(("torch".into(), Some("2.3.1+cu121".into())))
        );
        assert_eq!(parse_dist_dir_name("six-1.16.0-py3.11.egg-info"), Some(("six".into(), Some("1.16.0".into()))));
        assert_eq!(parse_dist_dir_name("mypkg.egg-info"), Some(("mypkg".into(), None)));
        assert_eq!(parse_dist_dir_name("X-1.DIST-INFO"), Some(("X".into(), Some("1".into()))));
        assert_eq!(parse_dist_dir_name(".dist-info"), None);
        assert_eq!(parse_dist_dir_name("torch"), None);
    }

    #[test]
    fn conda_records_and_file_names() {
        let rec = br#"{"build":"py3.11_cuda12.1_cudnn8.9.2_0","build_number":0,"channel":"https://conda.anaconda.org/pytorch/linux-64","files":["lib/a.so","lib/b.so"],"name":"pytorch","version":"2.3.1","depends":["python >=3.11"]}"#;
        let p = parse_conda_meta(rec).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("pytorch", "2.3.1"));
        assert!(is_gpu_build("pytorch", Some("2.3.1"), Some(&p.build)));
        assert_eq!(parse_conda_meta(b"{\"version\":\"1\"}"), None);
        let f = parse_conda_file_name("python-dateutil-2.9.0-pyhd8ed1ab_0.json").unwrap();
        assert_eq!(
            (f.name.as_str(), f.version.as_str(), f.build.as_str()),
            ("python-dateutil", "2.9.0", "pyhd8ed1ab_0")
        );
        assert_eq!(parse_conda_file_name("x-1.json"), None);
    }

    #[test]
    fn gpu_builds() {
        assert!(is_gpu_build("torch", Some("2.3.1+cu121"), None));
        assert!(is_gpu_build("torch", Some("2.3.1+rocm6.0"), None));
        assert!(!is_gpu_build("torch", Some("2.3.1+cpu"), None));
        assert!(!is_gpu_build("torch", Some("2.3.1"), None));
        assert!(is_gpu_build("nvidia-cublas-cu12", Some("12.1.3.1"), None));
        assert!(is_gpu_build("onnxruntime-gpu", None, None));
        assert!(is_gpu_build("tensorflow-gpu", None, None));
        assert!(is_gpu_build("cupy-cuda12x", None, None));
        assert!(is_gpu_build("jax-cuda12-plugin", None, None));
        assert!(is_gpu_build("mxnet-cu112", None, None));
        assert!(!is_gpu_build("cuda-python", None, None));
        assert!(!is_gpu_build("gpustat", None, None));
        assert!(!is_gpu_build("pytorch", Some("2.3.1"), Some("cpu_py311h1234_0")));
        assert!(is_gpu_build("pytorch", Some("2.3.1"), Some("cuda120_py311h1234_300")));
        assert!(!is_gpu_build("curl", Some("8.0"), Some("h0_cudnn")));
    }

    #[test]
    fn site_dir_with_fallbacks_and_conda_skips() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        let dist = |n: &str, meta: Option<&str>| {
            let d = site.join(n);
            std::fs::create_dir(&d).unwrap();
            if let Some(m) = meta {
                std::fs::write(d.join("METADATA"), m).unwrap();
            }
            d
        };
        dist("Torch-2.3.1+cu121.dist-info", Some("Name: torch\nVersion: 2.3.1+cu121\n\nbody"));
        dist("no_meta-1.0.dist-info", None);
        let numpy = dist("numpy-1.26.4.dist-info", Some("Name: numpy\nVersion: 1.26.4\n"));
        std::fs::write(numpy.join("INSTALLER"), "conda\n").unwrap();
        std::fs::write(site.join("legacy-0.1-py3.11.egg-info"), "Name: Legacy_Pkg\nVersion: 0.1\n").unwrap();
        std::fs::write(site.join("not-a-package.txt"), "x").unwrap();
        let fifo = dist("fifo_pkg-1.0.dist-info", None);
        rustix::fs::mkfifoat(rustix::fs::CWD, fifo.join("METADATA"), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, site.join("pipe-1.0.egg-info"), rustix::fs::Mode::from_raw_mode(0o600))
            .unwrap();

        let mut errors = Errors::default();
        let all = read_site_dir(site, None, &mut errors);
        let names: Vec<(&str, Option<&str>, bool)> =
            all.iter().map(|p| (p.name.as_str(), p.version.as_deref(), p.gpu_build)).collect();
        assert_eq!(
            names,
            vec![
                ("torch", Some("2.3.1+cu121"), true),
                ("fifo-pkg", Some("1.0"), false),
                ("legacy-pkg", Some("0.1"), false),
                ("no-meta", Some("1.0"), false),
                ("numpy", Some("1.26.4"), false),
            ]
        );
        // A FIFO is never opened: skipped by its entry type, or refused (not blocked on) and
        // reported when it stands where METADATA should be.
        let errs = errors.into_sorted();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].path.ends_with("fifo_pkg-1.0.dist-info/METADATA"), "{errs:?}");

        let listed: BTreeSet<String> = ["torch".to_owned()].into();
        let mut errors = Errors::default();
        let pip_only: Vec<String> =
            read_site_dir(site, Some(&listed), &mut errors).into_iter().map(|p| p.name).collect();
        assert_eq!(pip_only, ["fifo-pkg", "legacy-pkg", "no-meta"]);
    }
}

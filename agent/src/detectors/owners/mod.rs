//! Owners: which installed package shipped a model file, from the package manager's own
//! records. A venv with torch, scikit-learn and scipy holds dozens of test pickles and arrays;
//! they are models, and still get verdicts (a hostile pickle inside a package is a supply-chain
//! attack), but they are not the user's models, so each carries the package that owns it.
//!
//! A model (a directory model: the first of its members that is owned) is attributed by the
//! first rule that applies:
//! 1. **npm**: under `node_modules/<name>/` or `node_modules/@scope/<name>/` (the innermost
//!    such directory), the package whose `package.json` is there; `environment` is the project
//!    (the directory holding the outermost `node_modules`).
//! 2. **conda**: under a conda environment the walk found (`conda-meta/history`), a file some
//!    `conda-meta/*.json` lists in `files`; `environment` is the environment's root.
//! 3. **pypi**: under a `site-packages` or `dist-packages` directory, a file some
//!    `*.dist-info/RECORD` (paths relative to the site directory, `../../bin/…` resolved
//!    lexically) or `*.egg-info/installed-files.txt` of that directory lists; `environment` is
//!    the venv or conda root (from the walk's markers) holding it, else the site directory's
//!    prefix (`/usr/local`, `~/.local`).
//! 4. **deb**: outside every home, under `/usr`, `/opt`, `/lib*`, `/bin`, `/sbin`, `/etc`,
//!    `/var` or `/srv`, a file some `/var/lib/dpkg/info/*.list` lists (merged `/usr`: `/lib/x`
//!    and `/usr/lib/x` are one file); version from `/var/lib/dpkg/status`; `environment` is
//!    `system`.
//!
//! 5. **rpm**: under the same system directories, outside every home, a file some package of
//!    the rpm database (`/usr/lib/sysimage/rpm/rpmdb.sqlite`, else `/var/lib/rpm/rpmdb.sqlite`;
//!    SQLite, rpm 4.16+) lists in its header; version `[epoch:]version-release`; `environment`
//!    is `system`. The Berkeley DB and NDB databases of older rpm are not read, and running
//!    `rpm -qf` per file is refused by design. See [`rpm`] for the header format and how the
//!    database is read without disturbing rpm.
//!
//! Cost: nothing is read for a model that no rule's path test selects. Each index (one per site
//! directory, conda environment, `node_modules` package and one each for dpkg and rpm) is built the first
//! time a model needs it, and each record file through [`records::Reader`], which keeps the
//! model-candidate paths of every record file in the scan cache keyed by its stamp, so a rescan
//! lists the record directories and `lstat`s their records but reads none that did not change.

pub mod records;

mod conda;
mod dpkg;
mod npm;
mod pypi;
pub mod rpm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::detectors::markers::Markers;
use crate::report::{FileError, ModelEntry, ModelOwner, OwnerEcosystem};
pub use records::RecordCache;
use records::{Reader, Record};

/// Directories under which a file may belong to a system package.
const SYSTEM_DIRS: &[&str] =
    &["/usr", "/opt", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/var", "/srv"];
/// Directories that merged-`/usr` systems link into `/usr`.
const MERGED_USR: &[&str] = &["/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"];

/// Where to look.
#[derive(Debug, Clone)]
pub struct OwnerOptions {
    /// Home directories: a file under one is never looked up in the system's package database.
    pub homes: Vec<PathBuf>,
    /// dpkg's `info` directory (`/var/lib/dpkg/info`; a test's own).
    pub dpkg_info: PathBuf,
    /// rpm's SQLite databases, the first present is read ([`rpm::DB_PATHS`]; a test's own).
    pub rpm_dbs: Vec<PathBuf>,
}

impl OwnerOptions {
    /// The host's own package databases, with `homes` excluded from them.
    pub fn new(homes: Vec<PathBuf>) -> Self {
        Self {
            homes,
            dpkg_info: PathBuf::from("/var/lib/dpkg/info"),
            rpm_dbs: rpm::DB_PATHS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// What attribution did.
#[derive(Debug, Default)]
pub struct OwnersOutcome {
    /// Models given an owner.
    pub owned: u64,
    /// Record files read (the others were answered by the cache).
    pub records_read: u64,
    /// Record files answered by the cache.
    pub records_cached: u64,
    /// Record files that could not be read or parsed.
    pub errors: Vec<FileError>,
    /// Every record file looked up, for [`RecordCache::retain`].
    pub records_touched: std::collections::HashSet<PathBuf>,
}

/// The files of some packages: path → index of its package in `packages`.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Name and version of each package with at least one model candidate.
    packages: Vec<(String, Option<String>)>,
    /// Model-candidate path → its package.
    files: HashMap<PathBuf, usize>,
}

impl Index {
    /// Adds what one record lists (the first record to list a path keeps it).
    fn add(&mut self, record: Record) {
        if record.paths.is_empty() {
            return;
        }
        let i = self.packages.len();
        self.packages.push((record.name, record.version));
        for p in record.paths {
            self.files.entry(PathBuf::from(p)).or_insert(i);
        }
    }

    /// The package that lists `path`.
    fn get(&self, path: &Path) -> Option<(&str, Option<&str>)> {
        let (name, version) = self.packages.get(*self.files.get(path)?)?;
        Some((name.as_str(), version.as_deref()))
    }
}

/// The indexes built so far in one scan.
struct Attributor<'a> {
    /// Options.
    opts: &'a OwnerOptions,
    /// Record reading through the cache.
    reader: Reader<'a>,
    /// Conda environment roots the walk found.
    conda_roots: Vec<PathBuf>,
    /// Venv and conda roots the walk found (the `environment` of pypi files).
    env_roots: Vec<PathBuf>,
    /// Site directory → its distributions' files.
    sites: HashMap<PathBuf, Index>,
    /// Conda root → its packages' files.
    condas: HashMap<PathBuf, Index>,
    /// `node_modules` package directory → its `package.json`.
    npm: HashMap<PathBuf, Option<Record>>,
    /// dpkg's files, once needed.
    dpkg: Option<Index>,
    /// rpm's files, once needed.
    rpm: Option<Index>,
}

/// The longest of `roots` that `path` lies under.
fn enclosing<'r>(roots: &'r [PathBuf], path: &Path) -> Option<&'r PathBuf> {
    roots.iter().filter(|r| path.starts_with(r)).max_by_key(|r| r.as_os_str().len())
}

/// The nearest `site-packages` or `dist-packages` directory above `path`.
fn site_dir(path: &Path) -> Option<&Path> {
    path.ancestors().skip(1).find(|a| a.file_name().is_some_and(|n| n == "site-packages" || n == "dist-packages"))
}

/// `path` with `/usr` added or removed for the directories merged-`/usr` systems link.
fn merged_usr_twin(path: &Path) -> Option<PathBuf> {
    if let Ok(rest) = path.strip_prefix("/usr") {
        let twin = Path::new("/").join(rest);
        return MERGED_USR.iter().any(|d| twin.starts_with(d)).then_some(twin);
    }
    MERGED_USR
        .iter()
        .any(|d| path.starts_with(d))
        .then(|| Path::new("/usr").join(path.strip_prefix("/").unwrap_or(path)))
}

fn owner(ecosystem: OwnerEcosystem, (name, version): (&str, Option<&str>), environment: String) -> ModelOwner {
    ModelOwner { ecosystem, name: name.to_owned(), version: version.map(str::to_owned), environment }
}

impl Attributor<'_> {
    fn npm(&mut self, path: &Path) -> Option<ModelOwner> {
        let place = npm::placement(path)?;
        let reader = &mut self.reader;
        let record =
            self.npm.entry(place.package_dir.clone()).or_insert_with(|| npm::read_package(&place.package_dir, reader));
        let (name, version) = match record {
            Some(r) if !r.name.is_empty() => (r.name.as_str(), r.version.as_deref()),
            Some(r) => (place.dir_name.as_str(), r.version.as_deref()),
            None => (place.dir_name.as_str(), None),
        };
        Some(owner(OwnerEcosystem::Npm, (name, version), place.project.display().to_string()))
    }

    fn conda(&mut self, path: &Path) -> Option<ModelOwner> {
        let root = enclosing(&self.conda_roots, path)?.clone();
        let reader = &mut self.reader;
        let index = self.condas.entry(root.clone()).or_insert_with(|| {
            let mut index = Index::default();
            conda::read_env(&root, reader, &mut index);
            index
        });
        Some(owner(OwnerEcosystem::Conda, index.get(path)?, root.display().to_string()))
    }

    fn pypi(&mut self, path: &Path) -> Option<ModelOwner> {
        let site = site_dir(path)?.to_path_buf();
        let reader = &mut self.reader;
        let index = self.sites.entry(site.clone()).or_insert_with(|| {
            let mut index = Index::default();
            pypi::read_site(&site, reader, &mut index);
            index
        });
        let found = index.get(path)?;
        let environment = enclosing(&self.env_roots, &site)
            .cloned()
            .or_else(|| site.ancestors().nth(3).map(Path::to_path_buf))
            .unwrap_or_else(|| site.clone());
        Some(owner(OwnerEcosystem::Pypi, found, environment.display().to_string()))
    }

    /// Whether `path` may belong to a system package (rules 4 and 5).
    fn in_system_dirs(&self, path: &Path) -> bool {
        SYSTEM_DIRS.iter().any(|d| path.starts_with(d)) && !self.opts.homes.iter().any(|h| path.starts_with(h))
    }

    fn deb(&mut self, path: &Path) -> Option<ModelOwner> {
        if !self.in_system_dirs(path) {
            return None;
        }
        let reader = &mut self.reader;
        let info = &self.opts.dpkg_info;
        let index = self.dpkg.get_or_insert_with(|| {
            let mut index = Index::default();
            dpkg::read_info(info, reader, &mut index);
            index
        });
        let found = index.get(path).or_else(|| merged_usr_twin(path).and_then(|twin| index.get(&twin)))?;
        Some(owner(OwnerEcosystem::Deb, found, "system".to_owned()))
    }

    fn rpm(&mut self, path: &Path) -> Option<ModelOwner> {
        if !self.in_system_dirs(path) {
            return None;
        }
        let reader = &mut self.reader;
        let dbs: Vec<&Path> = self.opts.rpm_dbs.iter().map(PathBuf::as_path).collect();
        let index = self.rpm.get_or_insert_with(|| {
            let mut index = Index::default();
            rpm::read_rpmdb(&dbs, reader, &mut index);
            index
        });
        let found = index.get(path).or_else(|| merged_usr_twin(path).and_then(|twin| index.get(&twin)))?;
        Some(owner(OwnerEcosystem::Rpm, found, "system".to_owned()))
    }

    /// The owner of the file at `path`, by the rules of the module docs.
    fn owner_of(&mut self, path: &Path) -> Option<ModelOwner> {
        if path.components().any(|c| c.as_os_str() == "node_modules") {
            if let Some(o) = self.npm(path) {
                return Some(o);
            }
        }
        self.conda(path).or_else(|| self.pypi(path)).or_else(|| self.deb(path)).or_else(|| self.rpm(path))
    }
}

/// Gives every model in `models` that an installed package shipped its [`ModelOwner`]. `markers`
/// are the walk's (venv and conda roots); `cache` keeps what record files said between scans.
pub fn attribute(
    models: &mut [ModelEntry],
    markers: &Markers,
    cache: Option<&RecordCache>,
    opts: &OwnerOptions,
) -> OwnersOutcome {
    let conda_roots: Vec<PathBuf> =
        markers.conda_histories.iter().filter_map(|h| h.parent()?.parent()).map(Path::to_path_buf).collect();
    let mut env_roots: Vec<PathBuf> =
        markers.pyvenv_cfgs.iter().filter_map(|c| c.parent()).map(Path::to_path_buf).collect();
    env_roots.extend(conda_roots.iter().cloned());
    let mut a = Attributor {
        opts,
        reader: Reader { cache, ..Reader::default() },
        conda_roots,
        env_roots,
        sites: HashMap::new(),
        condas: HashMap::new(),
        npm: HashMap::new(),
        dpkg: None,
        rpm: None,
    };
    let mut owned = 0;
    for model in models.iter_mut() {
        let members =
            model.group.as_ref().filter(|g| g.kind == "directory").map(|g| g.members.clone()).unwrap_or_default();
        model.owner = std::iter::once(model.path.clone()).chain(members).find_map(|p| a.owner_of(Path::new(&p)));
        owned += u64::from(model.owner.is_some());
    }
    let mut errors = a.reader.errors;
    errors.sort_by(|x, y| (&x.path, &x.error).cmp(&(&y.path, &y.error)));
    errors.dedup();
    OwnersOutcome {
        owned,
        records_read: a.reader.read,
        records_cached: a.reader.cached,
        errors,
        records_touched: a.reader.touched,
    }
}

#[cfg(test)]
mod tests;

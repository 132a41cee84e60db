//! Python environments: where they are, what kind they are, and what they hold. Each is
//! examined once, keyed by its canonical path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files::{canonical, exists, is_dir, is_file, list_dir, read_optional, subdirs, Errors};
use super::packages::{read_conda_meta, read_site_dir};
use super::{at_prefix, Env};
use crate::detectors::markers::Markers;
use crate::report::inventory::{Ecosystem, EnvironmentKind};

/// Bytes of a `pyvenv.cfg` read.
const PYVENV_CFG_LIMIT: u64 = 64 * 1024;
/// Bytes of `~/.conda/environments.txt` read.
const ENVIRONMENTS_TXT_LIMIT: u64 = 1024 * 1024;
/// Conda installations under a home directory (each a base environment with `envs/*`).
const HOME_CONDA_ROOTS: &[&str] = &["miniconda3", "anaconda3", "miniforge3", "mambaforge", "micromamba", ".conda"];
/// pipx's venv directories under a home directory (older and newer layouts).
const HOME_PIPX_VENVS: &[&str] = &[".local/pipx/venvs", ".local/share/pipx/venvs"];
/// System `lib` directories and the package directory names their `python3*` hold.
const SYSTEM_SITES: &[(&str, &[&str])] = &[
    ("usr/lib", &["site-packages", "dist-packages"]),
    ("usr/local/lib", &["site-packages", "dist-packages"]),
    ("usr/lib64", &["site-packages"]),
    ("opt/homebrew/lib", &["site-packages"]),
];

/// What a `pyvenv.cfg` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PyvenvCfg {
    /// `home`: the directory of the base interpreter.
    pub home: Option<String>,
    /// `version` (venv), else `version_info` cut to its numeric part (virtualenv, uv).
    pub version: Option<String>,
    /// `executable`: the base interpreter (Python 3.11+ venv, uv).
    pub executable: Option<String>,
    /// `include-system-site-packages`, when it is `true` or `false`.
    pub include_system_site_packages: Option<bool>,
}

/// Parses a `pyvenv.cfg` (`key = value` lines; keys case-insensitive; anything else ignored).
pub fn parse_pyvenv_cfg(bytes: &[u8]) -> PyvenvCfg {
    let mut cfg = PyvenvCfg::default();
    let mut version_info = None;
    for line in String::from_utf8_lossy(bytes).lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "home" => cfg.home = Some(value.to_owned()),
            "version" => cfg.version = Some(value.to_owned()),
            "version_info" => version_info = Some(numeric_version(value)),
            "executable" => cfg.executable = Some(value.to_owned()),
            "include-system-site-packages" => cfg.include_system_site_packages = value.to_lowercase().parse().ok(),
            _ => {}
        }
    }
    cfg.version = cfg.version.or(version_info.filter(|v| !v.is_empty()));
    cfg
}

/// `3.11.4` from `3.11.4.final.0`: the leading numeric dot-separated parts.
fn numeric_version(v: &str) -> String {
    let parts: Vec<&str> =
        v.split('.').take_while(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).take(3).collect();
    parts.join(".")
}

/// `3.11` from `3.11.4`.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The kind an environment's own markers give: `conda-meta/` makes it conda, `pyvenv.cfg` a venv.
fn marker_kind(root: &Path) -> Option<EnvironmentKind> {
    if is_dir(&root.join("conda-meta")) {
        Some(EnvironmentKind::Conda)
    } else if is_file(&root.join("pyvenv.cfg")) {
        Some(EnvironmentKind::Venv)
    } else {
        None
    }
}

/// The `<lib>/<name_prefix>*/<sub>` directories that exist, canonical, sorted and distinct.
fn site_dirs_under(lib: &Path, name_prefix: &str, subs: &[&str], errors: &mut Errors) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in list_dir(lib, errors) {
        if !entry.name.starts_with(name_prefix) {
            continue;
        }
        for sub in subs {
            let dir = entry.path.join(sub);
            if is_dir(&dir) {
                out.extend(canonical(&dir, "site directory", errors));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `3.11` from `…/lib/python3.11/site-packages`; `None` for `python3`.
fn site_python_version(site: &Path) -> Option<String> {
    let dir = site.parent()?.file_name()?.to_str()?;
    let v = dir.strip_prefix("python")?;
    (v.starts_with(|c: char| c.is_ascii_digit()) && v.contains('.')).then(|| v.to_owned())
}

/// The base interpreter of a venv: `executable`, else the first of `home/pythonX.Y`,
/// `home/python3`, `home/python` that exists.
fn venv_interpreter(cfg: &PyvenvCfg) -> Option<String> {
    if let Some(exe) = &cfg.executable {
        return Some(exe.clone());
    }
    let home = Path::new(cfg.home.as_deref()?);
    let versioned = cfg.version.as_deref().map(|v| format!("python{}", major_minor(v)));
    versioned
        .into_iter()
        .chain(["python3".to_owned(), "python".to_owned()])
        .map(|name| home.join(name))
        .find(|p| exists(p))
        .map(|p| p.display().to_string())
}

/// Examines the environment whose prefix is `root` (canonical).
fn examine_prefix(root: PathBuf, kind: EnvironmentKind, errors: &mut Errors) -> Env {
    let cfg_path = root.join("pyvenv.cfg");
    let cfg = is_file(&cfg_path)
        .then(|| read_optional(&cfg_path, PYVENV_CFG_LIMIT, "pyvenv.cfg", errors))
        .flatten()
        .map(|bytes| parse_pyvenv_cfg(&bytes));
    let conda_meta = root.join("conda-meta");
    let (mut packages, conda_names) = if is_dir(&conda_meta) {
        let (packages, names) = read_conda_meta(&conda_meta, errors);
        (packages, Some(names))
    } else {
        (Vec::new(), None)
    };
    let mut site_dirs = Vec::new();
    for lib in ["lib", "lib64"] {
        site_dirs.extend(site_dirs_under(&root.join(lib), "python", &["site-packages", "dist-packages"], errors));
    }
    site_dirs.sort();
    site_dirs.dedup();
    for site in &site_dirs {
        packages.extend(read_site_dir(site, conda_names.as_ref(), errors));
    }
    let conda_python = packages.iter().find(|p| p.ecosystem == Ecosystem::Conda && p.name == "python");
    let python_version = cfg
        .as_ref()
        .and_then(|c| c.version.clone())
        .or_else(|| conda_python.and_then(|p| p.version.clone()))
        .or_else(|| site_dirs.iter().find_map(|s| site_python_version(s)));
    let interpreter = match &cfg {
        Some(cfg) => venv_interpreter(cfg),
        None => ["bin/python3", "bin/python"]
            .iter()
            .map(|b| root.join(b))
            .find(|p| exists(p))
            .map(|p| p.display().to_string()),
    };
    let mut env = Env::new(root.clone(), kind);
    env.prefix = Some(root);
    env.site_dirs = site_dirs;
    env.python_version = python_version;
    env.interpreter = interpreter;
    env.packages = packages;
    env
}

/// Examines the system or user site directory `site` (canonical).
fn examine_site(site: PathBuf, kind: EnvironmentKind, errors: &mut Errors) -> Env {
    let packages = read_site_dir(&site, None, errors);
    let python_dir = site.parent();
    let prefix = python_dir.and_then(Path::parent).and_then(Path::parent).map(Path::to_path_buf);
    let interpreter = match (&prefix, python_dir.and_then(Path::file_name)) {
        (Some(prefix), Some(name)) => Some(prefix.join("bin").join(name)).filter(|p| exists(p)),
        _ => None,
    };
    let mut env = Env::new(site.clone(), kind);
    env.python_version = site_python_version(&site);
    env.interpreter = interpreter.map(|p| p.display().to_string());
    env.prefix = prefix;
    env.site_dirs = vec![site];
    env.packages = packages;
    env
}

/// The Python environments found so far, each once by canonical path.
#[derive(Debug, Default)]
pub(super) struct PythonEnvs {
    /// The environments, in the order found.
    envs: Vec<Env>,
    /// Canonical path → index in `envs`.
    by_path: BTreeMap<PathBuf, usize>,
}

impl PythonEnvs {
    /// The environments found.
    pub(super) fn envs(&self) -> &[Env] {
        &self.envs
    }

    /// Hands the environments over.
    pub(super) fn into_envs(self) -> Vec<Env> {
        self.envs
    }

    /// Indices of the environments whose interpreter prefix is `prefix` (canonical).
    pub(super) fn with_prefix(&self, prefix: &Path) -> Vec<usize> {
        at_prefix(&self.envs, prefix).map(|(i, _)| i).collect()
    }

    /// Notes that the kernelspec `name` runs the interpreter of environment `index`.
    pub(super) fn add_kernel(&mut self, index: usize, name: &str) {
        if let Some(env) = self.envs.get_mut(index) {
            env.kernels.insert(name.to_owned());
        }
    }

    /// Adds the environment whose prefix is `root`, as `kind`, unless already found; returns its
    /// index (`None` when `root` is not a directory).
    pub(super) fn add_prefix(&mut self, root: &Path, kind: EnvironmentKind, errors: &mut Errors) -> Option<usize> {
        let path = canonical(root, "environment", errors)?;
        if let Some(&i) = self.by_path.get(&path) {
            return Some(i);
        }
        if !is_dir(&path) {
            return None;
        }
        let env = examine_prefix(path.clone(), kind, errors);
        Some(self.insert(path, env))
    }

    /// Adds `root` only when its own markers make it an environment.
    fn add_marked(&mut self, root: &Path, errors: &mut Errors) {
        if let Some(kind) = marker_kind(root) {
            self.add_prefix(root, kind, errors);
        }
    }

    /// Adds a system or user site directory.
    fn add_site(&mut self, site: &Path, kind: EnvironmentKind, errors: &mut Errors) {
        if !self.by_path.contains_key(site) {
            let env = examine_site(site.to_path_buf(), kind, errors);
            self.insert(site.to_path_buf(), env);
        }
    }

    fn insert(&mut self, path: PathBuf, env: Env) -> usize {
        let i = self.envs.len();
        self.envs.push(env);
        self.by_path.insert(path, i);
        i
    }

    /// A conda installation: its base environment and `envs/*`.
    fn add_conda_root(&mut self, root: &Path, errors: &mut Errors) {
        self.add_marked(root, errors);
        for env in subdirs(&root.join("envs"), errors) {
            self.add_marked(&env, errors);
        }
    }

    /// The environments the walk's markers name (`pyvenv.cfg`, `conda-meta/history`).
    pub(super) fn add_markers(&mut self, markers: &Markers, errors: &mut Errors) {
        for cfg in &markers.pyvenv_cfgs {
            if let Some(root) = cfg.parent() {
                self.add_prefix(root, marker_kind(root).unwrap_or(EnvironmentKind::Venv), errors);
            }
        }
        for history in &markers.conda_histories {
            if let Some(root) = history.parent().and_then(Path::parent) {
                self.add_prefix(root, marker_kind(root).unwrap_or(EnvironmentKind::Conda), errors);
            }
        }
    }

    /// The environments at the known places of the home directory `home`.
    pub(super) fn add_home(&mut self, home: &Path, errors: &mut Errors) {
        for site in site_dirs_under(&home.join(".local/lib"), "python", &["site-packages"], errors) {
            self.add_site(&site, EnvironmentKind::User, errors);
        }
        for version in subdirs(&home.join(".pyenv/versions"), errors) {
            self.add_prefix(&version, marker_kind(&version).unwrap_or(EnvironmentKind::Pyenv), errors);
            for env in subdirs(&version.join("envs"), errors) {
                self.add_marked(&env, errors);
            }
        }
        for pipx in HOME_PIPX_VENVS {
            for venv in subdirs(&home.join(pipx), errors) {
                self.add_prefix(&venv, marker_kind(&venv).unwrap_or(EnvironmentKind::Venv), errors);
            }
        }
        for root in HOME_CONDA_ROOTS {
            self.add_conda_root(&home.join(root), errors);
        }
        let list = home.join(".conda/environments.txt");
        if let Some(bytes) = read_optional(&list, ENVIRONMENTS_TXT_LIMIT, "conda environments list", errors) {
            for line in String::from_utf8_lossy(&bytes).lines() {
                let path = Path::new(line.trim());
                if path.is_absolute() {
                    self.add_marked(path, errors);
                }
            }
        }
    }

    /// The system environments, under `root` (`/` but in tests).
    pub(super) fn add_system(&mut self, root: &Path, errors: &mut Errors) {
        for (lib, subs) in SYSTEM_SITES {
            for site in site_dirs_under(&root.join(lib), "python3", subs, errors) {
                self.add_site(&site, EnvironmentKind::System, errors);
            }
        }
        self.add_conda_root(&root.join("opt/conda"), errors);
        for dir in subdirs(&root.join("opt"), errors) {
            self.add_marked(&dir, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyvenv_cfg_variants() {
        let venv = b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.4\nexecutable = /usr/bin/python3.11\n";
        let cfg = parse_pyvenv_cfg(venv);
        assert_eq!(cfg.home.as_deref(), Some("/usr/bin"));
        assert_eq!(cfg.version.as_deref(), Some("3.11.4"));
        assert_eq!(cfg.executable.as_deref(), Some("/usr/bin/python3.11"));
        assert_eq!(cfg.include_system_site_packages, Some(false));
        let virtualenv = b"home = /opt/py/bin\nimplementation = CPython\nversion_info = 3.10.12.final.0\nInclude-System-Site-Packages = True\n";
        let cfg = parse_pyvenv_cfg(virtualenv);
        assert_eq!(cfg.version.as_deref(), Some("3.10.12"));
        assert_eq!(cfg.include_system_site_packages, Some(true));
        assert_eq!(cfg.executable, None);
        assert_eq!(parse_pyvenv_cfg(b"\xff\xfe garbage"), PyvenvCfg::default());
    }

    #[test]
    fn site_versions() {
        assert_eq!(site_python_version(Path::new("/u/lib/python3.11/site-packages")).as_deref(), Some("3.11"));
        assert_eq!(site_python_version(Path::new("/usr/lib/python3/dist-packages")), None);
        assert_eq!(major_minor("3.12.1"), "3.12");
    }
}

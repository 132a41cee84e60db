//! Frameworks: AI packages in every Python environment and Node project, and native runtimes.
//!
//! Discovery, in order. Each environment is examined once, keyed by its canonical path, and
//! reported under that path. A directory with `conda-meta/` is `conda` and one with
//! `pyvenv.cfg` a `venv` whichever rule reaches it, except a prefix reached only through a
//! kernelspec, which is `jupyter-kernel`.
//!
//! 1. The walk's markers: each `pyvenv.cfg` makes its directory a `venv`, each
//!    `conda-meta/history` its grandparent a `conda` environment.
//! 2. For each home (every explicit scan root counts as one): the user site
//!    `.local/lib/python*/site-packages` (`user`); pyenv's `.pyenv/versions/*` (`pyenv`) and
//!    their `envs/*`; pipx's `.local/pipx/venvs/*` and `.local/share/pipx/venvs/*`; the conda
//!    installations `miniconda3`, `anaconda3`, `miniforge3`, `mambaforge`, `micromamba`,
//!    `.conda` and their `envs/*`; the environments `.conda/environments.txt` lists. A home
//!    that cannot be read is one error.
//! 3. With `system`: `/usr/lib/python3*/{site,dist}-packages`,
//!    `/usr/local/lib/python3*/{site,dist}-packages`, `/usr/lib64/python3*/site-packages`,
//!    `/opt/homebrew/lib/python3*/site-packages` (`system`); `/opt/conda` and its `envs/*`;
//!    any `/opt/*` with a `pyvenv.cfg` or `conda-meta/`.
//! 4. Jupyter kernelspecs (`kernels/*/kernel.json`) from the markers, each home's
//!    `.local/share/jupyter/kernels` and `Library/Jupyter/kernels`, with `system`
//!    `/usr/local/share/jupyter/kernels` and `/usr/share/jupyter/kernels`, and each
//!    environment's `share/jupyter/kernels`: an absolute `argv[0]` names a prefix (the parent
//!    of its `bin/`); the kernel's name joins the `kernels` of the environments at that prefix,
//!    and a prefix no other rule found is examined as a `jupyter-kernel` environment. A relative
//!    `argv[0]` belongs to the environment whose `share/jupyter/kernels` holds the spec.
//! 5. Node projects: each `package.json` of the walk not inside a Python environment.
//!    Python projects: each directory of the walk's `pyproject.toml`, `Pipfile`,
//!    `requirements*.txt`, `environment.yml`, `uv.lock` or `poetry.lock` not inside a Python
//!    environment, `site-packages` or `node_modules` ([`pyproject`]): the ranges it declares.
//! 6. Native runtimes: watchlist executables in each home's `.local/bin` and `bin` and, with
//!    `system`, in `PATH`, `/usr/local/bin`, `/usr/bin`, `/opt/*/bin`, `/usr/local/lib/ollama`.
//!    Nothing is executed: a version is known only for a console script whose `#!`
//!    interpreter belongs to an environment found above that holds the providing distribution.
//!
//! What an environment holds: a prefix (venv, conda, pyenv, kernel) is read through
//! `conda-meta/*.json` and the `*.dist-info`/`*.egg-info` of its
//! `lib{,64}/python*/{site,dist}-packages` (a distribution its conda records already list is
//! not counted twice); a `system` or `user` environment is one site directory, its reported
//! path, since one prefix (`/usr`) can hold several Pythons. Which names count, and under which
//! category, is the data of `agent/data/frameworks.toml` (read by `watchlist.rs`).
//!
//! Every file is opened through [`crate::fileio::open_regular`] (no FIFOs, devices or final
//! links) and read bounded; directories are listed one level at a time. Unreadable files are
//! errors in the outcome, never a panic and never the end of the detector.

mod files;
mod kernels;
mod native;
mod node;
mod packages;
mod pyproject;
mod python;
mod watchlist;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use kernels::{parse_kernel_spec, KernelSpec};
pub use native::parse_shebang;
pub use node::{parse_package_json, PackageJson};
pub use packages::{parse_conda_file_name, parse_conda_meta, parse_dist_dir_name, parse_metadata, CondaPackage};
pub use pyproject::{
    is_requirements_name, parse_conda_environment, parse_lock, parse_pipfile, parse_pyproject, parse_requirement,
    parse_requirements, Declared,
};
pub use python::{parse_pyvenv_cfg, PyvenvCfg};
pub use watchlist::normalize_name;

use self::files::{canonical, Errors};
use self::packages::Package;
use self::python::PythonEnvs;
use self::watchlist::Watchlist;
use crate::detectors::markers::Markers;
use crate::fileio::is_absent;
use crate::report::inventory::{EnvironmentEntry, EnvironmentKind, EnvironmentRef, FrameworkEntry};
use crate::report::FileError;

/// Where to look and what to list.
#[derive(Debug, Clone, Default)]
pub struct FrameworkOptions {
    /// Directories treated as home directories (user site, pyenv, pipx, conda, kernelspecs).
    pub homes: Vec<PathBuf>,
    /// Also the system locations (`/usr`, `/usr/local`, `/opt`, `PATH`): true for a scan of the
    /// default roots, false when the user named roots.
    pub system: bool,
    /// List every package of every environment, not just the watchlist.
    pub all_packages: bool,
}

/// What the frameworks detector found.
#[derive(Debug, Default)]
pub struct FrameworksOutcome {
    /// AI packages (or every package with `all_packages`), sorted.
    pub frameworks: Vec<FrameworkEntry>,
    /// Environments examined, with package counts, sorted by path.
    pub environments: Vec<EnvironmentEntry>,
    /// Files that could not be read or parsed.
    pub errors: Vec<FileError>,
}

/// Finds the environments and their AI packages.
pub fn collect(opts: &FrameworkOptions, markers: &Markers) -> FrameworksOutcome {
    collect_on(&Host::current(), opts, markers)
}

/// The machine's fixed locations, relative to `root` so that tests can build a fake one.
#[derive(Debug)]
struct Host {
    /// `/`, or a test's fake root.
    root: PathBuf,
    /// The absolute directories of the agent's `PATH`.
    path_dirs: Vec<PathBuf>,
}

impl Host {
    fn current() -> Self {
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).filter(|d| d.is_absolute()).collect())
            .unwrap_or_default();
        Self { root: PathBuf::from("/"), path_dirs }
    }
}

/// One environment and what it holds, before it becomes report entries.
#[derive(Debug)]
struct Env {
    /// Canonical path reported: prefix, site directory, project or binary directory.
    path: PathBuf,
    /// What it is.
    kind: EnvironmentKind,
    /// The prefix whose `bin/` holds its interpreter (kernels and `#!` lines name it).
    prefix: Option<PathBuf>,
    /// Its site directories (canonical).
    site_dirs: Vec<PathBuf>,
    /// Python version, when known.
    python_version: Option<String>,
    /// Interpreter, when known.
    interpreter: Option<String>,
    /// Everything installed (or declared, for a Node project).
    packages: Vec<Package>,
    /// Names of the kernelspecs that run it.
    kernels: BTreeSet<String>,
}

impl Env {
    fn new(path: PathBuf, kind: EnvironmentKind) -> Self {
        Self {
            path,
            kind,
            prefix: None,
            site_dirs: Vec::new(),
            python_version: None,
            interpreter: None,
            packages: Vec::new(),
            kernels: BTreeSet::new(),
        }
    }

    /// Whether the canonical path `p` lies inside this (Python) environment. A kernel-only
    /// prefix may be as wide as `/usr`, so only its site directories count.
    fn holds(&self, p: &Path) -> bool {
        (self.kind != EnvironmentKind::JupyterKernel && p.starts_with(&self.path))
            || self.site_dirs.iter().any(|s| p.starts_with(s))
    }
}

/// The environments (with their indices) whose interpreter prefix is `prefix`.
fn at_prefix<'a, 'p>(envs: &'a [Env], prefix: &'p Path) -> impl Iterator<Item = (usize, &'a Env)> + use<'a, 'p> {
    envs.iter().enumerate().filter(move |(_, e)| e.prefix.as_deref() == Some(prefix))
}

/// The canonical form of the home `home` when it can be read; one error when it cannot.
fn readable_home(home: &Path, errors: &mut Errors) -> Option<PathBuf> {
    match std::fs::read_dir(home) {
        Ok(_) => canonical(home, "home directory", errors),
        Err(e) if is_absent(&e) => None,
        Err(e) => {
            errors.io(home, "home directory", &e);
            None
        }
    }
}

/// Every kernelspec to read: the walk's, the homes', the system's and the environments' own.
fn kernel_specs(
    host: &Host,
    opts: &FrameworkOptions,
    homes: &[PathBuf],
    markers: &Markers,
    python: &PythonEnvs,
    errors: &mut Errors,
) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = homes
        .iter()
        .flat_map(|h| [h.join(".local/share/jupyter/kernels"), h.join("Library/Jupyter/kernels")])
        .collect();
    if opts.system {
        dirs.extend(["usr/local/share/jupyter/kernels", "usr/share/jupyter/kernels"].map(|d| host.root.join(d)));
    }
    let prefixes: BTreeSet<&Path> = python.envs().iter().filter_map(|e| e.prefix.as_deref()).collect();
    dirs.extend(prefixes.into_iter().map(|p| p.join("share/jupyter/kernels")));
    dirs.sort();
    dirs.dedup();
    let mut specs = markers.kernel_specs.clone();
    for dir in dirs {
        specs.extend(kernels::specs_in(&dir, errors));
    }
    specs.sort();
    specs.dedup();
    specs
}

fn collect_on(host: &Host, opts: &FrameworkOptions, markers: &Markers) -> FrameworksOutcome {
    let mut errors = Errors::default();
    let mut homes: Vec<PathBuf> = opts.homes.iter().filter_map(|h| readable_home(h, &mut errors)).collect();
    homes.sort();
    homes.dedup();

    let mut python = PythonEnvs::default();
    python.add_markers(markers, &mut errors);
    for home in &homes {
        python.add_home(home, &mut errors);
    }
    if opts.system {
        python.add_system(&host.root, &mut errors);
    }
    for spec in kernel_specs(host, opts, &homes, markers, &python, &mut errors) {
        kernels::attach(&mut python, &spec, &mut errors);
    }
    let mut envs = python.into_envs();

    let projects = node::projects(&markers.package_jsons, &envs, opts.all_packages, &mut errors);
    let python_projects = pyproject::projects(&markers.python_manifests, &envs, &mut errors);
    let bin_dirs = native::search_dirs(host, opts.system, &homes, &mut errors);
    let runtimes = native::find(&bin_dirs, &homes, &envs, &mut errors);
    envs.extend(projects);
    envs.extend(python_projects);
    envs.extend(runtimes);
    assemble(envs, opts.all_packages, errors)
}

/// The report entries: every environment with its counts, and its watchlist packages (every
/// package with `all_packages`).
fn assemble(envs: Vec<Env>, all_packages: bool, errors: Errors) -> FrameworksOutcome {
    let watchlist = Watchlist::get();
    let mut frameworks = Vec::new();
    let mut environments = Vec::with_capacity(envs.len());
    for env in envs {
        let environment = EnvironmentRef { path: env.path.display().to_string(), kind: env.kind };
        let mut packages = env.packages;
        packages.sort();
        packages.dedup();
        let mut ai_packages = 0u64;
        for package in &packages {
            let category = watchlist.category(package.ecosystem, &package.name);
            ai_packages += u64::from(category.is_some());
            if category.is_some() || all_packages {
                frameworks.push(FrameworkEntry {
                    ecosystem: package.ecosystem,
                    name: package.name.clone(),
                    version: package.version.clone(),
                    environment: environment.clone(),
                    category: category.map(str::to_owned),
                    gpu_build: package.gpu_build,
                    path: package.path.clone(),
                });
            }
        }
        environments.push(EnvironmentEntry {
            path: environment.path,
            kind: environment.kind,
            python_version: env.python_version,
            interpreter: env.interpreter,
            packages: u64::try_from(packages.len()).unwrap_or(u64::MAX),
            ai_packages,
            kernels: env.kernels.into_iter().collect(),
        });
    }
    frameworks.sort();
    frameworks.dedup();
    environments.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    FrameworksOutcome { frameworks, environments, errors: errors.into_sorted() }
}

#[cfg(test)]
mod tests;

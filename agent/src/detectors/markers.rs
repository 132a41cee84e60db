//! Marker files: the files the model walk notices for the other detectors.
//!
//! Frameworks and tooling live anywhere under the roots (a `.venv` in a project, a `.env` next
//! to a notebook), so the one walk that looks for models also notes these names, and the
//! listing cache keeps them so that a rescan of an unchanged directory still hands them over:
//!
//! | name | means | used by |
//! |---|---|---|
//! | `pyvenv.cfg` | a virtualenv/venv root (its directory) | frameworks |
//! | `conda-meta/history` | a conda environment root (the grandparent) | frameworks |
//! | `kernels/<name>/kernel.json` | a Jupyter kernelspec | frameworks |
//! | `package.json` | a Node project | frameworks |
//! | `pyproject.toml`, `Pipfile`, `requirements*.txt`, `environment.yml`, `uv.lock`, … | a Python project | frameworks |
//! | `.env`, `.env.*` | dotenv files | tooling (API key names) |
//! | `.mcp.json`, `.cursor/mcp.json`, `.vscode/mcp.json`, … | per-project MCP configuration | tooling |
//! | `config.json`, `tokenizer_config.json`, … ([`crate::safety::remote_code::CONFIG_FILES`]) | a Hugging Face config that may name remote code | models (remote code) |

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a marker file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// `pyvenv.cfg`.
    PyvenvCfg,
    /// `conda-meta/history`.
    CondaHistory,
    /// `kernels/<name>/kernel.json`.
    KernelSpec,
    /// `package.json`.
    PackageJson,
    /// A Python project's manifest or lock file.
    PythonManifest,
    /// `.env` or `.env.<suffix>`.
    DotEnv,
    /// A project's MCP configuration.
    McpProject,
    /// A Hugging Face config file whose `auto_map` may name remote code.
    HfConfig,
}

/// Directories whose `mcp.json` is a project's MCP configuration.
pub const PROJECT_MCP_DIRS: &[&str] = &[".cursor", ".vscode", ".windsurf", ".roo", ".kiro", ".gemini"];

fn parent_name(path: &Path, up: usize) -> &[u8] {
    let mut p = path.parent();
    for _ in 0..up {
        p = p.and_then(Path::parent);
    }
    p.and_then(Path::file_name).map(OsStrExt::as_bytes).unwrap_or_default()
}

/// The marker `path` is, from its name (and its parents' names), allocating nothing.
pub fn classify(path: &Path) -> Option<MarkerKind> {
    let name = path.file_name()?.as_bytes();
    match name {
        b"pyvenv.cfg" => Some(MarkerKind::PyvenvCfg),
        b"history" if parent_name(path, 0) == b"conda-meta" => Some(MarkerKind::CondaHistory),
        b"kernel.json" if parent_name(path, 1) == b"kernels" => Some(MarkerKind::KernelSpec),
        b"package.json" => Some(MarkerKind::PackageJson),
        b"pyproject.toml" | b"Pipfile" | b"environment.yml" | b"environment.yaml" | b"uv.lock" | b"poetry.lock" => {
            Some(MarkerKind::PythonManifest)
        }
        _ if crate::detectors::frameworks::is_requirements_name(path) => Some(MarkerKind::PythonManifest),
        b".env" => Some(MarkerKind::DotEnv),
        b".mcp.json" => Some(MarkerKind::McpProject),
        b"mcp.json" if PROJECT_MCP_DIRS.iter().any(|d| parent_name(path, 0) == d.as_bytes()) => {
            Some(MarkerKind::McpProject)
        }
        n if n.starts_with(b".env.") => Some(MarkerKind::DotEnv),
        n if crate::safety::remote_code::CONFIG_FILES.iter().any(|c| c.as_bytes() == n) => Some(MarkerKind::HfConfig),
        _ => None,
    }
}

/// Marker files found by a walk, by kind; paths sorted and distinct after [`Markers::finish`].
#[derive(Debug, Default, Clone)]
pub struct Markers {
    /// `pyvenv.cfg` files.
    pub pyvenv_cfgs: Vec<PathBuf>,
    /// `conda-meta/history` files.
    pub conda_histories: Vec<PathBuf>,
    /// `kernel.json` files of kernelspecs.
    pub kernel_specs: Vec<PathBuf>,
    /// `package.json` files.
    pub package_jsons: Vec<PathBuf>,
    /// Python project manifests and lock files.
    pub python_manifests: Vec<PathBuf>,
    /// Dotenv files.
    pub dotenvs: Vec<PathBuf>,
    /// Per-project MCP configuration files.
    pub mcp_projects: Vec<PathBuf>,
    /// Hugging Face config files (regular files: a snapshot's links are not walked).
    pub hf_configs: Vec<PathBuf>,
}

impl Markers {
    /// Files a test or a caller knows of, grouped by kind.
    pub fn from_paths<I: IntoIterator<Item = PathBuf>>(paths: I) -> Self {
        let mut m = Self::default();
        for p in paths {
            if let Some(kind) = classify(&p) {
                m.push(kind, p);
            }
        }
        m.finish();
        m
    }

    /// Adds one marker.
    pub fn push(&mut self, kind: MarkerKind, path: PathBuf) {
        match kind {
            MarkerKind::PyvenvCfg => self.pyvenv_cfgs.push(path),
            MarkerKind::CondaHistory => self.conda_histories.push(path),
            MarkerKind::KernelSpec => self.kernel_specs.push(path),
            MarkerKind::PackageJson => self.package_jsons.push(path),
            MarkerKind::PythonManifest => self.python_manifests.push(path),
            MarkerKind::DotEnv => self.dotenvs.push(path),
            MarkerKind::McpProject => self.mcp_projects.push(path),
            MarkerKind::HfConfig => self.hf_configs.push(path),
        }
    }

    /// Sorts and removes duplicates.
    pub fn finish(&mut self) {
        for v in [
            &mut self.pyvenv_cfgs,
            &mut self.conda_histories,
            &mut self.kernel_specs,
            &mut self.package_jsons,
            &mut self.python_manifests,
            &mut self.dotenvs,
            &mut self.mcp_projects,
            &mut self.hf_configs,
        ] {
            v.sort();
            v.dedup();
        }
    }
}

/// Where walker threads put the markers they meet.
#[derive(Debug, Default)]
pub struct MarkerSink(Mutex<Markers>);

impl MarkerSink {
    /// Records `path` if it is a marker; returns whether it was.
    pub fn offer(&self, path: &Path) -> bool {
        match classify(path) {
            Some(kind) => {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).push(kind, path.to_path_buf());
                true
            }
            None => false,
        }
    }

    /// The directories holding a Hugging Face config file met so far.
    pub fn hf_config_dirs(&self) -> std::collections::HashSet<PathBuf> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.hf_configs.iter().filter_map(|p| p.parent()).map(Path::to_path_buf).collect()
    }

    /// The markers met, sorted.
    pub fn into_markers(self) -> Markers {
        let mut m = self.0.into_inner().unwrap_or_else(|p| p.into_inner());
        m.finish();
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parents_decide() {
        let k = |p: &str| classify(Path::new(p));
        assert_eq!(k("/h/p/.venv/pyvenv.cfg"), Some(MarkerKind::PyvenvCfg));
        assert_eq!(k("/opt/conda/envs/x/conda-meta/history"), Some(MarkerKind::CondaHistory));
        assert_eq!(k("/h/.local/share/jupyter/kernels/py3/kernel.json"), Some(MarkerKind::KernelSpec));
        assert_eq!(k("/h/p/kernel.json"), None);
        assert_eq!(k("/h/p/history"), None);
        assert_eq!(k("/h/p/.env.local"), Some(MarkerKind::DotEnv));
        assert_eq!(k("/h/p/.envrc"), None);
        assert_eq!(k("/h/p/.cursor/mcp.json"), Some(MarkerKind::McpProject));
        assert_eq!(k("/h/p/mcp.json"), None);
        assert_eq!(k("/h/p/.mcp.json"), Some(MarkerKind::McpProject));
        assert_eq!(k("/h/p/requirements-dev.txt"), Some(MarkerKind::PythonManifest));
        assert_eq!(k("/h/p/requirements/base.txt"), Some(MarkerKind::PythonManifest));
        assert_eq!(k("/h/p/pyproject.toml"), Some(MarkerKind::PythonManifest));
        assert_eq!(k("/h/p/uv.lock"), Some(MarkerKind::PythonManifest));
        assert_eq!(k("/h/p/notes.txt"), None);
    }
}

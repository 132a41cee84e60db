//! Jupyter kernelspecs: which environment each kernel runs, and the environments found only
//! through one.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::files::{bin_prefix, canonical, read_optional, subdirs, Errors};
use super::python::PythonEnvs;
use crate::report::inventory::EnvironmentKind;

/// Bytes of a `kernel.json` read.
const KERNEL_JSON_LIMIT: u64 = 1024 * 1024;

/// What a `kernel.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KernelSpec {
    /// The command that starts the kernel; its first element is the interpreter.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Name shown in Jupyter.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Kernel language (`python`).
    #[serde(default)]
    pub language: Option<String>,
}

/// Parses a `kernel.json`; `None` when it is not a JSON object of that shape.
pub fn parse_kernel_spec(bytes: &[u8]) -> Option<KernelSpec> {
    serde_json::from_slice(bytes).ok()
}

/// The `kernel.json` paths of the kernelspec directory `dir` (`dir/<name>/kernel.json`).
pub(super) fn specs_in(dir: &Path, errors: &mut Errors) -> Vec<PathBuf> {
    subdirs(dir, errors).into_iter().map(|d| d.join("kernel.json")).collect()
}

/// The prefix `P` of a spec at `P/share/jupyter/kernels/<name>/kernel.json`.
fn owning_prefix(spec_path: &Path) -> Option<&Path> {
    let mut up = spec_path.ancestors().skip(2);
    for expected in ["kernels", "jupyter", "share"] {
        if up.next()?.file_name()? != expected {
            return None;
        }
    }
    up.next()
}

/// Reads the kernelspec at `spec_path` and adds its name to the `kernels` of the environments
/// that run it:
/// 1. `argv[0]` absolute: the environments whose prefix is the parent of its `bin/`; when there
///    is none and that prefix exists, it is examined as a `jupyter-kernel` environment;
/// 2. `argv[0]` relative (`python`): the environment whose `share/jupyter/kernels` holds it.
pub(super) fn attach(envs: &mut PythonEnvs, spec_path: &Path, errors: &mut Errors) {
    let Some(bytes) = read_optional(spec_path, KERNEL_JSON_LIMIT, "kernelspec", errors) else { return };
    let Some(spec) = parse_kernel_spec(&bytes) else {
        errors.note(spec_path, "cannot parse kernelspec: not a kernel.json object".to_owned());
        return;
    };
    let Some(name) = spec_path.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let argv0 = spec.argv.first().map(Path::new);
    let targets = match argv0 {
        Some(exe) if exe.is_absolute() => {
            let Some(prefix) = bin_prefix(exe) else {
                tracing::debug!(path = %spec_path.display(), "kernel interpreter is not in a bin directory");
                return;
            };
            // An absent prefix is a kernel of a deleted environment: nothing to examine.
            let Some(prefix) = canonical(prefix, "kernel environment", errors) else { return };
            let found = envs.with_prefix(&prefix);
            if found.is_empty() {
                envs.add_prefix(&prefix, EnvironmentKind::JupyterKernel, errors).into_iter().collect()
            } else {
                found
            }
        }
        _ => match owning_prefix(spec_path).and_then(|p| canonical(p, "kernel environment", errors)) {
            Some(prefix) => envs.with_prefix(&prefix),
            None => Vec::new(),
        },
    };
    for index in targets {
        envs.add_kernel(index, &name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_json_shapes() {
        let spec = parse_kernel_spec(
            br#"{"argv":["/e/v/bin/python","-m","ipykernel_launcher","-f","{connection_file}"],"display_name":"Py (v)","language":"python","metadata":{"debugger":true}}"#,
        )
        .unwrap();
        assert_eq!(spec.argv.first().map(String::as_str), Some("/e/v/bin/python"));
        assert_eq!(spec.display_name.as_deref(), Some("Py (v)"));
        assert_eq!(spec.language.as_deref(), Some("python"));
        assert_eq!(parse_kernel_spec(b"[1,2]"), None);
        assert_eq!(parse_kernel_spec(br#"{"argv":[1]}"#), None);
        assert_eq!(parse_kernel_spec(b"{}").unwrap().argv, Vec::<String>::new());
    }

    #[test]
    fn owning_prefix_needs_the_share_layout() {
        assert_eq!(owning_prefix(Path::new("/e/v/share/jupyter/kernels/py3/kernel.json")), Some(Path::new("/e/v")));
        assert_eq!(
            owning_prefix(Path::new("/h/.local/share/jupyter/kernels/py3/kernel.json")),
            Some(Path::new("/h/.local"))
        );
        assert_eq!(owning_prefix(Path::new("/h/x/kernels/py3/kernel.json")), None);
    }
}

//! Native runtimes: watchlist executables in the usual binary directories. Nothing is ever
//! executed; a version is reported only when a console script's `#!` names an interpreter of a
//! Python environment that holds the distribution providing it.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::files::{bin_prefix, canonical, is_dir, read_optional, subdirs, Errors};
use super::packages::{is_gpu_version, Package};
use super::watchlist::Watchlist;
use super::{at_prefix, Env, Host};
use crate::fileio::is_absent;
use crate::report::inventory::{Ecosystem, EnvironmentKind};

/// Bytes of an executable read to find its `#!` line (and pip's `'''exec'` second line).
const SHEBANG_LIMIT: u64 = 1024;
/// System binary directories, under the host root.
const SYSTEM_BIN_DIRS: &[&str] = &["usr/local/bin", "usr/bin", "usr/local/lib/ollama"];
/// Binary directories under a home directory.
const HOME_BIN_DIRS: &[&str] = &[".local/bin", "bin"];

/// The interpreter a script's `#!` line names, when it is an absolute path. pip's form for
/// long paths (`#!/bin/sh` then `'''exec' "/…/bin/python" "$0" "$@"`) is understood; `env`
/// lookups (`#!/usr/bin/env python3`) would need `PATH` and give `None`.
pub fn parse_shebang(bytes: &[u8]) -> Option<PathBuf> {
    let mut lines = bytes.strip_prefix(b"#!")?.split(|&b| b == b'\n');
    let first = std::str::from_utf8(lines.next()?).ok()?;
    let mut interpreter = first.split_whitespace().next()?;
    if interpreter == "/bin/sh" {
        let second = std::str::from_utf8(lines.next()?).ok()?;
        let exec = second.trim_start().strip_prefix("'''exec'")?.trim_start();
        interpreter = match exec.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next()?,
            None => exec.split_whitespace().next()?,
        };
    }
    let path = Path::new(interpreter);
    (path.is_absolute() && path.file_name().is_some_and(|n| n != "env")).then(|| path.to_path_buf())
}

/// The directories to look in, in order: with `system`, `PATH`, `/usr/local/bin`, `/usr/bin`,
/// `/opt/*/bin`, `/usr/local/lib/ollama`; then each home's `.local/bin` and `bin`.
pub(super) fn search_dirs(host: &Host, system: bool, homes: &[PathBuf], errors: &mut Errors) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if system {
        dirs.extend(host.path_dirs.iter().cloned());
        dirs.extend(SYSTEM_BIN_DIRS.iter().map(|d| host.root.join(d)));
        dirs.extend(subdirs(&host.root.join("opt"), errors).into_iter().map(|d| d.join("bin")));
    }
    for home in homes {
        dirs.extend(HOME_BIN_DIRS.iter().map(|d| home.join(d)));
    }
    dirs
}

/// The file `exe` runs (itself, or its link's canonical target) when it is an executable
/// regular file.
fn executable_target(exe: &Path, errors: &mut Errors) -> Option<PathBuf> {
    let meta = match std::fs::symlink_metadata(exe) {
        Ok(m) => m,
        Err(e) if is_absent(&e) => return None,
        Err(e) => {
            errors.io(exe, "executable", &e);
            return None;
        }
    };
    let target =
        if meta.file_type().is_symlink() { canonical(exe, "executable link", errors)? } else { exe.to_owned() };
    let meta = std::fs::symlink_metadata(&target).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(target)
}

/// The version of `dist` in the environment whose interpreter runs the script `script`, in
/// the order Python searches: the environment at the interpreter's prefix (venv, conda, pyenv,
/// kernel), then a user site beside the script (`~/.local/bin` → `~/.local/lib/python*`), then
/// the system sites of `<prefix>/local` and `<prefix>` (Debian's `/usr/bin/python3` reads
/// `/usr/local/lib/python3*/dist-packages` first).
fn script_version(script: &Path, dist: &str, python: &[Env], errors: &mut Errors) -> Option<String> {
    let bytes = read_optional(script, SHEBANG_LIMIT, "executable", errors)?;
    let interpreter = parse_shebang(&bytes)?;
    let prefix = bin_prefix(&interpreter).and_then(|p| std::fs::canonicalize(p).ok());
    let system_prefixes: Vec<PathBuf> = prefix.iter().flat_map(|p| [p.join("local"), p.clone()]).collect();
    let mut candidates: Vec<&Env> = Vec::new();
    if let Some(p) = &prefix {
        candidates.extend(at_prefix(python, p).map(|(_, e)| e).filter(|e| e.kind != EnvironmentKind::System));
    }
    if let Some(p) = bin_prefix(script) {
        candidates.extend(at_prefix(python, p).map(|(_, e)| e).filter(|e| e.kind == EnvironmentKind::User));
    }
    for p in &system_prefixes {
        candidates.extend(at_prefix(python, p).map(|(_, e)| e).filter(|e| e.kind == EnvironmentKind::System));
    }
    candidates.into_iter().find_map(|env| env.packages.iter().find(|p| p.name == dist)).and_then(|p| p.version.clone())
}

/// One environment per directory holding watchlist executables (kind `user` under a home,
/// `system` elsewhere), listing them as native packages; the `bin/` of a Python environment
/// is skipped (its scripts are that environment's packages).
pub(super) fn find(dirs: &[PathBuf], homes: &[PathBuf], python: &[Env], errors: &mut Errors) -> Vec<Env> {
    let watchlist = Watchlist::get();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        let Some(dir) = canonical(dir, "binary directory", errors) else { continue };
        if !is_dir(&dir) || !seen.insert(dir.clone()) {
            continue;
        }
        // A Python environment's own `bin/` holds its packages' entry points, reported as
        // packages of that environment already.
        let own_bin = |e: &&Env| {
            matches!(e.kind, EnvironmentKind::Venv | EnvironmentKind::Conda | EnvironmentKind::Pyenv)
                && e.prefix.as_deref().is_some_and(|p| dir.parent() == Some(p))
        };
        if python.iter().any(|e| own_bin(&e)) {
            continue;
        }
        let kind =
            if homes.iter().any(|h| dir.starts_with(h)) { EnvironmentKind::User } else { EnvironmentKind::System };
        let mut env = Env::new(dir.clone(), kind);
        for tool in watchlist.native() {
            let exe = dir.join(&tool.name);
            let Some(target) = executable_target(&exe, errors) else { continue };
            let version = tool.pypi.as_deref().and_then(|dist| script_version(&target, dist, python, errors));
            env.packages.push(Package {
                ecosystem: Ecosystem::Native,
                name: tool.name.clone(),
                gpu_build: version.as_deref().is_some_and(is_gpu_version),
                version,
                path: Some(exe.display().to_string()),
            });
        }
        if !env.packages.is_empty() {
            out.push(env);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs() {
        assert_eq!(parse_shebang(b"#!/e/v/bin/python\nimport sys\n"), Some(PathBuf::from("/e/v/bin/python")));
        assert_eq!(parse_shebang(b"#! /e/v/bin/python3 -E\r\n"), Some(PathBuf::from("/e/v/bin/python3")));
        let pip_long = b"#!/bin/sh\n'''exec' \"/very/long/e/v/bin/python\" \"$0\" \"$@\"\n' '''\n";
        assert_eq!(parse_shebang(pip_long), Some(PathBuf::from("/very/long/e/v/bin/python")));
        assert_eq!(parse_shebang(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(parse_shebang(b"#!/usr/bin/env python3\n"), None);
        assert_eq!(parse_shebang(b"\x7fELF\x02\x01"), None);
        assert_eq!(parse_shebang(b"#!python\n"), None);
    }
}

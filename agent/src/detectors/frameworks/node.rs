//! Node projects: the dependencies a `package.json` declares, with the version installed in
//! the project's `node_modules` when it is there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::files::{canonical, read_optional, Errors};
use super::packages::Package;
use super::watchlist::Watchlist;
use super::Env;
use crate::report::inventory::{Ecosystem, EnvironmentKind};

/// Bytes of a `package.json` read.
const PACKAGE_JSON_LIMIT: u64 = 4 * 1024 * 1024;
/// The fields that declare dependencies, in the order a name's range is taken from.
const DEPENDENCY_FIELDS: [&str; 4] = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"];

/// What a `package.json` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageJson {
    /// `version`.
    pub version: Option<String>,
    /// Every dependency declared in any of the four dependency fields, with the range of the
    /// first field that names it (`None` when that range is not a string).
    pub dependencies: BTreeMap<String, Option<String>>,
}

/// Parses a `package.json`; `None` when it is not a JSON object.
pub fn parse_package_json(bytes: &[u8]) -> Option<PackageJson> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let object = value.as_object()?;
    let mut dependencies = BTreeMap::new();
    for field in DEPENDENCY_FIELDS {
        for (name, range) in object.get(field).and_then(Value::as_object).into_iter().flatten() {
            dependencies.entry(name.clone()).or_insert_with(|| range.as_str().map(str::to_owned));
        }
    }
    Some(PackageJson { version: object.get("version").and_then(Value::as_str).map(str::to_owned), dependencies })
}

/// Whether `name` is a package name that names a directory of `node_modules` (`x`, `@s/x`),
/// never a path that climbs out of it.
fn is_package_name(name: &str) -> bool {
    let part = |p: &str| !p.is_empty() && p != "." && p != ".." && !p.contains('\0');
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        [one] => part(one) && !one.starts_with('@'),
        [scope, package] => scope.starts_with('@') && part(scope) && part(package),
        _ => false,
    }
}

/// The version of `name` installed in `project/node_modules`. A link there (pnpm) is followed
/// only when it resolves inside the project; a link loop fails resolution and is noted.
fn installed_version(project: &Path, name: &str, errors: &mut Errors) -> Option<String> {
    if !is_package_name(name) {
        return None;
    }
    let resolved = canonical(&project.join("node_modules").join(name), "installed package", errors)?;
    if !resolved.starts_with(project) {
        tracing::debug!(path = %resolved.display(), "installed package outside its project: not followed");
        return None;
    }
    let manifest = resolved.join("package.json");
    let bytes = read_optional(&manifest, PACKAGE_JSON_LIMIT, "installed package.json", errors)?;
    parse_package_json(&bytes)?.version
}

/// Examines the project in `dir` (canonical). Every declared dependency is counted; the
/// installed version is looked up for those that will be reported (watchlist hits, or all).
fn examine_project(dir: PathBuf, all_packages: bool, errors: &mut Errors) -> Option<Env> {
    let manifest_path = dir.join("package.json");
    let bytes = read_optional(&manifest_path, PACKAGE_JSON_LIMIT, "package.json", errors)?;
    let Some(manifest) = parse_package_json(&bytes) else {
        errors.note(&manifest_path, "cannot parse package.json: not a json object".to_owned());
        return None;
    };
    let watchlist = Watchlist::get();
    let packages = manifest
        .dependencies
        .into_iter()
        .map(|(name, range)| {
            let reported = all_packages || watchlist.category(Ecosystem::Npm, &name).is_some();
            let installed = if reported { installed_version(&dir, &name, errors) } else { None };
            Package::new(Ecosystem::Npm, name, installed.or(range), None)
        })
        .collect();
    let mut env = Env::new(dir, EnvironmentKind::NodeProject);
    env.packages = packages;
    Some(env)
}

/// The Node projects of the `package.json` files found by the walk, each once; a
/// `package.json` inside a Python environment (a Jupyter extension, a bundled asset) is part of
/// that environment, not a project.
pub(super) fn projects(package_jsons: &[PathBuf], python: &[Env], all_packages: bool, errors: &mut Errors) -> Vec<Env> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for manifest in package_jsons {
        let Some(dir) = manifest.parent().and_then(|d| canonical(d, "node project", errors)) else { continue };
        if python.iter().any(|env| env.holds(&dir)) || !seen.insert(dir.clone()) {
            continue;
        }
        out.extend(examine_project(dir, all_packages, errors));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_from_all_four_fields() {
        let m = parse_package_json(
            br#"{"name":"p","version":"1.0.0","dependencies":{"openai":"^4.0.0"},"devDependencies":{"openai":"^3","vitest":"1"},"optionalDependencies":{"x":{"bad":1}},"peerDependencies":{"@langchain/core":">=0.2"}}"#,
        )
        .unwrap();
        assert_eq!(m.version.as_deref(), Some("1.0.0"));
        let deps: Vec<(&str, Option<&str>)> = m.dependencies.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        assert_eq!(
            deps,
            vec![("@langchain/core", Some(">=0.2")), ("openai", Some("^4.0.0")), ("vitest", Some("1")), ("x", None)]
        );
        assert_eq!(parse_package_json(b"[]"), None);
        assert_eq!(parse_package_json(br#"{"dependencies":[1]}"#).unwrap().dependencies.len(), 0);
    }

    #[test]
    fn package_names_never_climb() {
        assert!(is_package_name("openai"));
        assert!(is_package_name("@anthropic-ai/sdk"));
        assert!(!is_package_name(".."));
        assert!(!is_package_name("@x/../../etc"));
        assert!(!is_package_name("a/b"));
        assert!(!is_package_name("@scope"));
        assert!(!is_package_name(""));
    }

    #[test]
    fn pnpm_links_inside_the_project_are_followed_and_loops_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().canonicalize().unwrap();
        let store = project.join("node_modules/.pnpm/ollama@0.5.0/node_modules/ollama");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("package.json"), br#"{"name":"ollama","version":"0.5.0"}"#).unwrap();
        std::os::unix::fs::symlink(".pnpm/ollama@0.5.0/node_modules/ollama", project.join("node_modules/ollama"))
            .unwrap();
        std::os::unix::fs::symlink("loop-b", project.join("node_modules/loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", project.join("node_modules/loop-b")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("package.json"), br#"{"version":"6.6.6"}"#).unwrap();
        std::os::unix::fs::symlink(outside.path(), project.join("node_modules/escape")).unwrap();

        let mut errors = Errors::default();
        assert_eq!(installed_version(&project, "ollama", &mut errors).as_deref(), Some("0.5.0"));
        assert_eq!(installed_version(&project, "escape", &mut errors), None);
        assert_eq!(installed_version(&project, "missing", &mut errors), None);
        assert_eq!(installed_version(&project, "loop-a", &mut errors), None);
        let errs = errors.into_sorted();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].path.ends_with("node_modules/loop-a"));
    }
}

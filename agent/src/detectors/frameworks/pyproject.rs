//! Python projects: the dependencies a project declares before (or without) an environment
//! being installed, the way [`super::node`] reads a `package.json`.
//!
//! A project is the directory holding one of its manifests, found by the walk: `pyproject.toml`
//! (PEP 621 `[project]` dependencies and optional dependencies, PEP 735 `[dependency-groups]`,
//! Poetry's `[tool.poetry.*dependencies]`), `Pipfile`, `requirements*.txt` / `requirements*.in`
//! (also in a `requirements/` directory, whose parent is the project), `environment.yml`, and the
//! lock files `uv.lock` and `poetry.lock`. Each dependency is reported with the range the first
//! manifest that names it declares; a package named only by a lock file gets its locked version.
//!
//! Nothing here is executed and nothing is echoed but a package's name and a version range made
//! of version characters: a requirement given by URL (`name @ git+https://user:token@…`), an
//! index option (`--index-url https://user:pass@…`) or an editable path never reaches the output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use toml::Value as Toml;

use super::files::{canonical, Errors};
use super::packages::Package;
use super::watchlist::normalize_name;
use super::Env;
use crate::fileio::{self, Oversize};
use crate::report::inventory::{Ecosystem, EnvironmentKind};

/// Bytes of a manifest read (`pyproject.toml`, `Pipfile`, requirements, `environment.yml`).
const MANIFEST_LIMIT: u64 = 1024 * 1024;
/// Bytes of a lock file read: they list every transitive package with its hashes.
const LOCK_LIMIT: u64 = 16 * 1024 * 1024;
/// Longest version range kept; a longer one is not a range.
const RANGE_MAX: usize = 128;
/// Dependencies kept from one project: more is not a project's own list.
const DEPENDENCIES_MAX: usize = 20_000;

/// Which manifest a file is, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Manifest {
    /// `pyproject.toml`.
    Pyproject,
    /// `Pipfile`.
    Pipfile,
    /// `requirements*.txt`, `requirements*.in`, `requirements/*.txt`.
    Requirements,
    /// `environment.yml` / `environment.yaml` (conda).
    CondaEnvironment,
    /// `uv.lock`, `poetry.lock`.
    Lock,
}

impl Manifest {
    fn of(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        match name {
            "pyproject.toml" => Some(Self::Pyproject),
            "Pipfile" => Some(Self::Pipfile),
            "environment.yml" | "environment.yaml" => Some(Self::CondaEnvironment),
            "uv.lock" | "poetry.lock" => Some(Self::Lock),
            _ if is_requirements_name(path) => Some(Self::Requirements),
            _ => None,
        }
    }
}

/// Whether `path` names a pip requirements file: `requirements*.txt`, `requirements*.in`, or
/// any `*.txt` in a directory named `requirements`. Allocates nothing: the walk asks this of
/// every file name.
pub fn is_requirements_name(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some(name) = path.file_name().map(OsStrExt::as_bytes) else { return false };
    let text_file = name.ends_with(b".txt");
    (name.starts_with(b"requirements") && (text_file || name.ends_with(b".in")))
        || (text_file && path.parent().and_then(Path::file_name).is_some_and(|d| d.as_bytes() == b"requirements"))
}

/// The project directory of the manifest `path`: its directory, or for `requirements/x.txt`
/// the directory above.
fn project_dir(path: &Path) -> Option<&Path> {
    let dir = path.parent()?;
    let in_requirements_dir = dir.file_name().is_some_and(|d| d == "requirements")
        && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("requirements"));
    if in_requirements_dir {
        dir.parent()
    } else {
        Some(dir)
    }
}

/// One declared dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Where the name lives.
    pub ecosystem: Ecosystem,
    /// PEP 503 normalised name.
    pub name: String,
    /// The declared range (`>=1.30,<2`, `^0.2`, `*`), `None` when none is given or it is not made
    /// of version characters.
    pub range: Option<String>,
}

/// The range `text` when it is made only of characters of version specifiers and short enough;
/// anything else (a URL, a path, a credential) is dropped.
fn clean_range(text: &str) -> Option<String> {
    let text = text.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || " .*+!<>=~,^_-|".contains(c);
    (!text.is_empty() && text.len() <= RANGE_MAX && text.chars().all(allowed)).then(|| text.to_owned())
}

/// Whether `name` is a distribution name (PEP 508: letters, digits, `.`, `_`, `-`, starting and
/// ending with a letter or digit).
fn is_distribution_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    name.len() <= 200
        && edge(bytes.first())
        && edge(bytes.last())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The distribution name `text` starts with and what follows it; `None` when it starts with no
/// name.
fn split_name(text: &str) -> Option<(&str, &str)> {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))).unwrap_or(text.len());
    let (name, rest) = text.split_at(end);
    is_distribution_name(name).then_some((name, rest))
}

/// One PEP 508 requirement string: its name and version range; `None` when it is not one (a
/// path, a URL, an option). `name @ url` keeps the name and drops the URL.
pub fn parse_requirement(text: &str) -> Option<Declared> {
    let text = text.trim();
    let (name, mut rest) = split_name(text)?;
    rest = rest.trim_start();
    if let Some(extras) = rest.strip_prefix('[') {
        rest = extras.split_once(']')?.1.trim_start();
    }
    let spec = match rest.chars().next() {
        None | Some(';') => None,
        Some('@') => None,
        Some('(') => clean_range(rest.get(1..)?.split(')').next()?),
        Some('<' | '>' | '=' | '!' | '~') => clean_range(rest.split(';').next()?),
        Some(_) => return None,
    };
    Some(Declared { ecosystem: Ecosystem::Pypi, name: normalize_name(name), range: spec })
}

/// The dependencies of a pip requirements file. Options (`-r`, `-e`, `--index-url`, …), paths
/// and URLs are skipped; per-requirement options (`--hash`) are cut off.
pub fn parse_requirements(text: &str) -> Vec<Declared> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(joined) = line.strip_suffix('\\') {
            logical.push_str(joined);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let whole = std::mem::take(&mut logical);
        let uncommented = match whole.find(" #").or_else(|| whole.find("\t#")) {
            Some(i) => whole.get(..i).unwrap_or_default(),
            None => whole.as_str(),
        };
        let trimmed = uncommented.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let requirement = trimmed.split(" --").next().unwrap_or_default();
        out.extend(parse_requirement(requirement));
        if out.len() >= DEPENDENCIES_MAX {
            break;
        }
    }
    out
}

/// A Poetry or Pipfile value: `"^1.2"`, `{version = "^1.2", …}`, or a list of such tables.
fn table_range(value: &Toml) -> Option<String> {
    match value {
        Toml::String(s) => clean_range(s),
        Toml::Table(t) => t.get("version").and_then(Toml::as_str).and_then(clean_range),
        Toml::Array(items) => items.iter().find_map(table_range),
        _ => None,
    }
}

/// The dependencies of a name → range table (Poetry, Pipfile); `python` is the interpreter.
fn named_table(table: Option<&Toml>, out: &mut Vec<Declared>) {
    for (name, value) in table.and_then(Toml::as_table).into_iter().flatten() {
        if name.eq_ignore_ascii_case("python") || !is_distribution_name(name) {
            continue;
        }
        out.push(Declared { ecosystem: Ecosystem::Pypi, name: normalize_name(name), range: table_range(value) });
    }
}

/// The PEP 508 strings of a list (entries that are not strings, such as PEP 735
/// `{include-group = …}`, are skipped).
fn requirement_list(list: Option<&Toml>, out: &mut Vec<Declared>) {
    for item in list.and_then(Toml::as_array).into_iter().flatten() {
        out.extend(item.as_str().and_then(parse_requirement));
    }
}

/// The dependencies of a `pyproject.toml`: PEP 621, PEP 735 and Poetry. `None` when it is not
/// TOML.
pub fn parse_pyproject(text: &str) -> Option<Vec<Declared>> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let mut out = Vec::new();
    let project = doc.get("project");
    requirement_list(project.and_then(|p| p.get("dependencies")), &mut out);
    let optional = project.and_then(|p| p.get("optional-dependencies")).and_then(Toml::as_table);
    for list in optional.into_iter().flat_map(|t| t.values()) {
        requirement_list(Some(list), &mut out);
    }
    for list in doc.get("dependency-groups").and_then(Toml::as_table).into_iter().flat_map(|t| t.values()) {
        requirement_list(Some(list), &mut out);
    }
    if let Some(poetry) = doc.get("tool").and_then(|t| t.get("poetry")) {
        named_table(poetry.get("dependencies"), &mut out);
        named_table(poetry.get("dev-dependencies"), &mut out);
        for group in poetry.get("group").and_then(Toml::as_table).into_iter().flat_map(|t| t.values()) {
            named_table(group.get("dependencies"), &mut out);
        }
    }
    Some(out)
}

/// The dependencies of a `Pipfile`. `None` when it is not TOML.
pub fn parse_pipfile(text: &str) -> Option<Vec<Declared>> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let mut out = Vec::new();
    named_table(doc.get("packages"), &mut out);
    named_table(doc.get("dev-packages"), &mut out);
    Some(out)
}

/// One conda match spec (`pytorch`, `numpy>=1.26`, `conda-forge::openai=1.30`, `python 3.11.*`).
fn parse_conda_spec(text: &str) -> Option<Declared> {
    let text = text.trim();
    let text = text.rsplit_once("::").map_or(text, |(_, spec)| spec);
    let (name, rest) = split_name(text)?;
    if name == "python" || name == "pip" {
        return None;
    }
    let rest = rest.trim();
    if !(rest.is_empty()
        || rest.starts_with(['<', '>', '=', '!', '~'])
        || rest.starts_with(|c: char| c.is_ascii_digit()))
    {
        return None;
    }
    Some(Declared { ecosystem: Ecosystem::Conda, name: normalize_name(name), range: clean_range(rest) })
}

/// The dependencies of a conda `environment.yml`: its conda specs, and the PEP 508 strings of
/// its `pip:` list. `None` when it is not a YAML mapping.
pub fn parse_conda_environment(text: &str) -> Option<Vec<Declared>> {
    let doc: Json = serde_yaml_ng::from_str(text).ok()?;
    let mut out = Vec::new();
    for item in doc.as_object()?.get("dependencies").and_then(Json::as_array).into_iter().flatten() {
        match item {
            Json::String(spec) => out.extend(parse_conda_spec(spec)),
            Json::Object(map) => {
                let pip = map.get("pip").and_then(Json::as_array).into_iter().flatten();
                out.extend(pip.filter_map(Json::as_str).filter_map(parse_requirement));
            }
            _ => {}
        }
    }
    Some(out)
}

/// The locked packages of a `uv.lock` or `poetry.lock` (`[[package]]` with `name` and
/// `version`), each with its exact version. `None` when it is not TOML.
pub fn parse_lock(text: &str) -> Option<Vec<Declared>> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let packages = doc.get("package").and_then(Toml::as_array).map(Vec::as_slice).unwrap_or_default();
    let locked = packages.iter().filter_map(|p| {
        let name = p.get("name")?.as_str().filter(|n| is_distribution_name(n))?;
        let version = p.get("version").and_then(Toml::as_str).and_then(clean_range);
        Some(Declared { ecosystem: Ecosystem::Pypi, name: normalize_name(name), range: version })
    });
    Some(locked.take(DEPENDENCIES_MAX).collect())
}

/// Reads and parses one manifest of the project `dir` (canonical), noting what cannot be read
/// or parsed.
fn read_manifest(path: &Path, kind: Manifest, errors: &mut Errors) -> Vec<Declared> {
    let limit = if kind == Manifest::Lock { LOCK_LIMIT } else { MANIFEST_LIMIT };
    let bytes = match fileio::read_found_if_present(path, limit, Oversize::Refuse) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Vec::new(),
        Err(e) => {
            errors.io(path, "python project manifest", &e);
            return Vec::new();
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        errors.note(path, "cannot parse python project manifest: not utf-8".to_owned());
        return Vec::new();
    };
    let parsed = match kind {
        Manifest::Pyproject => parse_pyproject(text),
        Manifest::Pipfile => parse_pipfile(text),
        Manifest::Requirements => Some(parse_requirements(text)),
        Manifest::CondaEnvironment => parse_conda_environment(text),
        Manifest::Lock => parse_lock(text),
    };
    parsed.unwrap_or_else(|| {
        let format = if kind == Manifest::CondaEnvironment { "yaml" } else { "toml" };
        errors.note(path, format!("cannot parse python project manifest: not {format}"));
        Vec::new()
    })
}

/// Whether `dir` lies where installed code lives rather than a project: a package's sources in
/// `site-packages` or `node_modules` ship manifests too.
fn inside_installed_code(dir: &Path) -> bool {
    dir.components().any(|c| {
        let c = c.as_os_str();
        c == "site-packages" || c == "dist-packages" || c == "node_modules"
    })
}

/// The Python projects of the manifests found by the walk, one per directory; a manifest inside
/// a Python environment or installed code is not a project.
pub(super) fn projects(manifests: &[PathBuf], python: &[Env], errors: &mut Errors) -> Vec<Env> {
    let mut by_dir: BTreeMap<PathBuf, BTreeSet<(Manifest, PathBuf)>> = BTreeMap::new();
    for path in manifests {
        let (Some(kind), Some(dir)) = (Manifest::of(path), project_dir(path)) else { continue };
        let Some(dir) = canonical(dir, "python project", errors) else { continue };
        if inside_installed_code(&dir) || python.iter().any(|env| env.holds(&dir)) {
            continue;
        }
        // The canonical directory and the manifest's place in it: the file is then read with no
        // link at any component.
        let Some(relative) = project_dir(path).and_then(|d| path.strip_prefix(d).ok()) else { continue };
        let file = dir.join(relative);
        by_dir.entry(dir).or_default().insert((kind, file));
    }
    by_dir.into_iter().map(|(dir, files)| examine_project(dir, &files, errors)).collect()
}

/// One project: every manifest's dependencies, the first manifest (in [`Manifest`] order, then
/// path) to name a package giving its range; a lock file's version only for packages nothing
/// else declares.
fn examine_project(dir: PathBuf, files: &BTreeSet<(Manifest, PathBuf)>, errors: &mut Errors) -> Env {
    let mut declared: BTreeMap<(Ecosystem, String), Option<String>> = BTreeMap::new();
    for (kind, path) in files {
        for d in read_manifest(path, *kind, errors) {
            if declared.len() >= DEPENDENCIES_MAX {
                break;
            }
            let slot = declared.entry((d.ecosystem, d.name)).or_insert(None);
            if slot.is_none() {
                *slot = d.range;
            }
        }
    }
    let mut env = Env::new(dir, EnvironmentKind::PythonProject);
    env.packages =
        declared.into_iter().map(|((ecosystem, name), range)| Package::new(ecosystem, name, range, None)).collect();
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[Declared]) -> Vec<(&str, Option<&str>)> {
        v.iter().map(|d| (d.name.as_str(), d.range.as_deref())).collect()
    }

    #[test]
    fn requirement_strings() {
        let r = |s: &str| parse_requirement(s).map(|d| (d.name, d.range));
        assert_eq!(r("openai>=1.30,<2"), Some(("openai".into(), Some(">=1.30,<2".into()))));
        assert_eq!(
            r("Torch[cuda] == 2.5.1 ; python_version >= '3.9'"),
            Some(("torch".into(), Some("== 2.5.1".into())))
        );
        assert_eq!(r("langchain_core (>=0.2)"), Some(("langchain-core".into(), Some(">=0.2".into()))));
        assert_eq!(r("transformers"), Some(("transformers".into(), None)));
        assert_eq!(r("anthropic ~=0.40"), Some(("anthropic".into(), Some("~=0.40".into()))));
        // A URL requirement keeps its name, never the URL (it may carry a token).
        assert_eq!(r("vllm @ git+https://user:ghp_secret@github.com/x/vllm"), Some(("vllm".into(), None)));
        for not_one in ["./local/pkg", "https://x/y.whl", "git+https://h/r#egg=x", "", "-e .", "/abs/path"] {
            assert_eq!(r(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn requirements_files_skip_options_urls_and_comments() {
        let text = "# top\n--index-url https://user:pass@pypi.corp/simple\n-r base.txt\n-e git+https://tok@h/r#egg=a\n\
                    openai==1.40.0 --hash=sha256:abc \\\n    --hash=sha256:def\ntorch>=2 # pinned later\n\r\n\
                    https://x/y.whl\nvllm @ https://u:p@h/v.whl\nnumpy\r\n";
        let got = parse_requirements(text);
        assert_eq!(
            pairs(&got),
            vec![("openai", Some("==1.40.0")), ("torch", Some(">=2")), ("vllm", None), ("numpy", None)]
        );
        let debug = format!("{got:?}");
        for secret in ["pass", "tok@", "u:p", "sha256"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn pyproject_pep621_pep735_and_poetry() {
        let text = r#"
[project]
name = "app"
dependencies = ["openai>=1.30", "httpx"]
[project.optional-dependencies]
gpu = ["torch==2.5.1"]
[dependency-groups]
dev = ["pytest", {include-group = "x"}]
[tool.poetry.dependencies]
python = "^3.11"
langchain = "^0.2"
transformers = {version = "^4.40", extras = ["torch"]}
private = {git = "https://user:tok@h/r.git"}
[tool.poetry.group.eval.dependencies]
ragas = [{version = "<0.2", python = "<3.12"}, {version = ">=0.2"}]
"#;
        let got = parse_pyproject(text).unwrap();
        assert_eq!(
            pairs(&got),
            vec![
                ("openai", Some(">=1.30")),
                ("httpx", None),
                ("torch", Some("==2.5.1")),
                ("pytest", None),
                ("langchain", Some("^0.2")),
                ("private", None),
                ("transformers", Some("^4.40")),
                ("ragas", Some("<0.2")),
            ]
        );
        assert_eq!(parse_pyproject("not = [toml"), None);
    }

    #[test]
    fn pipfile_conda_environment_and_locks() {
        let pipfile =
            "[packages]\nopenai = \"*\"\nllama-index = {version = \">=0.10\"}\n[dev-packages]\nblack = \"==24.1\"\n";
        assert_eq!(
            pairs(&parse_pipfile(pipfile).unwrap()),
            vec![("llama-index", Some(">=0.10")), ("openai", Some("*")), ("black", Some("==24.1"))]
        );
        let env = "name: ml\nchannels: [pytorch]\ndependencies:\n  - python=3.11\n  - pytorch::pytorch>=2.3\n  - cudatoolkit 11.8.*\n  - pip\n  - pip:\n    - openai==1.40\n    - -r extra.txt\n";
        let got = parse_conda_environment(env).unwrap();
        assert_eq!(
            got.iter().map(|d| d.ecosystem).collect::<Vec<_>>(),
            [Ecosystem::Conda, Ecosystem::Conda, Ecosystem::Pypi]
        );
        assert_eq!(
            pairs(&got),
            vec![("pytorch", Some(">=2.3")), ("cudatoolkit", Some("11.8.*")), ("openai", Some("==1.40"))]
        );
        assert_eq!(parse_conda_environment("- a list"), None);
        let lock = "version = 1\n[[package]]\nname = \"OpenAI\"\nversion = \"1.40.0\"\n[[package]]\nname = \"app\"\nsource = { editable = \".\" }\n";
        assert_eq!(pairs(&parse_lock(lock).unwrap()), vec![("openai", Some("1.40.0")), ("app", None)]);
    }

    #[test]
    fn ranges_are_version_characters_only() {
        assert_eq!(clean_range(" >=1.0, <2 ").as_deref(), Some(">=1.0, <2"));
        assert_eq!(clean_range("^0.2 || ~0.3").as_deref(), Some("^0.2 || ~0.3"));
        for bad in ["https://h/x", "a/b", "x@y", "${TOKEN}", "", &"1".repeat(RANGE_MAX + 1)] {
            assert_eq!(clean_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn requirements_names_and_project_directories() {
        for (path, yes) in [
            ("/p/requirements.txt", true),
            ("/p/requirements-dev.txt", true),
            ("/p/requirements.in", true),
            ("/p/requirements/base.txt", true),
            ("/p/notes.txt", false),
            ("/p/requirements.md", false),
        ] {
            assert_eq!(is_requirements_name(Path::new(path)), yes, "{path}");
        }
        assert_eq!(project_dir(Path::new("/p/requirements/base.txt")), Some(Path::new("/p")));
        assert_eq!(project_dir(Path::new("/p/requirements.txt")), Some(Path::new("/p")));
        assert_eq!(project_dir(Path::new("/p/sub/pyproject.toml")), Some(Path::new("/p/sub")));
    }

    proptest::proptest! {
        /// Whatever follows a package name in a requirement, only version characters come out.
        #[test]
        fn no_requirement_leaks_more_than_version_characters(tail in "\\PC{0,80}") {
            for text in [format!("pkg{tail}"), format!("pkg>={tail}"), format!("pkg @ {tail}")] {
                if let Some(d) = parse_requirement(&text) {
                    let range = d.range.unwrap_or_default();
                    proptest::prop_assert!(range.chars().all(|c| c.is_ascii_alphanumeric() || " .*+!<>=~,^_-|".contains(c)));
                    proptest::prop_assert!(range.len() <= RANGE_MAX);
                }
            }
            let _ = parse_requirements(&tail);
            let _ = parse_pyproject(&tail);
            let _ = parse_conda_environment(&tail);
        }
    }
}

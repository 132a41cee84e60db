//! Hugging Face remote code: a model directory whose `config.json`, `tokenizer_config.json`,
//! `preprocessor_config.json`, `processor_config.json` or `feature_extractor_config.json` has an
//! `auto_map` (or `config.json` a `custom_pipelines` entry with an `impl`) makes `transformers`
//! import the Python modules it names when the model is loaded with `trust_remote_code=True`.
//!
//! `auto_map` values are class references: `"modeling_foo.FooForCausalLM"` (the module file
//! `modeling_foo.py` beside the config), `"org/repo--modeling_foo.Foo"` (code fetched from another
//! repository: named, never on disk), or, for tokenizers, a list `["tokenization_foo.FooTokenizer",
//! null]` (slow and fast class, either may be null). Every module named gets one `remote_code`
//! finding, `suspicious` by itself. Configs are read whole up to [`MAX_CONFIG_BYTES`] (a larger
//! one is a `bound_exceeded` finding) and parsed by `serde_json`, whose recursion limit (128
//! levels) bounds the depth.
//!
//! # Judging the modules
//! The module's source (and the modules it imports relatively, `from .configuration_foo import
//! …`, at most [`MAX_MODULES`] files of at most [`MAX_SOURCE_BYTES`] each) is read by the one
//! Python scanner, [`pycode::scan`] (strings and comments blanked, imports and aliases
//! resolved, each call marked as running at import or inside a `def`/`lambda`), and judged here
//! ([`judge_python`]). `pycode` judges the same scan for bundled handlers, which only run at
//! import; remote-code modules also run when their classes are instantiated, so most rules here
//! hold anywhere in the file. Every module and function these rules list is one
//! [`super::policy::classify`] denies (a test checks it; the `.write_text`/`.write_bytes`
//! methods of any value aside): the lists only narrow the policy to what ordinary modeling code
//! never needs. The finding is `dangerous` when the scan finds any of:
//!
//! 1. anywhere in the file, an import of a process, network or code-loading module
//!    ([`DANGEROUS_MODULES`]: `subprocess`, `socket`, `requests`, `urllib`, `http`, …), or of a
//!    process function from `os` (`from os import system`, [`OS_PROCESS`]);
//! 2. anywhere in the file, a call of `eval(`, `exec(`, `__import__(`, `compile(`, or of a process
//!    function of `os` (`os.system(`, `os.popen(`, `os.exec*(`, `os.spawn*(`, `os.fork(`, …),
//!    also through an alias (`import os as o` then `o.system(`);
//! 3. in a statement that runs when the module is imported (module level, class bodies and
//!    top-level blocks, continuation lines included; not a `def` or `lambda` body, nor an
//!    `if __name__ == "__main__":` block), a
//!    file-system write: `open(` with a mode literal holding `w`, `a`, `x` or `+`,
//!    `os.remove(`/`unlink(`/`rmdir(`/`removedirs(`/`rename(`/`replace(`/`chmod(`,
//!    `shutil.rmtree(`/`move(`/`copy…(`, `.write_text(`/`.write_bytes(`.
//!
//! Deliberately not flagged: `import os`, `import sys`, `import importlib`, `from shutil import
//! copyfile` (ordinary tokenizers use `os.path` and copy their vocabulary in `save_vocabulary`)
//! and writes inside functions. Comments and string literals (docstrings included) are skipped;
//! method calls (`model.eval()`) are not bare calls. A module with more calls than the scanner
//! keeps ([`pycode::MAX_CALLS`]) says so in its finding's detail.

use serde_json::Value;

use super::{pycode, SafetyReport, Verdict};

/// The config files whose `auto_map` `transformers` follows.
pub const CONFIG_FILES: &[&str] = &[
    "config.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
];
/// Largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;
/// Largest part of one Python module scanned.
pub const MAX_SOURCE_BYTES: u64 = 1024 * 1024;
/// Most Python modules scanned per directory (named ones and their relative imports).
pub const MAX_MODULES: usize = 32;
/// Most class references taken from one config.
const MAX_REFS: usize = 256;
/// Most hits kept per Python source (the scan stays linear however many there are).
const MAX_HITS: usize = 64;
/// Most hits listed in one finding's detail.
const MAX_LISTED: usize = 8;

/// Modules whose import is a process, network or code-loading API (the top-level package).
pub const DANGEROUS_MODULES: &[&str] = &[
    "subprocess",
    "socket",
    "ssl",
    "requests",
    "urllib",
    "urllib2",
    "urllib3",
    "http",
    "httpx",
    "aiohttp",
    "ftplib",
    "smtplib",
    "telnetlib",
    "paramiko",
    "pty",
    "pexpect",
    "webbrowser",
    "ctypes",
    "runpy",
    "marshal",
];

/// Functions of `os` that start processes, replace the process or kill one.
pub const OS_PROCESS: &[&str] = &[
    "system",
    "popen",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "fork",
    "forkpty",
    "posix_spawn",
    "posix_spawnp",
    "kill",
    "killpg",
];

/// Builtins that run code from strings (`builtins.<name>`).
const EVAL_CALLS: &[&str] = &["eval", "exec", "__import__", "compile"];

/// File-system writes when called at import (resolved callees).
const FS_WRITE_CALLS: &[&str] = &[
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.removedirs",
    "os.rename",
    "os.replace",
    "os.chmod",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copy",
    "shutil.copy2",
    "shutil.copyfile",
    "shutil.copytree",
];

/// File-system writes when called at import as methods of any value (`path.write_text(`).
const FS_WRITE_METHODS: &[&str] = &["write_text", "write_bytes"];

/// One class reference of an `auto_map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRef {
    /// The `auto_map` key (`AutoModelForCausalLM`).
    pub auto: String,
    /// The reference as written.
    pub reference: String,
    /// The repository the code comes from, for `repo--module.Class`.
    pub repo: Option<String>,
    /// The module (`modeling_foo`), when it is a Python identifier.
    pub module: Option<String>,
}

/// The class references of the `auto_map` (and `custom_pipelines` `impl`s) of a config file's
/// bytes; empty when the bytes are not a JSON object holding either.
pub fn auto_map_refs(config: &[u8]) -> Vec<ClassRef> {
    let Ok(json) = serde_json::from_slice::<Value>(config) else { return Vec::new() };
    let mut entries: Vec<(String, &Value)> = Vec::new();
    if let Some(map) = json.get("auto_map").and_then(Value::as_object) {
        entries.extend(map.iter().map(|(k, v)| (k.clone(), v)));
    }
    if let Some(pipes) = json.get("custom_pipelines").and_then(Value::as_object) {
        for (task, pipe) in pipes {
            if let Some(imp) = pipe.get("impl") {
                entries.push((format!("custom_pipelines.{task}"), imp));
            }
        }
    }
    let mut out = Vec::new();
    for (auto, value) in &entries {
        let refs: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for reference in refs {
            if out.len() >= MAX_REFS {
                return out;
            }
            out.push(parse_ref(auto, reference));
        }
    }
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

/// Splits `repo--module.Class` the way `transformers`' `get_class_from_dynamic_module` does.
fn parse_ref(auto: &str, reference: &str) -> ClassRef {
    let (repo, rest) = match reference.split_once("--") {
        Some((repo, rest)) => (Some(repo.to_string()), rest),
        None => (None, reference),
    };
    let module = rest.rsplit_once('.').map(|(m, _)| m).filter(|m| is_identifier(m)).map(str::to_string);
    ClassRef { auto: auto.to_string(), reference: reference.to_string(), repo, module }
}

/// What the scan of one Python source found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonScan {
    /// Dangerous constructs, as `line N: what` (the first [`MAX_HITS`]).
    pub hits: Vec<String>,
    /// Modules imported relatively (`from .configuration_foo import …`), as relative paths
    /// without `.py` (`configuration_foo`, `sub/mod`); the first [`MAX_MODULES`].
    pub relative: Vec<String>,
    /// The file had more calls or imports than the scanner keeps; the later ones were not judged.
    pub cut: bool,
}

/// Scans Python source for the constructs of the module doc: one [`pycode::scan`], judged by
/// [`judge_python`]. Never fails: undecodable bytes are replaced, and the scan is linear in the
/// input.
pub fn scan_python(src: &[u8]) -> PythonScan {
    judge_python(&pycode::scan(src))
}

/// Records `what` at `line` unless it is there already or [`MAX_HITS`] are.
fn hit(hits: &mut Vec<(usize, String)>, line: usize, what: String) {
    if hits.len() < MAX_HITS && !hits.iter().any(|(l, w)| *l == line && *w == what) {
        hits.push((line, what));
    }
}

/// The relative module path of `from .a.b import ...` (`a/b`), or of each name of `from . import
/// a, b`; nothing for a parent package or a name that is not an identifier.
fn relative_paths(import: &pycode::Import) -> Vec<String> {
    let Some(rel) = import.module.strip_prefix('.') else { return Vec::new() };
    let rel = rel.trim_start_matches('.');
    if rel.is_empty() {
        // `from . import a, b`: sibling modules.
        return import.names.iter().map(|n| n.name.clone()).filter(|n| is_identifier(n)).collect();
    }
    if rel.split('.').all(is_identifier) && rel.split('.').count() <= 4 {
        return vec![rel.replace('.', "/")];
    }
    Vec::new()
}

/// The hit of one import: rule 1 of the module doc.
fn import_hit(import: &pycode::Import) -> Vec<String> {
    let module = import.module.as_str();
    let top = module.split('.').next().unwrap_or(module).trim();
    if DANGEROUS_MODULES.contains(&top) {
        return vec![format!("imports {module}")];
    }
    let picked: &[&str] = match top {
        "os" | "posix" | "nt" => OS_PROCESS,
        "builtins" => EVAL_CALLS,
        _ => return Vec::new(),
    };
    import
        .names
        .iter()
        .filter(|n| picked.contains(&n.name.as_str()))
        .map(|n| format!("imports {module}.{}", n.name))
        .collect()
}

/// The hit of one call: rules 2 and 3 of the module doc.
fn call_hit(call: &pycode::Call) -> Option<String> {
    let callee = call.callee.as_str();
    let (head, name) = callee.rsplit_once('.').unwrap_or(("", callee));
    // Rule 2, anywhere: code from strings and process functions of `os`.
    if head == "builtins" && EVAL_CALLS.contains(&name) {
        return Some(format!("calls {name}()"));
    }
    if matches!(head, "os" | "posix" | "nt") && OS_PROCESS.contains(&name) {
        return Some(format!("calls {callee}()"));
    }
    if !call.at_import {
        return None;
    }
    // Rule 3, when the module is imported: file-system writes.
    if let Some(mode) = &call.open_mode {
        let write =
            mode.len() <= 3 && mode.chars().all(|c| "rwxabt+".contains(c)) && mode.chars().any(|c| "wax+".contains(c));
        return write.then(|| "opens a file for writing at module level".to_string());
    }
    let write = FS_WRITE_CALLS.contains(&callee) || (!head.is_empty() && FS_WRITE_METHODS.contains(&name));
    let shown = if FS_WRITE_CALLS.contains(&callee) { callee } else { name };
    write.then(|| format!("calls {shown}() at module level"))
}

/// Judges one [`pycode::scan`] by the rules of the module doc.
pub fn judge_python(scan: &pycode::PythonScan) -> PythonScan {
    let mut out = PythonScan { cut: scan.truncated, ..PythonScan::default() };
    // Imports and calls are each in line order; the first hits of each, merged, are the first
    // hits of the file.
    let mut from_imports = Vec::new();
    for import in &scan.imports {
        for rel in relative_paths(import) {
            if !out.relative.contains(&rel) && out.relative.len() < MAX_MODULES {
                out.relative.push(rel);
            }
        }
        for what in import_hit(import) {
            hit(&mut from_imports, import.line, what);
        }
    }
    let mut from_calls = Vec::new();
    for call in &scan.calls {
        if from_calls.len() >= MAX_HITS {
            break;
        }
        if let Some(what) = call_hit(call) {
            hit(&mut from_calls, call.line, what);
        }
    }
    let mut hits = from_imports;
    hits.extend(from_calls);
    hits.sort_by_key(|(line, _)| *line);
    for (line, what) in hits {
        let h = format!("line {line}: {what}");
        if out.hits.len() < MAX_HITS && !out.hits.contains(&h) {
            out.hits.push(h);
        }
    }
    out
}

/// Reads a file of the model's directory by its relative path (no symlink followed), at most
/// `limit` bytes; `Ok(None)` when it does not exist; `Err` with a message otherwise.
pub type ReadRel<'a> = &'a dyn Fn(&str, u64) -> Result<Option<ReadOutcome>, String>;

/// What [`ReadRel`] read.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    /// The bytes (at most the limit).
    pub data: Vec<u8>,
    /// The file's size (more than `data.len()` when cut at the limit).
    pub size: u64,
}

/// The remote-code findings of the model directory whose files `read` opens; `None` when no
/// config there has an `auto_map`.
pub fn assess_dir(read: ReadRel<'_>) -> Option<SafetyReport> {
    let mut report = SafetyReport::default();
    let mut any = false;
    let mut scanned: Vec<String> = Vec::new();
    for config in CONFIG_FILES {
        let outcome = match read(config, MAX_CONFIG_BYTES) {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(config, error = %e, "cannot read config");
                continue;
            }
        };
        if outcome.size > MAX_CONFIG_BYTES {
            any = true;
            report.add(
                "bound_exceeded",
                config,
                &format!("{config} is larger than {MAX_CONFIG_BYTES} bytes; its auto_map was not read"),
                Verdict::Suspicious,
                Some(config),
            );
            continue;
        }
        let refs = auto_map_refs(&outcome.data);
        for r in refs {
            any = true;
            let Some(module) = &r.module else {
                report.add(
                    "remote_code",
                    &r.reference,
                    &format!(
                        "{config} auto_map {} names {}, which is not a module.Class reference",
                        r.auto, r.reference
                    ),
                    Verdict::Suspicious,
                    Some(config),
                );
                continue;
            };
            if let Some(repo) = &r.repo {
                report.add(
                    "remote_code",
                    &r.reference,
                    &format!(
                        "{config} auto_map {} names {module}.py from the repository {repo}: loading with \
                         trust_remote_code=True downloads and imports it",
                        r.auto
                    ),
                    Verdict::Suspicious,
                    Some(config),
                );
                continue;
            }
            let file = format!("{module}.py");
            let what = format!(
                "{config} auto_map {} names {}: loading with trust_remote_code=True imports {file}",
                r.auto, r.reference
            );
            module_findings(read, module, &what, config, &mut scanned, &mut report);
        }
    }
    any.then(|| report.finish())
}

/// The finding for `module` (and, once each, the modules it imports relatively).
fn module_findings(
    read: ReadRel<'_>,
    module: &str,
    what: &str,
    config: &str,
    scanned: &mut Vec<String>,
    report: &mut SafetyReport,
) {
    let mut queue = vec![(module.to_string(), what.to_string())];
    while let Some((module, what)) = queue.pop() {
        let file = format!("{module}.py");
        if scanned.contains(&module) {
            continue;
        }
        if scanned.len() >= MAX_MODULES {
            report.add(
                "bound_exceeded",
                &file,
                &format!("more than {MAX_MODULES} remote-code modules; {file} and later ones were not scanned"),
                Verdict::Suspicious,
                Some(config),
            );
            return;
        }
        scanned.push(module.clone());
        let (severity, detail) = match read(&file, MAX_SOURCE_BYTES) {
            Ok(Some(o)) => {
                let scan = scan_python(&o.data);
                for rel in &scan.relative {
                    queue.push((rel.clone(), format!("{file} imports {rel}.py relatively")));
                }
                let cut = if o.size > o.data.len() as u64 {
                    format!(" (only the first {MAX_SOURCE_BYTES} bytes scanned)")
                } else if scan.cut {
                    format!(" (only the first {} calls judged)", pycode::MAX_CALLS)
                } else {
                    String::new()
                };
                if scan.hits.is_empty() {
                    (Verdict::Suspicious, format!("{what}; no process, network, eval or file-write API found{cut}"))
                } else {
                    let more = scan.hits.len().saturating_sub(MAX_LISTED);
                    let listed: Vec<&str> = scan.hits.iter().take(MAX_LISTED).map(String::as_str).collect();
                    let tail = if more > 0 { format!(", +{more} more") } else { String::new() };
                    (Verdict::Dangerous, format!("{what}; it {}{tail}{cut}", listed.join(", ")))
                }
            }
            Ok(None) => (Verdict::Suspicious, format!("{what}; {file} is not in the directory (fetched at load time)")),
            Err(e) => (Verdict::Suspicious, format!("{what}; {file} cannot be read: {e}")),
        };
        report.add("remote_code", &file, &detail, severity, Some(config));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_map_forms() {
        let refs = auto_map_refs(
            br#"{"auto_map": {"AutoConfig": "configuration_foo.FooConfig",
                "AutoModel": "acme/code--modeling_foo.Foo",
                "AutoTokenizer": ["tokenization_foo.FooTokenizer", null],
                "Bad": "../../etc/passwd.x", "Odd": 3}}"#,
        );
        let modules: Vec<Option<&str>> = refs.iter().map(|r| r.module.as_deref()).collect();
        assert_eq!(modules, [Some("configuration_foo"), Some("modeling_foo"), Some("tokenization_foo"), None]);
        assert_eq!(refs.get(1).and_then(|r| r.repo.as_deref()), Some("acme/code"));
        assert!(auto_map_refs(b"{\"model_type\": \"bert\"}").is_empty());
        assert!(auto_map_refs(b"\xff not json").is_empty());
    }

    #[test]
    fn python_scan_flags_what_the_doc_says() {
        let hostile = b"import os\nimport subprocess\nfrom os import system as s\nx = eval('1')\n\
open('/tmp/x', 'w').write('y')\nos.system('id')\n";
        let s = scan_python(hostile);
        assert_eq!(s.hits.len(), 5, "{:?}", s.hits);
        assert!(s.hits.iter().any(|h| h.contains("imports subprocess")));
        let benign = [
            "\"\"\"Calls eval( and import subprocess in a docstring.\"\"\"",
            "import os",
            "import math",
            "from shutil import copyfile",
            "from .configuration_foo import FooConfig",
            "# os.system('x')",
            "class Foo:",
            "    def eval(self):",
            "        return self.model.eval()",
            "    def save(self, d):",
            "        with open(os.path.join(d, 'v.txt'), 'w') as f:",
            "            f.write('x')",
        ]
        .join("\n");
        let benign = benign.as_bytes();
        let s = scan_python(benign);
        assert!(s.hits.is_empty(), "{:?}", s.hits);
        assert_eq!(s.relative, ["configuration_foo"]);
    }

    #[test]
    fn continuation_lines_belong_to_their_statement() {
        let s = scan_python(b"def f():\n    pass\nx = open(\n    'p',\n    'a',\n)\n");
        assert_eq!(s.hits, ["line 3: opens a file for writing at module level"]);
        let s = scan_python(b"def f():\n    y = open(\n        'p', 'w')\n");
        assert!(s.hits.is_empty());
    }
    #[test]
    fn each_form_the_issue_names_is_dangerous_and_a_torch_module_is_not() {
        for hostile in [
            "import subprocess\n",
            "from subprocess import Popen\n",
            "m = __import__('os')\n",
            "exec('print(1)')\n",
            "x = eval('1')\n",
            "import os\nos.system('id')\n",
            "import os as o\no.popen('id')\n",
            "import socket\n",
            "from urllib.request import urlopen\n",
            "open('/tmp/x', 'w').write('y')\n",
        ] {
            assert!(!scan_python(hostile.as_bytes()).hits.is_empty(), "{hostile:?} not flagged");
        }
        let torch_only = [
            "import torch",
            "from torch import nn",
            "import os",
            "",
            "class TinyModel(nn.Module):",
            "    def __init__(self):",
            "        super().__init__()",
            "        self.fc = nn.Linear(4, 2)",
            "",
            "    def forward(self, x):",
            "        return self.fc(x)",
        ]
        .join("\n");
        assert!(scan_python(torch_only.as_bytes()).hits.is_empty());
    }

    #[test]
    fn every_listed_name_is_one_the_policy_denies() {
        use crate::safety::pycode::judge;
        for m in DANGEROUS_MODULES {
            assert!(judge(m).is_some(), "{m}");
        }
        for f in OS_PROCESS {
            assert!(judge(&format!("os.{f}")).is_some(), "os.{f}");
        }
        for f in EVAL_CALLS {
            assert!(judge(&format!("builtins.{f}")).is_some(), "builtins.{f}");
        }
        for f in FS_WRITE_CALLS {
            assert!(judge(f).is_some(), "{f}");
        }
        assert!(judge("builtins.open").is_some());
    }

    #[test]
    fn module_level_means_whatever_runs_at_import() {
        // A write in a class body or a top-level block runs at import; one in a lambda does not.
        let s = scan_python(b"import shutil as sh\nclass A:\n    sh.rmtree('/x')\nif True:\n    open('p', mode='w')\n");
        assert_eq!(
            s.hits,
            ["line 3: calls shutil.rmtree() at module level", "line 5: opens a file for writing at module level"]
        );
        let s = scan_python(b"save = lambda p: p.write_text('x')\nread = open('p', 'r')\n");
        assert!(s.hits.is_empty(), "{:?}", s.hits);
        // Process and eval calls count in function and lambda bodies too.
        let s = scan_python(b"import os as o\ndef f():\n    o.popen('id')\ng = lambda: exec('x')\n");
        assert_eq!(s.hits, ["line 3: calls os.popen()", "line 4: calls exec()"]);
    }

    fn fake_dir(files: Vec<(&'static str, &'static str)>) -> impl Fn(&str, u64) -> Result<Option<ReadOutcome>, String> {
        move |rel: &str, limit: u64| {
            Ok(files.iter().find(|(n, _)| *n == rel).map(|(_, d)| {
                let data = d.as_bytes();
                let cut = data.get(..data.len().min(limit as usize)).unwrap_or_default().to_vec();
                ReadOutcome { data: cut, size: data.len() as u64 }
            }))
        }
    }

    #[test]
    fn a_directory_is_judged_by_the_modules_its_auto_map_names() {
        let config = r#"{"auto_map": {"AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModel": "modeling_tiny.TinyModel"}}"#;
        let benign = fake_dir(vec![
            ("config.json", config),
            ("configuration_tiny.py", "class TinyConfig:\n    pass\n"),
            ("modeling_tiny.py", "import torch\nfrom .configuration_tiny import TinyConfig\n"),
        ]);
        let r = assess_dir(&benign).unwrap();
        assert_eq!(r.verdict, Verdict::Suspicious, "{r:?}");
        let subjects: Vec<&str> = r.findings.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects.len(), 2, "{subjects:?}");
        assert!(subjects.contains(&"modeling_tiny.py") && subjects.contains(&"configuration_tiny.py"));

        // The hostile part hides in the module imported relatively.
        let hostile = fake_dir(vec![
            ("config.json", r#"{"auto_map": {"AutoModel": "modeling_tiny.TinyModel"}}"#),
            ("modeling_tiny.py", "from .helpers import x\n"),
            ("helpers.py", "import os\nos.system('touch /tmp/x')\n"),
        ]);
        let r = assess_dir(&hostile).unwrap();
        assert_eq!(r.verdict, Verdict::Dangerous, "{r:?}");
        assert_eq!(r.findings.first().map(|f| f.subject.as_str()), Some("helpers.py"));

        let elsewhere = fake_dir(vec![(
            "tokenizer_config.json",
            r#"{"auto_map": {"AutoTokenizer": ["acme/code--tokenization_x.XTok", null]}}"#,
        )]);
        let r = assess_dir(&elsewhere).unwrap();
        assert_eq!(r.verdict, Verdict::Suspicious);
        assert!(r.findings.iter().any(|f| f.detail.contains("acme/code")), "{r:?}");

        let missing = fake_dir(vec![("config.json", r#"{"auto_map": {"AutoModel": "modeling_gone.M"}}"#)]);
        let r = assess_dir(&missing).unwrap();
        assert!(r.findings.iter().any(|f| f.detail.contains("not in the directory")), "{r:?}");

        let plain = fake_dir(vec![("config.json", r#"{"model_type": "bert", "architectures": ["BertModel"]}"#)]);
        assert!(assess_dir(&plain).is_none());
    }

    #[test]
    fn custom_pipelines_name_code_too() {
        let refs = auto_map_refs(br#"{"custom_pipelines": {"text-x": {"impl": "pipe_x.XPipeline", "pt": []}}}"#);
        assert_eq!(refs.first().and_then(|r| r.module.as_deref()), Some("pipe_x"));
    }
    #[test]
    fn deep_or_huge_json_is_refused_without_overflowing_the_stack() {
        let deep = format!("{{\"auto_map\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(auto_map_refs(deep.as_bytes()).is_empty());
        let many: Vec<String> = (0..1000).map(|i| format!("\"A{i}\": \"m{i}.C\"")).collect();
        let refs = auto_map_refs(format!("{{\"auto_map\": {{{}}}}}", many.join(",")).as_bytes());
        assert_eq!(refs.len(), MAX_REFS);
    }

    #[test]
    fn a_megabyte_of_hits_stays_linear_and_bounded() {
        let src = "eval('1'); os.system('x')\n".repeat((MAX_SOURCE_BYTES as usize) / 27);
        let started = std::time::Instant::now();
        let scan = scan_python(src.as_bytes());
        assert_eq!(scan.hits.len(), MAX_HITS);
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
        let rel: String = (0..10_000).map(|i| format!("from .m{i} import x\n")).collect();
        assert_eq!(scan_python(rel.as_bytes()).relative.len(), MAX_MODULES);
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_scan_without_panicking(src in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let scan = scan_python(&src);
            let lines = src.iter().filter(|b| **b == b'\n').count() + 1;
            for h in &scan.hits {
                let n: usize = h.strip_prefix("line ").and_then(|r| r.split(':').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
                prop_assert!(n >= 1 && n <= lines, "{} of {} lines", h, lines);
            }
            prop_assert!(scan.relative.iter().all(|r| r.split('/').all(is_identifier)));
        }

        #[test]
        fn code_in_comments_and_strings_is_never_a_hit(text in "[ -~]{0,80}") {
            let quoted = text.replace(['"', '\\'], "");
            let src = format!("# {text}\nx = \"{quoted}\"\n\"\"\"\n{quoted}\n\"\"\"\n");
            prop_assert!(scan_python(src.as_bytes()).hits.is_empty(), "{:?}", src);
        }

        #[test]
        fn a_module_level_os_system_is_found_after_any_benign_prefix(
            prefix in proptest::collection::vec("(import torch|x = 1|class A:\n    pass|def f():\n    return 2)", 0..8),
        ) {
            let src = format!("{}\nimport os\nos.system('id')\n", prefix.join("\n"));
            let scan = scan_python(src.as_bytes());
            prop_assert!(scan.hits.iter().any(|h| h.contains("os.system")), "{:?}", scan.hits);
        }

        #[test]
        fn auto_map_references_round_trip(
            entries in proptest::collection::btree_map("[A-Z][A-Za-z]{0,12}", ("[a-z_][a-z0-9_]{0,20}", "[A-Z][A-Za-z]{0,12}", proptest::option::of("[a-z]{1,8}/[a-z]{1,8}")), 0..12),
        ) {
            let map: serde_json::Map<String, Value> = entries
                .iter()
                .map(|(k, (m, c, repo))| {
                    let r = match repo {
                        Some(repo) => format!("{repo}--{m}.{c}"),
                        None => format!("{m}.{c}"),
                    };
                    (k.clone(), Value::String(r))
                })
                .collect();
            let json = serde_json::json!({ "auto_map": map }).to_string();
            let refs = auto_map_refs(json.as_bytes());
            prop_assert_eq!(refs.len(), entries.len());
            for r in &refs {
                let (m, _, repo) = &entries[&r.auto];
                prop_assert_eq!(r.module.as_deref(), Some(m.as_str()));
                prop_assert_eq!(&r.repo, repo);
            }
        }

        #[test]
        fn any_json_value_as_auto_map_never_panics(json in "[\\[\\]{}\",:a-z0-9. -]{0,200}") {
            let _ = auto_map_refs(format!("{{\"auto_map\": {json}}}").as_bytes());
        }
    }
}

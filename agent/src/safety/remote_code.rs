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
//! levels) bounds the depth. The module's source (and the
//! modules it imports relatively, `from .configuration_foo import …`, at most [`MAX_MODULES`]
//! files of at most [`MAX_SOURCE_BYTES`] each) is scanned line by line ([`scan_python`]); the
//! finding is `dangerous` when the scan finds any of:
//!
//! 1. anywhere in the file, an import of a process, network or code-loading module
//!    ([`DANGEROUS_MODULES`]: `subprocess`, `socket`, `requests`, `urllib`, `http`, …), or of a
//!    process function from `os` (`from os import system`, [`OS_PROCESS`]);
//! 2. anywhere in the file, a call of `eval(`, `exec(`, `__import__(`, `compile(`, or of a process
//!    function of `os` (`os.system(`, `os.popen(`, `os.exec*(`, `os.spawn*(`, `os.fork(`, …),
//!    also through an alias (`import os as o` then `o.system(`);
//! 3. in a top-level statement (one that starts at column 0, continuation lines included: it
//!    runs when the module is imported), a file-system write: `open(` with a mode literal holding
//!    `w`, `a`, `x` or `+`, `os.remove(`/`unlink(`/`rmdir(`/`removedirs(`/`rename(`/`replace(`/
//!    `chmod(`, `shutil.rmtree(`/`move(`/`copy…(`, `.write_text(`/`.write_bytes(`.
//!
//! Deliberately not flagged: `import os`, `import sys`, `import importlib`, `from shutil import
//! copyfile` (ordinary tokenizers use `os.path` and copy their vocabulary in `save_vocabulary`)
//! and writes inside functions. Comments and string literals (docstrings included) are skipped;
//! method calls (`model.eval()`) are not bare calls.

use serde_json::Value;

use super::{SafetyReport, Verdict};

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

/// Bare builtins that run code from strings.
const EVAL_CALLS: &[&str] = &["eval", "exec", "__import__", "compile"];

/// Top-level file-system writes (attribute calls).
const FS_WRITE_CALLS: &[&str] = &[
    "os.remove(",
    "os.unlink(",
    "os.rmdir(",
    "os.removedirs(",
    "os.rename(",
    "os.replace(",
    "os.chmod(",
    "shutil.rmtree(",
    "shutil.move(",
    "shutil.copy(",
    "shutil.copy2(",
    "shutil.copyfile(",
    "shutil.copytree(",
    ".write_text(",
    ".write_bytes(",
];

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
}

/// One logical line of code: its text with string literals replaced by `""`, the literals, the
/// line number it starts on and whether it is a top-level statement.
struct Line {
    code: String,
    literals: Vec<String>,
    number: usize,
    top: bool,
}

/// Splits Python source into code lines, dropping comments and string contents (kept aside).
fn lines(src: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut cur = Line { code: String::new(), literals: Vec::new(), number: 1, top: false };
    let mut at_line_start = true;
    let mut depth = 0usize;
    let mut number = 1usize;
    let mut chars = src.chars().peekable();
    let mut continued = false;
    while let Some(c) = chars.next() {
        if at_line_start {
            at_line_start = false;
            if depth == 0 && !continued {
                if !cur.code.trim().is_empty() {
                    out.push(std::mem::replace(
                        &mut cur,
                        Line { code: String::new(), literals: Vec::new(), number, top: false },
                    ));
                } else {
                    cur.number = number;
                    cur.literals.clear();
                    cur.code.clear();
                }
                cur.top = !c.is_whitespace();
            }
            continued = false;
        }
        match c {
            '\n' => {
                number += 1;
                at_line_start = true;
                cur.code.push(' ');
            }
            '#' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '\\' if chars.peek() == Some(&'\n') => {
                continued = true;
            }
            '(' | '[' | '{' => {
                depth = depth.saturating_add(1);
                cur.code.push(c);
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                cur.code.push(c);
            }
            '"' | '\'' => {
                let triple = {
                    let mut look = chars.clone();
                    look.next() == Some(c) && look.next() == Some(c)
                };
                if triple {
                    chars.next();
                    chars.next();
                }
                let mut lit = String::new();
                while let Some(n) = chars.next() {
                    if n == '\\' {
                        if let Some(e) = chars.next() {
                            if e == '\n' {
                                number += 1;
                            }
                            lit.push(e);
                        }
                        continue;
                    }
                    if n == '\n' {
                        number += 1;
                        if !triple {
                            at_line_start = true;
                            break;
                        }
                    }
                    if n == c {
                        if !triple {
                            break;
                        }
                        let mut look = chars.clone();
                        if look.next() == Some(c) && look.next() == Some(c) {
                            chars.next();
                            chars.next();
                            break;
                        }
                    }
                    if lit.len() < 64 {
                        lit.push(n);
                    }
                }
                cur.code.push_str("\"\"");
                cur.literals.push(lit);
            }
            c => cur.code.push(c),
        }
    }
    if !cur.code.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Whether `code` calls the bare function `name` (not a method, not part of a longer name).
fn calls_bare(code: &str, name: &str) -> bool {
    let pat = format!("{name}(");
    let mut from = 0;
    while let Some(i) = code.get(from..).and_then(|s| s.find(&pat)) {
        let at = from + i;
        let before = code.get(..at).and_then(|s| s.chars().next_back());
        let ok = !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_' || b == '.');
        // `def eval(` defines a method of that name; it calls nothing.
        let def = code.get(..at).is_some_and(|s| s.trim_end().ends_with("def"));
        if ok && !def {
            return true;
        }
        from = at + pat.len();
    }
    false
}

/// The process function of `os` that `code` calls as `<alias>.<f>(` for one of `aliases` (the
/// names `os`, `posix` or `nt` are bound to), if any.
fn os_process_call(code: &str, aliases: &[String]) -> Option<String> {
    for alias in aliases {
        if !code.contains(&format!("{alias}.")) {
            continue;
        }
        for f in OS_PROCESS {
            let pat = format!("{alias}.{f}(");
            let called = code.match_indices(&pat).any(|(i, _)| {
                !code
                    .get(..i)
                    .and_then(|s| s.chars().next_back())
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == '_' || b == '.')
            });
            if called {
                return Some(format!("{alias}.{f}"));
            }
        }
    }
    None
}

/// The names `import os`, `import os as o` (and `posix`, `nt`) bind in one line.
fn os_aliases(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stmt in code.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("import ") else { continue };
        for part in rest.split(',') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let bound = match words.as_slice() {
                [m] => Some(*m).filter(|m| ["os", "posix", "nt"].contains(m)),
                [m, "as", alias] if ["os", "posix", "nt"].contains(m) => Some(*alias),
                _ => None,
            };
            if let Some(b) = bound.filter(|b| is_identifier(b)) {
                out.push(b.to_string());
            }
        }
    }
    out
}

fn top_package(module: &str) -> &str {
    module.split('.').next().unwrap_or(module).trim()
}

/// The import statements of one line: `(module, names)`; relative modules keep their dots.
fn imports(code: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        if let Some(rest) = stmt.strip_prefix("import ") {
            for part in rest.split(',') {
                let module = part.split_whitespace().next().unwrap_or_default();
                if !module.is_empty() {
                    out.push((module.to_string(), Vec::new()));
                }
            }
        } else if let Some(rest) = stmt.strip_prefix("from ") {
            if let Some((module, names)) = rest.split_once(" import ") {
                let names = names
                    .trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace())
                    .split(',')
                    .filter_map(|n| n.split_whitespace().next())
                    .map(|n| n.trim_matches(|c| c == '(' || c == ')').to_string())
                    .collect();
                out.push((module.trim().to_string(), names));
            }
        }
    }
    out
}

/// Scans Python source for the constructs of the module doc. Never fails: undecodable bytes
/// are replaced, and the scan is linear in the input.
pub fn scan_python(src: &[u8]) -> PythonScan {
    let text = String::from_utf8_lossy(src);
    let mut scan = PythonScan::default();
    let mut aliases: Vec<String> = ["os", "posix", "nt"].iter().map(|a| a.to_string()).collect();
    let hit = |scan: &mut PythonScan, n: usize, what: String| {
        if scan.hits.len() >= MAX_HITS {
            return;
        }
        let h = format!("line {n}: {what}");
        if !scan.hits.contains(&h) {
            scan.hits.push(h);
        }
    };
    for line in lines(&text) {
        let code = line.code.as_str();
        for alias in os_aliases(code) {
            if !aliases.contains(&alias) && aliases.len() < 16 {
                aliases.push(alias);
            }
        }
        for (module, names) in imports(code) {
            if let Some(rel) = module.strip_prefix('.') {
                let rel = rel.trim_start_matches('.');
                if rel.is_empty() {
                    // `from . import a, b`: sibling modules.
                    for n in &names {
                        if is_identifier(n) && !scan.relative.contains(n) && scan.relative.len() < MAX_MODULES {
                            scan.relative.push(n.clone());
                        }
                    }
                } else if rel.split('.').all(is_identifier) && rel.split('.').count() <= 4 {
                    let path = rel.replace('.', "/");
                    if !scan.relative.contains(&path) && scan.relative.len() < MAX_MODULES {
                        scan.relative.push(path);
                    }
                }
                continue;
            }
            let top = top_package(&module);
            if DANGEROUS_MODULES.contains(&top) {
                hit(&mut scan, line.number, format!("imports {module}"));
            } else if top == "os" || top == "posix" || top == "nt" {
                for n in names.iter().filter(|n| OS_PROCESS.contains(&n.as_str())) {
                    hit(&mut scan, line.number, format!("imports {module}.{n}"));
                }
            } else if top == "builtins" {
                for n in names.iter().filter(|n| EVAL_CALLS.contains(&n.as_str())) {
                    hit(&mut scan, line.number, format!("imports builtins.{n}"));
                }
            }
        }
        for f in EVAL_CALLS {
            if calls_bare(code, f) {
                hit(&mut scan, line.number, format!("calls {f}()"));
            }
        }
        if let Some(f) = os_process_call(code, &aliases) {
            hit(&mut scan, line.number, format!("calls {f}()"));
        }
        if line.top {
            if calls_bare(code, "open") {
                let write = line.literals.iter().any(|l| {
                    !l.is_empty()
                        && l.len() <= 3
                        && l.chars().all(|c| "rwxabt+".contains(c))
                        && l.chars().any(|c| "wax+".contains(c))
                });
                if write {
                    hit(&mut scan, line.number, "opens a file for writing at module level".into());
                }
            }
            for w in FS_WRITE_CALLS {
                if code.contains(w) {
                    hit(&mut scan, line.number, format!("calls {}) at module level", w.trim_start_matches('.')));
                }
            }
        }
    }
    scan
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

//! What a Python source file does when it is imported, read from its text (never run): the
//! modules it imports and the calls that run at import time, resolved through its import
//! aliases to `module.name`, so that [`super::policy::classify`] can judge them like pickle
//! imports.
//!
//! Bundles that carry code (a TorchServe handler, an MLflow `code/` module) are imported by the
//! loader: their module-level statements run then. The scan is line based and bounded
//! ([`MAX_SOURCE`] bytes, [`MAX_CALLS`] calls):
//! 1. string literals and comments are blanked first (a docstring that mentions `os.system(`
//!    is no call);
//! 2. `import a.b as c` and `from a import b as c` record aliases; a star import records the
//!    module;
//! 3. the body of a `def` (or `async def`, `lambda` aside) does not run at import and is
//!    skipped; class bodies and top-level `if`/`try`/`with`/`for` blocks do run and are read;
//! 4. every `name(` and `a.b.c(` in what runs is resolved: the first component through the
//!    aliases, a bare builtin (`eval`, `exec`, `__import__`, `open`, ...) to `builtins.name`.
//!
//! It is a heuristic: `getattr(__import__("o" + "s"), ...)` is found as `builtins.__import__`
//! and `builtins.getattr`, not as `os.system`, which is enough to call it dangerous.

use std::collections::HashMap;

use super::policy::{classify, ImportClass};

/// Most bytes of one source file read.
pub const MAX_SOURCE: usize = 1024 * 1024;
/// Most calls recorded from one file.
pub const MAX_CALLS: usize = 4096;

/// Builtins resolved as `builtins.<name>` when called bare.
const BUILTINS: &[&str] =
    &["eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "input", "breakpoint"];

/// Calls under denied modules that neither spawn, connect nor evaluate: path arithmetic and
/// environment reads that handlers do at import all the time.
const HARMLESS: &[&str] = &[
    "os.path.",
    "os.getenv",
    "os.environ.",
    "os.getcwd",
    "os.cpu_count",
    "os.getpid",
    "sys.path.",
    "sys.getrecursionlimit",
    "sys.setrecursionlimit",
];

/// A call that runs when the file is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTimeCall {
    /// The callable, resolved through the imports (`os.system`, `builtins.eval`).
    pub callee: String,
    /// 1-based line.
    pub line: usize,
    /// Why it is dangerous, when [`classify`] says so.
    pub danger: Option<&'static str>,
}

/// What importing one Python file does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonScan {
    /// Modules imported (`os`, `torch.nn`), in order, once each.
    pub imports: Vec<String>,
    /// Calls made at import time, in order.
    pub calls: Vec<ImportTimeCall>,
    /// The file was longer than [`MAX_SOURCE`] and read only that far.
    pub cut: bool,
}

impl PythonScan {
    /// The calls [`classify`] calls dangerous: process, network, file, eval.
    pub fn dangerous(&self) -> impl Iterator<Item = &ImportTimeCall> {
        self.calls.iter().filter(|c| c.danger.is_some())
    }
}

/// Blanks string literals and comments, keeping line breaks (and so line numbers).
fn blank_strings(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    // The quote that opened the string we are in, and whether it is triple.
    let mut quote: Option<(char, bool)> = None;
    while let Some(c) = chars.next() {
        match quote {
            None => match c {
                '#' => {
                    for d in chars.by_ref() {
                        if d == '\n' {
                            out.push('\n');
                            break;
                        }
                    }
                }
                '\'' | '"' => {
                    let mut rest = chars.clone();
                    let triple = rest.next() == Some(c) && rest.next() == Some(c);
                    if triple {
                        chars.next();
                        chars.next();
                    }
                    quote = Some((c, triple));
                    out.push_str("\"\"");
                }
                _ => out.push(c),
            },
            Some((q, triple)) => match c {
                // An escaped character; an escaped line break still ends the line.
                '\\' if chars.next() == Some('\n') => out.push('\n'),
                '\n' => {
                    out.push('\n');
                    if !triple {
                        quote = None;
                    }
                }
                c if c == q => {
                    if !triple {
                        quote = None;
                    } else {
                        let mut rest = chars.clone();
                        if rest.next() == Some(q) && rest.next() == Some(q) {
                            chars.next();
                            chars.next();
                            quote = None;
                        }
                    }
                }
                _ => {}
            },
        }
    }
    out
}

/// The dotted name that ends at byte `end` of `line` (just before a `(`), if any.
fn callee_before(line: &str, end: usize) -> Option<&str> {
    let before = line.get(..end)?.trim_end();
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = before.get(start..)?;
    let first = name.chars().next()?;
    (!first.is_ascii_digit() && first != '.' && !name.is_empty()).then_some(name)
}

/// Resolves `name` (as written) through `aliases`.
fn resolve(name: &str, aliases: &HashMap<String, String>) -> String {
    let (head, rest) = name.split_once('.').map_or((name, None), |(h, r)| (h, Some(r)));
    match (aliases.get(head), rest) {
        (Some(full), Some(rest)) => format!("{full}.{rest}"),
        (Some(full), None) => full.clone(),
        (None, None) if BUILTINS.contains(&head) => format!("builtins.{head}"),
        _ => name.to_string(),
    }
}

/// Records the aliases an import statement binds.
fn imports_of(stmt: &str, aliases: &mut HashMap<String, String>, imports: &mut Vec<String>) {
    let mut note = |m: &str| {
        if !m.is_empty() && !imports.iter().any(|i| i == m) {
            imports.push(m.to_string());
        }
    };
    if let Some(rest) = stmt.strip_prefix("import ") {
        for part in rest.split(',') {
            let mut words = part.split_whitespace();
            let Some(module) = words.next() else { continue };
            note(module);
            match (words.next(), words.next()) {
                (Some("as"), Some(alias)) => aliases.insert(alias.to_string(), module.to_string()),
                _ => {
                    let top = module.split('.').next().unwrap_or(module);
                    aliases.insert(top.to_string(), top.to_string())
                }
            };
        }
    } else if let Some(rest) = stmt.strip_prefix("from ") {
        let Some((module, names)) = rest.split_once(" import ") else { return };
        let module = module.trim();
        note(module);
        for part in names.trim_matches(['(', ')', ' ']).split(',') {
            let mut words = part.split_whitespace();
            let Some(name) = words.next() else { continue };
            if name == "*" {
                continue;
            }
            let alias = match (words.next(), words.next()) {
                (Some("as"), Some(alias)) => alias,
                _ => name,
            };
            aliases.insert(alias.to_string(), format!("{module}.{name}"));
        }
    }
}

/// Whether the import statement gathered so far, whose last line is `line`, goes on.
fn import_continues(import: &str, line: &str) -> bool {
    (import.contains('(') && !import.contains(')')) || line.trim_end().ends_with('\\')
}

/// Scans a Python source file. See the module doc.
pub fn scan(source: &[u8]) -> PythonScan {
    let cut = source.len() > MAX_SOURCE;
    let text = String::from_utf8_lossy(source.get(..source.len().min(MAX_SOURCE)).unwrap_or_default());
    let text = blank_strings(&text);
    let mut out = PythonScan { cut, ..PythonScan::default() };
    let mut aliases = HashMap::new();
    // Indentation of the `def` whose body is being skipped.
    let mut in_def: Option<usize> = None;
    // An import statement continued on the next lines (`from a import (` or a trailing `\\`).
    let mut pending: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let stmt = line.trim_start();
        if let Some(mut import) = pending.take() {
            import.push(' ');
            import.push_str(stmt.trim_end_matches('\\'));
            if import_continues(&import, stmt) && import.len() < 64 * 1024 {
                pending = Some(import);
            } else {
                imports_of(&import, &mut aliases, &mut out.imports);
            }
            continue;
        }
        if stmt.is_empty() {
            continue;
        }
        let indent = line.len() - stmt.len();
        match in_def {
            Some(d) if indent > d => continue,
            _ => in_def = None,
        }
        if stmt.starts_with("def ") || stmt.starts_with("async def ") {
            in_def = Some(indent);
            continue;
        }
        if stmt.starts_with("import ") || stmt.starts_with("from ") {
            let import = stmt.trim_end().trim_end_matches('\\').to_string();
            if import_continues(&import, stmt) {
                pending = Some(import);
            } else {
                imports_of(&import, &mut aliases, &mut out.imports);
            }
            continue;
        }
        for (at, _) in stmt.match_indices('(') {
            let Some(name) = callee_before(stmt, at) else { continue };
            if matches!(name, "if" | "elif" | "while" | "for" | "in" | "and" | "or" | "not" | "return" | "print") {
                continue;
            }
            if out.calls.len() >= MAX_CALLS {
                return out;
            }
            let callee = resolve(name, &aliases);
            let danger = match classify(&callee) {
                ImportClass::Dangerous(_) if HARMLESS.iter().any(|h| callee.starts_with(h)) => None,
                ImportClass::Dangerous(why) => Some(why),
                _ => None,
            };
            out.calls.push(ImportTimeCall { callee, line: n + 1, danger });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text, Python-looking or not, is scanned without panicking, calls bounded.
        #[test]
        fn any_source_scans(src in "[ a-z_().,:=\"'#\\\\\n]{0,400}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            prop_assert!(scan(src.as_bytes()).calls.len() <= MAX_CALLS);
            let _ = scan(&bytes);
        }
    }

    fn dangerous(src: &str) -> Vec<String> {
        scan(src.as_bytes()).dangerous().map(|c| format!("{}@{}", c.callee, c.line)).collect()
    }

    #[test]
    fn module_level_process_and_eval_calls_are_found_through_aliases() {
        let src = "import os\nimport subprocess as sp\nfrom socket import create_connection as cc\n\
                   os.system('id')\nsp.Popen(['x'])\ncc(('127.0.0.1', 9))\neval('1')\n";
        assert_eq!(
            dangerous(src),
            ["os.system@4", "subprocess.Popen@5", "socket.create_connection@6", "builtins.eval@7"]
        );
    }

    #[test]
    fn function_bodies_strings_and_comments_do_not_run_at_import() {
        let src = "import os\n\"\"\"os.system('doc')\"\"\"\n# os.system('comment')\n\
                   def handle(x):\n    os.system('later')\n    return x\n\
                   class H:\n    def f(self):\n        eval('x')\nPATH = os.path.join('a', 'b')\n";
        let s = scan(src.as_bytes());
        assert_eq!(s.imports, ["os"]);
        // Only the path arithmetic runs at import, and it is harmless.
        assert_eq!(s.calls.iter().map(|c| c.line).collect::<Vec<_>>(), [10]);
        assert_eq!(s.dangerous().count(), 0);
    }

    #[test]
    fn a_benign_handler_makes_no_dangerous_call() {
        let src = "import torch\nfrom ts.torch_handler.base_handler import BaseHandler\n\n\
                   class Handler(BaseHandler):\n    def preprocess(self, data):\n        return torch.tensor(data)\n";
        assert!(dangerous(src).is_empty());
    }

    #[test]
    fn imports_continued_over_lines_still_bind_their_aliases() {
        let src = "from subprocess import (\n    run,\n    Popen as P,\n)\nfrom os import \\\n    system\n\
                   run(['id'])\nP(['id'])\nsystem('id')\n";
        assert_eq!(dangerous(src), ["subprocess.run@7", "subprocess.Popen@8", "os.system@9"]);
    }

    #[test]
    fn class_bodies_and_top_level_blocks_run_at_import() {
        let src = "import subprocess\ntry:\n    subprocess.run(['id'])\nexcept Exception:\n    pass\n\
                   class A:\n    x = subprocess.check_output(['id'])\n";
        assert_eq!(dangerous(src), ["subprocess.run@3", "subprocess.check_output@7"]);
    }
}

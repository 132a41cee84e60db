//! One reading of a Python source file (never run), shared by every judgement of Python code.
//!
//! # One scanner, two judgements
//! [`scan`] lexes the text once and records what the file does: its imports (module, names,
//! aliases, relative imports, line) and its calls, each resolved through the import aliases to
//! `module.name`, with its line, whether it runs when the module is imported, and for `open(` the
//! mode literal when one is written. Two modules judge that record:
//! - here, [`PythonScan::dangerous`]: what a loader runs by importing a bundled module (a
//!   TorchServe handler, an MLflow `code/` module, NeMo, skops; see `super::archive`), the calls
//!   that run at import and that [`judge`] calls dangerous;
//! - `super::remote_code`: Hugging Face `auto_map` modules, which run at import and again when
//!   their classes are instantiated, so imports and process or eval calls count anywhere in the
//!   file and file writes at import.
//!
//! Both take a callee's danger from [`judge`] ([`super::policy::classify`], minus [`HARMLESS`]
//! path arithmetic); `remote_code` narrows it with its own short lists.
//!
//! # The scan
//! Bounded: [`MAX_SOURCE`] bytes, [`MAX_CALLS`] calls, [`MAX_IMPORTS`] imports, linear time.
//! 1. The text is cut into logical lines: brackets and backslash continuations join physical
//!    lines; comments are dropped; every string literal becomes `""` in the code, its first
//!    [`MAX_LITERAL`] characters kept aside (a docstring that mentions `os.system(` is no call,
//!    but `open(p, 'w')` keeps its mode);
//! 2. `import a.b as c` and `from a import b as c` record aliases (wherever they are: the scan
//!    does not model scopes); a star import binds nothing; `from .m import x` is relative;
//! 3. a statement runs at import unless it is a `def` (or `async def`) line or in the body of
//!    one, in an `if __name__ == "__main__":` block (it runs when the file is a script), or it
//!    is the body of a `lambda` (`f = lambda: os.system('x')` defines, not calls); class bodies
//!    and other top-level `if`/`try`/`with`/`for` blocks do run;
//! 4. every `name(` and `a.b.c(` is a call, unless `name` is a keyword or follows `def` or
//!    `class`; its first component is resolved through the aliases, a bare builtin (`eval`,
//!    `exec`, `__import__`, `open`, ...) to `builtins.name`; a method call on a value
//!    (`model.eval()`) stays as written.
//!
//! It is a heuristic: `getattr(__import__("o" + "s"), ...)` is found as `builtins.__import__`
//! and `builtins.getattr`, not as `os.system`, which is enough to call it dangerous.

use std::collections::HashMap;

use super::policy::{classify, ImportClass};

/// Most bytes of one source file read.
pub const MAX_SOURCE: usize = 1024 * 1024;
/// Most calls recorded from one file (a 1 MiB file holds at most ~350 000).
pub const MAX_CALLS: usize = 64 * 1024;
/// Most import statements recorded from one file.
pub const MAX_IMPORTS: usize = 4096;
/// Most characters of a string literal kept aside (enough for an `open` mode).
pub const MAX_LITERAL: usize = 64;
/// Most bytes of an `open(` call's arguments read to find its mode.
const MAX_ARGS: usize = 1024;

/// Builtins resolved as `builtins.<name>` when called bare.
const BUILTINS: &[&str] =
    &["eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "input", "breakpoint"];

/// Words that precede a `(` without calling anything.
const KEYWORDS: &[&str] = &[
    "if", "elif", "while", "for", "in", "and", "or", "not", "is", "return", "print", "import", "assert", "del",
    "yield", "else", "with", "except", "lambda", "await", "raise", "from", "as",
];

/// Calls under denied modules that neither spawn, connect nor evaluate: path arithmetic and
/// environment reads that handlers do at import all the time.
pub const HARMLESS: &[&str] = &[
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

/// One name a `from m import ...` statement imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedName {
    /// The name in the module (`Popen`, `*`).
    pub name: String,
    /// What it is bound to, when `as` renames it.
    pub alias: Option<String>,
}

/// One module an import statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The module as written; a relative one keeps its leading dots (`.configuration_foo`, `.`).
    pub module: String,
    /// For `from m import a, b as c`, the names; empty for `import m`.
    pub names: Vec<ImportedName>,
    /// For `import m as a`, the alias.
    pub alias: Option<String>,
    /// 1-based line.
    pub line: usize,
    /// Whether the statement runs when the file is imported (not in a `def` body).
    pub at_import: bool,
}

/// One call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The callable, resolved through the imports (`os.system`, `builtins.eval`).
    pub callee: String,
    /// 1-based line of its `(`.
    pub line: usize,
    /// Whether it runs when the file is imported (module level, class bodies, top-level blocks;
    /// not in a `def` or `lambda` body).
    pub at_import: bool,
    /// For `open(` (builtin or `io.open`), the mode when it is a string literal (positional or
    /// `mode=`), its first [`MAX_LITERAL`] characters.
    pub open_mode: Option<String>,
    /// Why [`judge`] calls the callee dangerous, when it does.
    pub danger: Option<&'static str>,
}

/// What one Python file imports and calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonScan {
    /// Import statements, in order (the first [`MAX_IMPORTS`]).
    pub imports: Vec<Import>,
    /// Calls, in order (the first [`MAX_CALLS`]).
    pub calls: Vec<Call>,
    /// The file was longer than [`MAX_SOURCE`] and read only that far.
    pub cut: bool,
    /// More than [`MAX_CALLS`] calls or [`MAX_IMPORTS`] imports; the later ones were not kept.
    pub truncated: bool,
}

impl PythonScan {
    /// The calls that run at import and that [`judge`] calls dangerous: process, network, file,
    /// eval.
    pub fn dangerous(&self) -> impl Iterator<Item = &Call> {
        self.calls.iter().filter(|c| c.at_import && c.danger.is_some())
    }
}

/// Why calling `callee` (resolved, `module.name`) is dangerous, if it is: what
/// [`classify`] denies, except the [`HARMLESS`] path and environment reads.
pub fn judge(callee: &str) -> Option<&'static str> {
    match classify(callee) {
        ImportClass::Dangerous(_) if HARMLESS.iter().any(|h| callee.starts_with(h)) => None,
        ImportClass::Dangerous(why) => Some(why),
        _ => None,
    }
}

/// One logical line: a statement with its continuation lines.
struct Logical {
    /// The code: string literals replaced by `""`, comments dropped, line breaks by spaces.
    code: String,
    /// Where each physical line starts in `code`: `(byte offset, 1-based line)`, ascending.
    starts: Vec<(usize, usize)>,
    /// The string literals: `(byte offset of their `""` in code, first characters)`, ascending.
    literals: Vec<(usize, String)>,
    /// Leading whitespace characters of its first physical line.
    indent: usize,
}

impl Logical {
    fn new(line: usize) -> Self {
        Logical { code: String::new(), starts: vec![(0, line)], literals: Vec::new(), indent: 0 }
    }

    /// The physical line of byte `at` of the code.
    fn line_at(&self, at: usize) -> usize {
        let i = self.starts.partition_point(|(o, _)| *o <= at);
        self.starts.get(i.saturating_sub(1)).map_or(1, |(_, l)| *l)
    }

    /// The literal whose `""` starts at byte `at`.
    fn literal_at(&self, at: usize) -> Option<&str> {
        let i = self.literals.binary_search_by_key(&at, |(o, _)| *o).ok()?;
        self.literals.get(i).map(|(_, l)| l.as_str())
    }
}

/// Cuts Python source into logical lines (module doc, step 1). Linear in `src`.
fn logical_lines(src: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut line = 1usize;
    let mut cur = Logical::new(line);
    let mut depth = 0usize;
    let mut at_line_start = true;
    let mut continued = false;
    // Whether `cur` has a non-blank character yet (its indent is then known).
    let mut started = false;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        if at_line_start {
            at_line_start = false;
            if depth == 0 && !continued {
                if started {
                    out.push(std::mem::replace(&mut cur, Logical::new(line)));
                } else {
                    cur = Logical::new(line);
                }
                started = false;
            } else {
                cur.starts.push((cur.code.len(), line));
            }
            continued = false;
        }
        if !started && !c.is_whitespace() && c != '#' && c != '\\' {
            started = true;
            cur.indent = cur.code.chars().count();
        }
        match c {
            '\n' => {
                line += 1;
                at_line_start = true;
                cur.code.push(' ');
            }
            '#' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '\\' if chars.peek() == Some(&'\n') => continued = true,
            '(' | '[' | '{' => {
                depth = depth.saturating_add(1);
                cur.code.push(c);
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                cur.code.push(c);
            }
            '"' | '\'' => {
                let first = line;
                let triple = {
                    let mut look = chars.clone();
                    look.next() == Some(c) && look.next() == Some(c)
                };
                if triple {
                    chars.next();
                    chars.next();
                }
                let mut lit = String::new();
                let mut kept = 0usize;
                while let Some(n) = chars.next() {
                    if n == '\\' {
                        if let Some(e) = chars.next() {
                            if e == '\n' {
                                line += 1;
                            }
                            if kept < MAX_LITERAL {
                                lit.push(e);
                                kept += 1;
                            }
                        }
                        continue;
                    }
                    if n == '\n' {
                        line += 1;
                        if !triple {
                            // An unterminated string ends with its line.
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
                    if kept < MAX_LITERAL {
                        lit.push(n);
                        kept += 1;
                    }
                }
                cur.literals.push((cur.code.len(), lit));
                cur.code.push_str("\"\"");
                if line != first && !at_line_start {
                    cur.starts.push((cur.code.len(), line));
                }
            }
            c => cur.code.push(c),
        }
    }
    if started {
        out.push(cur);
    }
    out
}

/// The dotted name that ends at byte `end` of `code` (just before a `(`), with where it starts.
fn callee_before(code: &str, end: usize) -> Option<(usize, &str)> {
    let before = code.get(..end)?.trim_end();
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = before.get(start..)?;
    let first = name.chars().next()?;
    (!first.is_ascii_digit() && first != '.' && !name.ends_with('.')).then_some((start, name))
}

/// The word just before byte `at` of `code` (`def` in `def eval(`).
fn word_before(code: &str, at: usize) -> &str {
    let before = code.get(..at).unwrap_or_default().trim_end();
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    before.get(start..).unwrap_or_default()
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

/// The imports of one statement (`import ...` or `from ... import ...`), binding their aliases.
fn imports_of(stmt: &str, line: usize, at_import: bool, aliases: &mut HashMap<String, String>) -> Vec<Import> {
    let mut out = Vec::new();
    let word = |w: &str| !w.is_empty() && w.len() <= 256;
    if let Some(rest) = stmt.strip_prefix("import ") {
        for part in rest.split(',') {
            let mut words = part.split_whitespace();
            let Some(module) = words.next().filter(|m| word(m)) else { continue };
            let alias = match (words.next(), words.next()) {
                (Some("as"), Some(alias)) => Some(alias.to_string()),
                _ => None,
            };
            match &alias {
                Some(a) => aliases.insert(a.clone(), module.to_string()),
                None => {
                    let top = module.split('.').next().unwrap_or(module);
                    aliases.insert(top.to_string(), top.to_string())
                }
            };
            out.push(Import { module: module.to_string(), names: Vec::new(), alias, line, at_import });
        }
    } else if let Some(rest) = stmt.strip_prefix("from ") {
        let Some((module, names)) = rest.split_once(" import ") else { return out };
        let module = module.trim();
        if !word(module) {
            return out;
        }
        let mut listed = Vec::new();
        for part in names.trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace()).split(',') {
            let mut words = part.split_whitespace();
            let Some(name) = words.next().map(|n| n.trim_matches(['(', ')'])).filter(|n| word(n)) else {
                continue;
            };
            let alias = match (words.next(), words.next()) {
                (Some("as"), Some(alias)) => Some(alias.trim_matches(['(', ')']).to_string()),
                _ => None,
            };
            if name != "*" {
                let bound = alias.clone().unwrap_or_else(|| name.to_string());
                let full = if module.ends_with('.') { format!("{module}{name}") } else { format!("{module}.{name}") };
                aliases.insert(bound, full);
            }
            listed.push(ImportedName { name: name.to_string(), alias });
        }
        out.push(Import { module: module.to_string(), names: listed, alias: None, line, at_import });
    }
    out
}

/// The mode of the `open(` whose `(` is at byte `paren` of `logical`: its second positional
/// argument or its `mode=` argument, when that is a string literal.
fn open_mode(logical: &Logical, paren: usize) -> Option<String> {
    let code = logical.code.as_str();
    let args_start = paren + 1;
    let mut depth = 0usize;
    let mut arg_start = args_start;
    let mut index = 0usize;
    let mut found = None;
    let check = |start: usize, end: usize, index: usize| {
        let arg = code.get(start..end).unwrap_or_default();
        let lead = arg.len() - arg.trim_start().len();
        let mut arg = arg.trim();
        let mut at = start + lead;
        if let Some(value) = arg.strip_prefix("mode").map(str::trim_start).and_then(|r| r.strip_prefix('=')) {
            at += arg.len() - value.len();
            let trimmed = value.trim_start();
            at += value.len() - trimmed.len();
            arg = trimmed.trim_end();
        } else if index != 1 {
            return None;
        }
        (arg == "\"\"").then(|| logical.literal_at(at).map(str::to_string)).flatten()
    };
    for (i, c) in code.get(args_start..)?.char_indices() {
        if i > MAX_ARGS {
            break;
        }
        let at = args_start + i;
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => {
                found = found.or_else(|| check(arg_start, at, index));
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                found = found.or_else(|| check(arg_start, at, index));
                arg_start = at + 1;
                index += 1;
            }
            _ => {}
        }
    }
    found
}

/// Scans a Python source file. See the module doc.
pub fn scan(source: &[u8]) -> PythonScan {
    let cut = source.len() > MAX_SOURCE;
    let text = String::from_utf8_lossy(source.get(..source.len().min(MAX_SOURCE)).unwrap_or_default());
    let mut out = PythonScan { cut, ..PythonScan::default() };
    let mut aliases = HashMap::new();
    // Indentation of the `def` (or `if __name__ == "__main__":`) whose body is being read.
    let mut in_def: Option<usize> = None;
    for logical in logical_lines(&text) {
        let code = logical.code.as_str();
        let stmt = code.trim_start();
        let nested = match in_def {
            Some(d) if logical.indent > d => true,
            _ => {
                in_def = None;
                false
            }
        };
        let is_def = stmt.starts_with("def ") || stmt.starts_with("async def ") || is_main_guard(&logical);
        if is_def && !nested {
            in_def = Some(logical.indent);
        }
        let runs = !nested && !is_def;
        let mut offset = 0usize;
        for part in code.split(';') {
            let part_start = offset;
            offset += part.len() + 1;
            let trimmed = part.trim_start();
            if !(trimmed.starts_with("import ") || trimmed.starts_with("from ")) {
                continue;
            }
            let line = logical.line_at(part_start + part.len() - trimmed.len());
            for import in imports_of(trimmed.trim_end(), line, runs, &mut aliases) {
                if out.imports.len() >= MAX_IMPORTS {
                    out.truncated = true;
                    break;
                }
                out.imports.push(import);
            }
        }
        if !calls_of(&logical, runs, &aliases, &mut out) {
            out.truncated = true;
            return out;
        }
    }
    out
}

/// Whether `logical` is `if __name__ == "__main__":` (either way round), whose block runs when
/// the file is run as a script, not when it is imported.
fn is_main_guard(logical: &Logical) -> bool {
    let compact: String = logical.code.chars().filter(|c| !c.is_whitespace()).take(32).collect();
    let guard = compact.starts_with("if__name__==\"\"") || compact.starts_with("if\"\"==__name__");
    guard && logical.literals.first().is_some_and(|(_, l)| l == "__main__")
}

/// Records the calls of `logical` (module doc, steps 3 and 4); `false` when [`MAX_CALLS`] is
/// reached.
fn calls_of(logical: &Logical, runs: bool, aliases: &HashMap<String, String>, out: &mut PythonScan) -> bool {
    let code = logical.code.as_str();
    let mut depth = 0usize;
    // Open lambdas: the bracket depth they are at, and whether their parameters are being read.
    let mut lambdas: Vec<(usize, bool)> = Vec::new();
    let mut prev_ident = false;
    for (at, c) in code.char_indices() {
        let ident = c.is_alphanumeric() || c == '_';
        if ident && !prev_ident && code.get(at..).is_some_and(|r| r.starts_with("lambda")) {
            let after = code.get(at + 6..).and_then(|r| r.chars().next());
            let before = code.get(..at).and_then(|r| r.chars().next_back());
            if !after.is_some_and(|a| a.is_alphanumeric() || a == '_') && before != Some('.') {
                lambdas.push((depth, true));
            }
        }
        prev_ident = ident;
        match c {
            '(' => {
                if let Some(call) = call_at(logical, at, runs && lambdas.is_empty(), aliases) {
                    if out.calls.len() >= MAX_CALLS {
                        return false;
                    }
                    out.calls.push(call);
                }
                depth = depth.saturating_add(1);
            }
            '[' | '{' => depth = depth.saturating_add(1),
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                while lambdas.last().is_some_and(|(d, _)| *d > depth) {
                    lambdas.pop();
                }
            }
            ':' => {
                if let Some(top) = lambdas.last_mut().filter(|(d, params)| *d == depth && *params) {
                    top.1 = false;
                }
            }
            ',' => {
                while lambdas.last().is_some_and(|(d, params)| *d == depth && !params) {
                    lambdas.pop();
                }
            }
            ';' => lambdas.clear(),
            _ => {}
        }
    }
    true
}

/// The call whose `(` is at byte `paren` of `logical`, if that `(` is a call.
fn call_at(logical: &Logical, paren: usize, at_import: bool, aliases: &HashMap<String, String>) -> Option<Call> {
    let (start, name) = callee_before(&logical.code, paren)?;
    if KEYWORDS.contains(&name) || matches!(word_before(&logical.code, start), "def" | "class") {
        return None;
    }
    let callee = resolve(name, aliases);
    let open_mode = matches!(callee.as_str(), "builtins.open" | "io.open").then(|| open_mode(logical, paren)).flatten();
    let danger = judge(&callee);
    Some(Call { callee, line: logical.line_at(paren), at_import, open_mode, danger })
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

        /// Every line a call or import is recorded on is a line of the source.
        #[test]
        fn recorded_lines_are_source_lines(src in "[ a-z_().,:;=\"'#\\\\\n]{0,400}") {
            let s = scan(src.as_bytes());
            let lines = src.matches('\n').count() + 1;
            for line in s.calls.iter().map(|c| c.line).chain(s.imports.iter().map(|i| i.line)) {
                prop_assert!(line >= 1 && line <= lines, "{} of {}", line, lines);
            }
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
        let modules: Vec<&str> = s.imports.iter().filter(|i| i.at_import).map(|i| i.module.as_str()).collect();
        assert_eq!(modules, ["os"]);
        // Only the path arithmetic runs at import, and it is harmless.
        assert_eq!(s.calls.iter().filter(|c| c.at_import).map(|c| c.line).collect::<Vec<_>>(), [10]);
        assert_eq!(s.dangerous().count(), 0);
        // The calls in the function bodies are recorded, as not running at import.
        let later: Vec<String> =
            s.calls.iter().filter(|c| !c.at_import).map(|c| format!("{}@{}", c.callee, c.line)).collect();
        assert_eq!(later, ["os.system@5", "builtins.eval@9"]);
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

    #[test]
    fn a_lambda_body_does_not_run_at_import() {
        let src = "import os\nf = lambda: os.system('x')\ng = lambda a, b: os.popen(a)\n\
                   h = {'k': lambda: eval('1'), 'n': os.system('now')}\nsorted(xs, key=lambda x: x)\n";
        assert_eq!(dangerous(src), ["os.system@4"]);
        let s = scan(src.as_bytes());
        let later: Vec<&str> = s.calls.iter().filter(|c| !c.at_import).map(|c| c.callee.as_str()).collect();
        assert_eq!(later, ["os.system", "os.popen", "builtins.eval"]);
    }

    #[test]
    fn a_main_guard_does_not_run_at_import() {
        let src =
            "import os\nif __name__ == '__main__':\n    os.system('x')\nif \"__main__\" == __name__: os.system('y')\n\
                   if __name__ == 'not_main':\n    os.system('z')\nos.system('w')\n";
        assert_eq!(dangerous(src), ["os.system@6", "os.system@7"]);
    }

    #[test]
    fn imports_keep_names_aliases_relative_modules_and_lines() {
        let src = "import os.path as osp, sys\nfrom . import helpers\nfrom .configuration_foo import (\n    \
                   FooConfig as C,\n)\ndef f():\n    import subprocess\n";
        let s = scan(src.as_bytes());
        let seen: Vec<(String, usize, bool)> =
            s.imports.iter().map(|i| (i.module.clone(), i.line, i.at_import)).collect();
        assert_eq!(
            seen,
            [
                ("os.path".to_string(), 1, true),
                ("sys".to_string(), 1, true),
                (".".to_string(), 2, true),
                (".configuration_foo".to_string(), 3, true),
                ("subprocess".to_string(), 7, false),
            ]
        );
        assert_eq!(s.imports.first().and_then(|i| i.alias.as_deref()), Some("osp"));
        let names = s.imports.get(3).map(|i| i.names.clone()).unwrap_or_default();
        assert_eq!(names, [ImportedName { name: "FooConfig".into(), alias: Some("C".into()) }]);
    }

    #[test]
    fn open_keeps_its_mode_literal() {
        let src = "open('/tmp/x', 'w')\nopen(p)\nopen(\n    'p',\n    mode='a',\n)\nopen(f'{d}/x', 'rb')\n\
                   io.open(p, \"w+\")\nopen(p, m)\n";
        let modes: Vec<(usize, Option<String>)> = scan(src.as_bytes())
            .calls
            .iter()
            .filter(|c| c.callee.ends_with("open"))
            .map(|c| (c.line, c.open_mode.clone()))
            .collect();
        assert_eq!(
            modes,
            [
                (1, Some("w".into())),
                (2, None),
                (3, Some("a".into())),
                (7, Some("rb".into())),
                (8, Some("w+".into())),
                (9, None)
            ]
        );
    }

    #[test]
    fn definitions_and_keywords_are_not_calls() {
        let s = scan(b"class Foo(Base):\n    def eval(self, x):\n        return (x)\nif (a):\n    pass\n");
        assert!(s.calls.is_empty(), "{:?}", s.calls);
    }

    #[test]
    fn too_many_calls_are_cut_and_said_to_be() {
        let src = "f()\n".repeat(MAX_CALLS + 1);
        let s = scan(src.as_bytes());
        assert_eq!(s.calls.len(), MAX_CALLS);
        assert!(s.truncated && !s.cut);
    }
}

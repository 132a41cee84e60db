//! Jinja2 chat templates (GGUF `tokenizer.chat_template` and `tokenizer.chat_template.<name>`).
//!
//! Loaders render the template with Jinja2 when a chat starts; llama-cpp-python before 0.2.72
//! did it without a sandbox (CVE-2024-34359), so a template that walks from any object to
//! Python's globals (`().__class__.__base__.__subclasses__()`, `cycler.__init__.__globals__`)
//! runs code. The template is parsed with minijinja's parser (never rendered) and its syntax
//! tree searched. Rules, in order; each hit is one finding on the offending expression:
//! 1. an attribute (`x.name`, `x['name']`, `x|attr('name')`, `attribute='name'` of the
//!    attribute filters) whose name starts with `_` (`__class__`, `__globals__`, `_module`,
//!    `_TemplateReference__context`) or is in [`DANGEROUS_ATTRS`] (`popen`, `os`, `mro`,
//!    `f_globals`, …) is `dangerous`;
//! 2. any attribute of an object that reaches Python globals ([`GLOBAL_REACHERS`]: `cycler`,
//!    `joiner`, `namespace`, `lipsum`, `self`, Flask's `request`, `config`, `url_for`, …) taken
//!    on the name itself is `dangerous`; calling them (`namespace(found=false)`) is ordinary;
//! 3. a variable named like a Python module or builtin that runs code ([`DANGEROUS_NAMES`]:
//!    `os`, `subprocess`, `eval`, `__import__`, …) is `dangerous`. Names the template binds
//!    itself (`for`, `set`, `with`, macro arguments) are its own data and exempt from rules 2
//!    and 3 (`{% for g in groups %}{{ g.name }}`);
//! 4. `attr()` with a name that cannot be computed from the template's text is `suspicious`;
//!    so is a string that spells a dunder of [`DUNDER_STRINGS`] (built by `~`, `+`, `join`,
//!    `format`, `%`, `replace`, `reverse`, `lower`, `upper`, `[::-1]` or `{% set %}` from
//!    literals: names are computed that way too, and rule 1 uses the computed value);
//! 5. `include`, `import`, `from … import` and `extends` are `suspicious` (a chat template has
//!    no other templates; a loader with a file system loader would read files);
//! 6. a template longer than [`MAX_TEMPLATE_BYTES`], with more than [`MAX_BLOCK_TOKENS`]
//!    tokens in one `{{ }}` or `{% %}` block, nested deeper than [`MAX_DEPTH`], or that does not
//!    parse, is `suspicious`: it was not fully analysed.
//!
//! Loops, conditionals, filters, `namespace()` for loop state, `raise_exception`, `tojson`,
//! `strftime_now` — everything the Hugging Face templates of popular models use — find
//! nothing.

use std::collections::{HashMap, HashSet};

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::machinery::{parse, tokenize, Token};
use minijinja::syntax::SyntaxConfig;

use super::Verdict;

/// Largest template analysed (real ones are under 32 KiB).
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Most tokens in one `{{ … }}` or `{% … %}` block. Bounds the depth of the syntax tree (and
/// of dropping it) before it is built: `a ~ a ~ a …` nests one level per operator.
pub const MAX_BLOCK_TOKENS: usize = 2048;
/// Deepest expression or statement nesting walked.
pub const MAX_DEPTH: usize = 256;
/// Longest string computed from literals; longer ones are not attribute names.
const MAX_FOLDED: usize = 256;
/// Longest subject (the expression's source text) reported.
const MAX_SUBJECT: usize = 160;

/// Attribute names that lead to code execution or to Python's globals without a leading `_`.
pub const DANGEROUS_ATTRS: &[&str] = &[
    "os",
    "subprocess",
    "builtins",
    "importlib",
    "popen",
    "popen2",
    "eval",
    "exec",
    "execfile",
    "import_module",
    "load_module",
    "exec_module",
    "check_output",
    "check_call",
    "getoutput",
    "getstatusoutput",
    "spawnl",
    "spawnlp",
    "spawnv",
    "spawnvp",
    "execl",
    "execlp",
    "execv",
    "execve",
    "execvp",
    "mro",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_back",
    "f_code",
    "gi_frame",
    "gi_code",
    "ag_frame",
    "cr_frame",
    "tb_frame",
    "func_globals",
    "func_code",
    "co_code",
];

/// Template globals (Jinja2's and Flask's) whose attributes lead to Python's globals
/// (`cycler.__init__.__globals__.os`, `self._TemplateReference__context`).
pub const GLOBAL_REACHERS: &[&str] = &[
    "cycler",
    "joiner",
    "namespace",
    "lipsum",
    "self",
    "request",
    "config",
    "url_for",
    "get_flashed_messages",
    "g",
    "session",
];

/// Variable names that are Python modules or builtins that run code; a chat template never
/// has them unless the renderer leaks them.
pub const DANGEROUS_NAMES: &[&str] = &[
    "os",
    "subprocess",
    "sys",
    "builtins",
    "__builtins__",
    "__import__",
    "importlib",
    "eval",
    "exec",
    "compile",
    "getattr",
    "globals",
    "locals",
    "popen",
    "posix",
    "pty",
    "socket",
    "ctypes",
    "runpy",
];

/// Dunder names used to escape a Jinja2 sandbox; a string literal spelling one is suspicious.
pub const DUNDER_STRINGS: &[&str] = &[
    "__class__",
    "__base__",
    "__bases__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    "__init__",
    "__dict__",
    "__getattribute__",
    "__getattr__",
    "__code__",
    "__func__",
    "__self__",
    "__module__",
    "__loader__",
    "__spec__",
    "__reduce__",
    "__reduce_ex__",
    "__call__",
    "__new__",
    "__closure__",
    "_TemplateReference__context",
];

/// Filters whose `attribute=` argument (or first argument) names an attribute to read.
const ATTRIBUTE_FILTERS: &[&str] =
    &["attr", "map", "selectattr", "rejectattr", "groupby", "sort", "sum", "unique", "min", "max"];

/// One reason a template is not safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFinding {
    /// `template_injection` (rules 1–5), `bound_exceeded` or `malformed` (rule 6).
    pub kind: &'static str,
    /// The offending expression as written (or the bound, or `template`).
    pub subject: String,
    /// Why it matters.
    pub detail: String,
    /// `dangerous` or `suspicious`.
    pub severity: Verdict,
}

/// Judges one chat template; no finding means rendering it cannot reach Python.
pub fn judge(source: &str) -> Vec<TemplateFinding> {
    let mut findings = Vec::new();
    if source.len() > MAX_TEMPLATE_BYTES {
        findings.push(TemplateFinding {
            kind: "bound_exceeded",
            subject: "template".into(),
            detail: format!("template is {} bytes, more than the {MAX_TEMPLATE_BYTES} analysed", source.len()),
            severity: Verdict::Suspicious,
        });
        return findings;
    }
    let blanked = blank_generation_tags(source);
    let source = blanked.as_str();
    if let Err(f) = check_blocks(source) {
        findings.push(f);
        return findings;
    }
    let tree = match parse(source, "chat_template", SyntaxConfig::default()) {
        Ok(t) => t,
        Err(e) => {
            findings.push(TemplateFinding {
                kind: "malformed",
                subject: "template".into(),
                detail: format!("template does not parse as Jinja2: {e}"),
                severity: Verdict::Suspicious,
            });
            return findings;
        }
    };
    let mut walker =
        Walker { source, hits: Vec::new(), strings: HashMap::new(), bound: HashSet::new(), too_deep: false };
    walker.stmt(&tree, 0);
    merge_chains(walker.hits)
}

/// A finding and the attributes of rule 1 its expression reads (empty for the other rules).
type Hit = (TemplateFinding, Vec<String>);

/// Whether the expression text `long` is `short` or continues it with a postfix operator.
fn extends(long: &str, short: &str) -> bool {
    long.strip_prefix(short).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[', '(', '|']))
}

/// One finding per attribute chain: `().__class__.__base__.__subclasses__` is reported once,
/// on the whole chain, naming every flagged attribute it reads, not once per prefix.
fn merge_chains(hits: Vec<Hit>) -> Vec<TemplateFinding> {
    let mut longest_first: Vec<(usize, Hit)> = hits.into_iter().enumerate().collect();
    longest_first.sort_by_key(|(_, (f, _))| std::cmp::Reverse(f.subject.len()));
    let mut kept: Vec<(usize, Hit)> = Vec::new();
    for (at, (f, reads)) in longest_first {
        let chain = kept.iter_mut().find(|(_, (g, r))| {
            !reads.is_empty()
                && !r.is_empty()
                && g.kind == f.kind
                && g.severity >= f.severity
                && extends(&g.subject, &f.subject)
        });
        match chain {
            Some((_, (_, r))) => {
                for name in reads {
                    if !r.contains(&name) {
                        r.push(name);
                    }
                }
            }
            None => kept.push((at, (f, reads))),
        }
    }
    kept.sort_by_key(|(at, _)| *at);
    kept.into_iter()
        .map(|(_, (mut f, mut reads))| {
            if reads.len() > 1 {
                // Collected from the end of the chain back to its start.
                reads.reverse();
                let names: Vec<String> = reads.iter().map(|r| format!("{r:?}")).collect();
                f.detail = format!(
                    "reads {}: the way from a template object to Python's globals and to running code, out of \
                     Jinja2 (CVE-2024-34359)",
                    names.join(", ")
                );
            }
            f
        })
        .collect()
}

/// `{% generation %}` and `{% endgeneration %}` (Hugging Face transformers' `AssistantTracker`
/// extension, which marks the assistant's tokens for training; SmolLM3 and LFM2 ship it) turned
/// into spaces of the same length, so that minijinja parses the rest and offsets stay put.
fn blank_generation_tags(source: &str) -> String {
    static TAG: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| regex::Regex::new(r"\{%[-+]?\s*(?:end)?generation\s*[-+]?%\}").ok());
    match tag {
        Some(re) => {
            re.replace_all(source, |c: &regex::Captures<'_>| " ".repeat(c.get(0).map_or(0, |m| m.len()))).into_owned()
        }
        None => source.to_string(),
    }
}

/// Rule 6: every block holds at most [`MAX_BLOCK_TOKENS`] tokens.
fn check_blocks(source: &str) -> Result<(), TemplateFinding> {
    let mut in_block = 0usize;
    for token in tokenize(source, false, SyntaxConfig::default()) {
        match token {
            Ok((Token::VariableStart | Token::BlockStart, _)) => in_block = 0,
            Ok((Token::VariableEnd | Token::BlockEnd | Token::TemplateData(_), _)) => {}
            Ok(_) => {
                in_block += 1;
                if in_block > MAX_BLOCK_TOKENS {
                    return Err(TemplateFinding {
                        kind: "bound_exceeded",
                        subject: "template".into(),
                        detail: format!("a block holds more than {MAX_BLOCK_TOKENS} tokens"),
                        severity: Verdict::Suspicious,
                    });
                }
            }
            Err(e) => {
                return Err(TemplateFinding {
                    kind: "malformed",
                    subject: "template".into(),
                    detail: format!("template does not tokenize as Jinja2: {e}"),
                    severity: Verdict::Suspicious,
                })
            }
        }
    }
    Ok(())
}

struct Walker<'s> {
    source: &'s str,
    /// What was found so far, merged per chain at the end ([`merge_chains`]).
    hits: Vec<Hit>,
    /// Strings assigned by `{% set name = … %}` from literals.
    strings: HashMap<&'s str, String>,
    /// Names the template binds itself (`for`, `set`, `with`, macro arguments): data, not the
    /// globals of rules 2 and 3 even when they share a name (`{% for g in groups %}`).
    bound: HashSet<&'s str>,
    /// Whether the depth bound was reported already.
    too_deep: bool,
}

impl<'s> Walker<'s> {
    fn add(&mut self, subject: String, detail: String, severity: Verdict) {
        self.hit(subject, detail, severity, None);
    }

    /// A finding; `read` is the rule-1 attribute it is about.
    fn hit(&mut self, subject: String, detail: String, severity: Verdict, read: Option<&str>) {
        let f = TemplateFinding { kind: "template_injection", subject, detail, severity };
        if !self.hits.iter().any(|(g, _)| *g == f) {
            self.hits.push((f, read.map(str::to_string).into_iter().collect()));
        }
    }

    /// The source text of `expr` (its span, widened to the start of the object a postfix
    /// operator applies to: minijinja's spans of `a.b` start at the dot), cut to
    /// [`MAX_SUBJECT`] characters.
    fn text(&self, expr: &Expr<'s>) -> String {
        let end = expr.span().end_offset;
        let mut start = expr.span().start_offset;
        let mut at = expr;
        for _ in 0..MAX_DEPTH {
            let inner = match at {
                Expr::GetAttr(a) => &a.expr,
                Expr::GetItem(g) => &g.expr,
                Expr::Call(c) => &c.expr,
                Expr::Slice(s) => &s.expr,
                Expr::Filter(f) => match &f.expr {
                    Some(e) => e,
                    None => break,
                },
                Expr::Test(t) => &t.expr,
                _ => break,
            };
            start = start.min(inner.span().start_offset);
            at = inner;
        }
        let whole = self.source.get(start as usize..end as usize).unwrap_or_default();
        let mut text: String = whole.chars().take(MAX_SUBJECT).collect();
        if text.len() < whole.len() {
            text.push('…');
        }
        text
    }

    fn deep(&mut self, depth: usize) -> bool {
        if depth <= MAX_DEPTH {
            return false;
        }
        if !self.too_deep {
            self.too_deep = true;
            let f = TemplateFinding {
                kind: "bound_exceeded",
                subject: "template".into(),
                detail: format!("nested deeper than {MAX_DEPTH} levels; the rest was not analysed"),
                severity: Verdict::Suspicious,
            };
            self.hits.push((f, Vec::new()));
        }
        true
    }

    /// Records the names an assignment target binds.
    fn bind(&mut self, target: &Expr<'s>) {
        match target {
            Expr::Var(v) => {
                self.bound.insert(v.id);
            }
            Expr::Tuple(t) => t.items.iter().for_each(|e| self.bind(e)),
            Expr::List(l) => l.items.iter().for_each(|e| self.bind(e)),
            _ => {}
        }
    }

    fn body(&mut self, stmts: &[Stmt<'s>], depth: usize) {
        for s in stmts {
            self.stmt(s, depth + 1);
        }
    }

    fn stmt(&mut self, stmt: &Stmt<'s>, depth: usize) {
        if self.deep(depth) {
            return;
        }
        let d = depth + 1;
        match stmt {
            Stmt::Template(t) => self.body(&t.children, depth),
            Stmt::EmitExpr(e) => self.expr(&e.expr, d),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                self.bind(&f.target);
                self.expr(&f.target, d);
                self.expr(&f.iter, d);
                if let Some(e) = &f.filter_expr {
                    self.expr(e, d);
                }
                self.body(&f.body, depth);
                self.body(&f.else_body, depth);
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr, d);
                self.body(&i.true_body, depth);
                self.body(&i.false_body, depth);
            }
            Stmt::WithBlock(w) => {
                for (target, value) in &w.assignments {
                    self.bind(target);
                    self.expr(target, d);
                    self.expr(value, d);
                }
                self.body(&w.body, depth);
            }
            Stmt::Set(s) => {
                self.bind(&s.target);
                if let Expr::Var(v) = &s.target {
                    match self.fold(&s.expr, d) {
                        Some(text) => {
                            self.strings.insert(v.id, text);
                        }
                        None => {
                            self.strings.remove(v.id);
                        }
                    }
                }
                self.expr(&s.target, d);
                self.expr(&s.expr, d);
            }
            Stmt::SetBlock(s) => {
                self.bind(&s.target);
                self.expr(&s.target, d);
                if let Some(f) = &s.filter {
                    self.expr(f, d);
                }
                self.body(&s.body, depth);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, d);
                self.body(&a.body, depth);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter, d);
                self.body(&f.body, depth);
            }
            Stmt::Block(b) => self.body(&b.body, depth),
            Stmt::Macro(m) => {
                m.args.iter().for_each(|e| self.bind(e));
                m.args.iter().chain(&m.defaults).for_each(|e| self.expr(e, d));
                self.body(&m.body, depth);
            }
            Stmt::CallBlock(c) => {
                c.macro_decl.args.iter().for_each(|e| self.bind(e));
                self.call(&c.call, d);
                self.body(&c.macro_decl.body, depth);
            }
            Stmt::Do(c) => self.call(&c.call, d),
            Stmt::Import(i) => self.include(&i.expr, d),
            Stmt::FromImport(i) => self.include(&i.expr, d),
            Stmt::Extends(e) => self.include(&e.name, d),
            Stmt::Include(i) => self.include(&i.name, d),
        }
    }

    /// Rule 5.
    fn include(&mut self, name: &Expr<'s>, depth: usize) {
        self.add(
            self.text(name),
            "the template loads another template (include, import or extends); a chat template has none".into(),
            Verdict::Suspicious,
        );
        self.expr(name, depth);
    }

    fn call(&mut self, call: &ast::Call<'s>, depth: usize) {
        self.expr(&call.expr, depth);
        self.args(&call.args, depth);
    }

    fn args(&mut self, args: &[CallArg<'s>], depth: usize) {
        for a in args {
            match a {
                CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                    self.expr(e, depth)
                }
            }
        }
    }

    /// Rules 1 and 2 for the attribute `name` read from `object`; `subject` is the whole
    /// expression.
    fn attribute(&mut self, name: &str, object: Option<&Expr<'s>>, subject: &str) {
        for part in name.split('.') {
            if part.starts_with('_') {
                self.hit(
                    subject.into(),
                    format!(
                        "reads the private or dunder attribute {part:?}, the first step of escaping Jinja2 to Python's \
                         globals (CVE-2024-34359)"
                    ),
                    Verdict::Dangerous,
                    Some(part),
                );
            } else if DANGEROUS_ATTRS.contains(&part) {
                self.hit(
                    subject.into(),
                    format!("reads the attribute {part:?}, which runs code or reaches Python's globals"),
                    Verdict::Dangerous,
                    Some(part),
                );
            }
        }
        self.global_reach(object, subject);
    }

    /// Rule 2: any attribute or item of a template global that leads to Python's globals.
    fn global_reach(&mut self, object: Option<&Expr<'s>>, subject: &str) {
        if let Some(Expr::Var(v)) = object {
            if GLOBAL_REACHERS.contains(&v.id) && !self.bound.contains(v.id) {
                self.add(
                    subject.into(),
                    format!(
                        "reads an attribute of the template global {:?}, whose functions lead to Python's globals",
                        v.id
                    ),
                    Verdict::Dangerous,
                );
            }
        }
    }

    /// Rule 4: a computed string that spells a sandbox-escape dunder.
    fn spelled(&mut self, expr: &Expr<'s>, depth: usize) {
        if let Some(text) = self.fold(expr, depth) {
            if DUNDER_STRINGS.contains(&text.as_str()) {
                self.add(
                    format!("{text:?}"),
                    "the template spells a dunder name used to escape the Jinja2 sandbox".into(),
                    Verdict::Suspicious,
                );
            }
        }
    }

    fn expr(&mut self, expr: &Expr<'s>, depth: usize) {
        if self.deep(depth) {
            return;
        }
        let d = depth + 1;
        match expr {
            Expr::Var(v) => {
                if DANGEROUS_NAMES.contains(&v.id) && !self.bound.contains(v.id) {
                    self.add(
                        v.id.into(),
                        format!("names {:?}, a Python module or builtin that runs code", v.id),
                        Verdict::Dangerous,
                    );
                }
            }
            Expr::Const(_) => self.spelled(expr, d),
            Expr::Slice(s) => {
                self.spelled(expr, d);
                self.expr(&s.expr, d);
                for e in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(e, d);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr, d),
            Expr::BinOp(b) => {
                if matches!(b.op, ast::BinOpKind::Concat | ast::BinOpKind::Add | ast::BinOpKind::Rem) {
                    self.spelled(expr, d);
                }
                self.expr(&b.left, d);
                self.expr(&b.right, d);
            }
            Expr::Compare(c) => {
                self.expr(&c.expr, d);
                c.ops.iter().for_each(|op| self.expr(&op.expr, d));
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr, d);
                self.expr(&i.true_expr, d);
                if let Some(e) = &i.false_expr {
                    self.expr(e, d);
                }
            }
            Expr::Filter(f) => {
                self.filter(f, expr, d);
                if let Some(e) = &f.expr {
                    self.expr(e, d);
                }
                self.args(&f.args, d);
            }
            Expr::Test(t) => {
                self.expr(&t.expr, d);
                self.args(&t.args, d);
            }
            Expr::GetAttr(a) => {
                let subject = self.text(expr);
                self.attribute(a.name, Some(&a.expr), &subject);
                self.expr(&a.expr, d);
            }
            Expr::GetItem(g) => {
                let subject = self.text(expr);
                match self.fold(&g.subscript_expr, d) {
                    Some(name) => self.attribute(&name, Some(&g.expr), &subject),
                    None => self.global_reach(Some(&g.expr), &subject),
                }
                self.expr(&g.expr, d);
                self.expr(&g.subscript_expr, d);
            }
            Expr::Call(c) => {
                if let Expr::GetAttr(a) = &c.expr {
                    if matches!(a.name, "join" | "replace" | "lower" | "upper" | "format") {
                        self.spelled(expr, d);
                    }
                }
                self.expr(&c.expr, d);
                self.args(&c.args, d);
            }
            Expr::List(l) => l.items.iter().for_each(|e| self.expr(e, d)),
            Expr::Tuple(t) => t.items.iter().for_each(|e| self.expr(e, d)),
            Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| self.expr(e, d)),
        }
    }

    /// Rules 1, 2 and 4 for filters that read attributes by name.
    fn filter(&mut self, f: &ast::Filter<'s>, whole: &Expr<'s>, depth: usize) {
        if matches!(f.name, "join" | "format" | "replace" | "reverse" | "lower" | "upper" | "string" | "trim") {
            self.spelled(whole, depth);
        }
        if !ATTRIBUTE_FILTERS.contains(&f.name) {
            return;
        }
        let subject = self.text(whole);
        let positional_name = matches!(f.name, "attr" | "selectattr" | "rejectattr" | "groupby");
        for (i, arg) in f.args.iter().enumerate() {
            let named = match arg {
                CallArg::Pos(e) if i == 0 && positional_name => e,
                CallArg::Kwarg("attribute", e) => e,
                _ => continue,
            };
            match self.fold(named, depth) {
                Some(name) => self.attribute(&name, f.expr.as_ref(), &subject),
                None if f.name == "attr" => self.add(
                    subject.clone(),
                    "attr() with a name computed at render time can reach any attribute".into(),
                    Verdict::Suspicious,
                ),
                None => {}
            }
        }
    }

    /// The string `expr` evaluates to when it is built from literals only.
    fn fold(&self, expr: &Expr<'s>, depth: usize) -> Option<String> {
        if depth > MAX_DEPTH {
            return None;
        }
        let d = depth + 1;
        let out = match expr {
            Expr::Const(c) => c.value.as_str()?.to_string(),
            Expr::Var(v) => self.strings.get(v.id)?.clone(),
            Expr::BinOp(b) => match b.op {
                ast::BinOpKind::Concat | ast::BinOpKind::Add => self.fold(&b.left, d)? + &self.fold(&b.right, d)?,
                ast::BinOpKind::Rem => {
                    let args = match &b.right {
                        Expr::Tuple(t) => t.items.iter().map(|e| self.fold(e, d)).collect::<Option<Vec<_>>>()?,
                        other => vec![self.fold(other, d)?],
                    };
                    percent_format(&self.fold(&b.left, d)?, &args)?
                }
                _ => return None,
            },
            Expr::Slice(s) => {
                let text = self.fold(&s.expr, d)?;
                let step = s.step.as_ref().and_then(|e| e.as_const()).and_then(|v| i64::try_from(v).ok());
                match (&s.start, &s.stop, step) {
                    (None, None, Some(-1)) => text.chars().rev().collect(),
                    _ => return None,
                }
            }
            Expr::Filter(f) => {
                let args: Vec<Option<String>> = f
                    .args
                    .iter()
                    .map(|a| match a {
                        CallArg::Pos(e) => self.fold(e, d),
                        _ => None,
                    })
                    .collect();
                let arg = |i: usize| args.get(i).cloned().flatten();
                match (f.name, f.expr.as_ref()?) {
                    ("join", Expr::List(_) | Expr::Tuple(_)) => {
                        let items = match f.expr.as_ref()? {
                            Expr::List(l) => &l.items,
                            Expr::Tuple(t) => &t.items,
                            _ => return None,
                        };
                        let parts = items.iter().map(|e| self.fold(e, d)).collect::<Option<Vec<_>>>()?;
                        parts.join(&arg(0).unwrap_or_default())
                    }
                    (name, inner) => {
                        let text = self.fold(inner, d)?;
                        match name {
                            "lower" => text.to_lowercase(),
                            "upper" => text.to_uppercase(),
                            "trim" => text.trim().to_string(),
                            "string" => text,
                            "reverse" => text.chars().rev().collect(),
                            "replace" => text.replace(&arg(0)?, &arg(1)?),
                            "format" => percent_format(&text, &args.into_iter().collect::<Option<Vec<_>>>()?)?,
                            _ => return None,
                        }
                    }
                }
            }
            Expr::Call(c) => {
                let Expr::GetAttr(a) = &c.expr else { return None };
                if let ("join", [CallArg::Pos(Expr::List(l))]) = (a.name, c.args.as_slice()) {
                    let parts = l.items.iter().map(|e| self.fold(e, d)).collect::<Option<Vec<_>>>()?;
                    return Some(parts.join(&self.fold(&a.expr, d)?)).filter(|s| s.len() <= MAX_FOLDED);
                }
                let args = c
                    .args
                    .iter()
                    .map(|a| match a {
                        CallArg::Pos(e) => self.fold(e, d),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                let text = self.fold(&a.expr, d)?;
                match (a.name, args.as_slice()) {
                    ("lower", []) => text.to_lowercase(),
                    ("upper", []) => text.to_uppercase(),
                    ("strip", []) => text.trim().to_string(),
                    ("replace", [from, to]) => text.replace(from, to),
                    _ => return None,
                }
            }
            _ => return None,
        };
        (out.len() <= MAX_FOLDED).then_some(out)
    }
}

/// Python's `'%s' % args` for `%s` and `%%` only.
fn percent_format(template: &str, args: &[String]) -> Option<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            's' => out.push_str(args.next()?),
            _ => return None,
        }
        if out.len() > MAX_FOLDED {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;

//! Python pickle streams, protocols 0 to 5.
//!
//! Identification runs the pickle machine's stack discipline without building objects: every
//! opcode (named in [`op`] as in CPython's `pickle.py`) is decoded with its argument, the stack
//! and mark stack are tracked as they would be by `pickle.Unpickler`, and
//! `GLOBAL`/`INST`/`STACK_GLOBAL` names are resolved from string opcodes and the memo. A stream
//! is a pickle when it reaches `STOP` without an error (or exhausts the identification budget
//! while still valid).
//!
//! Bounds: opcodes per stream ([`MAX_OPS`]), stack depth and memo size ([`MAX_STACK`],
//! [`MAX_MEMO`]), line length of text opcodes ([`MAX_LINE`]); a string argument longer than
//! [`MAX_KEPT_STRING`] is skipped by length, never read into memory.
//!
//! Beyond identification the machine follows what a load would do, without doing it: it
//! records every callable imported and every call made (`REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `OBJ`,
//! `INST`), keeps short bytes arguments so that a pickle handed to `pickle.loads` (also after
//! `zlib.decompress` or `_codecs.encode`) is walked in turn ([`NestedPickle`], at most
//! `MAX_DEPTH` deep), and tracks small tuples and dicts so that tensor shapes and joblib's
//! array headers can be read.
//!
//! joblib writes NumPy array bytes raw into the stream right after the `BUILD` of a
//! `joblib.numpy_pickle.NumpyArrayWrapper`; the walk reads the wrapper's state (shape, dtype,
//! alignment), steps over the data, and goes on, or walks the inline pickle of an object array.

use std::collections::HashMap;
use std::rc::Rc;

use super::reader::Cursor;
use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

/// The opcodes, named and valued as in CPython's `pickle.py`.
pub mod op;

const FORMAT: &str = "pickle";
/// Opcodes walked per stream before identification stops (the stream is still valid so far).
pub const MAX_OPS: u64 = 4_000_000;
/// Largest stack (all marks included).
pub const MAX_STACK: usize = 1 << 18;
/// Largest memo.
pub const MAX_MEMO: usize = 1 << 20;
/// Longest text-opcode line.
pub const MAX_LINE: usize = 1 << 20;
/// Strings longer than this are skipped, not kept (module and attribute names are short).
pub const MAX_KEPT_STRING: u64 = 1024;
/// Most distinct imports recorded.
pub const MAX_IMPORTS: usize = 4096;
/// Longest tuple whose items are tracked (tensor sizes and rebuild arguments are short).
const MAX_TUPLE: usize = 8;
/// Total tuple items tracked per stream; beyond it tuples are opaque (bounds memory).
const MAX_TUPLE_CELLS: usize = 1 << 20;

/// joblib's placeholders for arrays whose data follows inline.
const JOBLIB_WRAPPERS: &[&str] = &["joblib.numpy_pickle.NumpyArrayWrapper"];

/// Callables that rebuild a tensor from `(storage, offset, size, stride, ...)`
/// (`torch/_utils.py`).
const TENSOR_REBUILDERS: &[&str] = &[
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_qtensor",
];

/// What the machine knows about a stack slot.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    /// A string from a string opcode (possibly an argument of `STACK_GLOBAL`).
    Str(Rc<str>),
    /// Bytes from a bytes opcode, kept when short enough to be a nested pickle.
    Bytes(Rc<[u8]>),
    /// A callable resolved by a global opcode.
    Global(Rc<str>),
    /// An object made by calling a global (its class or factory).
    Instance(Rc<str>),
    /// A NumPy dtype: item size in bytes (when known) and whether it holds objects.
    Dtype(Option<u64>, bool),
    /// A small integer.
    Int(i64),
    /// `None`.
    None,
    /// A short tuple (tensor sizes, call arguments).
    Tuple(Rc<[Slot]>),
    /// A small dict (object state).
    Dict(Rc<[(Slot, Slot)]>),
    /// Anything else.
    Other,
}

impl Slot {
    fn get(&self, key: &str) -> Option<&Slot> {
        match self {
            Slot::Dict(items) => {
                items.iter().find(|(k, _)| matches!(k, Slot::Str(s) if s.as_ref() == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

/// A pickle handed to a loader inside another pickle (`pickle.loads(b"...")`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NestedPickle {
    /// The loader called (`pickle.loads`, `_pickle.loads`, ...).
    pub via: String,
    /// What the nested pickle holds.
    pub summary: PickleSummary,
    /// Why its walk stopped early, if it did.
    pub error: Option<String>,
}

/// The result of walking one pickle stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PickleSummary {
    /// Protocol from the `PROTO` opcode (0 when absent).
    pub protocol: u8,
    /// Distinct `module.name` imports, in order of first appearance; `?` marks a name that
    /// could not be resolved statically.
    pub imports: Vec<String>,
    /// Distinct callables invoked (`REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `OBJ`, `INST`), by the name
    /// they were imported under; `?` when the callable is not a resolved global.
    pub calls: Vec<String>,
    /// Pickles loaded from bytes inside this one.
    pub nested: Vec<NestedPickle>,
    /// Opcodes walked.
    pub ops: u64,
    /// Offset just after `STOP` (or where the walk stopped).
    pub end: u64,
    /// The stream reached `STOP`.
    pub complete: bool,
    /// joblib arrays whose raw data was stepped over.
    pub joblib_arrays: u64,
    /// Tensors rebuilt by `torch._utils._rebuild_tensor*` calls.
    pub tensors: u64,
    /// Sum of those tensors' element counts.
    pub tensor_elements: u64,
}

impl PickleSummary {
    fn add_import(&mut self, name: &str) {
        if !self.imports.iter().any(|i| i == name) && self.imports.len() < MAX_IMPORTS {
            self.imports.push(name.to_string());
        }
    }
    fn add_call(&mut self, name: &str) {
        if !self.calls.iter().any(|i| i == name) && self.calls.len() < MAX_IMPORTS {
            self.calls.push(name.to_string());
        }
    }
    /// Takes in what an inline stream (joblib's object arrays) imported and called: it runs in
    /// the same load.
    fn absorb(&mut self, other: PickleSummary) {
        for i in &other.imports {
            self.add_import(i);
        }
        for c in &other.calls {
            self.add_call(c);
        }
        self.nested.extend(other.nested);
        self.tensors += other.tensors;
        self.tensor_elements = self.tensor_elements.saturating_add(other.tensor_elements);
        self.joblib_arrays += other.joblib_arrays;
    }
}

/// Loaders that unpickle the bytes they are given (their argument is analysed as a pickle).
const LOADERS: &[&str] = &[
    "pickle.loads",
    "pickle._loads",
    "_pickle.loads",
    "cPickle.loads",
    "dill.loads",
    "dill._dill.loads",
    "cloudpickle.loads",
    "joblib.numpy_pickle.loads",
    "torch.storage._load_from_bytes",
];

/// How deep pickles nested in pickles are followed.
const MAX_DEPTH: u32 = 4;
/// Largest bytes argument kept (a nested pickle or a compressed payload).
const MAX_KEPT_BYTES: usize = 16 * 1024 * 1024;
/// Total bytes kept per stream (bounds memory across many arguments).
const MAX_KEPT_TOTAL: usize = 64 * 1024 * 1024;
/// Entries tracked per dict.
const MAX_DICT: usize = 32;

struct Machine {
    stack: Vec<Slot>,
    marks: Vec<usize>,
    memo: HashMap<u64, Slot>,
    summary: PickleSummary,
    tuple_cells: usize,
    kept_bytes: usize,
    depth: u32,
    /// Attributes set on imported objects by `BUILD` (`module.name.attr` → value): a later
    /// import of that dotted name yields the value, as it would at load time.
    attrs: HashMap<String, Slot>,
}

/// Most attributes tracked on imported objects.
const MAX_ATTRS: usize = 1024;

fn invalid(pos: u64, what: impl std::fmt::Display) -> FormatError {
    FormatError::invalid(FORMAT, format!("{what} at offset {pos}"))
}

/// Item size of a NumPy type code (`f8`, `<i4`, `U10`, `O8`, ...); `None` when unknown.
fn dtype_itemsize(code: &str) -> Option<u64> {
    let body = code.trim_start_matches(['<', '>', '|', '=']);
    let kind = body.chars().next()?;
    let n: u64 = body.get(kind.len_utf8()..)?.parse().ok()?;
    match kind {
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'V' | 'M' | 'm' | 'O' => Some(n),
        'U' => n.checked_mul(4),
        '?' => Some(1),
        _ => None,
    }
}

impl Machine {
    fn new(depth: u32) -> Self {
        Self {
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            summary: PickleSummary::default(),
            tuple_cells: 0,
            kept_bytes: 0,
            depth,
            attrs: HashMap::new(),
        }
    }
    fn base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    fn push(&mut self, s: Slot, pos: u64) -> Result<(), FormatError> {
        if self.stack.len() >= MAX_STACK {
            return Err(FormatError::bound(
                FORMAT,
                format!("stack depth at offset {pos}"),
                self.stack.len() as u64,
                MAX_STACK as u64,
            ));
        }
        self.stack.push(s);
        Ok(())
    }
    fn pop(&mut self, pos: u64) -> Result<Slot, FormatError> {
        if self.stack.len() <= self.base() {
            return Err(invalid(pos, "stack underflow"));
        }
        self.stack.pop().ok_or_else(|| invalid(pos, "stack underflow"))
    }
    fn pop_mark(&mut self, pos: u64) -> Result<Vec<Slot>, FormatError> {
        let m = self.marks.pop().ok_or_else(|| invalid(pos, "no mark on the stack"))?;
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }
    fn need(&self, n: usize, pos: u64) -> Result<(), FormatError> {
        if self.stack.len() < self.base() + n {
            return Err(invalid(pos, "stack underflow"));
        }
        Ok(())
    }
    fn top(&self, pos: u64) -> Result<Slot, FormatError> {
        self.need(1, pos)?;
        self.stack.last().cloned().ok_or_else(|| invalid(pos, "stack underflow"))
    }
    fn replace_top(&mut self, s: Slot) {
        if let Some(t) = self.stack.last_mut() {
            *t = s;
        }
    }
    fn memo_put(&mut self, key: u64, pos: u64) -> Result<(), FormatError> {
        let top = self.top(pos)?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(FormatError::bound(
                FORMAT,
                format!("memo size at offset {pos}"),
                self.memo.len() as u64,
                MAX_MEMO as u64,
            ));
        }
        self.memo.insert(key, top);
        Ok(())
    }
    fn memo_get(&mut self, key: u64, pos: u64) -> Result<(), FormatError> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| invalid(pos, format!("memo key {key} missing")))?;
        self.push(v, pos)
    }
    fn tuple(&mut self, items: Vec<Slot>, pos: u64) -> Result<(), FormatError> {
        let slot = if items.len() <= MAX_TUPLE && self.tuple_cells + items.len() <= MAX_TUPLE_CELLS {
            self.tuple_cells += items.len();
            Slot::Tuple(items.into())
        } else {
            Slot::Other
        };
        self.push(slot, pos)
    }
    fn pop_tuple(&mut self, n: usize, pos: u64) -> Result<(), FormatError> {
        self.need(n, pos)?;
        let items = self.stack.split_off(self.stack.len() - n);
        self.tuple(items, pos)
    }
    /// Adds `pairs` to the dict on top of the stack (which must exist).
    fn set_items(&mut self, pairs: Vec<Slot>, pos: u64) -> Result<(), FormatError> {
        if !pairs.len().is_multiple_of(2) {
            return Err(invalid(pos, "odd number of items for a dict"));
        }
        let top = self.top(pos)?;
        if let Slot::Dict(items) = top {
            if items.len() + pairs.len() / 2 <= MAX_DICT && self.tuple_cells + pairs.len() <= MAX_TUPLE_CELLS {
                self.tuple_cells += pairs.len();
                let mut all: Vec<(Slot, Slot)> = items.to_vec();
                let mut it = pairs.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    all.push((k, v));
                }
                self.replace_top(Slot::Dict(all.into()));
            } else {
                self.replace_top(Slot::Other);
            }
        }
        Ok(())
    }
    /// Reads a length-prefixed string or bytes argument; keeps it when short enough.
    fn counted(&mut self, cur: &mut Cursor<'_>, len: u64, as_str: bool) -> Result<Slot, FormatError> {
        if len > cur.remaining() {
            return Err(FormatError::truncated(FORMAT, format!("{len}-byte argument at offset {}", cur.pos())));
        }
        if as_str && len <= MAX_KEPT_STRING {
            let b = cur.bytes(len, "string argument")?;
            return Ok(Slot::Str(String::from_utf8_lossy(&b).into()));
        }
        let keep = usize::try_from(len).ok().filter(|n| *n <= MAX_KEPT_BYTES && self.kept_bytes + n <= MAX_KEPT_TOTAL);
        if let (false, Some(n)) = (as_str, keep) {
            self.kept_bytes += n;
            let b = cur.bytes(len, "bytes argument")?;
            return Ok(Slot::Bytes(b.into()));
        }
        cur.skip(len, "argument")?;
        Ok(Slot::Other)
    }
    fn import(&mut self, name: String, pos: u64) -> Result<(), FormatError> {
        self.summary.add_import(&name);
        let slot = self.attrs.get(&name).cloned().unwrap_or_else(|| Slot::Global(name.into()));
        self.push(slot, pos)
    }
    /// `BUILD` on an imported object sets attributes on it (`state`, or the second item of a
    /// `(state, slotstate)` pair): remembered, and reported as a call of its `__setstate__`.
    fn build_global(&mut self, name: &str, state: &Slot) {
        self.summary.add_call(&format!("{name}.__setstate__"));
        let dicts: Vec<&Slot> = match state {
            Slot::Dict(_) => vec![state],
            Slot::Tuple(items) => items.iter().filter(|s| matches!(s, Slot::Dict(_))).collect(),
            _ => Vec::new(),
        };
        for d in dicts {
            if let Slot::Dict(items) = d {
                for (k, v) in items.iter() {
                    if let (Slot::Str(k), true) = (k, self.attrs.len() < MAX_ATTRS) {
                        self.attrs.insert(format!("{name}.{k}"), v.clone());
                    }
                }
            }
        }
    }
    /// Records a call of `callable` with `args` and returns what the machine knows of the result.
    fn call(&mut self, callable: &Slot, args: &Slot) -> Slot {
        let Slot::Global(name) = callable else {
            self.summary.add_call("?");
            return Slot::Other;
        };
        self.summary.add_call(name);
        let args: &[Slot] = match args {
            Slot::Tuple(a) => a,
            _ => &[],
        };
        let name = name.as_ref();
        if TENSOR_REBUILDERS.contains(&name) {
            if let Some(Slot::Tuple(size)) = args.get(2) {
                let elems = size.iter().try_fold(1u64, |acc, d| match d {
                    Slot::Int(v) => u64::try_from(*v).ok().map(|v| acc.saturating_mul(v)),
                    _ => None,
                });
                if let Some(elems) = elems {
                    self.summary.tensors += 1;
                    self.summary.tensor_elements = self.summary.tensor_elements.saturating_add(elems);
                }
            }
            return Slot::Other;
        }
        match (name, args.first(), args.get(1)) {
            ("numpy.dtype", Some(Slot::Str(code)), _) => {
                let object = code.trim_start_matches(['<', '>', '|', '=']).starts_with('O');
                Slot::Dtype(dtype_itemsize(code), object)
            }
            ("_codecs.encode", Some(Slot::Str(text)), Some(Slot::Str(enc)))
                if enc.eq_ignore_ascii_case("latin1") || enc.eq_ignore_ascii_case("latin-1") =>
            {
                let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                bytes.map_or(Slot::Other, |b| Slot::Bytes(b.into()))
            }
            ("zlib.decompress", Some(Slot::Bytes(data)), _) => {
                let src: &[u8] = data;
                match super::compress::decompress_prefix(&src, 0, "zlib", MAX_KEPT_BYTES) {
                    Ok(out) => Slot::Bytes(out.into()),
                    Err(_) => Slot::Other,
                }
            }
            (loader, Some(Slot::Bytes(data)), _) if LOADERS.contains(&loader) => {
                let nested = if self.depth >= MAX_DEPTH {
                    NestedPickle {
                        via: loader.to_string(),
                        summary: PickleSummary::default(),
                        error: Some(format!("nested deeper than {MAX_DEPTH} pickles")),
                    }
                } else {
                    let src: &[u8] = data;
                    let mut cur = Cursor::new(FORMAT, &src, src.len() as u64, 0);
                    let (summary, error) = walk_at_depth(&mut cur, MAX_OPS, self.depth + 1);
                    NestedPickle { via: loader.to_string(), summary, error: error.map(|e| e.to_string()) }
                };
                if self.summary.nested.len() < MAX_IMPORTS {
                    self.summary.nested.push(nested);
                }
                Slot::Other
            }
            _ => Slot::Instance(name.into()),
        }
    }
    /// Steps over the raw data joblib writes after a `NumpyArrayWrapper` (`numpy_pickle.py`
    /// `write_array`): an object array is a pickle stream of its own, analysed here because it
    /// runs in the same load; any other array is an optional padding byte (its value is the
    /// padding length) when `numpy_array_alignment_bytes` is set, then `prod(shape) × itemsize`
    /// bytes.
    fn joblib_array(&mut self, cur: &mut Cursor<'_>, state: &Slot, pos: u64) -> Result<(), FormatError> {
        let unknown = || invalid(pos, "joblib array of unknown shape or dtype");
        let Some(Slot::Dtype(itemsize, object)) = state.get("dtype") else { return Err(unknown()) };
        self.summary.joblib_arrays += 1;
        if *object {
            let (inner, error) = walk_at_depth(cur, MAX_OPS, self.depth + 1);
            self.summary.absorb(inner);
            return match error {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        let count = match state.get("shape") {
            Some(Slot::Tuple(dims)) => dims.iter().try_fold(1u64, |acc, d| match d {
                Slot::Int(v) => u64::try_from(*v).ok().and_then(|v| acc.checked_mul(v)),
                _ => None,
            }),
            _ => None,
        };
        let bytes = count.zip(*itemsize).and_then(|(c, s)| c.checked_mul(s)).ok_or_else(unknown)?;
        if let Some(Slot::Int(_)) = state.get("numpy_array_alignment_bytes") {
            let padding = cur.u8("joblib array padding length")?;
            cur.skip(padding.into(), "joblib array padding")?;
        }
        cur.skip(bytes, "joblib array data")
    }
}

fn line(cur: &mut Cursor<'_>) -> Result<Vec<u8>, FormatError> {
    let start = cur.pos();
    let mut out = Vec::new();
    loop {
        let b = cur.u8("text opcode argument")?;
        if b == b'\n' {
            return Ok(out);
        }
        if out.len() >= MAX_LINE {
            return Err(FormatError::bound(
                FORMAT,
                format!("line at offset {start}"),
                out.len() as u64,
                MAX_LINE as u64,
            ));
        }
        out.push(b);
    }
}

fn decimal(bytes: &[u8], pos: u64) -> Result<u64, FormatError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| invalid(pos, "bad memo index"))
}

fn text_is_number(bytes: &[u8]) -> bool {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim().trim_end_matches('L');
    !s.is_empty() && (s.parse::<i128>().is_ok() || s.parse::<f64>().is_ok() || s == "00" || s == "01")
}

/// Walks one pickle stream starting at the cursor. `budget` bounds the opcodes walked.
pub fn walk(cur: &mut Cursor<'_>, budget: u64) -> Result<PickleSummary, FormatError> {
    match walk_at_depth(cur, budget, 0) {
        (summary, None) => Ok(summary),
        (_, Some(e)) => Err(e),
    }
}

/// Walks one pickle stream and returns what it found even when the stream breaks: the
/// summary up to the error, and the error. A broken stream still ran what came before the
/// break when it was loaded, so its imports matter.
pub fn walk_partial(cur: &mut Cursor<'_>, budget: u64) -> (PickleSummary, Option<FormatError>) {
    walk_at_depth(cur, budget, 0)
}

fn walk_at_depth(cur: &mut Cursor<'_>, budget: u64, depth: u32) -> (PickleSummary, Option<FormatError>) {
    let mut m = Machine::new(depth);
    let result = run(&mut m, cur, budget);
    m.summary.end = cur.pos();
    (m.summary, result.err())
}

fn run(m: &mut Machine, cur: &mut Cursor<'_>, budget: u64) -> Result<(), FormatError> {
    loop {
        if m.summary.ops >= budget.min(MAX_OPS) {
            return Ok(());
        }
        let pos = cur.pos();
        let opcode = cur.u8("opcode")?;
        m.summary.ops += 1;
        match opcode {
            op::MARK => {
                if m.marks.len() >= MAX_STACK {
                    return Err(FormatError::bound(FORMAT, "mark depth", m.marks.len() as u64, MAX_STACK as u64));
                }
                m.marks.push(m.stack.len());
            }
            op::STOP => {
                m.pop(pos)?;
                m.summary.complete = true;
                return Ok(());
            }
            op::POP => {
                if m.stack.len() > m.base() {
                    m.pop(pos)?;
                } else {
                    m.pop_mark(pos)?;
                }
            }
            op::POP_MARK => {
                m.pop_mark(pos)?;
            }
            op::DUP => {
                let t = m.top(pos)?;
                m.push(t, pos)?;
            }
            op::FLOAT | op::INT | op::LONG => {
                let l = line(cur)?;
                if !text_is_number(&l) {
                    return Err(invalid(pos, "bad number literal"));
                }
                let text = String::from_utf8_lossy(&l);
                let int = text.trim().trim_end_matches('L').parse::<i64>().ok().filter(|_| opcode != op::FLOAT);
                m.push(int.map_or(Slot::Other, Slot::Int), pos)?;
            }
            op::BININT => {
                let v = cur.u32("BININT")? as i32;
                m.push(Slot::Int(v.into()), pos)?;
            }
            op::BININT1 => {
                let v = cur.u8("BININT1")?;
                m.push(Slot::Int(v.into()), pos)?;
            }
            op::BININT2 => {
                let v = cur.u16("BININT2")?;
                m.push(Slot::Int(v.into()), pos)?;
            }
            op::EMPTY_TUPLE => m.tuple(Vec::new(), pos)?,
            op::EMPTY_DICT => m.push(Slot::Dict(Rc::from(Vec::new())), pos)?,
            op::NONE => m.push(Slot::None, pos)?,
            op::EMPTY_LIST | op::NEWTRUE | op::NEWFALSE | op::EMPTY_SET | op::NEXT_BUFFER => {
                m.push(Slot::Other, pos)?
            }
            op::PERSID => {
                line(cur)?;
                m.push(Slot::Other, pos)?;
            }
            op::BINPERSID | op::READONLY_BUFFER => {
                m.pop(pos)?;
                m.push(Slot::Other, pos)?;
            }
            op::TUPLE1 => m.pop_tuple(1, pos)?,
            op::TUPLE2 => m.pop_tuple(2, pos)?,
            op::TUPLE3 => m.pop_tuple(3, pos)?,
            op::REDUCE => {
                let args = m.pop(pos)?;
                let callable = m.pop(pos)?;
                let result = m.call(&callable, &args);
                m.push(result, pos)?;
            }
            op::NEWOBJ => {
                let args = m.pop(pos)?;
                let cls = m.pop(pos)?;
                let result = m.call(&cls, &args);
                m.push(result, pos)?;
            }
            op::NEWOBJ_EX => {
                m.pop(pos)?;
                let args = m.pop(pos)?;
                let cls = m.pop(pos)?;
                let result = m.call(&cls, &args);
                m.push(result, pos)?;
            }
            op::STRING => {
                let l = line(cur)?;
                let q = l.first().copied();
                if !matches!(q, Some(b'\'') | Some(b'"')) || l.len() < 2 || l.last().copied() != q {
                    return Err(invalid(pos, "STRING argument is not quoted"));
                }
                let inner = l.get(1..l.len() - 1).unwrap_or_default();
                m.push(Slot::Str(String::from_utf8_lossy(inner).into()), pos)?;
            }
            op::UNICODE => {
                let l = line(cur)?;
                m.push(Slot::Str(String::from_utf8_lossy(&l).into()), pos)?;
            }
            op::BINSTRING | op::BINUNICODE | op::BINBYTES => {
                let n = cur.u32("string length")?;
                if opcode == op::BINSTRING && n > i32::MAX as u32 {
                    return Err(invalid(pos, "negative BINSTRING length"));
                }
                let s = m.counted(cur, n.into(), opcode != op::BINBYTES)?;
                m.push(s, pos)?;
            }
            op::SHORT_BINSTRING | op::SHORT_BINBYTES | op::SHORT_BINUNICODE => {
                let n = cur.u8("string length")?;
                let s = m.counted(cur, n.into(), opcode != op::SHORT_BINBYTES)?;
                m.push(s, pos)?;
            }
            op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = cur.u64("string length")?;
                let s = m.counted(cur, n, opcode == op::BINUNICODE8)?;
                m.push(s, pos)?;
            }
            op::LONG1 => {
                let n = cur.u8("LONG1 length")?;
                let bytes = cur.take(n.into(), "LONG1")?;
                let value = (1..=8).contains(&bytes.len()).then(|| {
                    let mut b = [if bytes.last().is_some_and(|x| x & 0x80 != 0) { 0xff } else { 0 }; 8];
                    b.get_mut(..bytes.len()).unwrap_or_default().copy_from_slice(bytes);
                    i64::from_le_bytes(b)
                });
                m.push(value.map_or(Slot::Other, Slot::Int), pos)?;
            }
            op::LONG4 => {
                let n = cur.u32("LONG4 length")?;
                if n > i32::MAX as u32 {
                    return Err(invalid(pos, "negative LONG4 length"));
                }
                cur.skip(n.into(), "LONG4")?;
                m.push(Slot::Other, pos)?;
            }
            op::APPEND => {
                m.pop(pos)?;
                m.need(1, pos)?;
            }
            op::BUILD => {
                let state = m.pop(pos)?;
                let target = m.top(pos)?;
                match &target {
                    Slot::Instance(cls) if JOBLIB_WRAPPERS.contains(&cls.as_ref()) => {
                        m.joblib_array(cur, &state, pos)?
                    }
                    Slot::Global(name) => m.build_global(name, &state),
                    _ => {}
                }
            }
            op::GLOBAL => {
                let module = line(cur)?;
                let name = line(cur)?;
                let g = format!("{}.{}", String::from_utf8_lossy(&module), String::from_utf8_lossy(&name));
                m.import(g, pos)?;
            }
            op::INST => {
                let module = line(cur)?;
                let name = line(cur)?;
                let args = m.pop_mark(pos)?;
                let g = format!("{}.{}", String::from_utf8_lossy(&module), String::from_utf8_lossy(&name));
                m.summary.add_import(&g);
                let result = m.call(&Slot::Global(g.into()), &Slot::Tuple(args.into()));
                m.push(result, pos)?;
            }
            op::TUPLE => {
                let items = m.pop_mark(pos)?;
                m.tuple(items, pos)?;
            }
            op::DICT => {
                let items = m.pop_mark(pos)?;
                m.push(Slot::Dict(Rc::from(Vec::new())), pos)?;
                m.set_items(items, pos)?;
            }
            op::LIST | op::FROZENSET => {
                m.pop_mark(pos)?;
                m.push(Slot::Other, pos)?;
            }
            op::OBJ => {
                let mut items = m.pop_mark(pos)?;
                if items.is_empty() {
                    return Err(invalid(pos, "OBJ without a class"));
                }
                let cls = items.remove(0);
                let result = m.call(&cls, &Slot::Tuple(items.into()));
                m.push(result, pos)?;
            }
            op::SETITEMS => {
                let items = m.pop_mark(pos)?;
                m.need(1, pos)?;
                m.set_items(items, pos)?;
            }
            op::APPENDS | op::ADDITEMS => {
                m.pop_mark(pos)?;
                m.need(1, pos)?;
            }
            op::SETITEM => {
                let v = m.pop(pos)?;
                let k = m.pop(pos)?;
                m.need(1, pos)?;
                m.set_items(vec![k, v], pos)?;
            }
            op::GET => {
                let l = line(cur)?;
                m.memo_get(decimal(&l, pos)?, pos)?;
            }
            op::BINGET => {
                let k = cur.u8("BINGET")?;
                m.memo_get(k.into(), pos)?;
            }
            op::LONG_BINGET => {
                let k = cur.u32("LONG_BINGET")?;
                m.memo_get(k.into(), pos)?;
            }
            op::PUT => {
                let l = line(cur)?;
                m.memo_put(decimal(&l, pos)?, pos)?;
            }
            op::BINPUT => {
                let k = cur.u8("BINPUT")?;
                m.memo_put(k.into(), pos)?;
            }
            op::LONG_BINPUT => {
                let k = cur.u32("LONG_BINPUT")?;
                m.memo_put(k.into(), pos)?;
            }
            op::MEMOIZE => {
                let k = m.memo.len() as u64;
                m.memo_put(k, pos)?;
            }
            op::BINFLOAT => {
                cur.skip(8, "BINFLOAT")?;
                m.push(Slot::Other, pos)?;
            }
            op::PROTO => {
                let v = cur.u8("PROTO")?;
                if v > 5 {
                    return Err(invalid(pos, format!("unsupported protocol {v}")));
                }
                if m.summary.ops == 1 {
                    m.summary.protocol = v;
                }
            }
            op::EXT1..=op::EXT4 => {
                // The extension registry maps codes to any global: unresolvable statically.
                let width = match opcode {
                    op::EXT1 => 1,
                    op::EXT2 => 2,
                    _ => 4,
                };
                cur.skip(width, "extension code")?;
                m.import("?".to_string(), pos)?;
            }
            op::STACK_GLOBAL => {
                let name = m.pop(pos)?;
                let module = m.pop(pos)?;
                let g = match (&module, &name) {
                    (Slot::Str(module), Slot::Str(name)) => format!("{module}.{name}"),
                    _ => "?".to_string(),
                };
                m.import(g, pos)?;
            }
            op::FRAME => {
                let n = cur.u64("FRAME length")?;
                if n > cur.remaining() {
                    return Err(FormatError::truncated(FORMAT, format!("frame of {n} bytes at offset {pos}")));
                }
            }
            other => return Err(invalid(pos, format!("unknown opcode 0x{other:02x}"))),
        }
    }
}

/// Names under which a broken pickle is reported as an error rather than ignored.
pub const PICKLE_EXTENSIONS: &[&str] = &["pkl", "pickle", "joblib", "jl", "pt", "pth", "ckpt", "dill", "sav", "p"];

/// Whether the bytes after `end` are nothing, whitespace, or the start of another pickle.
fn ends_file(input: &ProbeInput<'_>, end: u64) -> Result<bool, FormatError> {
    let rest = input.size.saturating_sub(end).min(64);
    if rest == 0 {
        return Ok(true);
    }
    let tail = input.read_exact_at(FORMAT, end, rest)?;
    Ok(tail.first() == Some(&op::PROTO) || tail.iter().all(u8::is_ascii_whitespace))
}

/// Opcodes a protocol 0/1 pickle commonly starts with.
fn plausible_text_start(b: u8) -> bool {
    matches!(
        b,
        op::MARK
            | op::GLOBAL
            | op::EMPTY_DICT
            | op::EMPTY_LIST
            | op::EMPTY_TUPLE
            | op::NONE
            | op::INT
            | op::STRING
            | op::UNICODE
            | op::FLOAT
            | op::LONG
            | op::BININT1
            | op::BININT
            | op::BINUNICODE
            | op::SHORT_BINSTRING
            | op::BINFLOAT
            | op::BININT2
            | op::BINSTRING
    )
}

/// Walks the pickle at the start of `input`; `Ok(None)` when it is not one.
pub fn summarize(input: &ProbeInput<'_>) -> Result<Option<PickleSummary>, FormatError> {
    let (Some(&b0), Some(&b1)) = (input.head.first(), input.head.get(1)) else {
        return Ok(None);
    };
    let binary = b0 == op::PROTO && (2..=5).contains(&b1);
    if !binary && !plausible_text_start(b0) {
        return Ok(None);
    }
    let mut cur = Cursor::new(FORMAT, input.source, input.size, 0);
    match walk_partial(&mut cur, MAX_OPS) {
        (s, None) if binary && s.ops >= 3 => Ok(Some(s)),
        // Text protocols: a short valid prefix such as `N.` is common in random and text
        // data, so the stream must hold a few opcodes and end the file (or be followed by
        // another pickle or trailing whitespace).
        (s, None) if s.complete && s.ops >= 3 && ends_file(input, s.end)? => Ok(Some(s)),
        (_, None) => Ok(None),
        // A binary pickle that breaks is still a pickle when it imported something or is named
        // like one: loading it runs everything before the break. The safety analysis reports
        // the break.
        (s, Some(_)) if binary && (!s.imports.is_empty() || input.named_as(PICKLE_EXTENSIONS)) => Ok(Some(s)),
        (_, Some(_)) => Ok(None),
    }
}

/// Identifies a plain pickle; one that carries joblib's array wrappers is a joblib file.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let Some(s) = summarize(input)? else {
        return Ok(None);
    };
    let mut md = metadata(&s);
    let format = if s.imports.iter().any(|g| g.starts_with("joblib.numpy_pickle.")) {
        md.compression = Some("none".into());
        ModelFormat::Joblib
    } else {
        ModelFormat::Pickle
    };
    Ok(Some(Detection::new(format, md)))
}

/// Modules whose classes are plumbing rather than the model's own type.
const PLUMBING: &[&str] = &[
    "copyreg.",
    "copy_reg.",
    "builtins.",
    "__builtin__.",
    "collections.",
    "numpy.",
    "_codecs.",
    "joblib.",
    "torch._utils.",
    "torch.",
    "?",
];

/// Metadata a pickle's imports tell: the protocol and the first non-plumbing class.
pub fn metadata(s: &PickleSummary) -> ModelMetadata {
    let architecture = s
        .imports
        .iter()
        .find(|g| !PLUMBING.iter().any(|p| g.starts_with(p) || g.as_str() == p.trim_end_matches('.')))
        .cloned();
    let tensors = (s.tensors > 0).then_some(s.tensors);
    ModelMetadata {
        architecture,
        format_version: Some(s.protocol.to_string()),
        tensor_count: tensors,
        parameters: tensors.map(|_| s.tensor_elements),
        ..ModelMetadata::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::identify_bytes;

    #[test]
    fn protocol_2_dict() {
        // pickle.dumps({'a': 1}, protocol=2)
        let b = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.";
        let d = identify_bytes("x.pkl", b).unwrap().unwrap();
        assert_eq!(d.metadata.format_version.as_deref(), Some("2"));
    }

    #[test]
    fn stack_global_from_memo() {
        // \x8c builtins, memoize, \x8c print, memoize, pop both via GET to STACK_GLOBAL
        let b = b"\x80\x04\x8c\x08builtins\x94\x8c\x05print\x94\x93)R.";
        let d = identify_bytes("x.pkl", b).unwrap().unwrap();
        assert_eq!(d.metadata.architecture.as_deref(), None);
        let s = summarize(&ProbeInput { source: &b.as_slice(), size: b.len() as u64, head: b, name: "x" })
            .unwrap()
            .unwrap();
        assert_eq!(s.imports, vec!["builtins.print".to_string()]);
    }

    #[test]
    fn text_is_not_a_pickle() {
        assert_eq!(identify_bytes("notes.pkl", b"(hello world) this is text\n").unwrap(), None);
        assert_eq!(identify_bytes("notes.pkl", b"I am not a pickle.\n").unwrap(), None);
    }

    #[test]
    fn broken_binary_pickle_is_still_a_pickle_when_named_like_one() {
        // Loading runs what precedes the break, so the file is reported (and its safety
        // analysis says it is malformed); under another name it is just not a model.
        let d = identify_bytes("x.pkl", b"\x80\x04\x93.").unwrap().unwrap();
        assert_eq!(d.format, ModelFormat::Pickle);
        assert_eq!(identify_bytes("x.bin", b"\x80\x04\x93.").unwrap(), None);
    }

    #[test]
    fn nested_pickle_loads_is_followed() {
        // pickle.loads(b"\x80\x02cos\nsystem\nq\x00.") inside a protocol 2 pickle.
        let inner = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R.";
        let mut outer = b"\x80\x02cpickle\nloads\nC".to_vec();
        outer.push(inner.len() as u8);
        outer.extend_from_slice(inner);
        outer.extend_from_slice(b"\x85R.");
        let src: &[u8] = &outer;
        let mut cur = Cursor::new(FORMAT, &src, outer.len() as u64, 0);
        let s = walk(&mut cur, MAX_OPS).unwrap();
        assert_eq!(s.calls, vec!["pickle.loads".to_string()]);
        assert_eq!(s.nested.len(), 1);
        assert_eq!(s.nested[0].summary.imports, vec!["os.system".to_string()]);
        assert_eq!(s.nested[0].summary.calls, vec!["os.system".to_string()]);
    }

    #[test]
    fn build_on_a_global_feeds_later_imports() {
        // modelscan#85: attributes set on numpy.prod name os.system for STACK_GLOBAL.
        let b =
            b"\x80\x04cnumpy\nprod\nN}(\x8c\x01a\x8c\x02osu\x86b0cnumpy\nprod.a\ncnumpy\nprod\n0\x8c\x06system\x93)R.";
        let src: &[u8] = b;
        let mut cur = Cursor::new(FORMAT, &src, b.len() as u64, 0);
        let s = walk(&mut cur, MAX_OPS).unwrap();
        assert!(s.imports.contains(&"os.system".to_string()), "{:?}", s.imports);
    }
}

//! Python pickle streams, protocols 0 to 5.
//!
//! Identification runs the pickle machine's stack discipline without building objects: every
//! opcode is decoded with its argument, the stack and mark stack are tracked as they would be by
//! `pickle.Unpickler`, and `GLOBAL`/`INST`/`STACK_GLOBAL` names are resolved from string
//! opcodes and the memo. A stream is a pickle when it reaches `STOP` without an error (or
//! exhausts the identification budget while still valid).
//!
//! Bounds: opcodes per stream ([`MAX_OPS`]), stack depth and memo size ([`MAX_STACK`],
//! [`MAX_MEMO`]), line length of text opcodes ([`MAX_LINE`]); a string argument longer than
//! [`MAX_KEPT_STRING`] is skipped by length, never read into memory.
//!
//! joblib writes NumPy array bytes raw into the stream right after the `BUILD` of a
//! `joblib.numpy_pickle.NumpyArrayWrapper`; the walk stops there and reports it.

use std::collections::HashMap;
use std::rc::Rc;

use super::reader::Cursor;
use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

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
    /// A callable resolved by a global opcode.
    Global(Rc<str>),
    /// A small integer.
    Int(i64),
    /// A short tuple (tensor sizes, call arguments).
    Tuple(Rc<[Slot]>),
    /// Anything else.
    Other,
}

/// The result of walking one pickle stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PickleSummary {
    /// Protocol from the `PROTO` opcode (0 when absent).
    pub protocol: u8,
    /// Distinct `module.name` imports, in order of first appearance; `?` marks a name that
    /// could not be resolved statically.
    pub imports: Vec<String>,
    /// Opcodes walked.
    pub ops: u64,
    /// Offset just after `STOP` (or where the walk stopped).
    pub end: u64,
    /// The stream reached `STOP`.
    pub complete: bool,
    /// The walk stopped at raw joblib array data.
    pub joblib_array: bool,
    /// Tensors rebuilt by `torch._utils._rebuild_tensor*` calls.
    pub tensors: u64,
    /// Sum of those tensors' element counts.
    pub tensor_elements: u64,
}

struct Machine {
    stack: Vec<Slot>,
    marks: Vec<usize>,
    memo: HashMap<u64, Slot>,
    summary: PickleSummary,
    saw_joblib_wrapper: bool,
    tuple_cells: usize,
}

fn invalid(pos: u64, what: impl std::fmt::Display) -> FormatError {
    FormatError::invalid(FORMAT, format!("{what} at offset {pos}"))
}

impl Machine {
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
    fn pop_n(&mut self, n: usize, pos: u64) -> Result<(), FormatError> {
        for _ in 0..n {
            self.pop(pos)?;
        }
        Ok(())
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
    fn reduce(&mut self, pos: u64) -> Result<(), FormatError> {
        let args = self.pop(pos)?;
        let callable = self.pop(pos)?;
        if let (Slot::Global(name), Slot::Tuple(args)) = (&callable, &args) {
            if TENSOR_REBUILDERS.contains(&name.as_ref()) {
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
            }
        }
        self.push(Slot::Other, pos)
    }
    fn import(&mut self, name: String, pos: u64) -> Result<(), FormatError> {
        if name == "joblib.numpy_pickle.NumpyArrayWrapper" {
            self.saw_joblib_wrapper = true;
        }
        if !self.summary.imports.contains(&name) && self.summary.imports.len() < MAX_IMPORTS {
            self.summary.imports.push(name.clone());
        }
        self.push(Slot::Global(name.into()), pos)
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

/// Reads a length-prefixed string; keeps it when short, skips it otherwise.
fn counted(cur: &mut Cursor<'_>, len: u64, as_str: bool) -> Result<Slot, FormatError> {
    if len > cur.remaining() {
        return Err(FormatError::truncated(FORMAT, format!("{len}-byte argument at offset {}", cur.pos())));
    }
    if as_str && len <= MAX_KEPT_STRING {
        let b = cur.bytes(len, "string argument")?;
        return Ok(Slot::Str(String::from_utf8_lossy(&b).into()));
    }
    cur.skip(len, "bytes argument")?;
    Ok(Slot::Other)
}

/// Walks one pickle stream starting at the cursor. `budget` bounds the opcodes walked.
pub fn walk(cur: &mut Cursor<'_>, budget: u64) -> Result<PickleSummary, FormatError> {
    let mut m = Machine {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        summary: PickleSummary::default(),
        saw_joblib_wrapper: false,
        tuple_cells: 0,
    };
    loop {
        if m.summary.ops >= budget.min(MAX_OPS) {
            m.summary.end = cur.pos();
            return Ok(m.summary);
        }
        let pos = cur.pos();
        let op = cur.u8("opcode")?;
        m.summary.ops += 1;
        match op {
            b'(' => {
                if m.marks.len() >= MAX_STACK {
                    return Err(FormatError::bound(FORMAT, "mark depth", m.marks.len() as u64, MAX_STACK as u64));
                }
                m.marks.push(m.stack.len());
            }
            b'.' => {
                m.pop(pos)?;
                m.summary.complete = true;
                m.summary.end = cur.pos();
                return Ok(m.summary);
            }
            b'0' => {
                if m.stack.len() > m.base() {
                    m.pop(pos)?;
                } else {
                    m.pop_mark(pos)?;
                }
            }
            b'1' => {
                m.pop_mark(pos)?;
            }
            b'2' => {
                let t = m.top(pos)?;
                m.push(t, pos)?;
            }
            b'F' | b'I' | b'L' => {
                let l = line(cur)?;
                if !text_is_number(&l) {
                    return Err(invalid(pos, "bad number literal"));
                }
                let text = String::from_utf8_lossy(&l);
                let int = text.trim().trim_end_matches('L').parse::<i64>().ok().filter(|_| op != b'F');
                m.push(int.map_or(Slot::Other, Slot::Int), pos)?;
            }
            b'J' => {
                let v = cur.u32("BININT")? as i32;
                m.push(Slot::Int(v.into()), pos)?;
            }
            b'K' => {
                let v = cur.u8("BININT1")?;
                m.push(Slot::Int(v.into()), pos)?;
            }
            b'M' => {
                let v = cur.u16("BININT2")?;
                m.push(Slot::Int(v.into()), pos)?;
            }
            b')' => m.tuple(Vec::new(), pos)?,
            b'N' | b'}' | b']' | 0x88 | 0x89 | 0x8f | 0x97 => m.push(Slot::Other, pos)?,
            b'P' => {
                line(cur)?;
                m.push(Slot::Other, pos)?;
            }
            b'Q' | 0x98 => {
                m.pop(pos)?;
                m.push(Slot::Other, pos)?;
            }
            0x85 => m.pop_tuple(1, pos)?,
            0x86 => m.pop_tuple(2, pos)?,
            0x87 => m.pop_tuple(3, pos)?,
            b'R' => m.reduce(pos)?,
            0x81 => {
                m.pop_n(2, pos)?;
                m.push(Slot::Other, pos)?;
            }
            0x92 => {
                m.pop_n(3, pos)?;
                m.push(Slot::Other, pos)?;
            }
            b'S' => {
                let l = line(cur)?;
                let q = l.first().copied();
                if !matches!(q, Some(b'\'') | Some(b'"')) || l.len() < 2 || l.last().copied() != q {
                    return Err(invalid(pos, "STRING argument is not quoted"));
                }
                let inner = l.get(1..l.len() - 1).unwrap_or_default();
                m.push(Slot::Str(String::from_utf8_lossy(inner).into()), pos)?;
            }
            b'V' => {
                let l = line(cur)?;
                m.push(Slot::Str(String::from_utf8_lossy(&l).into()), pos)?;
            }
            b'T' | b'X' | b'B' => {
                let n = cur.u32("string length")?;
                if op == b'T' && n > i32::MAX as u32 {
                    return Err(invalid(pos, "negative BINSTRING length"));
                }
                let s = counted(cur, n.into(), op != b'B')?;
                m.push(s, pos)?;
            }
            b'U' | b'C' | 0x8c => {
                let n = cur.u8("string length")?;
                let s = counted(cur, n.into(), op != b'C')?;
                m.push(s, pos)?;
            }
            0x8d | 0x8e | 0x96 => {
                let n = cur.u64("string length")?;
                let s = counted(cur, n, op == 0x8d)?;
                m.push(s, pos)?;
            }
            0x8a => {
                let n = cur.u8("LONG1 length")?;
                let bytes = cur.take(n.into(), "LONG1")?;
                let value = (1..=8).contains(&bytes.len()).then(|| {
                    let mut b = [if bytes.last().is_some_and(|x| x & 0x80 != 0) { 0xff } else { 0 }; 8];
                    b.get_mut(..bytes.len()).unwrap_or_default().copy_from_slice(bytes);
                    i64::from_le_bytes(b)
                });
                m.push(value.map_or(Slot::Other, Slot::Int), pos)?;
            }
            0x8b => {
                let n = cur.u32("LONG4 length")?;
                if n > i32::MAX as u32 {
                    return Err(invalid(pos, "negative LONG4 length"));
                }
                cur.skip(n.into(), "LONG4")?;
                m.push(Slot::Other, pos)?;
            }
            b'a' => {
                m.pop(pos)?;
                m.need(1, pos)?;
            }
            b'b' => {
                m.pop(pos)?;
                m.need(1, pos)?;
                if m.saw_joblib_wrapper {
                    // Raw array bytes follow; identification ends here.
                    m.summary.joblib_array = true;
                    m.summary.end = cur.pos();
                    return Ok(m.summary);
                }
            }
            b'c' => {
                let module = line(cur)?;
                let name = line(cur)?;
                let g = format!("{}.{}", String::from_utf8_lossy(&module), String::from_utf8_lossy(&name));
                m.import(g, pos)?;
            }
            b'i' => {
                let module = line(cur)?;
                let name = line(cur)?;
                m.pop_mark(pos)?;
                let g = format!("{}.{}", String::from_utf8_lossy(&module), String::from_utf8_lossy(&name));
                m.import(g, pos)?;
                m.pop(pos)?;
                m.push(Slot::Other, pos)?;
            }
            b't' => {
                let items = m.pop_mark(pos)?;
                m.tuple(items, pos)?;
            }
            b'd' | b'l' | 0x91 => {
                m.pop_mark(pos)?;
                m.push(Slot::Other, pos)?;
            }
            b'o' => {
                let items = m.pop_mark(pos)?;
                if items.is_empty() {
                    return Err(invalid(pos, "OBJ without a class"));
                }
                m.push(Slot::Other, pos)?;
            }
            b'e' | b'u' | 0x90 => {
                m.pop_mark(pos)?;
                m.need(1, pos)?;
            }
            b's' => {
                m.pop_n(2, pos)?;
                m.need(1, pos)?;
            }
            b'g' => {
                let l = line(cur)?;
                m.memo_get(decimal(&l, pos)?, pos)?;
            }
            b'h' => {
                let k = cur.u8("BINGET")?;
                m.memo_get(k.into(), pos)?;
            }
            b'j' => {
                let k = cur.u32("LONG_BINGET")?;
                m.memo_get(k.into(), pos)?;
            }
            b'p' => {
                let l = line(cur)?;
                m.memo_put(decimal(&l, pos)?, pos)?;
            }
            b'q' => {
                let k = cur.u8("BINPUT")?;
                m.memo_put(k.into(), pos)?;
            }
            b'r' => {
                let k = cur.u32("LONG_BINPUT")?;
                m.memo_put(k.into(), pos)?;
            }
            0x94 => {
                let k = m.memo.len() as u64;
                m.memo_put(k, pos)?;
            }
            b'G' => {
                cur.skip(8, "BINFLOAT")?;
                m.push(Slot::Other, pos)?;
            }
            0x80 => {
                let v = cur.u8("PROTO")?;
                if v > 5 {
                    return Err(invalid(pos, format!("unsupported protocol {v}")));
                }
                if m.summary.ops == 1 {
                    m.summary.protocol = v;
                }
            }
            0x82 => {
                cur.skip(1, "EXT1")?;
                m.push(Slot::Other, pos)?;
            }
            0x83 => {
                cur.skip(2, "EXT2")?;
                m.push(Slot::Other, pos)?;
            }
            0x84 => {
                cur.skip(4, "EXT4")?;
                m.push(Slot::Other, pos)?;
            }
            0x93 => {
                let name = m.pop(pos)?;
                let module = m.pop(pos)?;
                let g = match (&module, &name) {
                    (Slot::Str(module), Slot::Str(name)) => format!("{module}.{name}"),
                    _ => "?".to_string(),
                };
                m.import(g, pos)?;
            }
            0x95 => {
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
    Ok(tail.first() == Some(&0x80) || tail.iter().all(u8::is_ascii_whitespace))
}

/// Opcodes a protocol 0/1 pickle commonly starts with.
fn plausible_text_start(b: u8) -> bool {
    matches!(
        b,
        b'(' | b'c'
            | b'}'
            | b']'
            | b')'
            | b'N'
            | b'I'
            | b'S'
            | b'V'
            | b'F'
            | b'L'
            | b'K'
            | b'J'
            | b'X'
            | b'U'
            | b'G'
            | b'M'
            | b'T'
    )
}

/// Walks the pickle at the start of `input`; `Ok(None)` when it is not one.
pub fn summarize(input: &ProbeInput<'_>) -> Result<Option<PickleSummary>, FormatError> {
    let (Some(&b0), Some(&b1)) = (input.head.first(), input.head.get(1)) else {
        return Ok(None);
    };
    let binary = b0 == 0x80 && (2..=5).contains(&b1);
    if !binary && !plausible_text_start(b0) {
        return Ok(None);
    }
    let mut cur = Cursor::new(FORMAT, input.source, input.size, 0);
    match walk(&mut cur, MAX_OPS) {
        Ok(s) if binary && s.ops >= 3 => Ok(Some(s)),
        // Text protocols: a short valid prefix such as `N.` is common in random and text
        // data, so the stream must hold a few opcodes and end the file (or be followed by
        // another pickle or trailing whitespace).
        Ok(s) if s.complete && s.ops >= 3 && ends_file(input, s.end)? => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(e) if binary && input.named_as(PICKLE_EXTENSIONS) => Err(e),
        Err(_) => Ok(None),
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
    Ok(Some(Detection { format, metadata: md }))
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
        let s = super::summarize(&crate::formats::ProbeInput {
            source: &b.as_slice(),
            size: b.len() as u64,
            head: b,
            name: "x",
        })
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
    fn broken_binary_pickle_is_an_error() {
        assert!(identify_bytes("x.pkl", b"\x80\x04\x93.").is_err());
    }
}

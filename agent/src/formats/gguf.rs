//! GGUF (llama.cpp / ggml).
//!
//! Layout (ggml `docs/gguf.md`, gguf-py `constants.py`): u32 magic `GGUF`, u32 version (2 or 3;
//! version 1 used u32 counts and is still read), u64 tensor count, u64 key/value count, the
//! key/values (u64-length key, u32 type, value), the tensor infos (name, u32 dims, u64 × dims,
//! u32 ggml type, u64 offset), then tensor data aligned to `general.alignment` (32).
//!
//! Every count is bounded by [`limits::MAX_ENTRIES`] and by the bytes left in the file (each
//! entry takes at least 13 bytes), so a header claiming 2^60 entries fails at once.
//!
//! Chat templates (`tokenizer.chat_template`, and `tokenizer.chat_template.<name>` for named
//! ones such as `tool_use`) are Jinja2 source that loaders render; identification reports their
//! SHA-256 (`chat_template_sha256`, `chat_template_sha256_named`) and [`chat_templates`] hands
//! their text to the safety assessment ([`crate::safety::chat_template`]). At most
//! [`MAX_TEMPLATES`] templates and [`MAX_TEMPLATE_TOTAL`] bytes of them are kept per file.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::reader::Cursor;
use super::{limits, Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "gguf";
const MAGIC: &[u8; 4] = b"GGUF";
/// Smallest encoding of one key/value: empty key length (8) + type (4) + one byte.
const MIN_KV_BYTES: u64 = 13;
/// Smallest encoding of one tensor info: name length (8) + dims (4) + type (4) + offset (8).
const MIN_TENSOR_BYTES: u64 = 24;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

/// Value types (gguf-py `GGUFValueType`).
mod vt {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// A scalar value kept from the key/value section (arrays are skipped).
#[derive(Debug, Clone)]
enum Value {
    Int(i128),
    /// Floats and booleans: read past, not kept.
    Other,
    Str(String),
    /// A chat template's bytes as stored (hashed as they are, judged as UTF-8).
    Raw(Vec<u8>),
    Array,
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The key of the default chat template; named ones follow it after a dot.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// Whether `key` holds a chat template: the default or a named one.
fn is_chat_template(key: &str) -> bool {
    key == CHAT_TEMPLATE_KEY || key.strip_prefix(CHAT_TEMPLATE_KEY).is_some_and(|rest| rest.starts_with('.'))
}

/// Keys whose values are kept; everything else is skipped without allocating.
fn wanted(key: &str) -> bool {
    key.starts_with("general.")
        || key.starts_with("split.")
        || key.ends_with(".context_length")
        || key == "adapter.type"
        || is_chat_template(key)
}

/// Most chat templates kept from one file.
pub const MAX_TEMPLATES: usize = 64;
/// Most bytes of chat templates kept from one file; templates past either bound are skipped
/// (no digest) and counted in [`ChatTemplates::skipped`].
pub const MAX_TEMPLATE_TOTAL: usize = 4 * 1024 * 1024;

/// The chat templates of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatTemplates {
    /// The templates kept, in file order.
    pub templates: Vec<ChatTemplate>,
    /// Templates skipped past [`MAX_TEMPLATES`] or [`MAX_TEMPLATE_TOTAL`].
    pub skipped: usize,
}

/// A chat template a GGUF file carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    /// The metadata key (`tokenizer.chat_template`, `tokenizer.chat_template.tool_use`).
    pub key: String,
    /// The template's bytes as stored (at most [`limits::MAX_STRING`]).
    pub text: Vec<u8>,
}

struct Parser<'a> {
    cur: Cursor<'a>,
    /// Version 1 used u32 for lengths and counts.
    wide: bool,
}

impl Parser<'_> {
    fn len(&mut self, what: &str) -> Result<u64, FormatError> {
        if self.wide {
            self.cur.u64(what)
        } else {
            self.cur.u32(what).map(u64::from)
        }
    }

    fn string_len(&mut self, what: &str) -> Result<u64, FormatError> {
        let n = self.len(what)?;
        if n > limits::MAX_STRING {
            return Err(FormatError::bound(FORMAT, format!("{what} length"), n, limits::MAX_STRING));
        }
        if n > self.cur.remaining() {
            return Err(FormatError::truncated(FORMAT, format!("{what} of {n} bytes")));
        }
        Ok(n)
    }

    fn raw_string(&mut self, what: &str) -> Result<Vec<u8>, FormatError> {
        let n = self.string_len(what)?;
        self.cur.bytes(n, what)
    }

    fn string(&mut self, what: &str) -> Result<String, FormatError> {
        let bytes = self.raw_string(what)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn skip_string(&mut self, what: &str) -> Result<(), FormatError> {
        let n = self.string_len(what)?;
        self.cur.skip(n, what)
    }

    fn fixed_size(ty: u32) -> Option<u64> {
        match ty {
            vt::U8 | vt::I8 | vt::BOOL => Some(1),
            vt::U16 | vt::I16 => Some(2),
            vt::U32 | vt::I32 | vt::F32 => Some(4),
            vt::U64 | vt::I64 | vt::F64 => Some(8),
            _ => None,
        }
    }

    fn scalar(&mut self, ty: u32, keep: bool, what: &str) -> Result<Value, FormatError> {
        let c = &mut self.cur;
        Ok(match ty {
            vt::U8 => Value::Int(c.u8(what)?.into()),
            vt::I8 => Value::Int((c.u8(what)? as i8).into()),
            vt::U16 => Value::Int(c.u16(what)?.into()),
            vt::I16 => Value::Int((c.u16(what)? as i16).into()),
            vt::U32 => Value::Int(c.u32(what)?.into()),
            vt::I32 => Value::Int((c.u32(what)? as i32).into()),
            vt::U64 => Value::Int(c.u64(what)?.into()),
            vt::I64 => Value::Int((c.u64(what)? as i64).into()),
            vt::F32 => {
                c.u32(what)?;
                Value::Other
            }
            vt::F64 => {
                c.u64(what)?;
                Value::Other
            }
            vt::BOOL => {
                c.u8(what)?;
                Value::Other
            }
            vt::STRING if keep && is_chat_template(what) => Value::Raw(self.raw_string(what)?),
            vt::STRING if keep => Value::Str(self.string(what)?),
            vt::STRING => {
                self.skip_string(what)?;
                Value::Str(String::new())
            }
            vt::ARRAY => {
                self.skip_array(what)?;
                Value::Array
            }
            other => return Err(FormatError::invalid(FORMAT, format!("{what}: unknown value type {other}"))),
        })
    }

    fn skip_array(&mut self, what: &str) -> Result<(), FormatError> {
        let elem = self.cur.u32(what)?;
        let count = self.len(what)?;
        if count > limits::MAX_ARRAY {
            return Err(FormatError::bound(FORMAT, format!("{what} array length"), count, limits::MAX_ARRAY));
        }
        if let Some(size) = Self::fixed_size(elem) {
            let bytes =
                count.checked_mul(size).ok_or_else(|| FormatError::bound(FORMAT, what, count, limits::MAX_ARRAY))?;
            return self.cur.skip(bytes, what);
        }
        match elem {
            vt::STRING => {
                // Each string takes at least its length field.
                if count.saturating_mul(if self.wide { 8 } else { 4 }) > self.cur.remaining() {
                    return Err(FormatError::truncated(FORMAT, format!("{what}: {count} strings")));
                }
                for _ in 0..count {
                    self.skip_string(what)?;
                }
                Ok(())
            }
            // Nested arrays are legal but never used by writers we know; refuse to recurse.
            other => Err(FormatError::invalid(FORMAT, format!("{what}: unsupported array element type {other}"))),
        }
    }
}

/// Element size in bytes per block and block length of a ggml tensor type (ggml.c `type_traits`).
fn ggml_type(ty: u32) -> (&'static str, Option<(u64, u64)>) {
    match ty {
        0 => ("F32", Some((1, 4))),
        1 => ("F16", Some((1, 2))),
        2 => ("Q4_0", Some((32, 18))),
        3 => ("Q4_1", Some((32, 20))),
        6 => ("Q5_0", Some((32, 22))),
        7 => ("Q5_1", Some((32, 24))),
        8 => ("Q8_0", Some((32, 34))),
        9 => ("Q8_1", Some((32, 36))),
        10 => ("Q2_K", Some((256, 84))),
        11 => ("Q3_K", Some((256, 110))),
        12 => ("Q4_K", Some((256, 144))),
        13 => ("Q5_K", Some((256, 176))),
        14 => ("Q6_K", Some((256, 210))),
        15 => ("Q8_K", Some((256, 292))),
        16 => ("IQ2_XXS", Some((256, 66))),
        17 => ("IQ2_XS", Some((256, 74))),
        18 => ("IQ3_XXS", Some((256, 98))),
        19 => ("IQ1_S", Some((256, 50))),
        20 => ("IQ4_NL", Some((32, 18))),
        21 => ("IQ3_S", Some((256, 110))),
        22 => ("IQ2_S", Some((256, 82))),
        23 => ("IQ4_XS", Some((256, 136))),
        24 => ("I8", Some((1, 1))),
        25 => ("I16", Some((1, 2))),
        26 => ("I32", Some((1, 4))),
        27 => ("I64", Some((1, 8))),
        28 => ("F64", Some((1, 8))),
        29 => ("IQ1_M", Some((256, 56))),
        30 => ("BF16", Some((1, 2))),
        34 => ("TQ1_0", Some((256, 54))),
        35 => ("TQ2_0", Some((256, 66))),
        39 => ("MXFP4", Some((32, 17))),
        _ => ("unknown", None),
    }
}

/// `general.file_type` (llama.h `llama_ftype`) as a quantization name.
fn file_type_name(ft: u64) -> String {
    let name = match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        1024 => "GUESSED",
        other => return format!("file_type_{other}"),
    };
    name.to_string()
}

/// The header up to the end of the key/value section.
struct Header<'a> {
    /// Positioned at the first tensor info.
    p: Parser<'a>,
    /// GGUF version (1 to 3).
    version: u32,
    /// Tensor infos that follow.
    tensor_count: u64,
    /// The key/values `keep` asked for, in file order.
    kv: Vec<(String, Value)>,
    /// Chat templates not kept (past [`MAX_TEMPLATES`] or [`MAX_TEMPLATE_TOTAL`]).
    templates_skipped: usize,
}

/// Reads the header and the key/values, keeping those `keep` accepts; `Ok(None)` when the
/// content is not GGUF.
fn read_header<'a>(input: &ProbeInput<'a>, keep: fn(&str) -> bool) -> Result<Option<Header<'a>>, FormatError> {
    if input.head.get(..4) != Some(MAGIC.as_slice()) {
        return Ok(None);
    }
    let version = super::reader::le_u32(input.head, 4).unwrap_or(0);
    if !(1..=3).contains(&version) {
        // `GGUF` followed by text or garbage: not a GGUF file at all.
        return Ok(None);
    }
    let mut p = Parser { cur: Cursor::new(FORMAT, input.source, input.size, 8), wide: version >= 2 };
    let tensor_count = p.len("tensor count")?;
    let kv_count = p.len("metadata count")?;
    for (what, count, min) in
        [("metadata count", kv_count, MIN_KV_BYTES), ("tensor count", tensor_count, MIN_TENSOR_BYTES)]
    {
        if count > limits::MAX_ENTRIES {
            return Err(FormatError::bound(FORMAT, what, count, limits::MAX_ENTRIES));
        }
        let room = p.cur.remaining() / min;
        if count > room {
            return Err(FormatError::bound(FORMAT, what, count, room));
        }
    }

    let mut kv: Vec<(String, Value)> = Vec::new();
    let (mut templates, mut template_bytes, mut templates_skipped) = (0usize, 0usize, 0usize);
    for i in 0..kv_count {
        let key = p.string(&format!("metadata key {i}"))?;
        let ty = p.cur.u32(&format!("type of {key}"))?;
        let value = p.scalar(ty, keep(&key), &key)?;
        if let Value::Raw(text) = &value {
            templates += 1;
            template_bytes = template_bytes.saturating_add(text.len());
            if templates > MAX_TEMPLATES || template_bytes > MAX_TEMPLATE_TOTAL {
                templates_skipped += 1;
                continue;
            }
        }
        if keep(&key) {
            kv.push((key, value));
        }
    }
    Ok(Some(Header { p, version, tensor_count, kv, templates_skipped }))
}

/// The chat templates of a GGUF file, in file order (none when it has none or is not GGUF).
pub fn chat_templates(input: &ProbeInput<'_>) -> Result<ChatTemplates, FormatError> {
    let Some(header) = read_header(input, is_chat_template)? else { return Ok(ChatTemplates::default()) };
    let templates = header
        .kv
        .into_iter()
        .filter_map(|(key, v)| match v {
            Value::Raw(text) => Some(ChatTemplate { key, text }),
            _ => None,
        })
        .collect();
    Ok(ChatTemplates { templates, skipped: header.templates_skipped })
}

/// `chat_template_sha256` (the default template) and `chat_template_sha256_named` (name →
/// digest) for the metadata.
fn template_digests(kv: &[(String, Value)], md: &mut ModelMetadata) {
    let mut named = serde_json::Map::new();
    for (key, value) in kv {
        let Value::Raw(text) = value else { continue };
        let digest = hex::encode(Sha256::digest(text));
        match key.strip_prefix(CHAT_TEMPLATE_KEY).and_then(|rest| rest.strip_prefix('.')) {
            Some(name) => {
                named.insert(name.to_string(), digest.into());
            }
            None => {
                md.extra.insert("chat_template_sha256".into(), digest.into());
            }
        }
    }
    if !named.is_empty() {
        md.extra.insert("chat_template_sha256_named".into(), named.into());
    }
}

/// Identifies a GGUF file and reads its metadata.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let Some(Header { mut p, version, tensor_count, kv, .. }) = read_header(input, wanted)? else { return Ok(None) };
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v);

    let alignment = get("general.alignment").and_then(Value::as_u64).unwrap_or(32);
    if alignment == 0 || !alignment.is_power_of_two() || alignment > 1 << 20 {
        return Err(FormatError::invalid(FORMAT, format!("general.alignment {alignment} is not a power of two")));
    }

    let mut dtypes = BTreeSet::new();
    let mut parameters: u64 = 0;
    let mut data_needed: u64 = 0;
    for i in 0..tensor_count {
        p.skip_string(&format!("tensor {i} name"))?;
        let dims = p.cur.u32("tensor dims")?;
        if dims > MAX_DIMS {
            return Err(FormatError::bound(FORMAT, format!("tensor {i} dimensions"), dims.into(), MAX_DIMS.into()));
        }
        let mut elems: u64 = 1;
        for _ in 0..dims {
            let d = p.len("tensor dim")?;
            elems = elems.saturating_mul(d);
        }
        let ty = p.cur.u32("tensor type")?;
        let offset = p.cur.u64("tensor offset")?;
        let (name, traits) = ggml_type(ty);
        dtypes.insert(if traits.is_some() { name.to_string() } else { format!("type_{ty}") });
        parameters = parameters.saturating_add(elems);
        if let Some((block, size)) = traits {
            let bytes = elems.div_ceil(block).saturating_mul(size);
            data_needed = data_needed.max(offset.saturating_add(bytes));
        }
    }
    let data_start = p.cur.pos().div_ceil(alignment).saturating_mul(alignment);
    let split_count = get("split.count").and_then(Value::as_u64);
    let end = data_start.saturating_add(data_needed);
    if tensor_count > 0 && end > input.size {
        return Err(FormatError::truncated(FORMAT, format!("tensor data ends at {end}, file is {} bytes", input.size)));
    }

    let arch = get("general.architecture").and_then(Value::as_str).map(str::to_string);
    let mut md = ModelMetadata {
        name: get("general.name").and_then(Value::as_str).map(str::to_string),
        license: get("general.license").and_then(Value::as_str).map(str::to_string),
        quantization: get("general.file_type").and_then(Value::as_u64).map(file_type_name),
        context_length: arch.as_deref().and_then(|a| get(&format!("{a}.context_length"))).and_then(Value::as_u64),
        architecture: arch,
        parameters: Some(parameters),
        tensor_count: Some(tensor_count),
        dtypes: dtypes.into_iter().collect(),
        format_version: Some(version.to_string()),
        split_count,
        split_no: get("split.no").and_then(Value::as_u64),
        ..ModelMetadata::default()
    };
    for key in [
        "general.type",
        "general.size_label",
        "general.basename",
        "general.finetune",
        "general.organization",
        "general.repo_url",
        "adapter.type",
    ] {
        if let Some(Value::Str(s)) = get(key) {
            md.extra.insert(key.trim_start_matches("general.").to_string(), s.clone().into());
        }
    }
    if let Some(v) = get("general.quantization_version").and_then(Value::as_u64) {
        md.extra.insert("quantization_version".into(), v.into());
    }
    template_digests(&kv, &mut md);
    Ok(Some(Detection::new(ModelFormat::Gguf, md)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b
    }

    fn kv_str(b: &mut Vec<u8>, k: &str, v: &str) {
        b.extend((k.len() as u64).to_le_bytes());
        b.extend(k.as_bytes());
        b.extend(vt::STRING.to_le_bytes());
        b.extend((v.len() as u64).to_le_bytes());
        b.extend(v.as_bytes());
    }

    #[test]
    fn chat_templates_are_read_raw_and_their_digests_reported() {
        let mut b = header(3, 0, 4);
        kv_str(&mut b, "general.architecture", "llama");
        kv_str(&mut b, "tokenizer.chat_template", "{{ bos_token }}");
        kv_str(&mut b, "tokenizer.chat_template.tool_use", "{{ tools | tojson }}");
        kv_str(&mut b, "tokenizer.chat_templates_note", "not a template");
        let d = crate::formats::identify_bytes("t.gguf", &b).unwrap().unwrap();
        let sha = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
        assert_eq!(d.metadata.extra["chat_template_sha256"], sha("{{ bos_token }}").as_str());
        assert_eq!(d.metadata.extra["chat_template_sha256_named"]["tool_use"], sha("{{ tools | tojson }}").as_str());
        let input = ProbeInput { source: &b.as_slice(), size: b.len() as u64, head: &b, name: "t.gguf" };
        let found = chat_templates(&input).unwrap();
        let keys: Vec<_> = found.templates.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["tokenizer.chat_template", "tokenizer.chat_template.tool_use"]);
        assert_eq!(found.templates.first().map(|t| t.text.as_slice()), Some(&b"{{ bos_token }}"[..]));
        assert_eq!(found.skipped, 0);
        // No template: no digest.
        let mut b = header(3, 0, 1);
        kv_str(&mut b, "general.architecture", "llama");
        let d = crate::formats::identify_bytes("t.gguf", &b).unwrap().unwrap();
        assert!(!d.metadata.extra.contains_key("chat_template_sha256"));
    }

    #[test]
    fn templates_past_the_bounds_are_skipped_and_counted() {
        let n = MAX_TEMPLATES + 3;
        let mut b = header(3, 0, n as u64);
        for i in 0..n {
            kv_str(&mut b, &format!("tokenizer.chat_template.t{i}"), "{{ x }}");
        }
        let input = ProbeInput { source: &b.as_slice(), size: b.len() as u64, head: &b, name: "t.gguf" };
        let found = chat_templates(&input).unwrap();
        assert_eq!((found.templates.len(), found.skipped), (MAX_TEMPLATES, 3));
        let big = "x".repeat(MAX_TEMPLATE_TOTAL / 2 + 1);
        let mut b = header(3, 0, 3);
        for i in 0..3 {
            kv_str(&mut b, &format!("tokenizer.chat_template.t{i}"), &big);
        }
        let input = ProbeInput { source: &b.as_slice(), size: b.len() as u64, head: &b, name: "t.gguf" };
        let found = chat_templates(&input).unwrap();
        assert_eq!((found.templates.len(), found.skipped), (1, 2));
        let d = crate::formats::identify_bytes("t.gguf", &b).unwrap().unwrap();
        assert_eq!(d.metadata.extra["chat_template_sha256_named"].as_object().map(|m| m.len()), Some(1));
    }

    #[test]
    fn huge_counts_fail_fast() {
        let b = header(3, 0, 1 << 60);
        let err = crate::formats::identify_bytes("x.gguf", &b).unwrap_err();
        assert!(err.to_string().contains("metadata count"), "{err}");
    }

    #[test]
    fn text_after_magic_is_not_gguf() {
        assert_eq!(crate::formats::identify_bytes("readme.gguf", b"GGUF is a format for models").unwrap(), None);
    }

    #[test]
    fn reads_keys_and_tensors() {
        let mut b = header(3, 1, 2);
        kv_str(&mut b, "general.architecture", "llama");
        kv_str(&mut b, "general.name", "t");
        b.extend(1u64.to_le_bytes());
        b.extend(b"w");
        b.extend(2u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        b.extend([0u8; 32]);
        let d = crate::formats::identify_bytes("t.gguf", &b).unwrap().unwrap();
        assert_eq!(d.format, ModelFormat::Gguf);
        assert_eq!(d.metadata.architecture.as_deref(), Some("llama"));
        assert_eq!(d.metadata.parameters, Some(8));
        assert_eq!(d.metadata.dtypes, vec!["F32".to_string()]);
        // Cut the data: the header still parses but the tensors do not fit.
        b.truncate(b.len() - 8);
        assert!(crate::formats::identify_bytes("t.gguf", &b).is_err());
    }
}

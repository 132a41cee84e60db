//! NumPy `.npy` (`numpy/lib/format.py`). `.npz` archives are zips and handled in `zip_models`.
//!
//! Layout: `\x93NUMPY`, major and minor version, header length (u16 LE in 1.0, u32 in 2.0 and
//! 3.0), a Python dict literal `{'descr': ..., 'fortran_order': ..., 'shape': (...), }` padded
//! with spaces to 64-byte alignment, then the array data. For plain dtypes the data size must
//! equal `prod(shape) × itemsize`; an object dtype (`|O`) means a pickle follows instead.

use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "numpy";
/// The magic string.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Header size bound (numpy itself refuses headers over 10,000 bytes by default).
const MAX_HEADER: u64 = 1 << 20;

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    /// The dtype descriptor as written (`<f4`, `|O`, or a structured list).
    pub descr: String,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Whether the array is stored column-major.
    pub fortran_order: bool,
    /// Offset of the first data byte.
    pub data_offset: u64,
    /// Format version `major.minor`.
    pub version: String,
}

impl NpyHeader {
    /// Whether the array holds Python objects (stored as a pickle).
    pub fn has_object(&self) -> bool {
        self.descr.contains('O')
    }
}

/// Returns the text after `'key':` in a header dict literal.
fn field<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let k1 = format!("'{key}':");
    let k2 = format!("\"{key}\":");
    let at = dict.find(&k1).map(|i| i + k1.len()).or_else(|| dict.find(&k2).map(|i| i + k2.len()))?;
    dict.get(at..).map(str::trim_start)
}

fn itemsize(descr: &str) -> Option<u64> {
    let body = descr.trim_start_matches(['<', '>', '|', '=']);
    let (kind, size) = body.split_at_checked(1)?;
    let n: u64 = size.parse().ok()?;
    match kind {
        "b" | "i" | "u" | "f" | "c" | "S" | "V" => Some(n),
        "U" => n.checked_mul(4),
        "?" => Some(1),
        _ => None,
    }
}

/// Parses the `.npy` header of `input` (at offset 0). `Ok(None)` when the magic is absent.
pub fn parse_header(input: &ProbeInput<'_>) -> Result<Option<NpyHeader>, FormatError> {
    if input.head.get(..6) != Some(MAGIC.as_slice()) {
        return Ok(None);
    }
    let major = input.head.get(6).copied().unwrap_or(0);
    let minor = input.head.get(7).copied().unwrap_or(0);
    let (len, start) = match major {
        1 => (super::reader::le_u16(input.head, 8).map(u64::from), 10u64),
        2 | 3 => (super::reader::le_u32(input.head, 8).map(u64::from), 12u64),
        _ => return Err(FormatError::invalid(FORMAT, format!("unknown npy version {major}.{minor}"))),
    };
    let len = len.ok_or_else(|| FormatError::truncated(FORMAT, "header length"))?;
    if len > MAX_HEADER {
        return Err(FormatError::bound(FORMAT, "header length", len, MAX_HEADER));
    }
    if start + len > input.size {
        return Err(FormatError::truncated(FORMAT, format!("header of {len} bytes in a {} byte file", input.size)));
    }
    let raw = input.read_exact_at(FORMAT, start, len)?;
    let dict = String::from_utf8_lossy(&raw);
    let dict = dict.trim();
    if !dict.starts_with('{') {
        return Err(FormatError::invalid(FORMAT, "header is not a dict literal"));
    }
    let descr_text = field(dict, "descr").ok_or_else(|| FormatError::invalid(FORMAT, "header has no 'descr'"))?;
    let descr = if let Some(rest) = descr_text.strip_prefix('\'').or_else(|| descr_text.strip_prefix('"')) {
        rest.split(['\'', '"']).next().unwrap_or_default().to_string()
    } else {
        // Structured dtype: a list of tuples; keep it verbatim up to the matching bracket.
        let mut depth = 0i32;
        let mut end = 0;
        for (i, c) in descr_text.char_indices() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        descr_text.get(..end).unwrap_or_default().to_string()
    };
    let shape_text = field(dict, "shape").ok_or_else(|| FormatError::invalid(FORMAT, "header has no 'shape'"))?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split_once(')'))
        .map(|(a, _)| a)
        .ok_or_else(|| FormatError::invalid(FORMAT, "'shape' is not a tuple"))?;
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d: u64 = part
            .trim_end_matches('L')
            .parse()
            .map_err(|_| FormatError::invalid(FORMAT, format!("shape entry {part:?}")))?;
        shape.push(d);
    }
    let fortran_order = field(dict, "fortran_order").is_some_and(|v| v.starts_with("True"));
    Ok(Some(NpyHeader { descr, shape, fortran_order, data_offset: start + len, version: format!("{major}.{minor}") }))
}

/// Identifies a `.npy` file.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let Some(h) = parse_header(input)? else {
        return Ok(None);
    };
    let elems = h.shape.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
    if !h.has_object() {
        if let (Some(size), Some(elems)) = (itemsize(&h.descr), elems) {
            let want = elems.checked_mul(size).and_then(|b| b.checked_add(h.data_offset));
            if want != Some(input.size) {
                return Err(FormatError::invalid(
                    FORMAT,
                    format!(
                        "data of {} bytes does not match {} {:?}",
                        input.size.saturating_sub(h.data_offset),
                        h.descr,
                        h.shape
                    ),
                ));
            }
        }
    }
    Ok(Some(Detection::new(ModelFormat::Numpy, metadata(&h))))
}

/// Metadata of one array.
pub fn metadata(h: &NpyHeader) -> ModelMetadata {
    let mut md = ModelMetadata {
        dtypes: vec![h.descr.clone()],
        parameters: h.shape.iter().try_fold(1u64, |a, d| a.checked_mul(*d)),
        shape: Some(h.shape.clone()),
        format_version: Some(h.version.clone()),
        tensor_count: Some(1),
        ..ModelMetadata::default()
    };
    if h.has_object() {
        md.extra.insert("object_dtype".into(), true.into());
    }
    if h.fortran_order {
        md.extra.insert("fortran_order".into(), true.into());
    }
    md
}

#[cfg(test)]
mod tests {
    use crate::formats::identify_bytes;

    fn npy(dict: &str, data: usize) -> Vec<u8> {
        let mut h = dict.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(vec![0u8; data]);
        b
    }

    #[test]
    fn float_array() {
        let b = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
        let d = identify_bytes("w.npy", &b).unwrap().unwrap();
        assert_eq!(d.metadata.shape, Some(vec![2, 3]));
        assert_eq!(d.metadata.dtypes, vec!["<f4".to_string()]);
        let short = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20);
        assert!(identify_bytes("w.npy", &short).is_err());
    }

    #[test]
    fn huge_header_is_an_error() {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend(60000u16.to_le_bytes());
        b.extend(b"{'descr'");
        assert!(identify_bytes("w.npy", &b).is_err());
    }
}

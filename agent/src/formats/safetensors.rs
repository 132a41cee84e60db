//! safetensors (Hugging Face).
//!
//! Layout (`safetensors/src/tensor.rs`): u64 little-endian header length N (at most 100,000,000),
//! N bytes of JSON starting with `{` (space-padded), then the tensor data. Each header entry is
//! `{"dtype", "shape", "data_offsets": [begin, end]}`, plus an optional `__metadata__` string map.
//! The file is valid only when the data offsets tile the data section and `8 + N + last end`
//! equals the file size.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "safetensors";
/// The header bound enforced by the reference implementation (`MAX_HEADER_SIZE`).
const MAX_HEADER: u64 = 100_000_000;

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Tensor { dtype: String, shape: Vec<u64>, data_offsets: [u64; 2] },
    Metadata(BTreeMap<String, String>),
}

/// Bytes per element of each dtype (`Dtype::bitsize` / 8, sub-byte types rounded by the caller).
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => 8,
        "F6_E2M3" | "F6_E3M2" => 6,
        "F4" => 4,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "F64" | "I64" | "U64" | "C64" => 64,
        _ => return None,
    })
}

/// Identifies a safetensors file and reads its header.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let Some(n) = super::reader::le_u64(input.head, 0) else {
        return Ok(None);
    };
    // The JSON must start right after the length: `{` (writers pad with spaces at the end).
    if input.head.get(8) != Some(&b'{') {
        return Ok(None);
    }
    // A plausible start: `{"` then a key (`{}` is an empty but valid file).
    match input.head.get(9) {
        Some(b'"') | Some(b'}') | Some(b' ') | Some(b'\n') | None => {}
        _ => return Ok(None),
    }
    // Two bytes of "magic" are weak: an implausible length is an error only for a file named
    // like safetensors; anything else starting this way is just not a model.
    let named = input.named_as(&["safetensors"]);
    if !(2..=MAX_HEADER).contains(&n) {
        return if named { Err(FormatError::bound(FORMAT, "header length", n, MAX_HEADER)) } else { Ok(None) };
    }
    if 8 + n > input.size {
        let what = format!("header of {n} bytes in a {} byte file", input.size);
        return if named { Err(FormatError::truncated(FORMAT, what)) } else { Ok(None) };
    }
    let raw = input.read_exact_at(FORMAT, 8, n)?;
    let header: BTreeMap<String, Entry> = serde_json::from_slice(&raw)
        .map_err(|e| FormatError::invalid(FORMAT, format!("header is not valid json: {e}")))?;

    let mut dtypes = BTreeSet::new();
    let mut parameters: u64 = 0;
    let mut ranges = Vec::new();
    let mut meta = None;
    for (name, entry) in header {
        match entry {
            Entry::Metadata(m) if name == "__metadata__" => meta = Some(m),
            Entry::Metadata(_) => {
                return Err(FormatError::invalid(FORMAT, format!("tensor {name:?} has no dtype/shape/data_offsets")))
            }
            Entry::Tensor { dtype, shape, data_offsets: [begin, end] } => {
                let bits = dtype_bits(&dtype)
                    .ok_or_else(|| FormatError::invalid(FORMAT, format!("tensor {name:?}: unknown dtype {dtype}")))?;
                let elems = shape.iter().try_fold(1u64, |acc, d| acc.checked_mul(*d));
                let elems =
                    elems.ok_or_else(|| FormatError::invalid(FORMAT, format!("tensor {name:?}: shape overflows")))?;
                let bytes = elems.checked_mul(bits).map(|b| b.div_ceil(8));
                if begin > end || bytes != Some(end - begin) {
                    return Err(FormatError::invalid(
                        FORMAT,
                        format!("tensor {name:?}: data_offsets [{begin}, {end}] do not match {dtype} {shape:?}"),
                    ));
                }
                parameters = parameters.saturating_add(elems);
                dtypes.insert(dtype);
                ranges.push((begin, end));
            }
        }
    }
    ranges.sort_unstable();
    let mut expected = 0u64;
    for (begin, end) in &ranges {
        if *begin != expected {
            return Err(FormatError::invalid(FORMAT, format!("data_offsets leave a gap or overlap at {begin}")));
        }
        expected = *end;
    }
    let total = 8 + n + expected;
    if total != input.size {
        return Err(FormatError::invalid(FORMAT, format!("header describes {total} bytes, file has {}", input.size)));
    }
    let mut md = ModelMetadata {
        tensor_count: Some(ranges.len() as u64),
        parameters: Some(parameters),
        dtypes: dtypes.into_iter().collect(),
        ..ModelMetadata::default()
    };
    if let Some(meta) = meta {
        for (k, v) in meta {
            // Values can be large (some writers put whole configs there); keep short ones.
            if k.len() <= 64 && v.len() <= 256 {
                md.extra.insert(k, v.into());
            }
        }
    }
    Ok(Some(Detection::new(ModelFormat::Safetensors, md)))
}

#[cfg(test)]
mod tests {
    use crate::formats::identify_bytes;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.extend(vec![0u8; data]);
        b
    }

    #[test]
    fn valid_file() {
        let b = file(r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}}"#, 16);
        let d = identify_bytes("x.safetensors", &b).unwrap().unwrap();
        assert_eq!(d.metadata.parameters, Some(4));
        assert_eq!(d.metadata.extra.get("format").and_then(|v| v.as_str()), Some("pt"));
    }

    #[test]
    fn huge_header_length_is_an_error() {
        let mut b = (1u64 << 63).to_le_bytes().to_vec();
        b.extend(b"{\"a\":1}");
        assert!(identify_bytes("x.safetensors", &b).is_err());
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let b = file(r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, 8);
        assert!(identify_bytes("x.safetensors", &b).is_err());
    }
}

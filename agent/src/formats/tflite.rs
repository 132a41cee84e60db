//! TensorFlow Lite (`tensorflow/compiler/mlir/lite/schema/schema.fbs`).
//!
//! A FlatBuffer with file identifier `TFL3` at bytes 4–7. The root table is `Model`: field 0
//! `version` (u32), 1 `operator_codes`, 2 `subgraphs`, 3 `description` (string), 4 `buffers`.
//! Identification follows the root offset and vtable and reads those fields, checking every
//! offset against the file size.

use super::reader::{le_u16, le_u32};
use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "tflite";

fn u32_at(input: &ProbeInput<'_>, at: u64) -> Result<u32, FormatError> {
    let b = input.read_exact_at(FORMAT, at, 4)?;
    le_u32(&b, 0).ok_or_else(|| FormatError::truncated(FORMAT, format!("u32 at {at}")))
}

/// Position of field `index` of the table at `table`, if present.
fn field(input: &ProbeInput<'_>, table: u64, index: u64) -> Result<Option<u64>, FormatError> {
    let soffset = i64::from(u32_at(input, table)? as i32);
    let vtable = u64::try_from(table as i64 - soffset).map_err(|_| FormatError::invalid(FORMAT, "vtable offset"))?;
    let vt = input.read_exact_at(FORMAT, vtable, 4)?;
    let vt_len = u64::from(le_u16(&vt, 0).unwrap_or(0));
    let slot = 4 + 2 * index;
    if slot + 2 > vt_len {
        return Ok(None);
    }
    let b = input.read_exact_at(FORMAT, vtable + slot, 2)?;
    let off = u64::from(le_u16(&b, 0).unwrap_or(0));
    Ok((off != 0).then_some(table + off))
}

/// Follows the offset stored at `at` and returns the length of the vector or string there.
fn vector_len(input: &ProbeInput<'_>, at: u64) -> Result<(u64, u64), FormatError> {
    let target = at + u64::from(u32_at(input, at)?);
    let len = u64::from(u32_at(input, target)?);
    Ok((target + 4, len))
}

/// Identifies a TFLite model.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    if input.head.get(4..8) != Some(b"TFL3".as_slice()) {
        return Ok(None);
    }
    let root = u64::from(le_u32(input.head, 0).unwrap_or(0));
    if root < 8 || root + 4 > input.size {
        return Err(FormatError::bound(FORMAT, "root table offset", root, input.size));
    }
    let mut md = ModelMetadata::default();
    if let Some(at) = field(input, root, 0)? {
        md.format_version = Some(u32_at(input, at)?.to_string());
    }
    let subgraphs = match field(input, root, 2)? {
        Some(at) => vector_len(input, at)?.1,
        None => return Err(FormatError::invalid(FORMAT, "model has no subgraphs")),
    };
    md.extra.insert("subgraphs".into(), subgraphs.into());
    if let Some(at) = field(input, root, 1)? {
        md.extra.insert("operator_codes".into(), vector_len(input, at)?.1.into());
    }
    if let Some(at) = field(input, root, 3)? {
        let (start, len) = vector_len(input, at)?;
        if len <= 4096 {
            let s = input.read_exact_at(FORMAT, start, len)?;
            md.producer = Some(String::from_utf8_lossy(&s).into_owned());
        }
    }
    Ok(Some(Detection::new(ModelFormat::Tflite, md)))
}

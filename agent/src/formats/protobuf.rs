//! Minimal protobuf wire-format reading for formats without a magic number (ONNX, Core ML,
//! SavedModel). Only what identification needs: tags, varints, and bounded skipping.

use super::reader::Cursor;
use super::FormatError;

/// Protobuf wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// Reads a base-128 varint of at most 10 bytes.
pub fn varint(cur: &mut Cursor<'_>, format: &'static str) -> Result<u64, FormatError> {
    let mut value: u64 = 0;
    for i in 0..10u32 {
        let b = cur.u8("varint")?;
        if i == 9 && b > 1 {
            return Err(FormatError::invalid(format, format!("varint longer than 64 bits at offset {}", cur.pos())));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(FormatError::invalid(format, format!("varint longer than 10 bytes at offset {}", cur.pos())))
}

/// Reads a field tag; `Ok(None)` means the wire type is one identification never accepts
/// (groups, or the reserved values 6 and 7).
pub fn tag(cur: &mut Cursor<'_>, format: &'static str) -> Result<Option<(u64, Wire)>, FormatError> {
    let key = varint(cur, format)?;
    let field = key >> 3;
    let wire = match key & 7 {
        0 => Wire::Varint,
        1 => Wire::Fixed64,
        2 => Wire::Len,
        5 => Wire::Fixed32,
        _ => return Ok(None),
    };
    if field == 0 || field > (1 << 29) - 1 {
        return Ok(None);
    }
    Ok(Some((field, wire)))
}

/// Reads the length of a length-delimited field and checks it fits in `limit` (the end of the
/// enclosing message).
pub fn len(cur: &mut Cursor<'_>, format: &'static str, limit: u64) -> Result<u64, FormatError> {
    let n = varint(cur, format)?;
    let room = limit.saturating_sub(cur.pos());
    if n > room {
        return Err(FormatError::bound(format, format!("field length at offset {}", cur.pos()), n, room));
    }
    Ok(n)
}

/// Skips one field value of wire type `wire`, staying within `limit`.
pub fn skip(cur: &mut Cursor<'_>, format: &'static str, wire: Wire, limit: u64) -> Result<(), FormatError> {
    match wire {
        Wire::Varint => varint(cur, format).map(|_| ()),
        Wire::Fixed64 => cur.skip(8, "fixed64"),
        Wire::Fixed32 => cur.skip(4, "fixed32"),
        Wire::Len => {
            let n = len(cur, format, limit)?;
            cur.skip(n, "length-delimited field")
        }
    }
}

/// Reads a length-delimited UTF-8 string (lossy), bounded by `max`.
pub fn string(cur: &mut Cursor<'_>, format: &'static str, limit: u64, max: u64) -> Result<String, FormatError> {
    let n = len(cur, format, limit)?;
    if n > max {
        cur.skip(n, "string")?;
        return Ok(String::new());
    }
    let b = cur.bytes(n, "string")?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Walks the fields of the message that spans `[cur.pos(), end)`, calling `visit` with each
/// field number and wire type; `visit` must consume the value (or call [`skip`]). Returns
/// `Ok(false)` when a tag has a wire type identification rejects.
pub fn walk<F>(cur: &mut Cursor<'_>, format: &'static str, end: u64, mut visit: F) -> Result<bool, FormatError>
where
    F: FnMut(&mut Cursor<'_>, u64, Wire, u64) -> Result<(), FormatError>,
{
    while cur.pos() < end {
        let Some((field, wire)) = tag(cur, format)? else {
            return Ok(false);
        };
        visit(cur, field, wire, end)?;
        if cur.pos() > end {
            return Err(FormatError::invalid(format, format!("field {field} runs past its message end {end}")));
        }
    }
    Ok(true)
}

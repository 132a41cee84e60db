//! Legacy PyTorch serialization (`torch/serialization.py` `_legacy_save`, before 1.6).
//!
//! A sequence of pickles: the magic number `0x1950a86a20f9469cfc6c` (pickled as protocol 2
//! `LONG1`, so the file begins `80 02 8A 0A 6C FC 9C 46 F9 20 6A A8 50 19 2E`), the protocol
//! version (1001), a `sys_info` dict, the object itself, the list of storage keys; then the raw
//! storages. Zip-format PyTorch files are identified in `zip_models`.

use super::pickle::{self, op};
use super::reader::Cursor;
use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "pytorch_legacy";
/// The pickled magic number that opens every legacy file: protocol 2, the 10-byte `LONG1`,
/// `STOP`.
pub const LEGACY_MAGIC: &[u8] =
    &[op::PROTO, 2, op::LONG1, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, op::STOP];

/// Identifies a legacy PyTorch file.
pub fn probe_legacy(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    if !input.head.starts_with(LEGACY_MAGIC) {
        return Ok(None);
    }
    let mut cur = Cursor::new(FORMAT, input.source, input.size, LEGACY_MAGIC.len() as u64);
    let mut md = ModelMetadata::default();
    // Protocol version, sys_info, the object, the storage keys.
    for (i, what) in ["protocol version", "sys_info", "object", "storage keys"].iter().enumerate() {
        let start = cur.pos();
        let s = pickle::walk(&mut cur, pickle::MAX_OPS)
            .map_err(|e| FormatError::invalid(FORMAT, format!("{what} pickle at offset {start}: {e}")))?;
        if !s.complete {
            return Err(FormatError::invalid(FORMAT, format!("{what} pickle at offset {start} does not end")));
        }
        if i == 0 {
            let raw = input.read_exact_at(FORMAT, start, s.end - start)?;
            // `PROTO 2`, `BININT2 <u16>`, `STOP`.
            if let (Some(&op::BININT2), Some(v)) = (raw.get(2), super::reader::le_u16(&raw, 3)) {
                md.format_version = Some(v.to_string());
            }
        }
        if i == 2 {
            let from_pickle = pickle::metadata(&s);
            md.dtypes = super::zip_models::storage_dtypes(&s.imports);
            md.architecture = from_pickle.architecture;
            md.tensor_count = from_pickle.tensor_count;
            md.parameters = from_pickle.parameters;
        }
    }
    Ok(Some(Detection::new(ModelFormat::PytorchLegacy, md)))
}

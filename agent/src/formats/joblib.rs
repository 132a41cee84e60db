//! Compressed joblib files (`joblib/compressor.py`, `numpy_pickle.py`).
//!
//! `joblib.dump(..., compress=...)` wraps the pickle stream in one of: zlib (`78`), gzip
//! (`1F 8B`), bz2 (`BZh`), xz (`FD 37 7A 58 5A 00`), lzma-alone (`5D 00 00`), lz4 frame
//! (`04 22 4D 18`); joblib before 0.10 wrote `ZF` + a hex length + zlib. The prober decompresses
//! at most [`limits::MAX_SNIFF_DECOMPRESSED`] bytes (with [`super::compress`]) and requires a
//! valid pickle start there. Plain (uncompressed) joblib files are pickles carrying
//! `NumpyArrayWrapper` and are reported by the pickle prober.

use super::compress::{compression_of, decompress_prefix};
use super::{limits, pickle, Detection, FormatError, ModelFormat, ProbeInput};

/// Identifies a compressed joblib file.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let Some(scheme) = compression_of(input.head) else {
        return Ok(None);
    };
    let (scheme, offset) = if scheme == "zlib_legacy" {
        // `ZF0x<hex length>` padded with spaces, then the zlib stream.
        let start = input.head.iter().skip(2).position(|&b| b == 0x78).map(|p| p + 2);
        match start {
            Some(s) if s <= 32 => ("zlib", s as u64),
            _ => return Ok(None),
        }
    } else {
        (scheme, 0)
    };
    let Ok(plain) = decompress_prefix(input.source, offset, scheme, limits::MAX_SNIFF_DECOMPRESSED) else {
        return Ok(None);
    };
    let inner = ProbeInput {
        source: &plain.as_slice(),
        size: plain.len() as u64,
        head: plain.get(..plain.len().min(super::HEAD_LEN)).unwrap_or_default(),
        name: input.name,
    };
    let summary = match pickle::summarize(&inner) {
        Ok(Some(s)) => s,
        // The sniff cut the stream: a pickle that was valid up to the cut still counts.
        Err(FormatError::Truncated { .. }) if plain.len() >= limits::MAX_SNIFF_DECOMPRESSED => {
            let md = super::ModelMetadata { compression: Some(scheme.into()), ..super::ModelMetadata::default() };
            return Ok(Some(Detection::new(ModelFormat::Joblib, md)));
        }
        _ => return Ok(None),
    };
    let mut md = pickle::metadata(&summary);
    md.compression = Some(if offset > 0 { "zlib".into() } else { scheme.into() });
    Ok(Some(Detection::new(ModelFormat::Joblib, md)))
}

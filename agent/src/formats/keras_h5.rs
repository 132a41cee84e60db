//! Keras models saved as HDF5 (`keras/src/legacy/saving/legacy_h5_format.py`).
//!
//! An HDF5 file (signature `89 48 44 46 0D 0A 1A 0A` at offset 0, 512, 1024, 2048, …) whose root
//! group carries the attributes `model_config` (the model's JSON), `keras_version` and
//! `backend`, and a `model_weights` group; weights-only files carry `layer_names` and
//! `keras_version`. Attribute names and short string values are stored as plain bytes in the
//! object header or global heap, so identification searches the first
//! [`SEARCH_WINDOW`] bytes for them instead of walking HDF5's B-trees. A plain HDF5 data file
//! without those markers is not a model.

use memchr::memmem;

use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "keras_h5";
/// The HDF5 format signature.
pub const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
/// How much of the file is searched for Keras attributes.
pub const SEARCH_WINDOW: u64 = 8 * 1024 * 1024;

/// Whether an HDF5 superblock signature is at one of the offsets HDF5 allows (0, then 512 and
/// each power of two after it, for files written with a user block). Offsets within the
/// header already read cost nothing; further ones are read only for files named like HDF5.
pub fn is_hdf5(input: &ProbeInput<'_>) -> Result<bool, FormatError> {
    let mut at = 0u64;
    while at + 8 <= input.size && at <= 1 << 20 {
        let hit = match input.head.get(at as usize..at as usize + 8) {
            Some(bytes) => bytes == HDF5_MAGIC,
            None if input.named_as(&["h5", "hdf5", "keras"]) => input.read_exact_at(FORMAT, at, 8)? == HDF5_MAGIC,
            None => return Ok(false),
        };
        if hit {
            return Ok(true);
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    Ok(false)
}

/// First `major.minor.patch`-like run within `window` bytes after `at`.
fn version_after(buf: &[u8], at: usize, window: usize) -> Option<String> {
    let region = buf.get(at..(at + window).min(buf.len()))?;
    let mut i = 0;
    while i < region.len() {
        let start = i;
        while i < region.len() && (region.get(i).is_some_and(|b| b.is_ascii_digit() || *b == b'.')) {
            i += 1;
        }
        let run = region.get(start..i).unwrap_or_default();
        if run.iter().filter(|b| **b == b'.').count() >= 1
            && run.first().is_some_and(u8::is_ascii_digit)
            && run.len() >= 3
        {
            return Some(String::from_utf8_lossy(run).trim_end_matches('.').to_string());
        }
        i += 1;
    }
    None
}

/// The JSON object that starts at the first `{"` within `window` bytes after `at`: `None`
/// when there is none, an error when it does not parse (serde_json stops at 128 levels of
/// nesting; the object cannot be longer than the [`SEARCH_WINDOW`] read).
fn json_at(buf: &[u8], at: usize, window: usize) -> Option<Result<serde_json::Value, String>> {
    let region = buf.get(at..(at + window).min(buf.len()))?;
    let open = memmem::find(region, b"{\"")?;
    let rest = buf.get(at + open..)?;
    let parsed = serde_json::Deserializer::from_slice(rest).into_iter::<serde_json::Value>().next()?;
    Some(parsed.map_err(|e| format!("model_config: {e}")))
}

/// [`json_at`], an unparsable object being none.
fn json_after(buf: &[u8], at: usize, window: usize) -> Option<serde_json::Value> {
    json_at(buf, at, window)?.ok()
}

/// The `model_config` JSON of a Keras HDF5 file: `None` if it has none, an error naming the
/// attribute if it does not parse.
pub fn model_config(input: &ProbeInput<'_>) -> Option<Result<serde_json::Value, String>> {
    if !is_hdf5(input).ok()? {
        return None;
    }
    let buf = input.read_exact_at(FORMAT, 0, input.size.min(SEARCH_WINDOW)).ok()?;
    let at = memmem::find(&buf, b"model_config")?;
    json_at(&buf, at, 1 << 20)
}

/// Identifies a Keras HDF5 model or weights file.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    if !is_hdf5(input)? {
        return Ok(None);
    }
    let buf = input.read_exact_at(FORMAT, 0, input.size.min(SEARCH_WINDOW))?;
    let config_at = memmem::find(&buf, b"model_config");
    let version_at = memmem::find(&buf, b"keras_version");
    let weights = memmem::find(&buf, b"model_weights").is_some() || memmem::find(&buf, b"layer_names").is_some();
    if config_at.is_none() && !(version_at.is_some() && weights) {
        return Ok(None);
    }
    let mut md = ModelMetadata::default();
    if let Some(at) = version_at {
        md.keras_version = version_after(&buf, at + 13, 4096);
    }
    if let Some(at) = memmem::find(&buf, b"backend") {
        let region = buf.get(at..(at + 4096).min(buf.len())).unwrap_or_default();
        md.backend = ["tensorflow", "jax", "torch", "theano", "numpy", "openvino"]
            .iter()
            .find(|b| memmem::find(region, b.as_bytes()).is_some())
            .map(|b| (*b).to_string());
    }
    match config_at.and_then(|at| json_after(&buf, at, 1 << 20)) {
        Some(config) => {
            md.architecture = config.pointer("/class_name").and_then(|v| v.as_str()).map(str::to_string);
            md.name = config.pointer("/config/name").and_then(|v| v.as_str()).map(str::to_string);
        }
        None => {
            md.extra.insert("weights_only".into(), true.into());
        }
    }
    Ok(Some(Detection::new(ModelFormat::KerasH5, md)))
}

//! Content-based identification of model file formats.
//!
//! Every format lives in its own file and is registered once in [`REGISTRY`]. A prober receives
//! the open file (never a path to reopen), its size, the first bytes and its name, and answers:
//!
//! 1. `Ok(None)`: the content is not this format (wrong magic, implausible first fields);
//! 2. `Ok(Some(detection))`: the header validates; `detection` carries the format and what the
//!    header tells (metadata);
//! 3. `Err(FormatError)`: the content claims to be this format (its magic matches) but the
//!    structure is broken or exceeds a bound. The file is reported as an error, never as a model.
//!
//! Probers are tried in registry order; the first `Some` or `Err` wins. Names are used only to
//! choose which files to open and to pick among formats that share a container (a zip holding
//! `data.pkl` is PyTorch, one holding `config.json` and `metadata.json` is Keras v3); a name
//! alone never makes a model.
//!
//! Bounds: every length, count and offset read from a file is checked against the file size and
//! against the limits in [`limits`] before anything is allocated.
//!
//! Four modules are not formats but what several probers share: [`reader`] (bounded
//! little-endian reads), [`zip`] (a bounded zip reader), [`compress`] (bounded decompression
//! of a stream's start) and [`sevenz`] (7z members). [`archive`] is the prober of archives
//! that hold models (zip, tar, compressed, 7z, nested): it walks them with the others and
//! identifies members with [`identify_member`].

pub mod archive;
pub mod compress;
pub mod coreml;
pub mod gguf;
pub mod joblib;
pub mod keras_h5;
pub mod mlflow;
pub mod numpy;
pub mod onnx;
pub mod openvino;
pub mod pickle;
pub mod protobuf;
pub mod pytorch;
pub mod reader;
pub mod safetensors;
pub mod savedmodel;
pub mod sevenz;
pub mod tflite;
pub mod zip;
pub mod zip_models;

use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// Bounds applied by all parsers.
pub mod limits {
    /// Largest header (JSON, metadata block, XML, config) any parser reads into memory.
    pub const MAX_HEADER_BYTES: u64 = 64 * 1024 * 1024;
    /// Largest number of entries (tensors, metadata keys, zip members) a parser accepts.
    pub const MAX_ENTRIES: u64 = 1 << 20;
    /// Largest single string (a key, a name, a GGUF string value) a parser reads.
    pub const MAX_STRING: u64 = 16 * 1024 * 1024;
    /// Largest number of array elements a parser walks in one GGUF array.
    pub const MAX_ARRAY: u64 = 16 * 1024 * 1024;
    /// Largest number of bytes decompressed to identify a compressed stream.
    pub const MAX_SNIFF_DECOMPRESSED: usize = 256 * 1024;
}

/// The model formats aiscout identifies, as spelled in the public JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    Gguf,
    Safetensors,
    Onnx,
    Pytorch,
    PytorchLegacy,
    Pickle,
    Joblib,
    Numpy,
    KerasH5,
    KerasV3,
    TfSavedmodel,
    Tflite,
    Coreml,
    Openvino,
    Mlflow,
    /// An archive (zip, tar, 7z, compressed) holding models or code ([`archive`]).
    Archive,
}

impl ModelFormat {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
            Self::Safetensors => "safetensors",
            Self::Onnx => "onnx",
            Self::Pytorch => "pytorch",
            Self::PytorchLegacy => "pytorch_legacy",
            Self::Pickle => "pickle",
            Self::Joblib => "joblib",
            Self::Numpy => "numpy",
            Self::KerasH5 => "keras_h5",
            Self::KerasV3 => "keras_v3",
            Self::TfSavedmodel => "tf_savedmodel",
            Self::Tflite => "tflite",
            Self::Coreml => "coreml",
            Self::Openvino => "openvino",
            Self::Mlflow => "mlflow",
            Self::Archive => "archive",
        }
    }
}

impl std::fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a format's header tells about the model. Every field is optional: formats fill what
/// they carry. Field names are part of the public JSON (docs/scan-json.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Model architecture (`llama`, `BertModel`, a Keras class name, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Human name the file gives the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Total number of weights (sum of tensor element counts) when the header lists tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<u64>,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// Quantization scheme (`Q4_K_M`, `F16`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// License the file declares (SPDX id where the format uses one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Tool that wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// Version of the tool that wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_version: Option<String>,
    /// ONNX default-domain operator set version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opset: Option<u64>,
    /// ONNX IR version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ir_version: Option<u64>,
    /// Distinct tensor element types, sorted, as the format spells them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dtypes: Vec<String>,
    /// Number of tensors the header lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor_count: Option<u64>,
    /// Version of the container format itself (GGUF version, NPY version, TFLite schema, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<String>,
    /// Keras version that saved the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keras_version: Option<String>,
    /// Keras backend that saved the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Compression wrapping the payload (joblib: none, zlib, gzip, bz2, xz, lzma, lz4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Array shape (NumPy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<u64>>,
    /// Number of files a split model is cut into (GGUF split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_count: Option<u64>,
    /// Index of this file within a split model, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_no: Option<u64>,
    /// Names of the members or arrays a container holds (npz arrays, mlflow flavors, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<String>,
    /// Format-specific facts that have no common field.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A positive identification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Which format the content is.
    pub format: ModelFormat,
    /// What the header tells.
    pub metadata: ModelMetadata,
    /// An archive's walk, kept by identification for the safety assessment so that the
    /// archive is walked once ([`archive::WalkHandoff`]); never serialised, never compared.
    #[serde(skip)]
    pub walk: archive::WalkHandoff,
}

impl Detection {
    /// A detection of `format` with `metadata`.
    pub fn new(format: ModelFormat, metadata: ModelMetadata) -> Self {
        Self { format, metadata, walk: archive::WalkHandoff::default() }
    }

    /// A detection with empty metadata.
    pub fn bare(format: ModelFormat) -> Self {
        Self::new(format, ModelMetadata::default())
    }
}

/// Why a file that claims a format cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The file ends before a structure it declares.
    #[error("{format}: truncated: {what}")]
    Truncated { format: &'static str, what: String },
    /// A length, count or offset exceeds the file or a parser bound.
    #[error("{format}: {what} is out of bounds ({value} > {bound})")]
    OutOfBounds { format: &'static str, what: String, value: u64, bound: u64 },
    /// The structure is invalid.
    #[error("{format}: {what}")]
    Invalid { format: &'static str, what: String },
    /// Reading failed.
    #[error("{format}: read failed: {what}")]
    Io { format: &'static str, what: String },
}

impl FormatError {
    /// The format whose prober found the structure broken.
    pub fn format(&self) -> &'static str {
        match self {
            Self::Truncated { format, .. }
            | Self::OutOfBounds { format, .. }
            | Self::Invalid { format, .. }
            | Self::Io { format, .. } => format,
        }
    }

    pub(crate) fn invalid(format: &'static str, what: impl Into<String>) -> Self {
        Self::Invalid { format, what: what.into() }
    }
    pub(crate) fn truncated(format: &'static str, what: impl Into<String>) -> Self {
        Self::Truncated { format, what: what.into() }
    }
    pub(crate) fn bound(format: &'static str, what: impl Into<String>, value: u64, bound: u64) -> Self {
        Self::OutOfBounds { format, what: what.into(), value, bound }
    }
}

/// What a prober can read: positioned reads over a file or an in-memory buffer.
pub trait Source: Sync {
    /// Total size in bytes.
    fn size(&self) -> u64;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl Source for File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let avail = self.get(start..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
}

/// The input a prober works on.
pub struct ProbeInput<'a> {
    /// The content, read by position.
    pub source: &'a dyn Source,
    /// Size of the content in bytes (fixed when the file was opened).
    pub size: u64,
    /// The first bytes of the content (up to [`HEAD_LEN`]).
    pub head: &'a [u8],
    /// The file name (last path component), lowercase; used only to pick among containers.
    pub name: &'a str,
}

impl std::fmt::Debug for ProbeInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeInput").field("size", &self.size).field("name", &self.name).finish()
    }
}

/// File names that route content into every prober, indexed by the first byte of a fuzz input
/// (modulo their count) in the `identify_all` fuzz target and its regression test.
/// `scripts/fuzz.sh` prefixes seeds with the index of the name that fits them, and kept
/// regression inputs depend on it: append, never reorder.
pub const FUZZ_NAMES: &[&str] = &[
    "model.gguf",
    "saved_model.pb",
    "mlmodel",
    "model.xml",
    "model.safetensors",
    "weights.npy",
    "bundle.npz",
    "model.pt",
    "model.pth",
    "pytorch_model.bin",
    "model.joblib",
    "model.tflite",
    "model.h5",
    "model.keras",
    "model.mlmodel",
    "model.onnx",
    "model.pkl",
    "model.pickle",
    "model.ckpt",
    "data.bin",
];

/// How many leading bytes are read before probing.
pub const HEAD_LEN: usize = 4096;

impl<'a> ProbeInput<'a> {
    /// Reads exactly `len` bytes at `offset`, bounded by the content size and `limits::MAX_HEADER_BYTES`.
    pub fn read_exact_at(&self, format: &'static str, offset: u64, len: u64) -> Result<Vec<u8>, FormatError> {
        if len > limits::MAX_HEADER_BYTES {
            return Err(FormatError::bound(format, "read length", len, limits::MAX_HEADER_BYTES));
        }
        let end = offset.checked_add(len).ok_or_else(|| FormatError::bound(format, "offset", offset, self.size))?;
        if end > self.size {
            return Err(FormatError::truncated(
                format,
                format!("{len} bytes at offset {offset} past end {}", self.size),
            ));
        }
        let len = usize::try_from(len).map_err(|_| FormatError::bound(format, "read length", len, u64::MAX))?;
        let mut buf = vec![0u8; len];
        let mut filled = 0usize;
        while filled < len {
            let dst = buf.get_mut(filled..).unwrap_or_default();
            let n = self
                .source
                .read_at(dst, offset + filled as u64)
                .map_err(|e| FormatError::Io { format, what: e.to_string() })?;
            if n == 0 {
                return Err(FormatError::truncated(
                    format,
                    format!("file shrank while reading at offset {}", offset + filled as u64),
                ));
            }
            filled += n;
        }
        Ok(buf)
    }

    /// The file name's extension, lowercase, without the dot.
    pub fn extension(&self) -> &str {
        self.name.rsplit_once('.').map(|(_, e)| e).unwrap_or("")
    }

    /// Whether the file is named with one of `extensions`. Probers whose magic is short (one or
    /// two bytes) report a structural error only for files named like their format: random
    /// bytes in a `.bin` that happen to start like a pickle are not a broken model.
    pub fn named_as(&self, extensions: &[&str]) -> bool {
        extensions.contains(&self.extension())
    }
}

/// One registered format prober.
pub type Prober = fn(&ProbeInput<'_>) -> Result<Option<Detection>, FormatError>;

/// Every format prober, in the order they are tried. Cheap magic checks come first; ONNX, which
/// has no magic, and pickle, whose first byte is common, come last.
pub const REGISTRY: &[(&str, Prober)] = &[
    ("gguf", gguf::probe),
    ("tf_savedmodel", savedmodel::probe),
    ("mlflow", mlflow::probe),
    ("openvino", openvino::probe),
    ("safetensors", safetensors::probe),
    ("numpy", numpy::probe),
    ("zip", zip_models::probe),
    ("pytorch_legacy", pytorch::probe_legacy),
    ("joblib", joblib::probe),
    ("archive", archive::probe),
    ("tflite", tflite::probe),
    ("keras_h5", keras_h5::probe),
    ("coreml", coreml::probe),
    ("onnx", onnx::probe),
    ("pickle", pickle::probe),
];

/// Identifies `input` by content. See the module doc for the meaning of the three outcomes.
pub fn identify(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    for (_, probe) in REGISTRY {
        if let Some(found) = probe(input)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Identifies a member of an archive: every prober but the archive's own (the archive walker
/// opens nested containers itself, [`archive`]).
pub fn identify_member(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    for (name, probe) in REGISTRY {
        if *name == "archive" {
            continue;
        }
        if let Some(found) = probe(input)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Identifies an in-memory buffer (tests, fuzzing, members of containers).
pub fn identify_bytes(name: &str, bytes: &[u8]) -> Result<Option<Detection>, FormatError> {
    let head = bytes.get(..HEAD_LEN.min(bytes.len())).unwrap_or_default();
    identify(&ProbeInput { source: &bytes, size: bytes.len() as u64, head, name })
}

//! Models stored as zip archives, told apart by their members:
//!
//! 1. PyTorch (`torch.save` since 1.6, TorchScript): one root folder (any name) holding
//!    `data.pkl`, usually with `version`, `byteorder`, `data/<n>`; TorchScript adds `code/` and
//!    `constants.pkl`;
//! 2. Keras v3 (`.keras`): `metadata.json` and `config.json` at the top level, weights in
//!    `model.weights.h5` or `.npz`;
//! 3. NumPy `.npz`: every member is a `.npy` array.
//!
//! Any other zip is not a model.

use super::zip::ZipArchive;
use super::{numpy, Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

/// Largest member read to inspect it (config.json, metadata.json, version).
const MAX_SMALL_MEMBER: usize = 4 * 1024 * 1024;

fn pytorch(input: &ProbeInput<'_>, zip: &ZipArchive) -> Result<Option<Detection>, FormatError> {
    let Some(data_pkl) = zip.members.iter().find(|m| {
        let mut parts = m.name.split('/');
        matches!((parts.next(), parts.next(), parts.next()), (Some(root), Some("data.pkl"), None) if !root.is_empty())
    }) else {
        return Ok(None);
    };
    let root = data_pkl.name.trim_end_matches("data.pkl").to_string();
    let head = zip.read(input, data_pkl, 2)?;
    if head.first() != Some(&super::pickle::op::PROTO) {
        return Ok(None);
    }
    let mut md = ModelMetadata::default();
    md.extra.insert("root".into(), root.trim_end_matches('/').into());
    if let Some(v) = zip.member(&format!("{root}version")).or_else(|| zip.member(&format!("{root}.data/version"))) {
        let text = zip.read(input, v, 64)?;
        md.format_version = Some(String::from_utf8_lossy(&text).trim().to_string());
    }
    let storages = zip.members.iter().filter(|m| m.name.starts_with(&format!("{root}data/"))).count();
    md.extra.insert("storages".into(), storages.into());
    if zip.member(&format!("{root}constants.pkl")).is_some()
        || zip.members.iter().any(|m| m.name.starts_with(&format!("{root}code/")))
    {
        md.extra.insert("torchscript".into(), true.into());
    }
    // The pickle's imports name the storage types and, for whole-module saves, the model class.
    let pkl = zip.read(input, data_pkl, 16 * 1024 * 1024)?;
    let inner = ProbeInput {
        source: &pkl.as_slice(),
        size: pkl.len() as u64,
        head: pkl.get(..pkl.len().min(super::HEAD_LEN)).unwrap_or_default(),
        name: "data.pkl",
    };
    if let Ok(Some(s)) = super::pickle::summarize(&inner) {
        let from_pickle = super::pickle::metadata(&s);
        md.dtypes = storage_dtypes(&s.imports);
        md.architecture = from_pickle.architecture;
        md.tensor_count = from_pickle.tensor_count;
        md.parameters = from_pickle.parameters;
    }
    Ok(Some(Detection::new(ModelFormat::Pytorch, md)))
}

/// Tensor element types named by `torch.<Type>Storage` imports.
pub fn storage_dtypes(imports: &[String]) -> Vec<String> {
    let mut out: Vec<String> = imports
        .iter()
        .filter_map(|g| g.strip_prefix("torch.").and_then(|n| n.strip_suffix("Storage")))
        .filter(|n| !n.is_empty() && !n.contains('.'))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn keras_v3(input: &ProbeInput<'_>, zip: &ZipArchive) -> Result<Option<Detection>, FormatError> {
    let (Some(meta), Some(config)) = (zip.member("metadata.json"), zip.member("config.json")) else {
        return Ok(None);
    };
    let meta: serde_json::Value = serde_json::from_slice(&zip.read(input, meta, MAX_SMALL_MEMBER)?).unwrap_or_default();
    let config: serde_json::Value =
        serde_json::from_slice(&zip.read(input, config, MAX_SMALL_MEMBER)?).unwrap_or_default();
    if !meta.is_object() || !config.is_object() {
        return Err(FormatError::invalid("keras_v3", "metadata.json or config.json is not a json object"));
    }
    let text = |v: &serde_json::Value, at: &str| v.pointer(at).and_then(|s| s.as_str()).map(str::to_string);
    let mut md = ModelMetadata {
        keras_version: text(&meta, "/keras_version"),
        architecture: text(&config, "/class_name"),
        name: text(&config, "/config/name"),
        ..ModelMetadata::default()
    };
    if let Some(d) = text(&meta, "/date_saved") {
        md.extra.insert("date_saved".into(), d.into());
    }
    md.contents = zip.members.iter().map(|m| m.name.clone()).take(64).collect();
    Ok(Some(Detection::new(ModelFormat::KerasV3, md)))
}

fn npz(input: &ProbeInput<'_>, zip: &ZipArchive) -> Result<Option<Detection>, FormatError> {
    if zip.members.is_empty() || !zip.members.iter().all(|m| m.name.ends_with(".npy")) {
        return Ok(None);
    }
    let mut md = ModelMetadata { contents: Vec::new(), ..ModelMetadata::default() };
    let mut dtypes = std::collections::BTreeSet::new();
    let mut parameters: u64 = 0;
    let mut objects = false;
    for m in zip.members.iter().take(4096) {
        let head = zip.read(input, m, 64 * 1024)?;
        let inner = ProbeInput { source: &head.as_slice(), size: m.size, head: &head, name: &m.name };
        let Some(h) = numpy::parse_header(&inner)? else {
            return Ok(None);
        };
        objects |= h.has_object();
        dtypes.insert(h.descr.clone());
        parameters = parameters.saturating_add(h.shape.iter().fold(1u64, |a, d| a.saturating_mul(*d)));
        md.contents.push(m.name.trim_end_matches(".npy").to_string());
    }
    md.dtypes = dtypes.into_iter().collect();
    md.parameters = Some(parameters);
    md.tensor_count = Some(zip.members.len() as u64);
    md.extra.insert("npz".into(), true.into());
    md.compression = Some(if zip.members.iter().any(|m| m.method == 8) { "deflate" } else { "none" }.into());
    if objects {
        md.extra.insert("object_dtype".into(), true.into());
    }
    Ok(Some(Detection::new(ModelFormat::Numpy, md)))
}

/// Identifies models stored as zip archives.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let zip = match ZipArchive::open(input) {
        Ok(Some(z)) => z,
        Ok(None) => return Ok(None),
        // A damaged zip is an error only when it is named like a model container.
        Err(e) if matches!(input.extension(), "pt" | "pth" | "ckpt" | "keras" | "npz" | "bin" | "mar") => {
            return Err(e)
        }
        Err(_) => return Ok(None),
    };
    if let Some(d) = pytorch(input, &zip)? {
        return Ok(Some(d));
    }
    if let Some(d) = keras_v3(input, &zip)? {
        return Ok(Some(d));
    }
    npz(input, &zip)
}

//! MLflow model directories (`mlflow/models/model.py`).
//!
//! A directory holding an `MLmodel` YAML file with a top-level `flavors:` mapping (and usually
//! `artifact_path`, `run_id`, `model_uuid`, `mlflow_version`, `utc_time_created`). The file is
//! read as text: top-level `key: value` scalars and the names of the flavors (the keys indented
//! once under `flavors:`). The model detector reports the directory as the model.

use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "mlflow";
/// The file that defines an MLflow model directory.
pub const DEFINING_FILE: &str = "mlmodel";
/// Largest MLmodel file read.
const MAX_MLMODEL: u64 = 1024 * 1024;

/// Identifies an `MLmodel` file.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    if input.name != DEFINING_FILE {
        return Ok(None);
    }
    let raw = input.read_exact_at(FORMAT, 0, input.size.min(MAX_MLMODEL))?;
    let text = String::from_utf8_lossy(&raw);
    let mut md = ModelMetadata::default();
    let mut in_flavors = false;
    let mut flavor_indent = None;
    let mut has_flavors = false;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 0 {
            in_flavors = trimmed == "flavors:";
            has_flavors |= in_flavors;
            if let Some((k, v)) = trimmed.split_once(':') {
                let v = v.trim().trim_matches(['\'', '"']).to_string();
                if !v.is_empty() {
                    match k {
                        "mlflow_version" => md.producer_version = Some(v),
                        "run_id" | "model_uuid" | "artifact_path" | "utc_time_created" | "model_id" => {
                            md.extra.insert(k.into(), v.into());
                        }
                        _ => {}
                    }
                }
            }
        } else if in_flavors {
            let fi = *flavor_indent.get_or_insert(indent);
            if indent == fi {
                if let Some(name) = trimmed.strip_suffix(':') {
                    md.contents.push(name.to_string());
                }
            } else if md.contents.last().is_some_and(|f| f == "python_function") {
                if let Some(v) = trimmed.strip_prefix("loader_module:") {
                    md.extra.insert("loader_module".into(), v.trim().trim_matches(['\'', '"']).into());
                }
            }
        }
    }
    if !has_flavors {
        return Ok(None);
    }
    md.producer = Some("mlflow".into());
    md.architecture = md.contents.iter().find(|f| f.as_str() != "python_function").cloned();
    Ok(Some(Detection::new(ModelFormat::Mlflow, md)))
}

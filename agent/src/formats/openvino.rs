//! OpenVINO IR (`docs/articles_en/documentation/openvino-ir-format`).
//!
//! An XML file whose root element is `<net name="..." version="10|11">` with `<layers>` and
//! `<edges>`, next to a `.bin` of the same stem holding the weights. This prober checks the XML;
//! the model detector checks the sibling `.bin` and reports both as one model.

use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

/// Value of attribute `name` in the start tag `tag` (the text from `<net` to `>`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    let rest = tag.get(at..)?;
    Some(rest.split('"').next()?.to_string())
}

/// Identifies the XML half of an OpenVINO IR model.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    if input.extension() != "xml" {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(input.head);
    let body = text.trim_start_matches('\u{feff}').trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map(|(_, r)| r.trim_start()).unwrap_or_default(),
        None => body,
    };
    let Some(rest) = body.strip_prefix("<net") else {
        return Ok(None);
    };
    let Some((tag, after)) = rest.split_once('>') else {
        return Ok(None);
    };
    let version = attribute(tag, "version");
    if !after.contains("<layers") || version.is_none() {
        return Ok(None);
    }
    let md = ModelMetadata { name: attribute(tag, "name"), format_version: version, ..ModelMetadata::default() };
    Ok(Some(Detection::new(ModelFormat::Openvino, md)))
}

//! The per-format assessment (see the module doc of [`crate::safety`]).

use std::path::Path;

use super::policy::{classify, ImportClass};
use super::{chat_template, keras, SafetyReport, Verdict, DANGEROUS_TF_OPS, MAX_DECOMPRESSED};
use crate::fileio::FileStamp;
use crate::formats::pickle::{self, PickleSummary};
use crate::formats::reader::Cursor;
use crate::formats::zip::ZipArchive;
use crate::formats::{compress, gguf, keras_h5, numpy, Detection, ModelFormat, ProbeInput, Source};

/// Most pickle streams followed one after another in one file.
const MAX_STREAMS: usize = 64;
/// Pickles in a legacy PyTorch file (magic, protocol, sys_info, object, storage keys); raw
/// storage bytes follow them.
const LEGACY_STREAMS: usize = 5;

/// Opens a file beside the one assessed, by name (a SavedModel's `keras_metadata.pb`).
pub type Siblings<'a> = &'a dyn Fn(&str) -> std::io::Result<(std::fs::File, FileStamp)>;

/// Assesses the model file `input` identified as `detection`; `path` is where it is, and its
/// siblings are opened by path ([`crate::fileio::open_regular`]). The walk uses
/// [`assess_with`], which opens them relative to the directory's descriptor.
pub fn assess(path: &Path, input: &ProbeInput<'_>, detection: &Detection) -> SafetyReport {
    let dir = path.parent();
    let siblings = |name: &str| match dir {
        Some(d) => crate::fileio::open_regular(&d.join(name)),
        None => Err(std::io::ErrorKind::NotFound.into()),
    };
    assess_with(input, detection, &siblings)
}

/// [`assess`] with the file's siblings opened by `siblings`.
pub fn assess_with(input: &ProbeInput<'_>, detection: &Detection, siblings: Siblings<'_>) -> SafetyReport {
    let mut report = SafetyReport::default();
    match detection.format {
        ModelFormat::Gguf => gguf_templates(input, &mut report),
        ModelFormat::Safetensors | ModelFormat::Tflite | ModelFormat::Coreml | ModelFormat::Openvino => {}
        ModelFormat::Onnx => external_data(detection, &mut report),
        ModelFormat::Pickle => streams(input.source, input.size, 0, MAX_STREAMS, None, &mut report),
        ModelFormat::PytorchLegacy => streams(input.source, input.size, 0, LEGACY_STREAMS, None, &mut report),
        ModelFormat::Joblib => match compress::compression_of(input.head) {
            None => streams(input.source, input.size, 0, MAX_STREAMS, None, &mut report),
            Some(scheme) => compressed(input, scheme, &mut report),
        },
        ModelFormat::Pytorch => zip_members(input, &mut report),
        ModelFormat::Numpy => numpy_arrays(input, &mut report),
        ModelFormat::KerasH5 => keras_h5(input, &mut report),
        ModelFormat::KerasV3 => keras_v3(input, &mut report),
        ModelFormat::TfSavedmodel => savedmodel(siblings, input, &mut report),
        ModelFormat::Mlflow => mlflow(detection, &mut report),
        ModelFormat::Archive => {
            let walked = detection.walk.take();
            super::archive::assess_archive(input, crate::formats::archive::BOUNDS, walked, &mut report)
        }
    }
    report.finish()
}

/// Judges one pickle stream's imports, calls and nested pickles.
fn judge(summary: &PickleSummary, location: Option<&str>, report: &mut SafetyReport) {
    for import in &summary.imports {
        if !report.imports.contains(import) {
            report.imports.push(import.clone());
        }
        match classify(import) {
            ImportClass::Dangerous(why) => report.add("dangerous_import", import, why, Verdict::Dangerous, location),
            ImportClass::Allowed => {}
            ImportClass::Unknown if import == "?" => report.add(
                "unresolved_import",
                "?",
                "a global whose name cannot be resolved statically (non-string STACK_GLOBAL operands or an extension code)",
                Verdict::Suspicious,
                location,
            ),
            ImportClass::Unknown => report.add(
                "unknown_import",
                import,
                "not on the allowlist of what model files need",
                Verdict::Suspicious,
                location,
            ),
        }
    }
    for call in &summary.calls {
        if !report.calls.contains(call) {
            report.calls.push(call.clone());
        }
        if let ImportClass::Dangerous(why) = classify(call) {
            report.add("dangerous_call", call, why, Verdict::Dangerous, location);
        }
    }
    for nested in &summary.nested {
        let here = match location {
            Some(l) => format!("{l} > pickle passed to {}", nested.via),
            None => format!("pickle passed to {}", nested.via),
        };
        report.add(
            "nested_pickle",
            &nested.via,
            "a pickle inside the pickle is loaded on load",
            Verdict::Dangerous,
            location,
        );
        judge(&nested.summary, Some(&here), report);
        if let Some(e) = &nested.error {
            report.add("malformed", "nested pickle", e, Verdict::Suspicious, Some(&here));
        }
    }
}

/// Walks the pickle streams of `src` from `start`: the first, then each following one that
/// starts with `PROTO` (several `pickle.dump`s into one file, legacy PyTorch), at most `max`.
fn streams(src: &dyn Source, size: u64, start: u64, max: usize, location: Option<&str>, report: &mut SafetyReport) {
    let mut at = start;
    for n in 0..max {
        let mut cur = Cursor::new("pickle", src, size, at);
        let (summary, error) = pickle::walk_partial(&mut cur, pickle::MAX_OPS);
        let here = match (location, n) {
            (l, 0) => l.map(str::to_string),
            (Some(l), n) => Some(format!("{l}, stream {}", n + 1)),
            (None, n) => Some(format!("stream {}", n + 1)),
        };
        judge(&summary, here.as_deref(), report);
        if let Some(e) = error {
            report.add("malformed", "pickle", &e.to_string(), Verdict::Suspicious, here.as_deref());
            return;
        }
        if !summary.complete {
            report.add(
                "bound_exceeded",
                "pickle",
                &format!("stopped after {} opcodes without reaching STOP", summary.ops),
                Verdict::Suspicious,
                here.as_deref(),
            );
            return;
        }
        at = summary.end;
        let mut next = [0u8; 1];
        match src.read_at(&mut next, at) {
            Ok(1) if next.first() == Some(&pickle::op::PROTO) => {}
            _ => return,
        }
    }
}

fn compressed(input: &ProbeInput<'_>, scheme: &str, report: &mut SafetyReport) {
    let (scheme, offset) = match scheme {
        "zlib_legacy" => ("zlib", input.head.iter().skip(2).position(|&b| b == 0x78).map_or(0, |p| p as u64 + 2)),
        s => (s, 0),
    };
    match compress::decompress_prefix(input.source, offset, scheme, MAX_DECOMPRESSED + 1) {
        Ok(plain) => {
            if plain.len() > MAX_DECOMPRESSED {
                report.add(
                    "bound_exceeded",
                    scheme,
                    &format!("decompresses past {MAX_DECOMPRESSED} bytes; only that much was analysed"),
                    Verdict::Suspicious,
                    None,
                );
            }
            let data = plain.get(..plain.len().min(MAX_DECOMPRESSED)).unwrap_or_default();
            streams(&data, data.len() as u64, 0, MAX_STREAMS, Some(scheme), report);
        }
        Err(e) => report.add("malformed", scheme, &format!("cannot decompress: {e}"), Verdict::Suspicious, None),
    }
}

fn read_member(
    input: &ProbeInput<'_>,
    zip: &ZipArchive,
    m: &crate::formats::zip::ZipMember,
    report: &mut SafetyReport,
) -> Option<Vec<u8>> {
    match zip.read(input, m, MAX_DECOMPRESSED + 1) {
        Ok(mut data) => {
            if data.len() > MAX_DECOMPRESSED {
                report.add(
                    "bound_exceeded",
                    &m.name,
                    &format!("member expands past {MAX_DECOMPRESSED} bytes (zip bomb?); only that much was analysed"),
                    Verdict::Suspicious,
                    Some(&m.name),
                );
                data.truncate(MAX_DECOMPRESSED);
            }
            Some(data)
        }
        Err(e) => {
            report.add("damaged_member", &m.name, &e.to_string(), Verdict::Suspicious, Some(&m.name));
            None
        }
    }
}

/// Every pickle member of a PyTorch zip: `*.pkl`, and any member whose data starts with `PROTO`
/// (a loader can be pointed at any member name).
fn zip_members(input: &ProbeInput<'_>, report: &mut SafetyReport) {
    let zip = match ZipArchive::open(input) {
        Ok(Some(z)) => z,
        Ok(None) => return,
        Err(e) => return report.add("malformed", "zip", &e.to_string(), Verdict::Suspicious, None),
    };
    for m in &zip.members {
        let named = m.name.ends_with(".pkl") || m.name.ends_with(".pickle");
        let starts_like_pickle = match zip.read(input, m, 2) {
            Ok(head) => head.first() == Some(&pickle::op::PROTO) && head.get(1).is_some_and(|p| (2..=5).contains(p)),
            Err(e) => {
                report.add("damaged_member", &m.name, &e.to_string(), Verdict::Suspicious, Some(&m.name));
                continue;
            }
        };
        if !(named || starts_like_pickle) {
            continue;
        }
        if let Some(data) = read_member(input, &zip, m, report) {
            streams(&data.as_slice(), data.len() as u64, 0, MAX_STREAMS, Some(&m.name), report);
        }
    }
}

/// Object arrays of `.npy` files and `.npz` members hold pickles.
fn numpy_arrays(input: &ProbeInput<'_>, report: &mut SafetyReport) {
    if let Ok(Some(h)) = numpy::parse_header(input) {
        if h.has_object() {
            streams(input.source, input.size, h.data_offset, 1, None, report);
        }
        return;
    }
    let zip = match ZipArchive::open(input) {
        Ok(Some(z)) => z,
        _ => return,
    };
    for m in &zip.members {
        let Some(data) = read_member(input, &zip, m, report) else { continue };
        let inner = ProbeInput {
            source: &data.as_slice(),
            size: data.len() as u64,
            head: data.get(..data.len().min(crate::formats::HEAD_LEN)).unwrap_or_default(),
            name: &m.name,
        };
        match numpy::parse_header(&inner) {
            Ok(Some(h)) if h.has_object() => {
                streams(&data.as_slice(), data.len() as u64, h.data_offset, 1, Some(&m.name), report)
            }
            Ok(_) => {}
            Err(e) => report.add("malformed", &m.name, &e.to_string(), Verdict::Suspicious, Some(&m.name)),
        }
    }
}

fn keras_v3(input: &ProbeInput<'_>, report: &mut SafetyReport) {
    let Ok(Some(zip)) = ZipArchive::open(input) else { return };
    let Some(m) = zip.member("config.json") else { return };
    let Some(data) = read_member(input, &zip, m, report) else { return };
    keras::judge_bytes(&data, "config.json", report);
}

fn keras_h5(input: &ProbeInput<'_>, report: &mut SafetyReport) {
    match keras_h5::model_config(input) {
        Some(Ok(config)) => keras::judge(&config, Some("model_config"), report),
        Some(Err(e)) => report.add("malformed", "model_config", &e, Verdict::Suspicious, Some("model_config")),
        None => {}
    }
}

/// Jinja2 chat templates, which loaders render (CVE-2024-34359).
fn gguf_templates(input: &ProbeInput<'_>, report: &mut SafetyReport) {
    let found = match gguf::chat_templates(input) {
        Ok(t) => t,
        Err(e) => return report.add("malformed", "gguf", &e.to_string(), Verdict::Suspicious, None),
    };
    if found.skipped > 0 {
        report.add(
            "bound_exceeded",
            "chat templates",
            &format!(
                "{} chat templates past the first {} or {} bytes were not analysed",
                found.skipped,
                gguf::MAX_TEMPLATES,
                gguf::MAX_TEMPLATE_TOTAL
            ),
            Verdict::Suspicious,
            None,
        );
    }
    for t in found.templates {
        let Ok(text) = std::str::from_utf8(&t.text) else {
            report.add("malformed", &t.key, "the chat template is not UTF-8", Verdict::Suspicious, Some(&t.key));
            continue;
        };
        for f in chat_template::judge(text) {
            report.add(f.kind, &f.subject, &f.detail, f.severity, Some(&t.key));
        }
    }
}

/// Whether `haystack` holds a protobuf string field 2 (`NodeDef.op`) equal to `op`: the bytes
/// `0x12`, the length, the name.
fn has_op(haystack: &[u8], op: &str) -> bool {
    let Ok(len) = u8::try_from(op.len()) else { return false };
    let mut needle = vec![0x12, len];
    needle.extend_from_slice(op.as_bytes());
    memchr::memmem::find(haystack, &needle).is_some()
}

fn savedmodel(siblings: Siblings<'_>, input: &ProbeInput<'_>, report: &mut SafetyReport) {
    match input.read_exact_at("tf_savedmodel", 0, input.size.min(MAX_DECOMPRESSED as u64)) {
        Ok(graph) => {
            for op in DANGEROUS_TF_OPS {
                if has_op(&graph, op) {
                    report.add(
                        "tf_op",
                        op,
                        "the graph holds an op that runs Python or reads or writes files",
                        Verdict::Dangerous,
                        Some("saved_model.pb"),
                    );
                }
            }
        }
        Err(e) => report.add("malformed", "saved_model.pb", &e.to_string(), Verdict::Suspicious, None),
    }
    let Ok((file, stamp)) = siblings("keras_metadata.pb") else { return };
    let probe = ProbeInput { source: &file, size: stamp.size, head: &[], name: "keras_metadata.pb" };
    if let Ok(bytes) = probe.read_exact_at("keras_metadata", 0, stamp.size.min(MAX_DECOMPRESSED as u64)) {
        for needle in [&b"\"class_name\": \"Lambda\""[..], &b"\"class_name\":\"Lambda\""[..]] {
            if memchr::memmem::find(&bytes, needle).is_some() {
                report.add(
                    "lambda_layer",
                    "Lambda",
                    "keras_metadata.pb describes a Keras Lambda layer, which carries Python code",
                    Verdict::Dangerous,
                    Some("keras_metadata.pb"),
                );
            }
        }
    }
}

/// ONNX tensors may keep their data in other files; a location outside the model's directory
/// makes loading read an arbitrary file.
fn external_data(detection: &Detection, report: &mut SafetyReport) {
    let Some(locations) = detection.metadata.extra.get("external_locations").and_then(|l| l.as_array()) else { return };
    for loc in locations.iter().filter_map(|l| l.as_str()) {
        let escapes = loc.starts_with('/')
            || loc.starts_with('\\')
            || loc.get(1..2) == Some(":")
            || loc.split(['/', '\\']).any(|part| part == "..");
        if escapes {
            report.add(
                "external_data",
                loc,
                "tensor data is read from outside the model's directory",
                Verdict::Suspicious,
                None,
            );
        }
    }
}

/// An MLflow model whose `python_function` loader is not MLflow's own runs the model's code.
fn mlflow(detection: &Detection, report: &mut SafetyReport) {
    if let Some(loader) = detection.metadata.extra.get("loader_module").and_then(|l| l.as_str()) {
        if !loader.starts_with("mlflow.") {
            report.add(
                "custom_loader",
                loader,
                "python_function loads the model with custom code shipped with it",
                Verdict::Suspicious,
                Some("MLmodel"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_needle_is_a_protobuf_string_field() {
        assert!(has_op(b"\x0a\x03abc\x12\x08ReadFile\x1a\x00", "ReadFile"));
        assert!(!has_op(b"ReadFileV2", "ReadFile"));
    }
}

//! The safety of an archive ([`crate::formats::archive`], walked within
//! [`crate::formats::archive::BOUNDS`]): every model inside is assessed as if
//! it were a file and its findings are located under its member path; what the walk could not
//! read or hit a bound on is a finding; bundles that carry code by design are judged by the
//! code they name:
//! 1. TorchServe `.mar`: the `handler` and `modelFile` that `MAR-INF/MANIFEST.json` names are
//!    imported when the archive is served (`bundled_code`); a module-level call to a process,
//!    network, file or eval primitive in them is `dangerous_code` ([`super::pycode`]);
//! 2. NeMo `.nemo`: every `_target_`/`target` class path in `model_config.yaml` is imported
//!    and instantiated by Hydra; one outside `nemo.` is a `config_target`, dangerous when the
//!    pickle policy denies it;
//! 3. skops: every type `schema.json` names is instantiated on load; one outside sklearn,
//!    NumPy, SciPy and safe builtins is an `untrusted_type` (what `skops.io.get_untrusted_types`
//!    lists), dangerous when the pickle policy denies it;
//! 4. MLflow `python_function` (an `MLmodel` inside the archive): its `code/` modules are
//!    scanned like a handler, and its pickles (`python_model.pkl`) go through the pickle machine
//!    as every pickle member does.

use super::policy::{classify, ImportClass, SAFE_BUILTINS};
use super::{assess_with, pycode, SafetyReport, Verdict};
use crate::formats::archive::{container_of, inner_path, walk, Bounds, Bundle, Event, WalkRecord, SEPARATOR};
use crate::formats::{ModelFormat, ProbeInput, HEAD_LEN};

/// Most hidden, renamed or damaged members listed one by one.
const MAX_NOTED: usize = 32;

/// A member kept for the bundle judges.
#[derive(Debug)]
struct Text {
    /// Its full member path.
    path: String,
    /// Its bytes.
    data: Vec<u8>,
}

/// The container part of a member path (`a.zip!b.tar` for `a.zip!b.tar!c/d.py`), empty at the top.
fn container_part(path: &str) -> &str {
    path.rsplit_once(SEPARATOR).map_or("", |(c, _)| c)
}

/// Assesses the archive `input` within `bounds` (a scan uses [`BOUNDS`]; fuzzing, smaller ones).
pub fn assess_archive_within(input: &ProbeInput<'_>, bounds: Bounds) -> SafetyReport {
    let mut report = SafetyReport::default();
    assess_archive(input, bounds, None, &mut report);
    report.finish()
}

/// Assesses every member of the archive `input` into `report`, from `walked` when
/// identification recorded the walk (the archive is then not read again), else walking it.
pub(super) fn assess_archive(
    input: &ProbeInput<'_>,
    bounds: Bounds,
    walked: Option<WalkRecord>,
    report: &mut SafetyReport,
) {
    let Some(kind) = container_of(input) else { return };
    let mut texts: Vec<Text> = Vec::new();
    let mut bundles: Vec<(String, Bundle)> = Vec::new();
    let mut mlflow: Vec<String> = Vec::new();
    let no_siblings = |_: &str| Err(std::io::ErrorKind::NotFound.into());
    // Hidden, renamed and damaged members past the first MAX_NOTED are counted, not listed:
    // an archive of 10,000 overlapping entries would otherwise make 10,000 findings.
    let mut noted = 0usize;
    let mut unlisted = 0usize;
    let mut visit = |event: Event<'_>| {
        if matches!(event, Event::Hidden { .. } | Event::Renamed { .. } | Event::Damaged { .. }) {
            noted += 1;
            if noted > MAX_NOTED {
                unlisted += 1;
                return true;
            }
        }
        match event {
            Event::Model { path, data, detection } => {
                let name = inner_path(path).rsplit('/').next().unwrap_or_default().to_lowercase();
                let head = data.get(..data.len().min(HEAD_LEN)).unwrap_or_default();
                let inner = ProbeInput { source: &data, size: data.len() as u64, head, name: &name };
                if detection.format == ModelFormat::Mlflow {
                    mlflow.push(path.to_string());
                }
                report.merge_at(assess_with(&inner, &detection, &no_siblings), path);
            }
            Event::Other { path, bundle, text } => {
                if let Some(bundle) = bundle {
                    bundles.push((container_part(path).to_string(), bundle));
                }
                if let Some(data) = text {
                    texts.push(Text { path: path.to_string(), data: data.to_vec() });
                }
            }
            Event::Bound { path, what } => report.add("bound_exceeded", path, &what, Verdict::Suspicious, loc(path)),
            Event::Damaged { path, error } => {
                report.add("damaged_member", path, &error, Verdict::Suspicious, loc(path));
            }
            Event::Renamed { path, local_name } => report.add(
                "header_mismatch",
                path,
                &format!(
                    "the local header names this member {local_name:?}: extractors that read local headers \
                     write another file than zipfile lists"
                ),
                Verdict::Suspicious,
                Some(path),
            ),
            Event::Hidden { path } => report.add(
                "hidden_member",
                path,
                "the zip's local headers hold a member its central directory does not list: zipfile and \
                 PyTorch do not see it, streaming extractors do",
                Verdict::Suspicious,
                Some(path),
            ),
        }
        true
    };
    match walked {
        Some(record) => record.replay(&mut visit),
        None => walk(input, kind, bounds, &mut visit),
    }
    if unlisted > 0 {
        let detail = format!("{unlisted} more hidden, renamed or damaged members were not listed");
        report.add("bound_exceeded", "findings", &detail, Verdict::Suspicious, None);
    }
    for (container, bundle) in &bundles {
        match bundle {
            Bundle::TorchServe => torchserve(container, &texts, report),
            Bundle::Nemo => nemo(container, &texts, report),
            Bundle::Skops => skops(container, &texts, report),
        }
    }
    for mlmodel in &mlflow {
        mlflow_code(mlmodel, &texts, report);
    }
}

fn loc(path: &str) -> Option<&str> {
    (!path.is_empty()).then_some(path)
}

/// The kept member at `inner` inside `container`.
fn text<'t>(texts: &'t [Text], container: &str, inner: &str) -> Option<&'t Text> {
    texts.iter().find(|t| container_part(&t.path) == container && inner_path(&t.path) == inner)
}

/// Reports a Python file the loader imports (informational: code shipped on purpose), and what
/// it calls at import (dangerous).
fn python_code(file: &Text, why: &str, report: &mut SafetyReport) {
    python_findings(inner_path(&file.path), Some(&file.path), &file.data, why, report);
}

/// [`python_code`] for a module named `name` with `source`, findings at `location`.
fn python_findings(name: &str, location: Option<&str>, source: &[u8], why: &str, report: &mut SafetyReport) {
    report.add("bundled_code", name, why, Verdict::Safe, location);
    let scan = pycode::scan(source);
    for call in scan.dangerous() {
        let subject = format!("{} (line {})", call.callee, call.line);
        let detail = format!("runs when the file is imported: {}", call.danger.unwrap_or_default());
        report.add("dangerous_code", &subject, &detail, Verdict::Dangerous, location);
    }
    if scan.cut {
        let detail = format!("source longer than {} bytes; only that much was read", pycode::MAX_SOURCE);
        report.add("bound_exceeded", name, &detail, Verdict::Suspicious, location);
    }
    if scan.truncated {
        let detail = format!("more than {} calls; the later ones were not judged", pycode::MAX_CALLS);
        report.add("bound_exceeded", name, &detail, Verdict::Suspicious, location);
    }
}

/// The safety of a Python module a directory model's loader imports (an MLflow model's
/// `code/` modules), named `name`, from its `source` (read at most [`pycode::MAX_SOURCE`] + 1
/// bytes). The caller locates the findings ([`SafetyReport::merge_at`]).
pub fn assess_python_module(name: &str, source: &[u8], why: &str) -> SafetyReport {
    let mut report = SafetyReport::default();
    python_findings(name, None, source, why, &mut report);
    report
}

/// TorchServe: the handler and model file the manifest names.
fn torchserve(container: &str, texts: &[Text], report: &mut SafetyReport) {
    let manifest = texts.iter().find(|t| {
        container_part(&t.path) == container && inner_path(&t.path).eq_ignore_ascii_case("MAR-INF/MANIFEST.json")
    });
    let Some(manifest) = manifest else { return };
    let json: serde_json::Value = match serde_json::from_slice(&manifest.data) {
        Ok(v) => v,
        Err(e) => {
            let detail = format!("cannot parse the manifest: {e}");
            return report.add("malformed", "MANIFEST.json", &detail, Verdict::Suspicious, Some(&manifest.path));
        }
    };
    for key in ["handler", "modelFile"] {
        let Some(named) = json.pointer(&format!("/model/{key}")).and_then(|v| v.as_str()) else { continue };
        // `handler.py:entry_point` names a function in the file.
        let file = named.split(':').next().unwrap_or(named);
        match text(texts, container, file) {
            Some(code) => {
                python_code(code, &format!("TorchServe imports the {key} named in MAR-INF/MANIFEST.json"), report)
            }
            // A handler that is not in the archive is one of TorchServe's own
            // (`image_classifier`, `ts.torch_handler...`), or a module installed on the server.
            None if file.ends_with(".py") => report.add(
                "bundled_code",
                file,
                &format!("the manifest names {key} {file}, which the archive does not hold"),
                Verdict::Suspicious,
                Some(&manifest.path),
            ),
            None => {}
        }
    }
}

/// NeMo: Hydra `_target_` / `target` class paths outside `nemo.`.
fn nemo(container: &str, texts: &[Text], report: &mut SafetyReport) {
    let Some(config) = text(texts, container, "model_config.yaml") else { return };
    let source = String::from_utf8_lossy(&config.data);
    for line in source.lines() {
        let line = line.trim_start().trim_start_matches("- ");
        let Some((key, value)) = line.split_once(':') else { continue };
        if !matches!(key.trim(), "_target_" | "target") {
            continue;
        }
        let target = value.trim().trim_matches(['"', '\'']);
        if target.is_empty() || target.starts_with("nemo.") || !target.contains('.') {
            continue;
        }
        let (severity, why) = match classify(target) {
            ImportClass::Dangerous(why) => (Verdict::Dangerous, why),
            _ => (Verdict::Suspicious, "Hydra imports and instantiates it when the model is restored"),
        };
        let detail = format!("model_config.yaml names a class outside nemo.: {why}");
        report.add("config_target", target, &detail, severity, Some(&config.path));
    }
}

/// Whether skops loads `name` without asking (`skops.io` trusts these by default).
fn skops_trusted(name: &str) -> bool {
    let builtin = name.strip_prefix("builtins.");
    builtin.is_some_and(|b| SAFE_BUILTINS.contains(&b))
        || ["sklearn.", "numpy.", "scipy.", "collections.OrderedDict"].iter().any(|p| name.starts_with(p))
}

/// Collects the `module.class` (and `module.function`) names of a skops schema.
fn skops_types(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            let text = |k: &str| map.get(k).and_then(|v| v.as_str());
            if let (Some(module), Some(class)) = (text("__module__"), text("__class__")) {
                out.push(format!("{module}.{class}"));
            }
            if let (Some(module), Some(function)) = (text("module_path"), text("function")) {
                out.push(format!("{module}.{function}"));
            }
            map.values().for_each(|v| skops_types(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| skops_types(v, out)),
        _ => {}
    }
}

/// skops: the types its schema names.
fn skops(container: &str, texts: &[Text], report: &mut SafetyReport) {
    let Some(schema) = text(texts, container, "schema.json") else { return };
    let json: serde_json::Value = match serde_json::from_slice(&schema.data) {
        Ok(v) => v,
        Err(e) => {
            let detail = format!("cannot parse the schema: {e}");
            return report.add("malformed", "schema.json", &detail, Verdict::Suspicious, Some(&schema.path));
        }
    };
    let mut types = Vec::new();
    skops_types(&json, &mut types);
    for name in types {
        // skops' own node types for functions and types name no class to load.
        if skops_trusted(&name) || name == "builtins.function" || name == "builtins.type" {
            continue;
        }
        let (severity, why) = match classify(&name) {
            ImportClass::Dangerous(why) => (Verdict::Dangerous, why),
            _ => (Verdict::Suspicious, "not among the types skops trusts (sklearn, NumPy, SciPy, builtins)"),
        };
        report.add(
            "untrusted_type",
            &name,
            &format!("skops instantiates it on load: {why}"),
            severity,
            Some(&schema.path),
        );
    }
}

/// Why an MLflow model's `code/` module matters.
pub const MLFLOW_CODE: &str = "MLflow's python_function imports the model's code/ modules on load";

/// MLflow `python_function`: the modules under `code/` beside the `MLmodel`.
fn mlflow_code(mlmodel: &str, texts: &[Text], report: &mut SafetyReport) {
    let container = container_part(mlmodel);
    let dir = inner_path(mlmodel).rsplit_once('/').map_or("", |(d, _)| d);
    let code_dir = if dir.is_empty() { "code/".to_string() } else { format!("{dir}/code/") };
    for file in texts.iter().filter(|t| {
        container_part(&t.path) == container && inner_path(&t.path).starts_with(&code_dir) && t.path.ends_with(".py")
    }) {
        python_code(file, MLFLOW_CODE, report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::archive::BOUNDS;

    /// `kind subject @ location` of each finding of the corpus archive `rel`, and the verdict.
    fn assess(rel: &str) -> (Verdict, Vec<String>) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/safety");
        let bytes = std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let head = bytes.get(..bytes.len().min(HEAD_LEN)).unwrap_or_default();
        let input = ProbeInput { source: &bytes.as_slice(), size: bytes.len() as u64, head, name: "x" };
        let report = assess_archive_within(&input, BOUNDS);
        let lines = report
            .findings
            .iter()
            .map(|f| format!("{} {} @ {}", f.kind, f.subject, f.location.as_deref().unwrap_or("-")))
            .collect();
        (report.verdict, lines)
    }

    #[test]
    fn the_walk_identification_hands_over_assesses_as_a_second_walk_would() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/safety");
        let mut replayed = 0;
        for dir in ["benign", "hostile"] {
            let mut entries: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().flatten().map(|e| e.path()).collect();
            entries.sort();
            for path in entries.iter().filter(|p| p.is_file()) {
                let bytes = std::fs::read(path).unwrap();
                let head = bytes.get(..bytes.len().min(HEAD_LEN)).unwrap_or_default();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_lowercase();
                let input = ProbeInput { source: &bytes.as_slice(), size: bytes.len() as u64, head, name: &name };
                let Ok(Some(detection)) = crate::formats::identify(&input) else { continue };
                if detection.format != ModelFormat::Archive {
                    continue;
                }
                let walked = assess_archive_within(&input, BOUNDS);
                let held = format!("{:?}", detection.walk);
                let from_record = assess_with(&input, &detection, &|_| Err(std::io::ErrorKind::NotFound.into()));
                assert_eq!(held, "WalkHandoff(held)", "{}", path.display());
                assert_eq!(format!("{:?}", detection.walk), "WalkHandoff(empty)", "{}", path.display());
                assert_eq!(from_record, walked, "{}", path.display());
                replayed += 1;
            }
        }
        assert!(replayed >= 20, "{replayed} archives in the corpus");
    }

    #[test]
    fn nemo_targets_outside_nemo_are_flagged_and_denied_ones_are_dangerous() {
        let (verdict, findings) = assess("hostile/nemo_hostile.nemo");
        assert_eq!(verdict, Verdict::Dangerous);
        assert_eq!(findings, ["config_target subprocess.Popen @ ./model_config.yaml"]);
        assert_eq!(assess("benign/nemo_ok.nemo"), (Verdict::Safe, vec![]));
    }

    #[test]
    fn skops_types_outside_the_trusted_libraries_are_flagged() {
        let (verdict, findings) = assess("hostile/skops_hostile.skops");
        assert_eq!(verdict, Verdict::Dangerous);
        assert_eq!(findings, ["untrusted_type posix.system @ schema.json"]);
        assert_eq!(assess("benign/skops_benign.skops"), (Verdict::Safe, vec![]));
        assert!(skops_trusted("sklearn.linear_model._logistic.LogisticRegression"));
        assert!(skops_trusted("builtins.dict") && !skops_trusted("builtins.eval"));
        assert!(!skops_trusted("__main__.MyEstimator"));
    }

    #[test]
    fn a_torchserve_handler_is_named_and_flagged_only_when_it_spawns() {
        let (verdict, findings) = assess("hostile/torchserve_hostile.mar");
        assert_eq!(verdict, Verdict::Dangerous);
        assert_eq!(
            findings,
            ["dangerous_code subprocess.run (line 7) @ handler.py", "bundled_code handler.py @ handler.py"]
        );
        let (verdict, findings) = assess("benign/torchserve_ok.mar");
        assert_eq!((verdict, findings), (Verdict::Safe, vec!["bundled_code handler.py @ handler.py".to_string()]));
    }

    #[test]
    fn member_paths_locate_nested_findings() {
        let (verdict, findings) = assess("hostile/nested_tgz_in_zip.zip");
        assert_eq!(verdict, Verdict::Dangerous);
        assert!(findings.iter().all(|f| f.ends_with("@ inner.tar.gz!model/weights.pkl")), "{findings:?}");
        assert_eq!(assess("benign/nested_tgz_in_zip_ok.zip"), (Verdict::Safe, vec![]));
    }
}

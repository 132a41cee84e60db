//! Keras model configs: the `config.json` of a Keras 3 `.keras` zip and the `model_config`
//! attribute of a Keras HDF5 file.
//!
//! Keras rebuilds every object of the config from `{"module", "class_name", "config",
//! "registered_name"}`: a class is `module.class_name`, a function (`class_name` `function`)
//! is `module.<config>`. Before 3.9 a module outside Keras was imported and the name called
//! even with `safe_mode` (CVE-2025-1550), so `os.system` as an activation runs a command on
//! load. Each referenced callable is judged, in order:
//! 1. `class_name` `Lambda` (a layer) or `__lambda__` (a function) carries Python bytecode:
//!    `dangerous` (`lambda_layer`);
//! 2. a callable in Keras's own namespaces ([`KERAS_PACKAGES`]: `keras`, `tf_keras`,
//!    `keras_hub`, … and below) is fine, except those that fetch files, load other models or turn safe mode off
//!    ([`KERAS_DANGEROUS`]: `get_file`, CVE-2025-8747; `enable_unsafe_deserialization` and
//!    `load_model`, CVE-2025-9906; `TFSMLayer`, CVE-2026-1462): `dangerous`;
//! 3. any other callable is judged like a pickle import by [`super::policy::classify`]:
//!    denylisted (`os.system`, `subprocess.Popen`, `builtins.eval`, `posix.system`) is
//!    `dangerous` (`dangerous_import`), allowlisted is fine, and anything else — a third-party
//!    package or a registered custom object, which Keras imports or needs installed — is
//!    `suspicious` (`unknown_import`). A `registered_name` `package>name` outside Keras on an
//!    object whose `module` is Keras's is judged the same way as `package.name`: Keras takes a
//!    registered custom object of that name over `module.class_name`.
//!
//! Every callable outside Keras is also listed in the report's `imports`. The config is parsed
//! only up to [`MAX_CONFIG_BYTES`] and serde_json's nesting limit (128); past either it is
//! `suspicious`.

use serde_json::Value;

use super::policy::{classify, ImportClass};
use super::{SafetyReport, Verdict};

/// Largest config parsed.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// Names inside Keras that fetch files, load other models or disable safe mode when a config
/// calls them (the safe-mode bypasses that followed CVE-2025-1550's fix).
pub const KERAS_DANGEROUS: &[(&str, &str)] = &[
    ("get_file", "downloads or reads an arbitrary file when the model is loaded (CVE-2025-8747)"),
    ("enable_unsafe_deserialization", "turns Keras's safe mode off while the model loads (CVE-2025-9906)"),
    ("load_model", "loads another model, with arguments the config chooses such as safe_mode=False (CVE-2025-9906)"),
    ("TFSMLayer", "loads an external TensorFlow SavedModel from a path the config names (CVE-2026-1462)"),
];

/// Packages of the Keras team whose modules a config may name: Keras itself, Keras 2 as
/// `tf_keras`, and the domain libraries built on it (KerasHub and its predecessors KerasNLP and
/// KerasCV, KerasRS).
pub const KERAS_PACKAGES: &[&str] = &["keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv", "keras_rs"];

/// Whether `module` is one of Keras's own namespaces ([`KERAS_PACKAGES`] or below).
fn is_keras(module: &str) -> bool {
    KERAS_PACKAGES.iter().any(|k| module == *k || module.strip_prefix(k).is_some_and(|r| r.starts_with('.')))
}

/// Parses a config's bytes and judges it; a config that is too large or does not parse is
/// `suspicious`.
pub fn judge_bytes(bytes: &[u8], location: &str, report: &mut SafetyReport) {
    if bytes.len() > MAX_CONFIG_BYTES {
        report.add(
            "bound_exceeded",
            location,
            &format!("{location} is {} bytes, more than the {MAX_CONFIG_BYTES} analysed", bytes.len()),
            Verdict::Suspicious,
            Some(location),
        );
        return;
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(config) => judge(&config, Some(location), report),
        Err(e) => report.add("malformed", location, &format!("{location}: {e}"), Verdict::Suspicious, Some(location)),
    }
}

/// Judges every object a parsed Keras config references (rules in the module doc).
pub fn judge(config: &Value, location: Option<&str>, report: &mut SafetyReport) {
    match config {
        Value::Object(map) => {
            if let Some(class) = map.get("class_name").and_then(Value::as_str) {
                object(map, class, location, report);
            }
            for v in map.values() {
                judge(v, location, report);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| judge(v, location, report)),
        _ => {}
    }
}

/// One `{"module", "class_name", "config", "registered_name"}` object.
fn object(map: &serde_json::Map<String, Value>, class: &str, location: Option<&str>, report: &mut SafetyReport) {
    if class == "Lambda" || class == "__lambda__" {
        let name = map.get("config").and_then(|c| c.get("name")).and_then(Value::as_str).unwrap_or(class);
        report.add(
            "lambda_layer",
            name,
            "a Keras Lambda layer or function carries Python code that runs when the model is loaded or called",
            Verdict::Dangerous,
            location,
        );
        return;
    }
    let module = map.get("module").and_then(Value::as_str);
    let registered = map.get("registered_name").and_then(Value::as_str).and_then(|r| r.split_once('>'));
    if let (true, Some((package, name))) = (module.is_none_or(is_keras), registered) {
        if !is_keras(package) {
            outside(&format!("{package}.{name}"), location, report);
        }
    }
    let Some(module) = module else { return };
    let name = match (class, map.get("config").and_then(Value::as_str)) {
        ("function", Some(function)) => function,
        _ => class,
    };
    let callable = format!("{module}.{name}");
    if is_keras(module) {
        if let Some((_, why)) = KERAS_DANGEROUS.iter().find(|(n, _)| *n == name) {
            report.add("dangerous_import", &callable, why, Verdict::Dangerous, location);
        }
        return;
    }
    outside(&callable, location, report);
}

/// Rule 3 for `callable` (`module.name`, or `package.name` of a registered custom object
/// `package>name`, which Keras prefers to `module` when one is registered under that name).
fn outside(callable: &str, location: Option<&str>, report: &mut SafetyReport) {
    if !report.imports.iter().any(|i| i == callable) {
        report.imports.push(callable.to_string());
    }
    match classify(callable) {
        ImportClass::Dangerous(why) => report.add(
            "dangerous_import",
            callable,
            &format!("the Keras config names it, and Keras imports and calls it on load (CVE-2025-1550): {why}"),
            Verdict::Dangerous,
            location,
        ),
        ImportClass::Allowed => {}
        ImportClass::Unknown => report.add(
            "unknown_import",
            callable,
            "the Keras config names a callable outside Keras, which Keras imports on load",
            Verdict::Suspicious,
            location,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verdict(config: Value) -> SafetyReport {
        let mut r = SafetyReport::default();
        judge(&config, Some("config.json"), &mut r);
        r.finish()
    }

    fn dense(activation: Value) -> Value {
        json!({"module": "keras", "class_name": "Sequential", "config": {"name": "m", "layers": [
            {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "units": 2,
             "activation": activation,
             "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {},
                                    "registered_name": null}},
             "registered_name": null}]}, "registered_name": null})
    }

    #[test]
    fn callables_outside_keras_are_judged_and_keras_twins_are_safe() {
        let pairs = [
            (
                json!({"module": "os", "class_name": "function", "config": "system", "registered_name": null}),
                json!({"module": "keras.activations", "class_name": "function", "config": "relu", "registered_name": null}),
                "os.system",
            ),
            (
                json!({"module": "posix", "class_name": "function", "config": "system", "registered_name": null}),
                json!({"module": "keras.src.activations.activations", "class_name": "function", "config": "relu",
                       "registered_name": null}),
                "posix.system",
            ),
            (
                json!({"module": "builtins", "class_name": "function", "config": "eval", "registered_name": null}),
                json!("relu"),
                "builtins.eval",
            ),
            (
                json!({"module": "subprocess", "class_name": "Popen", "config": {}, "registered_name": null}),
                json!({"module": "keras.layers", "class_name": "ReLU", "config": {}, "registered_name": null}),
                "subprocess.Popen",
            ),
            (
                json!({"module": "keras.utils", "class_name": "function", "config": "get_file", "registered_name": null}),
                json!({"module": "keras.utils", "class_name": "function", "config": "normalize", "registered_name": null}),
                "keras.utils.get_file",
            ),
            (
                json!({"module": "keras.models", "class_name": "function", "config": "load_model"}),
                json!({"module": "keras.models", "class_name": "Sequential", "config": {}}),
                "keras.models.load_model",
            ),
            (
                json!({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/tmp/x"}}),
                json!({"module": "keras.layers", "class_name": "Dense", "config": {"units": 1}}),
                "keras.layers.TFSMLayer",
            ),
            (
                json!({"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization"}),
                json!({"module": "keras.config", "class_name": "function", "config": "floatx"}),
                "keras.config.enable_unsafe_deserialization",
            ),
        ];
        for (hostile, benign, subject) in pairs {
            let r = verdict(dense(hostile));
            assert_eq!(r.verdict, Verdict::Dangerous, "{subject}: {:?}", r.findings);
            assert!(
                r.findings.iter().any(|f| f.subject == subject && f.kind == "dangerous_import"),
                "{:?}",
                r.findings
            );
            let r = verdict(dense(benign));
            assert_eq!(r.verdict, Verdict::Safe, "{subject} twin: {:?}", r.findings);
            assert!(r.imports.is_empty(), "{:?}", r.imports);
        }
    }

    #[test]
    fn keras_team_packages_are_keras() {
        for module in ["keras_hub.src.models.gemma.gemma_backbone", "keras_nlp.models", "tf_keras.layers"] {
            let r = verdict(dense(
                json!({"module": module, "class_name": "X", "config": {}, "registered_name": "keras_hub>X"}),
            ));
            assert_eq!(r.verdict, Verdict::Safe, "{module}: {:?}", r.findings);
        }
        let r = verdict(dense(json!({"module": "keras_hubx", "class_name": "X", "config": {}})));
        assert_eq!(r.verdict, Verdict::Suspicious, "{:?}", r.findings);
    }

    #[test]
    fn third_party_and_custom_objects_are_suspicious() {
        let r = verdict(dense(
            json!({"module": "my_package.layers", "class_name": "Swish", "config": {}, "registered_name": "my_package>Swish"}),
        ));
        assert_eq!(r.verdict, Verdict::Suspicious, "{:?}", r.findings);
        assert_eq!(r.imports, vec!["my_package.layers.Swish".to_string()]);
        assert_eq!(r.findings.first().map(|f| f.kind.as_str()), Some("unknown_import"));
    }

    #[test]
    fn registered_names_outside_keras_are_judged_too() {
        let r = verdict(dense(
            json!({"module": "keras.layers", "class_name": "ReLU", "config": {}, "registered_name": "my_pkg>Evil"}),
        ));
        assert_eq!(r.verdict, Verdict::Suspicious, "{:?}", r.findings);
        assert_eq!(r.imports, vec!["my_pkg.Evil".to_string()]);
        let r = verdict(dense(
            json!({"module": "keras.layers", "class_name": "ReLU", "config": {}, "registered_name": "os>system"}),
        ));
        assert_eq!(r.verdict, Verdict::Dangerous, "{:?}", r.findings);
        for benign in [json!(null), json!("function"), json!("keras>ReLU"), json!("relu")] {
            let r = verdict(dense(
                json!({"module": "keras.layers", "class_name": "ReLU", "config": {}, "registered_name": benign}),
            ));
            assert_eq!(r.verdict, Verdict::Safe, "{:?}", r.findings);
        }
    }

    #[test]
    fn lambdas_as_layers_and_as_functions_are_dangerous() {
        let r = verdict(dense(json!({"class_name": "__lambda__", "config": {"code": "4wEAAA==", "defaults": null}})));
        assert_eq!(r.verdict, Verdict::Dangerous);
        assert_eq!(r.findings.first().map(|f| f.kind.as_str()), Some("lambda_layer"));
        let r = verdict(
            json!({"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"name": "l"}}]}}),
        );
        assert_eq!(r.findings.first().map(|f| f.subject.as_str()), Some("l"));
    }

    #[test]
    fn oversized_and_broken_configs_are_suspicious() {
        let mut r = SafetyReport::default();
        judge_bytes(b"{\"module\": ", "config.json", &mut r);
        assert_eq!(r.finish().findings.first().map(|f| f.kind.as_str()), Some("malformed"));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let mut r = SafetyReport::default();
        judge_bytes(deep.as_bytes(), "config.json", &mut r);
        assert_eq!(r.finish().verdict, Verdict::Suspicious);
        let mut r = SafetyReport::default();
        judge_bytes(&vec![b' '; MAX_CONFIG_BYTES + 1], "config.json", &mut r);
        assert_eq!(r.finish().findings.first().map(|f| f.kind.as_str()), Some("bound_exceeded"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_judged_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut r = SafetyReport::default();
            judge_bytes(&bytes, "config.json", &mut r);
        }
    }
}

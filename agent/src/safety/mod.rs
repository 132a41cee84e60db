//! Load-time code execution: a safety verdict for every model file, from its bytes alone.
//!
//! Nothing is ever loaded or executed. Per format:
//! 1. formats that cannot carry code (safetensors, TFLite, Core ML, OpenVINO IR) are `safe`
//!    once their header validated (identification already did that); GGUF is too unless a
//!    Jinja2 chat template reaches Python ([`chat_template`], CVE-2024-34359);
//! 2. ONNX is `safe` unless a tensor's external data points outside the model's directory (an
//!    absolute path or `..`);
//! 3. pickles — plain, joblib (plain or compressed), legacy PyTorch (every pickle in sequence),
//!    zip PyTorch (every pickle member, whatever the root folder, damaged members reported and
//!    skipped), NumPy object arrays (`.npy`, `.npz` members) — go through the pickle machine
//!    ([`crate::formats::pickle`]); every import and every call is judged by [`policy`], nested
//!    pickles and concatenated streams included;
//! 4. Keras: `Lambda` layers and callables outside Keras (`os.system` as an activation,
//!    CVE-2025-1550) in an HDF5 `model_config` or a `.keras` `config.json` ([`keras`]),
//!    `Lambda` layers in a SavedModel's `keras_metadata.pb`; SavedModel graphs are searched for
//!    ops that run Python or touch files ([`DANGEROUS_TF_OPS`]);
//! 5. archives: every model inside assessed as its format and located by member path, and the
//!    code bundles carry by design (TorchServe, NeMo, skops, MLflow) judged with [`pycode`].
//!
//! The verdict is the worst severity among the findings; no finding means `safe`. A pickle that
//! cannot be parsed to its end is never `safe`. Decompression and member reads stop at
//! [`MAX_DECOMPRESSED`]; going past it is itself a finding. Each finding carries the MITRE
//! ATLAS technique and the OWASP Top 10 for LLM Applications (2025) entry it maps to.

mod archive;
pub mod chat_template;
pub mod keras;
pub mod policy;
pub mod pycode;
pub mod remote_code;
mod scan;

use serde::{Deserialize, Serialize};

pub use archive::{assess_archive_within, assess_python_module, MLFLOW_CODE};
pub use scan::{assess, assess_with, Siblings};

/// Largest amount of data decompressed or read from one container member for analysis.
pub const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// SavedModel ops that run Python or read and write files (ModelScan's `ReadFile`/`WriteFile`,
/// TensorFlow's `py_func` family).
pub const DANGEROUS_TF_OPS: &[&str] =
    &["ReadFile", "WriteFile", "PyFunc", "PyFuncStateless", "EagerPyFunc", "MatchingFiles", "ImmutableConst"];

/// How bad loading the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not assessed.
    Unknown,
    /// Loading cannot run code.
    Safe,
    /// Something a model does not need, or content that could not be fully analysed.
    Suspicious,
    /// A known way to run code, touch files or the network when the file is loaded.
    Dangerous,
}

impl Verdict {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Safe => "safe",
            Self::Suspicious => "suspicious",
            Self::Dangerous => "dangerous",
        }
    }
}

/// MITRE ATLAS technique for running code through a model artifact (User Execution: Unsafe ML
/// Artifacts).
pub const ATLAS_UNSAFE_ARTIFACT: &str = "AML.T0011.000";
/// MITRE ATLAS technique for a compromised supply chain (ML Supply Chain Compromise).
pub const ATLAS_SUPPLY_CHAIN: &str = "AML.T0010";
/// OWASP Top 10 for LLM Applications 2025: supply chain.
pub const OWASP_SUPPLY_CHAIN: &str = "LLM03:2025";
/// OWASP Top 10 for LLM Applications 2025: data and model poisoning (tampered artifacts).
pub const OWASP_POISONING: &str = "LLM04:2025";

/// One reason for the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What was found: `dangerous_import`, `dangerous_call`, `unknown_import`,
    /// `unresolved_import`, `nested_pickle`, `malformed`, `bound_exceeded`, `damaged_member`,
    /// `lambda_layer`, `tf_op`, `external_data`, `custom_loader`, `remote_code` (Hugging Face
    /// `auto_map` code, [`remote_code`]), `unknown_format` and `unparseable` (files named like
    /// a model that could not be judged), and of archives and bundles `hidden_member`,
    /// `header_mismatch`, `bundled_code`, `dangerous_code`, `config_target`, `untrusted_type`, and
    /// `template_injection` (GGUF chat templates,
    /// [`chat_template`]).
    pub kind: String,
    /// The import, op, layer or path concerned.
    pub subject: String,
    /// Why it matters.
    pub detail: String,
    /// How bad it is.
    pub severity: Verdict,
    /// Where in the file (container member, stream number), when it is not the file itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// MITRE ATLAS technique.
    pub atlas: String,
    /// OWASP Top 10 for LLM Applications (2025) entry.
    pub owasp: String,
}

impl Finding {
    /// A finding of `kind`, with the ATLAS technique and OWASP entry that kind maps to.
    pub fn new(kind: &str, subject: &str, detail: &str, severity: Verdict, location: Option<&str>) -> Self {
        let (atlas, owasp) = match kind {
            "dangerous_import" | "dangerous_call" | "nested_pickle" | "lambda_layer" | "tf_op" | "remote_code"
            | "template_injection" | "bundled_code" | "dangerous_code" | "config_target" | "untrusted_type" => {
                (ATLAS_UNSAFE_ARTIFACT, OWASP_SUPPLY_CHAIN)
            }
            "malformed" | "bound_exceeded" | "damaged_member" | "unparseable" | "hidden_member" => {
                (ATLAS_SUPPLY_CHAIN, OWASP_POISONING)
            }
            _ => (ATLAS_SUPPLY_CHAIN, OWASP_SUPPLY_CHAIN),
        };
        Self {
            kind: kind.into(),
            subject: subject.into(),
            detail: detail.into(),
            severity,
            location: location.map(str::to_string),
            atlas: atlas.into(),
            owasp: owasp.into(),
        }
    }
}

/// The `safety` object of a model entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyReport {
    /// `safe`, `suspicious`, `dangerous` (or `unknown` when not assessed).
    pub verdict: Verdict,
    /// The reasons, worst first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// Every callable the file's pickles import (`module.name`), and every callable outside
    /// Keras a Keras config names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// Every callable they call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
}

impl Default for SafetyReport {
    fn default() -> Self {
        Self { verdict: Verdict::Unknown, findings: Vec::new(), imports: Vec::new(), calls: Vec::new() }
    }
}

impl SafetyReport {
    /// A report with no finding: safe.
    pub fn safe() -> Self {
        Self { verdict: Verdict::Safe, ..Self::default() }
    }

    /// Adds a finding (deduplicated by kind, subject and location).
    pub fn add(&mut self, kind: &str, subject: &str, detail: &str, severity: Verdict, location: Option<&str>) {
        if self.findings.iter().any(|f| f.kind == kind && f.subject == subject && f.location.as_deref() == location) {
            return;
        }
        self.findings.push(Finding::new(kind, subject, detail, severity, location));
    }

    /// Sets the verdict from the findings and orders them worst first.
    pub fn finish(mut self) -> Self {
        self.findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.kind.cmp(&b.kind)));
        self.verdict = self.findings.first().map_or(Verdict::Safe, |f| f.severity.max(Verdict::Safe));
        self
    }

    /// Merges the report of a file inside this model (a directory model's member) into this
    /// one; the member's findings are located under `member`.
    pub fn merge_at(&mut self, other: SafetyReport, member: &str) {
        for f in other.findings {
            let loc = match &f.location {
                Some(l) => format!("{member}: {l}"),
                None => member.to_string(),
            };
            self.add(&f.kind, &f.subject, &f.detail, f.severity, Some(&loc));
        }
        for i in other.imports {
            if !self.imports.contains(&i) {
                self.imports.push(i);
            }
        }
        for c in other.calls {
            if !self.calls.contains(&c) {
                self.calls.push(c);
            }
        }
    }
}

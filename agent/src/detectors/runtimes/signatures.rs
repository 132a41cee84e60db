//! The server and library signatures of `agent/data/servers.toml`, compiled once.

use std::sync::LazyLock;

use regex::RegexSet;
use serde::Deserialize;

/// The data file, embedded so the agent is one binary.
const SERVERS_TOML: &str = include_str!("../../../data/servers.toml");

/// An ML library recognised in a memory map.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Library {
    /// Name reported in `ml_libraries`.
    pub name: String,
    /// Substrings of a mapped path that mean this library.
    pub patterns: Vec<String>,
}

/// A GET that identifies a server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    /// Path asked (`/api/version`).
    pub path: String,
    /// Where the version is in the JSON answer ("" = the whole body).
    #[serde(default)]
    pub version: Option<String>,
    /// Where the model names are in the JSON answer.
    #[serde(default)]
    pub models: Option<String>,
}

/// A known server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The `kind` reported.
    pub kind: String,
    /// Executable base names.
    #[serde(default)]
    pub exe: Vec<String>,
    /// Regular expressions over the command line.
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// The documented default port.
    #[serde(default)]
    pub default_port: Option<u16>,
    /// The documented default bind (`loopback`, `all_interfaces`).
    #[serde(default)]
    pub default_bind: Option<String>,
    /// Authentication when nothing is visible: `none`, `token`, `password`, `unknown`.
    pub auth_default: String,
    /// Options that turn authentication on when given a value.
    #[serde(default)]
    pub auth_flags: Vec<String>,
    /// Variables that turn authentication on when set to a value.
    #[serde(default)]
    pub auth_env: Vec<String>,
    /// `NAME=value` pairs that turn authentication off.
    #[serde(default)]
    pub auth_off: Vec<String>,
    /// `NAME=value` pairs that turn authentication on.
    #[serde(default)]
    pub auth_on: Vec<String>,
    /// Identify requests.
    #[serde(default)]
    pub identify: Vec<IdentifyRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    environment: Vec<String>,
    library: Vec<Library>,
    server: Vec<Server>,
}

/// The compiled signatures.
#[derive(Debug)]
pub struct Signatures {
    /// Environment variable names (or `PREFIX*`) reported for ML processes.
    pub environment: Vec<String>,
    /// Libraries, in file order.
    pub libraries: Vec<Library>,
    /// Servers, in file order (first match wins).
    pub servers: Vec<Server>,
    /// Every server's command-line patterns, in one set.
    cmdline_set: RegexSet,
    /// For each pattern of `cmdline_set`, the index of its server.
    cmdline_owner: Vec<usize>,
}

/// Errors in the data file (a build defect, reported rather than panicking).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignatureError {
    /// The TOML does not parse.
    #[error("agent/data/servers.toml: {0}")]
    Parse(String),
    /// A pattern does not compile.
    #[error("agent/data/servers.toml: bad cmdline pattern: {0}")]
    Pattern(String),
}

impl Signatures {
    /// Parses and compiles a signature file.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let file: File = toml::from_str(text).map_err(|e| SignatureError::Parse(e.to_string()))?;
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        for (i, s) in file.server.iter().enumerate() {
            for p in &s.cmdline {
                patterns.push(p.as_str());
                owner.push(i);
            }
        }
        let cmdline_set = RegexSet::new(patterns).map_err(|e| SignatureError::Pattern(e.to_string()))?;
        Ok(Self {
            environment: file.environment,
            libraries: file.library,
            servers: file.server,
            cmdline_set,
            cmdline_owner: owner,
        })
    }

    /// The embedded signatures.
    pub fn embedded() -> Result<&'static Self, SignatureError> {
        static SIGNATURES: LazyLock<Result<Signatures, SignatureError>> =
            LazyLock::new(|| Signatures::parse(SERVERS_TOML));
        SIGNATURES.as_ref().map_err(Clone::clone)
    }

    /// The server a process is, from its executable and command line (see the data file).
    pub fn classify(&self, exe: Option<&str>, cmdline: &[String]) -> Option<&Server> {
        let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let mut names: Vec<String> = exe.map(base).into_iter().collect();
        if let Some(arg0) = cmdline.first() {
            names.push(base(arg0));
        }
        let joined = cmdline.join(" ");
        let by_cmdline = self.cmdline_set.matches(&joined).into_iter().filter_map(|i| self.cmdline_owner.get(i)).min();
        let by_exe = self.servers.iter().position(|s| s.exe.iter().any(|e| names.iter().any(|n| n == e)));
        let best = match (by_exe, by_cmdline.copied()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        best.and_then(|i| self.servers.get(i))
    }

    /// Whether the variable `name` is reported for ML processes.
    pub fn reports_variable(&self, name: &str) -> bool {
        self.environment.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == e,
        })
    }

    /// ML libraries among mapped paths, sorted and distinct.
    pub fn libraries_in<'a>(&self, mapped: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut found = vec![false; self.libraries.len()];
        for path in mapped {
            for (i, lib) in self.libraries.iter().enumerate() {
                if let Some(slot) = found.get_mut(i) {
                    if !*slot && lib.patterns.iter().any(|p| path.contains(p.as_str())) {
                        *slot = true;
                    }
                }
            }
        }
        let mut out: Vec<String> =
            self.libraries.iter().zip(found).filter(|(_, f)| *f).map(|(l, _)| l.name.clone()).collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn embedded_file_parses_and_names_every_server_of_the_issue() {
        let s = Signatures::embedded().unwrap();
        let kinds: Vec<&str> = s.servers.iter().map(|s| s.kind.as_str()).collect();
        for k in [
            "ollama",
            "vllm",
            "llama.cpp-server",
            "lm-studio",
            "localai",
            "text-generation-inference",
            "triton",
            "torchserve",
            "tensorflow-serving",
            "ray",
            "bentoml",
            "mlserver",
            "mlflow",
            "jupyter-server",
            "jupyter-kernel",
            "jupyterhub",
            "comfyui",
            "automatic1111",
            "text-generation-webui",
            "open-webui",
            "gpt4all",
            "sglang",
            "xinference",
            "text-embeddings-inference",
        ] {
            assert!(kinds.contains(&k), "{k} missing");
        }
    }

    #[test]
    fn classification_by_exe_and_cmdline() {
        let s = Signatures::embedded().unwrap();
        let kind = |exe: Option<&str>, cmd: &str| s.classify(exe, &v(cmd)).map(|s| s.kind.clone());
        assert_eq!(kind(Some("/usr/local/bin/ollama"), "/usr/local/bin/ollama serve").as_deref(), Some("ollama"));
        assert_eq!(
            kind(Some("/usr/bin/python3.11"), "python -m vllm.entrypoints.openai.api_server --model m").as_deref(),
            Some("vllm")
        );
        assert_eq!(
            kind(Some("/v/bin/python3"), "/v/bin/python3 /v/bin/jupyter-lab --no-browser").as_deref(),
            Some("jupyter-server")
        );
        assert_eq!(
            kind(Some("/v/bin/python3"), "/v/bin/python -m ipykernel_launcher -f /r/kernel-1.json").as_deref(),
            Some("jupyter-kernel")
        );
        assert_eq!(
            kind(Some("/v/bin/python3"), "/v/bin/python /v/bin/jupyterhub-singleuser").as_deref(),
            Some("jupyter-server")
        );
        assert_eq!(
            kind(Some("/usr/bin/python3"), "python3 /home/u/ComfyUI/main.py --listen").as_deref(),
            Some("comfyui")
        );
        assert_eq!(kind(Some("/usr/bin/python3"), "python3 serve.py --port 8000"), None);
        assert_eq!(kind(Some("/usr/bin/bash"), "bash"), None);
    }

    #[test]
    fn libraries_from_mapped_paths() {
        let s = Signatures::embedded().unwrap();
        let maps = [
            "/v/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so",
            "/v/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.9",
            "/v/lib/python3.11/site-packages/onnxruntime/capi/onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ];
        assert_eq!(s.libraries_in(maps.iter().copied()), vec!["cudnn", "libtorch", "onnxruntime"]);
    }
}

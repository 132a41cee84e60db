//! The watchlist: which package and executable names are AI frameworks, and their category;
//! and the PEP 503 normalisation of names ([`normalize_name`]), by which both the watchlist and
//! the installed packages are keyed.
//!
//! The names are data, in `agent/data/frameworks.toml` (its header documents the format),
//! embedded in the binary and parsed once.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::report::inventory::Ecosystem;

/// The embedded watchlist.
const SOURCE: &str = include_str!("../../../data/frameworks.toml");

/// PEP 503 normalisation: lowercase, and every run of `-`, `_`, `.` becomes one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.extend(c.to_lowercase());
            in_separator = false;
        }
    }
    out
}

/// `frameworks.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchlistFile {
    /// Category → Python distribution names and patterns.
    pypi: BTreeMap<String, Vec<String>>,
    /// Category → conda names that differ from the pypi ones.
    conda: BTreeMap<String, Vec<String>>,
    /// Conda package → the Python distribution it installs.
    conda_provides: BTreeMap<String, String>,
    /// Category → npm names and patterns.
    npm: BTreeMap<String, Vec<String>>,
    /// Executable name → its category and providing distribution.
    native: BTreeMap<String, NativeSpec>,
}

/// One `[native]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeSpec {
    /// Category reported.
    category: String,
    /// The Python distribution that installs it as a console script.
    #[serde(default)]
    pypi: Option<String>,
}

/// The names of one ecosystem with their categories.
#[derive(Debug, Default)]
struct NameList {
    /// Exact names.
    exact: HashMap<String, String>,
    /// Prefix patterns (`name*` without the star), longest first.
    prefixes: Vec<(String, String)>,
}

impl NameList {
    fn new(by_category: &BTreeMap<String, Vec<String>>, normalize: fn(&str) -> String) -> Self {
        let mut list = Self::default();
        for (category, names) in by_category {
            for name in names {
                match name.strip_suffix('*') {
                    Some(prefix) => list.prefixes.push((normalize(prefix), category.clone())),
                    None => {
                        list.exact.insert(normalize(name), category.clone());
                    }
                }
            }
        }
        list.prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        list
    }

    fn category(&self, name: &str) -> Option<&str> {
        self.exact
            .get(name)
            .or_else(|| self.prefixes.iter().find(|(p, _)| name.starts_with(p.as_str())).map(|(_, c)| c))
            .map(String::as_str)
    }
}

/// A native executable on the watchlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NativeTool {
    /// File name looked for.
    pub name: String,
    /// Category reported.
    pub category: String,
    /// Normalised name of the Python distribution that installs it as a console script.
    pub pypi: Option<String>,
}

/// The parsed watchlist.
#[derive(Debug, Default)]
pub(super) struct Watchlist {
    /// Python distributions.
    pypi: NameList,
    /// Conda names that differ from pypi ones.
    conda: NameList,
    /// Conda package → Python distribution (both normalised).
    conda_provides: BTreeMap<String, String>,
    /// npm packages.
    npm: NameList,
    /// Executables, sorted by name.
    native: Vec<NativeTool>,
}

impl Watchlist {
    /// Parses a watchlist in the format of `frameworks.toml`.
    pub(super) fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let file: WatchlistFile = toml::from_str(text)?;
        let verbatim = |s: &str| s.to_owned();
        Ok(Self {
            pypi: NameList::new(&file.pypi, normalize_name),
            conda: NameList::new(&file.conda, normalize_name),
            conda_provides: file
                .conda_provides
                .iter()
                .map(|(conda, pypi)| (normalize_name(conda), normalize_name(pypi)))
                .collect(),
            npm: NameList::new(&file.npm, verbatim),
            native: file
                .native
                .into_iter()
                .map(|(name, spec)| NativeTool {
                    name,
                    category: spec.category,
                    pypi: spec.pypi.as_deref().map(normalize_name),
                })
                .collect(),
        })
    }

    /// The embedded watchlist, parsed on first use (empty, with an error logged, if it does
    /// not parse: a unit test keeps that from shipping).
    pub(super) fn get() -> &'static Self {
        static LIST: OnceLock<Watchlist> = OnceLock::new();
        LIST.get_or_init(|| {
            Self::parse(SOURCE).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the embedded frameworks watchlist does not parse");
                Self::default()
            })
        })
    }

    /// The category of the package `name` (normalised for pypi and conda) of `ecosystem`.
    pub(super) fn category(&self, ecosystem: Ecosystem, name: &str) -> Option<&str> {
        match ecosystem {
            Ecosystem::Pypi => self.pypi.category(name),
            Ecosystem::Conda => self.conda.category(name).or_else(|| self.pypi.category(name)),
            Ecosystem::Npm => self.npm.category(name),
            Ecosystem::Native => self.native.iter().find(|t| t.name == name).map(|t| t.category.as_str()),
        }
    }

    /// The Python distribution the conda package `name` installs, when named differently.
    pub(super) fn conda_provides(&self, name: &str) -> Option<&str> {
        self.conda_provides.get(name).map(String::as_str)
    }

    /// The executables looked for.
    pub(super) fn native(&self) -> &[NativeTool] {
        &self.native
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_per_pep_503() {
        assert_eq!(normalize_name("Flash_Attn"), "flash-attn");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("a-_.b"), "a-b");
        assert_eq!(normalize_name(" Torch "), "torch");
    }

    #[test]
    fn embedded_watchlist_parses_and_names_the_required_packages() {
        let w = Watchlist::parse(SOURCE).unwrap();
        let pypi = [
            ("torch", "core"),
            ("tensorflow-cpu", "core"),
            ("tensorflow-gpu", "core"),
            ("jaxlib", "core"),
            ("huggingface-hub", "core"),
            ("flash-attn", "core"),
            ("onnxruntime-gpu", "core"),
            ("scikit-learn", "core"),
            ("paddlepaddle", "core"),
            ("mxnet", "core"),
            ("vllm", "serving"),
            ("llama-cpp-python", "serving"),
            ("text-generation", "serving"),
            ("auto-gptq", "serving"),
            ("ollama", "serving"),
            ("langchain-community", "app"),
            ("langgraph", "app"),
            ("llama-index-core", "app"),
            ("google-genai", "app"),
            ("autogen-agentchat", "app"),
            ("semantic-kernel", "app"),
            ("mcp", "app"),
            ("fastmcp", "app"),
            ("faiss-cpu", "vector"),
            ("pinecone-client", "vector"),
            ("lancedb", "vector"),
            ("comet-ml", "mlops"),
            ("dvc", "mlops"),
            ("jupyterlab", "notebook"),
            ("jupyter-server", "notebook"),
            ("ipykernel", "notebook"),
            ("nvidia-cublas-cu12", "gpu"),
            ("cupy-cuda12x", "gpu"),
            ("pycuda", "gpu"),
        ];
        for (name, category) in pypi {
            assert_eq!(w.category(Ecosystem::Pypi, name), Some(category), "pypi {name}");
        }
        assert_eq!(w.category(Ecosystem::Pypi, "requests"), None);
        assert_eq!(w.category(Ecosystem::Pypi, "faiss"), None);
        assert_eq!(w.category(Ecosystem::Conda, "pytorch"), Some("core"));
        assert_eq!(w.category(Ecosystem::Conda, "transformers"), Some("core"));
        assert_eq!(w.category(Ecosystem::Conda, "openssl"), None);
        assert_eq!(w.conda_provides("pytorch"), Some("torch"));

        let npm = [
            "openai",
            "@anthropic-ai/sdk",
            "langchain",
            "@langchain/openai",
            "ollama",
            "ai",
            "@ai-sdk/anthropic",
            "@huggingface/inference",
            "@huggingface/transformers",
            "@xenova/transformers",
            "@google/generative-ai",
            "@google/genai",
            "@mistralai/mistralai",
            "cohere-ai",
            "groq-sdk",
            "llamaindex",
            "onnxruntime-node",
            "onnxruntime-web",
            "@tensorflow/tfjs-node",
            "node-llama-cpp",
            "@modelcontextprotocol/sdk",
            "@pinecone-database/pinecone",
            "chromadb",
        ];
        for name in npm {
            assert!(w.category(Ecosystem::Npm, name).is_some(), "npm {name}");
        }
        assert_eq!(w.category(Ecosystem::Npm, "left-pad"), None);
        assert_eq!(w.category(Ecosystem::Npm, "aimless"), None);

        let native = [
            "ollama",
            "llama-server",
            "llama-cli",
            "llama-cpp-server",
            "tritonserver",
            "vllm",
            "text-generation-launcher",
            "text-generation-router",
            "text-embeddings-router",
            "local-ai",
            "tensorflow_model_server",
            "torchserve",
            "lms",
            "llmster",
            "mlflow",
            "ray",
            "bentoml",
            "mlserver",
            "jupyter",
            "jupyter-lab",
            "jupyter-notebook",
            "jupyter-server",
            "jupyterhub",
            "xinference",
            "xinference-local",
            "nvidia-smi",
            "nvcc",
            "open-webui",
        ];
        for name in native {
            assert!(w.category(Ecosystem::Native, name).is_some(), "native {name}");
        }
        let vllm = w.native().iter().find(|t| t.name == "vllm").unwrap();
        assert_eq!(vllm.pypi.as_deref(), Some("vllm"));
        let jl = w.native().iter().find(|t| t.name == "jupyter-lab").unwrap();
        assert_eq!(jl.pypi.as_deref(), Some("jupyterlab"));
        assert!(w.native().iter().find(|t| t.name == "ollama").unwrap().pypi.is_none());
    }

    #[test]
    fn exact_names_win_then_the_longest_pattern() {
        let w = Watchlist::parse(
            "[pypi]\na = [\"x*\", \"xy-z\"]\nb = [\"xy*\"]\n[conda]\n[conda_provides]\n[npm]\n[native]\n",
        )
        .unwrap();
        assert_eq!(w.category(Ecosystem::Pypi, "xy-z"), Some("a"));
        assert_eq!(w.category(Ecosystem::Pypi, "xyq"), Some("b"));
        assert_eq!(w.category(Ecosystem::Pypi, "xq"), Some("a"));
        assert!(Watchlist::parse("[pypi]\nunknown_section = 1\n").is_err());
    }
}

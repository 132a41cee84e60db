//! The host-inventory entries of the scan document: `frameworks`, `environments`, `gpus`,
//! `gpu_drivers`, `runtimes` and `tooling` (documented in `docs/scan-json.md`).
//!
//! Like [`crate::report`], a public interface: add fields, never rename or repurpose them.
//! Nothing here ever holds a secret value: command lines and environments are redacted by
//! [`crate::redact`] before they reach these types, and API keys are reported by name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Package ecosystem of a framework entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ecosystem {
    /// A Python distribution (`*.dist-info`, `*.egg-info`).
    Pypi,
    /// A conda package (`conda-meta/*.json`).
    Conda,
    /// A Node package named in a `package.json`.
    Npm,
    /// A native executable (on `PATH` or in a known location).
    Native,
}

impl Ecosystem {
    /// The name the document gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pypi => "pypi",
            Self::Conda => "conda",
            Self::Npm => "npm",
            Self::Native => "native",
        }
    }
}

/// What kind of environment holds a framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvironmentKind {
    /// The system interpreter's site or dist-packages (`/usr`, `/usr/local`), or system binaries.
    System,
    /// A virtualenv or venv (has `pyvenv.cfg`); pipx environments are venvs.
    Venv,
    /// A conda environment (has `conda-meta/`).
    Conda,
    /// A pyenv-installed interpreter (`~/.pyenv/versions/X`).
    Pyenv,
    /// A user site (`~/.local/lib/pythonX.Y/site-packages`) or a user's binaries.
    User,
    /// An interpreter found only through a Jupyter kernelspec.
    JupyterKernel,
    /// A Node project (a directory with `package.json`).
    NodeProject,
    /// A Python project (a directory with `pyproject.toml`, `Pipfile`, `requirements*.txt`,
    /// `environment.yml`, `uv.lock` or `poetry.lock`): what it declares, not what is installed.
    PythonProject,
}

/// Where a framework is installed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EnvironmentRef {
    /// The environment's root (prefix, project directory, or the directory of a native binary).
    pub path: String,
    /// What it is.
    pub kind: EnvironmentKind,
}

/// One AI-relevant package or native runtime.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FrameworkEntry {
    /// `pypi`, `conda`, `npm` or `native`.
    pub ecosystem: Ecosystem,
    /// Normalised name (PEP 503 for Python; as published for npm; the executable for native).
    pub name: String,
    /// Installed version; for npm the installed version when `node_modules` has it, else the
    /// range `package.json` asks for; `None` when nothing says it without executing.
    pub version: Option<String>,
    /// Where it is installed.
    pub environment: EnvironmentRef,
    /// The watchlist category (`core`, `serving`, `app`, `gpu`, …); `None` for packages listed
    /// only because every package was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A GPU build: a `+cuXXX`/`+rocmX` local version, an `nvidia-*` wheel, or a `-gpu`/`-cuda` package.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpu_build: bool,
    /// Executable path, for `native` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One environment examined for frameworks, with its package counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentEntry {
    /// Root of the environment.
    pub path: String,
    /// What it is.
    pub kind: EnvironmentKind,
    /// Python version (`pyvenv.cfg`, `lib/pythonX.Y`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    /// The interpreter, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Every package installed (or, for a Node project, every dependency declared).
    pub packages: u64,
    /// Packages on the watchlist.
    pub ai_packages: u64,
    /// Names of the Jupyter kernelspecs that run this environment's interpreter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernels: Vec<String>,
}

/// One NVIDIA GPU, through NVML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// NVML index.
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Device UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// PCI bus id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<String>,
    /// Total memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    /// Used memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<u64>,
    /// Compute processes on this GPU.
    pub processes: Vec<GpuProcess>,
}

/// A compute process on a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// Process id (in the agent's PID namespace when NVML can tell).
    pub pid: u32,
    /// GPU memory it uses, when the driver says.
    pub used_memory_bytes: Option<u64>,
}

/// Driver and toolkit facts, and why `gpus` may be empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuDrivers {
    /// Whether NVML was loaded and initialised.
    pub nvml_loaded: bool,
    /// Why there are no GPU devices, stated once (library missing, driver not loaded, no device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Driver version from NVML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// CUDA version the driver supports (NVML), as `MAJOR.MINOR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_driver_version: Option<String>,
    /// The first line of `/proc/driver/nvidia/version`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_module: Option<String>,
    /// CUDA toolkits installed on disk.
    pub cuda_toolkits: Vec<CudaToolkit>,
}

/// A CUDA toolkit found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaToolkit {
    /// Its directory (`/usr/local/cuda-12.4`).
    pub path: String,
    /// Its version (`version.json`, `version.txt`), when readable.
    pub version: Option<String>,
}

/// How a listening socket is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exposure {
    /// Bound to a loopback address: reachable from this host only.
    Loopback,
    /// Bound to the wildcard address (`0.0.0.0`, `::`): reachable on every interface.
    AllInterfaces,
    /// Bound to one non-loopback address.
    Specific,
}

/// A listening TCP socket owned by a process.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Listener {
    /// Local address as bound (`0.0.0.0`, `::`, `127.0.0.1`, `10.1.2.3`).
    pub address: String,
    /// Port.
    pub port: u16,
    /// How far it reaches.
    pub exposure: Exposure,
}

/// A model file a process holds open or has mapped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpenModel {
    /// Path as the process sees it (from the agent's mount namespace when the process shares it).
    pub path: String,
    /// SHA-256 of the model, when this scan (or the hash cache) knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Format identified from content, when the file could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `fd` (an open descriptor), `mmap` (a mapping), or both.
    pub via: Vec<String>,
}

/// The container a process runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// `docker`, `containerd`, `cri-o`, `podman`, `kubepods`, `lxc`.
    pub runtime: String,
    /// Container id (from the cgroup path).
    pub id: String,
}

/// The authentication setting of a server, as visible in its command line or environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSetting {
    /// `configured` (a key/token/password flag or variable is set), `disabled` (explicitly
    /// turned off), or `default` (nothing visible: the server's default applies).
    pub state: String,
    /// The server's default when nothing is set: `none`, `token`, `password`, `unknown`.
    pub server_default: String,
    /// Names of the flags and variables that decided `state` (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// What a server said on its documented identify endpoint (loopback only, opt-in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// The URL asked.
    pub url: String,
    /// HTTP status, or `None` when the request failed.
    pub status: Option<u16>,
    /// Version the server reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Models the server reported as available or loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One running inference server or ML process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeEntry {
    /// Process id (in the agent's PID namespace).
    pub pid: u32,
    /// Parent process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// The server it is (`ollama`, `vllm`, `jupyter-server`, …) or `ml-process`.
    pub kind: String,
    /// Executable path, when readable.
    pub exe: Option<String>,
    /// Command line with secret values replaced by `<redacted>`.
    pub cmdline: Vec<String>,
    /// User name (or uid when it has no name).
    pub user: Option<String>,
    /// Real user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Start time (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// ML libraries mapped into the process (`libtorch`, `cuda`, `onnxruntime`, …), sorted.
    pub ml_libraries: Vec<String>,
    /// Model files it has open or mapped.
    pub open_models: Vec<OpenModel>,
    /// TCP sockets it listens on.
    pub listening: Vec<Listener>,
    /// GPU memory it holds (NVML), when known.
    pub gpu_memory_bytes: Option<u64>,
    /// Its container, when it runs in one.
    pub container: Option<ContainerRef>,
    /// Authentication setting, for classified servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSetting>,
    /// ML-relevant environment variables (`CUDA_VISIBLE_DEVICES`, `OLLAMA_HOST`, …), secret
    /// values redacted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The answer of its identify endpoint, when identification is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ServerIdentity>,
    /// Parts of `/proc/<pid>` the agent was not allowed to read (`exe`, `maps`, `fd`,
    /// `environ`): what is reported from them is incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// What a security team should look at (`unauthenticated server on all interfaces`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
}

/// A process that could host ML work (it runs an interpreter) but whose memory maps the agent
/// was not allowed to read, so whether it does cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictedProcess {
    /// Process id.
    pub pid: u32,
    /// User name (or uid).
    pub user: Option<String>,
    /// Command line (world-readable), secret values redacted.
    pub cmdline: Vec<String>,
    /// Parts of `/proc/<pid>` that could not be read (`exe`, `maps`, `fd`, `environ`).
    pub unreadable: Vec<String>,
}

/// One MCP server declared in a client configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServer {
    /// Its name in the configuration.
    pub name: String,
    /// `stdio`, `http`, `sse`, or the configuration's own word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// The command it starts (stdio servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments, secret values redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Its URL (remote servers), credentials and secret query values redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Names of the environment variables it is given (never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Names of the HTTP headers it is given (never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

/// What a tooling entry found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolingDetail {
    /// An MCP client configuration and the servers it declares.
    McpConfig {
        /// The client that reads it: `claude-desktop`, `claude-code`, `cursor`, `vscode`,
        /// `windsurf`, `cline` (and Roo), `continue`, `zed`, `codex`, `gemini`, `goose`,
        /// `lmstudio`; for project files `claude-code-project`, `cursor-project`,
        /// `vscode-project`, `windsurf-project`, `roo-project` or `<dir>-project`.
        client: String,
        /// Servers declared.
        servers: Vec<McpServer>,
    },
    /// An AI API key present (by variable name only; the value is never read into the report).
    ApiKey {
        /// Variable name (`OPENAI_API_KEY`).
        variable: String,
        /// Provider the name belongs to (`openai`, `anthropic`, …), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
        /// `dotenv`, `shell_profile`, `process_environment`, `mcp_config`.
        found_in: String,
        /// The process whose environment holds it (`found_in` = `process_environment`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
}

/// One piece of AI tooling configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolingEntry {
    /// The file (or `/proc/<pid>/environ`) it was found in.
    pub path: String,
    /// What was found; its `kind` field is `mcp_config` or `api_key`.
    #[serde(flatten)]
    pub detail: ToolingDetail,
}

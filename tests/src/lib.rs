//! Helpers for the end-to-end tests: locate the built binaries and the committed fixtures.
//!
//! # Layout
//! - this file: [`agent_bin`], [`fleet_sim_bin`], [`fixtures_dir`], [`run_scan_json`], [`copy_tree`],
//!   [`model_facts`].
//! - [`fleet`]: a collector process and agent configurations on loopback, the HTTP API read
//!   back.
//! - [`fleet_sim`]: the fleet simulator behind the `aiscout-fleet-sim` binary: many agents
//!   speaking the real protocol over mutual TLS, and a check of the store.
//! - [`proxy`]: a TCP proxy a test cuts and restores (a database that goes away).
//! - `tests/e2e.rs`: the test binary; it `mod`s one file per area.

// Test helpers fail the test by panicking, with the reason.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod fleet;
pub mod fleet_sim;
pub mod proxy;
pub mod release;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The committed fixtures (`tests/fixtures`, written by `scripts/make-fixtures.py`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The `aiscout-agent` binary of the profile these tests were built with. `scripts/test.sh`
/// builds the binaries before running the tests.
pub fn agent_bin() -> PathBuf {
    workspace_bin("aiscout-agent")
}

/// The `aiscout-collector` binary of the profile these tests were built with.
pub fn collector_bin() -> PathBuf {
    workspace_bin("aiscout-collector")
}

/// The second agent build the self-update tests update to: the same sources stating 9.9.9,
/// stripped, made by `scripts/build-agent-v2.sh` (which `scripts/test.sh` runs first).
pub fn agent_v2_bin() -> PathBuf {
    let bin = agent_bin().parent().map(|d| d.join("update-test/aiscout-agent-9.9.9")).unwrap_or_default();
    assert!(bin.is_file(), "{} is missing: run scripts/build-agent-v2.sh (scripts/test.sh does)", bin.display());
    bin
}

/// The `aiscout-fleet-sim` binary (this package's) of the profile these tests were built with.
pub fn fleet_sim_bin() -> PathBuf {
    workspace_bin("aiscout-fleet-sim")
}

fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary>
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build --workspace --bins, as scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Runs `aiscout-agent scan --json` over `roots` with its cache in `state_dir` and returns
/// the parsed document. Panics with stderr when the command fails.
pub fn run_scan_json(roots: &[&Path], state_dir: &Path, extra: &[&str]) -> serde_json::Value {
    // Model tests ask for models only unless they choose sections themselves.
    let only: &[&str] = if extra.contains(&"--only") { &[] } else { &["--only", "models"] };
    let out = Command::new(agent_bin())
        .arg("scan")
        .arg("--json")
        .arg("--state-dir")
        .arg(state_dir)
        .args(only)
        .args(extra)
        .args(roots)
        .output()
        .unwrap_or_else(|e| panic!("cannot run aiscout-agent: {e}"));
    assert!(out.status.success(), "scan failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scan output is not json: {e}\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// Copies `from` to `to` with `cp -a` (links, modes and times kept).
pub fn copy_tree(from: &Path, to: &Path) {
    let status =
        Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap_or_else(|e| panic!("cannot run cp: {e}"));
    assert!(status.success(), "cp -a {} {} failed", from.display(), to.display());
}

/// What a scan says of each model: every field but `digest_source`, which is `hashed` on a
/// first scan and `cache` on the next.
pub fn model_facts(doc: &serde_json::Value) -> Vec<serde_json::Value> {
    let fields = ["path", "format", "size", "sha256", "metadata", "source", "group", "safety", "modified"];
    doc.get("models")
        .and_then(|m| m.as_array())
        .map(|models| {
            models
                .iter()
                .map(|m| fields.iter().map(|f| m.get(*f).cloned().unwrap_or_default()).collect::<Vec<_>>().into())
                .collect()
        })
        .unwrap_or_default()
}

/// The Python of `var/process-venv` (onnxruntime, jupyter_server), created on first use by
/// `scripts/process-venv.sh`.
pub fn process_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| script_path("scripts/process-venv.sh")).clone()
}

/// The venv with a real vulnerable package (keras 3.8.0) the findings tests scan, made by
/// `scripts/findings-venv.sh` (which `scripts/test.sh` runs first; here it is reused).
pub fn findings_venv() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| script_path("scripts/findings-venv.sh")).clone()
}

/// Runs `script` (relative to the workspace) and returns the path it prints.
fn script_path(script: &str) -> PathBuf {
    let out =
        Command::new(workspace_root().join(script)).output().unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A Python process that holds `path` open and listens on every interface (a port the system
/// picks), as an inference server serving a model does: the process and the port it printed.
pub fn serve_holding_open(path: &Path) -> (Child, String) {
    let script = format!(
        "import socket,time\nf=open({:?},'rb')\ns=socket.socket()\ns.bind(('0.0.0.0',0))\ns.listen()\n\
         print(s.getsockname()[1],flush=True)\ntime.sleep(600)\n",
        path.display().to_string()
    );
    let mut server = Child(
        Command::new("python3")
            .arg("-c")
            .arg(&script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}")),
    );
    let port = first_line(&mut server);
    (server, port)
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads one line from the child's stdout (it must have been spawned with a piped stdout).
pub fn first_line(child: &mut Child) -> String {
    use std::io::BufRead;
    let stdout = child.0.stdout.take().unwrap_or_else(|| panic!("child stdout is not piped"));
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).unwrap_or_else(|e| panic!("cannot read child output: {e}"));
    line.trim().to_string()
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, within: std::time::Duration) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < within, "nothing listens on port {port} after {within:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs `aiscout-agent` with `args` and returns its stdout (asserting success) and stderr.
pub fn run_agent(args: &[&str], envs: &[(&str, &str)]) -> (String, String) {
    let out = Command::new(agent_bin())
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run aiscout-agent: {e}"));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "aiscout-agent {args:?} failed: {}\n{stderr}", out.status);
    (stdout, stderr)
}

/// Whether the tests run as root (needed to switch users with `setpriv`).
pub fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs the agent as `nobody` (uid 65534) through `setpriv`; needs root.
pub fn run_agent_as_nobody(args: &[&str]) -> std::process::Output {
    assert!(running_as_root(), "switching to nobody needs root (scripts/test.sh runs as root in CI)");
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(agent_bin())
        .args(args)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap_or_else(|e| panic!("cannot run setpriv: {e}"))
}

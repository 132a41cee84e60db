//! A fleet on loopback: a dev-mode collector process in its own directory with free ports,
//! agent configurations each with their own state directory, roots and host identity, and the
//! HTTP API read back.
//!
//! Everything a test starts is a [`Child`], killed when dropped. The collector can be killed
//! with SIGKILL and restarted on the same configuration, data directory and ports
//! ([`Collector::kill`], [`Collector::restart`]); its log is kept in `collector.log` of its
//! directory across restarts.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{agent_bin, collector_bin, wait_for_port, Child};

/// Longest wait for a collector to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// A dev-mode collector in its own directory.
#[derive(Debug)]
pub struct Collector {
    /// Configuration, data, logs, token files and agent state directories.
    pub dir: tempfile::TempDir,
    /// The collector's configuration file.
    pub config: PathBuf,
    /// Where agents connect (gRPC over TLS).
    pub grpc_port: u16,
    /// Where the HTTP API listens.
    pub api_port: u16,
    /// The running process; `None` between [`Collector::kill`] and [`Collector::restart`].
    process: Option<Child>,
    /// Bearer token of the HTTP API; kept in the database, so it survives restarts.
    api_token: String,
    /// The secret of each file [`Collector::token_file`] wrote, for the agents' own copies.
    secrets: std::sync::Mutex<std::collections::HashMap<PathBuf, String>>,
}

/// Writes `text` to a new file `path` with mode 0600.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut file = File::options().write(true).create_new(true).mode(0o600).open(path)?;
        std::io::Write::write_all(&mut file, text.as_bytes())
    };
    write().unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// What an agent configuration says beyond [`Collector::agent`]'s defaults.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// `identity.machine_id`; `machine-<name>` when `None`. Agents sharing it share a machine
    /// fingerprint (a clone or a reinstall of one host).
    pub machine_id: Option<String>,
    /// TOML tables appended to the configuration (`[transport]`, `[schedule]`, …).
    pub extra_toml: String,
    /// `scan.sections`; `["models"]` when empty.
    pub sections: Vec<&'static str>,
    /// `identity.hostname` (no `"` or `\`); `host-<name>` when `None`.
    pub hostname: Option<String>,
}

/// One live sighting of a model, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveSighting {
    /// The model's path on its host.
    pub path: String,
    /// The agent that sighted it.
    pub agent_id: String,
    /// The asset (`model:<digest>`).
    pub asset_id: String,
}

impl Collector {
    /// Starts a collector and makes an API token.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// [`Collector::start`] with TOML tables appended to the configuration (`[agents]`).
    pub fn start_with(extra_toml: &str) -> Self {
        Self::start_on("", None, extra_toml)
    }

    /// A collector on the PostgreSQL database `store_url`, one of several replicas: with
    /// `pki_of`, it serves with that collector's dev CA and server certificate (replicas share
    /// one CA, so an agent trusts all of them).
    pub fn replica(store_url: &str, pki_of: Option<&Collector>) -> Self {
        Self::start_on(store_url, pki_of, "")
    }

    /// [`Collector::replica`] with TOML tables appended to the configuration.
    pub fn replica_with(store_url: &str, pki_of: Option<&Collector>, extra_toml: &str) -> Self {
        Self::start_on(store_url, pki_of, extra_toml)
    }

    fn start_on(store_url: &str, pki_of: Option<&Collector>, extra_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temporary directory: {e}"));
        let (grpc_port, api_port) = (free_port(), free_port());
        let config = dir.path().join("collector.toml");
        let data = dir.path().join("data");
        if let Some(first) = pki_of {
            std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("cannot make {}: {e}", data.display()));
            std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap_or_default();
            crate::copy_tree(&first.dir.path().join("data/pki"), &data);
        }
        let text = format!(
            "data_dir = \"{}\"\nstore = \"{store_url}\"\nlisten = \"127.0.0.1:{grpc_port}\"\napi_listen = \"127.0.0.1:{api_port}\"\n[tls]\ndev = true\n{extra_toml}",
            data.display()
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let mut c = Self {
            dir,
            config,
            grpc_port,
            api_port,
            process: None,
            api_token: String::new(),
            secrets: Default::default(),
        };
        c.restart();
        c.api_token = c.command(&["api-token", "create", "--label", "test"]);
        c
    }

    /// Kills the collector with SIGKILL and reaps it: no shutdown, whatever it was doing is
    /// cut where it was.
    pub fn kill(&mut self) {
        let mut process = self.process.take().unwrap_or_else(|| panic!("the collector is not running"));
        process.0.kill().unwrap_or_else(|e| panic!("cannot kill the collector: {e}"));
        process.0.wait().unwrap_or_else(|e| panic!("cannot reap the collector: {e}"));
    }

    /// Starts the collector on its configuration (after [`Collector::kill`], or the first
    /// time) and waits until both ports listen.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "the collector is already running");
        let log_path = self.dir.path().join("collector.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let process = Command::new(collector_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the collector: {e}"));
        self.process = Some(Child(process));
        wait_for_port(self.api_port, START_TIMEOUT);
        wait_for_port(self.grpc_port, START_TIMEOUT);
    }

    /// What the collector has logged so far (plain text).
    pub fn log(&self) -> String {
        let path = self.dir.path().join("collector.log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// Runs a collector subcommand and returns its stdout, trimmed.
    pub fn command(&self, args: &[&str]) -> String {
        let out = Command::new(collector_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the collector: {e}"));
        assert!(out.status.success(), "collector {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A file holding a new enrollment token made with `token create <args>`, readable by its
    /// owner only, as the agent demands. The agent deletes the file once enrolled, so an agent
    /// configuration made with it gets a copy of its own ([`Collector::agent_with`]), as each
    /// host of a fleet has its own file of a shared multi-use token.
    pub fn token_file(&self, name: &str, args: &[&str]) -> PathBuf {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        let path = self.dir.path().join(name);
        let secret = self.command(&all);
        write_private(&path, &secret);
        self.secrets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(path.clone(), secret);
        path
    }

    /// The HTTP status of `GET path` with `token` as bearer.
    pub fn get_status(&self, path: &str, token: &str) -> u16 {
        let url = format!("http://127.0.0.1:{}{path}", self.api_port);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let resp = agent
            .get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        resp.status().as_u16()
    }

    /// The CA certificate agents trust the collector by (dev mode).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("data/pki/ca.pem")
    }

    /// `aiscout-fleet-sim` against the gRPC `collectors` (comma-separated URLs) trusting this
    /// collector's CA, enrolling with `token` and checking the store through this collector's
    /// API with `api_token`; the caller adds the fleet's shape and `--json` reporting.
    pub fn fleet_sim(&self, collectors: &str, token: &Path, api_token: &Path) -> Command {
        let mut command = Command::new(crate::fleet_sim_bin());
        command
            .args(["--collector", collectors, "--ca"])
            .arg(self.ca_file())
            .arg("--token-file")
            .arg(token)
            .args(["--api", &format!("http://127.0.0.1:{}", self.api_port), "--api-token-file"])
            .arg(api_token);
        command
    }

    /// The state directory of agent `name`.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("agent-{name}"))
    }

    /// GETs an API path (`/api/v1/…`) and parses the JSON answer.
    pub fn get(&self, path: &str) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.api_port);
        let mut resp = ureq::get(&url)
            .header("Authorization", &format!("Bearer {}", self.api_token))
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let body = resp.body_mut().read_to_string().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not json: {e}: {body}"))
    }

    /// The bearer token of the HTTP API.
    pub fn api_token(&self) -> &str {
        &self.api_token
    }

    /// `GET path` with the API token, as text (`/metrics`).
    pub fn get_text(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.api_port);
        let mut resp = ureq::get(&url)
            .header("Authorization", &format!("Bearer {}", self.api_token))
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        resp.body_mut().read_to_string().unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Every item of a paged listing: the pages are at JSON pointer `page` of the answers
    /// (`""` for the listings, `"/sightings_page"` for an asset's sightings).
    fn all_items(&self, path: &str, page: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut after = None::<String>;
        loop {
            let answer = self.get(&match &after {
                None => format!("{path}{separator}limit=1000"),
                Some(cursor) => format!("{path}{separator}limit=1000&after={cursor}"),
            });
            let page = answer.pointer(page).unwrap_or_else(|| panic!("GET {path}: no {page} in {answer:#}"));
            items.extend(page.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(cursor) => after = Some(cursor.to_string()),
                None => return items,
            }
        }
    }

    /// Every host.
    pub fn hosts(&self) -> Vec<Value> {
        self.all_items("/api/v1/hosts", "")
    }

    /// The host of agent `agent_id`.
    pub fn host(&self, agent_id: &str) -> Value {
        let hosts = self.hosts();
        hosts
            .iter()
            .find(|h| h.get("agent_id").and_then(Value::as_str) == Some(agent_id))
            .cloned()
            .unwrap_or_else(|| panic!("no host {agent_id} in {hosts:#?}"))
    }

    /// Every model asset, live or not.
    pub fn model_assets(&self) -> Vec<Value> {
        self.all_items("/api/v1/assets?kind=model&include_removed=true", "")
    }

    /// Every live sighting of every model, sorted.
    pub fn live_model_sightings(&self) -> Vec<LiveSighting> {
        let mut live = Vec::new();
        for asset in self.model_assets() {
            if asset.get("sightings").and_then(Value::as_u64).unwrap_or(0) == 0 {
                continue;
            }
            let id = asset.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            for s in self.all_items(&format!("/api/v1/assets/{id}"), "/sightings_page") {
                if s.get("removed_at_ms").is_some_and(|r| !r.is_null()) {
                    continue;
                }
                let text = |key: &str| s.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
                live.push(LiveSighting { path: text("path"), agent_id: text("agent_id"), asset_id: id.clone() });
            }
        }
        live.sort();
        live
    }

    /// An agent configuration with its own state directory, roots and identity (machine id
    /// `machine-<name>`, hostname `host-<name>`), sending models only.
    pub fn agent(&self, name: &str, roots: &[&Path], token: &Path) -> PathBuf {
        self.agent_with(name, roots, token, &AgentOptions::default())
    }

    /// [`Collector::agent`] with `options`.
    /// The token file is used as given, unless [`Collector::token_file`] made it: then the agent
    /// gets its own copy, `<name>.token`.
    pub fn agent_with(&self, name: &str, roots: &[&Path], token: &Path, options: &AgentOptions) -> PathBuf {
        let roots: Vec<String> = roots.iter().map(|r| format!("\"{}\"", r.display())).collect();
        let secret = self.secrets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(token).cloned();
        let own_copy = self.dir.path().join(format!("{name}.token"));
        let token = match secret {
            Some(secret) => {
                let _ = std::fs::remove_file(&own_copy);
                write_private(&own_copy, &secret);
                own_copy.as_path()
            }
            None => token,
        };
        let machine_id = options.machine_id.clone().unwrap_or_else(|| format!("machine-{name}"));
        let hostname = options.hostname.clone().unwrap_or_else(|| format!("host-{name}"));
        let sections = if options.sections.is_empty() { vec!["models"] } else { options.sections.clone() };
        let sections: Vec<String> = sections.iter().map(|s| format!("\"{s}\"")).collect();
        let config = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            "state_dir = \"{}\"\n[collector]\nurl = \"https://127.0.0.1:{}\"\nca_file = \"{}\"\nenrollment_token_file = \"{}\"\n\
             [identity]\nmachine_id = \"{machine_id}\"\nhostname = \"{hostname}\"\n[scan]\nroots = [{}]\nsections = [{}]\n{}",
            self.state_dir(name).display(),
            self.grpc_port,
            self.ca_file().display(),
            token.display(),
            roots.join(", "),
            sections.join(", "),
            options.extra_toml,
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        config
    }
}

/// `aiscout-agent run --once --config <config>`, logging at info level, which tests read, in
/// plain text (tracing colours its output even into a file).
fn agent_once(config: &Path) -> Command {
    let mut command = Command::new(agent_bin());
    command.args(["run", "--once", "--config"]).arg(config).env("AISCOUT_LOG", "info").env("NO_COLOR", "1");
    command
}

/// Runs `aiscout-agent run --once` with `config` to the end.
pub fn run_once(config: &Path) -> Output {
    agent_once(config).output().unwrap_or_else(|e| panic!("cannot run the agent: {e}"))
}

/// Starts `aiscout-agent run --once` with `config`, its stderr going to `log`.
pub fn spawn_once(config: &Path, log: &Path) -> Child {
    let log = File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    Child(
        agent_once(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the agent: {e}")),
    )
}

/// Starts the daemon, `aiscout-agent run --config <config>`, logging at info level into `log`.
pub fn spawn_daemon(config: &Path, log: &Path) -> Child {
    let log = File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    Child(
        daemon_command(&agent_bin(), config)
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the agent: {e}")),
    )
}

/// `binary run --config <config>`, logging at info level in plain text, stdout discarded.
pub fn daemon_command(binary: &Path, config: &Path) -> Command {
    let mut command = Command::new(binary);
    command.args(["run", "--config"]).arg(config).env("AISCOUT_LOG", "info").env("NO_COLOR", "1").stdout(Stdio::null());
    command
}

/// Asserts that an agent run succeeded, with its stderr otherwise.
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "agent failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Polls `probe` every 20 ms until it answers `Some`, for at most `within`.
pub fn poll<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

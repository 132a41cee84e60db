//! ServiceNow through the Identification and Reconciliation API (docs/exports.md, *CMDB push*).
//!
//! 1. **Class probe**: `GET /api/now/table/sys_db_object?sysparm_query=nameIN…` asks which of the
//!    configured classes the instance has; servers take `server_class` when it exists, else
//!    `server_fallback_class`, and models likewise ([`choose_classes`]).
//! 2. **Batches** ([`super::batches`]) go to `POST /api/now/identifyreconcile?sysparm_data_source=…`
//!    (`/identifyreconcile/query` for a dry run, which identifies without writing): each item
//!    with its class, values and `sys_object_source_info` (the source name, the stable key,
//!    the last time it was seen), the hosts with `lookup` entries (serial numbers, network
//!    adapters) for the hardware identification rule, and a `Runs on::Runs` relation from each
//!    dependent to its host.
//! 3. **Answers**: an HTTP 200 carries one result per item: its operation (`INSERT`, `UPDATE`,
//!    `NO_CHANGE`, …) or its errors (`MISSING_DEPENDENCY`, `INVALID_INPUT_DATA`, …), each counted
//!    per class in the report. A 401, 403 or 5xx stops the push with an error naming the URL;
//!    another 4xx to a batch (413: too large, 400: unreadable) counts its CIs failed, with the
//!    status and the URL, and the push goes on with the next batch.

use serde_json::{json, Value};

use super::config::{read_secret, ServiceNowAuth, ServiceNowConfig};
use super::{
    batch_refused, batches, cut, glide_time, refuse_batch, Batch, Ci, CmdbHost, CmdbInventory, CmdbModel, CmdbServer,
    Http, ItemError, Outcome, PushReport, Tally, MAX_DESCRIPTION_BYTES, MAX_FIELD_BYTES, MAX_LIST_ITEMS,
};

/// The relation from a dependent CI to its host.
pub const RUNS_ON: &str = "Runs on::Runs";

/// `install_status` of a CI in use.
const INSTALLED: &str = "1";
/// `install_status` of a CI whose asset is gone.
const RETIRED: &str = "7";

/// The classes a push uses, after the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classes {
    /// Servers' class.
    pub server: String,
    /// Models' class.
    pub model: String,
}

/// The server and model classes among those the instance has (`existing`): the preferred one,
/// else the fallback; an error naming both keys when neither exists.
pub fn choose_classes(existing: &[String], config: &ServiceNowConfig) -> Result<Classes, String> {
    let pick = |preferred: &str, fallback: &str, keys: &str| {
        [preferred, fallback]
            .into_iter()
            .find(|c| existing.iter().any(|e| e == c))
            .map(str::to_string)
            .ok_or_else(|| format!("the instance has neither {preferred} nor {fallback} ({keys})"))
    };
    Ok(Classes {
        server: pick(
            &config.server_class,
            &config.server_fallback_class,
            "cmdb.servicenow.server_class, server_fallback_class",
        )?,
        model: pick(
            &config.model_class,
            &config.model_fallback_class,
            "cmdb.servicenow.model_class, model_fallback_class",
        )?,
    })
}

/// The server class for a host's `os` (its os-release `PRETTY_NAME`).
pub fn host_class(os: &str) -> &'static str {
    let os = os.to_ascii_lowercase();
    if os.contains("windows") {
        "cmdb_ci_win_server"
    } else if os.is_empty() || os.contains("mac") || os.contains("darwin") {
        "cmdb_ci_computer"
    } else {
        "cmdb_ci_linux_server"
    }
}

/// The version in an os name: its first word that starts with a digit (`24.04` of
/// `Ubuntu 24.04.1 LTS`).
fn os_version(os: &str) -> String {
    os.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit())).unwrap_or_default().to_string()
}

/// Inserts `key` unless `value` is empty, cut to the field's length: one agent's overlong
/// text must not make the instance refuse a batch.
fn put(values: &mut serde_json::Map<String, Value>, key: &str, value: &str) {
    let max = if key == "short_description" { MAX_DESCRIPTION_BYTES } else { MAX_FIELD_BYTES };
    if !value.is_empty() {
        values.insert(key.to_string(), Value::String(cut(value, max).to_string()));
    }
}

fn status(retired: bool) -> &'static str {
    if retired {
        RETIRED
    } else {
        INSTALLED
    }
}

/// A host's values; a retired one has only its `install_status`: its name and identifiers are
/// the agent's word, and matched by an identification rule they could retire another
/// machine's CI. IRE finds it by its source key alone.
fn host_values(h: &CmdbHost) -> serde_json::Map<String, Value> {
    let mut v = serde_json::Map::new();
    if h.retired {
        put(&mut v, "install_status", RETIRED);
        return v;
    }
    put(&mut v, "name", &h.hostname);
    put(&mut v, "serial_number", if h.serial.is_empty() { &h.product_uuid } else { &h.serial });
    put(&mut v, "ip_address", h.ip_addresses.first().map_or("", String::as_str));
    put(&mut v, "mac_address", h.mac_addresses.first().map_or("", String::as_str));
    put(&mut v, "os", &h.os);
    put(&mut v, "os_version", &os_version(&h.os));
    put(&mut v, "cpu_type", &h.arch);
    put(&mut v, "correlation_id", &h.machine_id);
    put(&mut v, "object_id", &h.cloud_instance_id);
    let description = format!("aiscout host, kernel {}", if h.kernel.is_empty() { "unknown" } else { &h.kernel });
    put(&mut v, "short_description", &description);
    put(&mut v, "install_status", status(h.retired));
    v
}

/// The `lookup` entries of a host: its serial and DMI UUID, its network adapters; none for a
/// retired host or one whose identifiers are withheld (`super`, *What an agent can make the
/// push do*).
fn host_lookup(h: &CmdbHost) -> Vec<Value> {
    let mut out = Vec::new();
    if h.retired || h.identity_withheld {
        return out;
    }
    for (serial, kind) in [(&h.serial, "system"), (&h.product_uuid, "uuid")] {
        let serial = cut(serial, MAX_FIELD_BYTES);
        if !serial.is_empty() {
            out.push(json!({"className": "cmdb_serial_number",
                "values": {"serial_number": serial, "serial_number_type": kind, "valid": "true"}}));
        }
    }
    for mac in h.mac_addresses.iter().take(MAX_LIST_ITEMS) {
        let mac = cut(mac, MAX_FIELD_BYTES);
        out.push(json!({"className": "cmdb_ci_network_adapter", "values": {"name": mac, "mac_address": mac}}));
    }
    out
}

fn server_values(s: &CmdbServer) -> serde_json::Map<String, Value> {
    let mut v = serde_json::Map::new();
    let name = match s.ports.first() {
        Some(port) => format!("{}:{port}", s.kind),
        None => s.kind.clone(),
    };
    put(&mut v, "name", &name);
    put(&mut v, "version", &s.version);
    let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
    put(&mut v, "tcp_port", &ports.join(","));
    put(&mut v, "running_process_command", &s.exe);
    let dir = s.exe.rsplit_once('/').map(|(d, _)| d).unwrap_or_default();
    put(&mut v, "install_directory", dir);
    let exposure = if s.exposure.is_empty() { "not listening" } else { &s.exposure };
    let auth = if s.auth.is_empty() { "unknown" } else { &s.auth };
    put(
        &mut v,
        "short_description",
        &format!("aiscout inference server {}: {exposure}, authentication {auth}", s.kind),
    );
    put(&mut v, "install_status", status(s.retired));
    v
}

fn model_values(m: &CmdbModel) -> serde_json::Map<String, Value> {
    let mut v = serde_json::Map::new();
    put(&mut v, "name", &m.name);
    put(&mut v, "correlation_id", &m.sha256);
    put(&mut v, "version", &m.quantization);
    let mut description = format!("aiscout model: {}", if m.format.is_empty() { "unknown format" } else { &m.format });
    if !m.architecture.is_empty() {
        description.push_str(&format!(", {}", m.architecture));
    }
    if m.parameters > 0 {
        description.push_str(&format!(", {} parameters", m.parameters));
    }
    if m.size > 0 {
        description.push_str(&format!(", {} bytes", m.size));
    }
    if !m.source.is_empty() {
        description.push_str(&format!(", from {}", m.source));
    }
    if !m.license.is_empty() {
        description.push_str(&format!(", license {}", m.license));
    }
    description.push_str(&format!(", safety verdict {}", if m.verdict.is_empty() { "unknown" } else { &m.verdict }));
    put(&mut v, "short_description", &description);
    put(&mut v, "install_status", status(m.retired));
    v
}

/// The class `ci` is sent as.
pub fn class_of<'a>(ci: &Ci<'_>, classes: &'a Classes) -> &'a str {
    match ci {
        Ci::Host(h) => host_class(&h.os),
        Ci::Server(_) => &classes.server,
        Ci::Model(_) => &classes.model,
    }
}

/// The request body of `batch`.
pub fn payload(batch: &Batch<'_>, classes: &Classes, source_name: &str) -> Value {
    let items: Vec<Value> = batch
        .cis
        .iter()
        .map(|ci| {
            let (values, last_seen) = match ci {
                Ci::Host(h) => (host_values(h), h.last_seen_ms),
                Ci::Server(s) => (server_values(s), s.last_seen_ms),
                Ci::Model(m) => (model_values(m), m.last_seen_ms),
            };
            let mut item = json!({
                "className": class_of(ci, classes),
                "values": values,
                "sys_object_source_info": {
                    "source_name": source_name,
                    "source_native_key": ci.key(),
                    "source_recency_timestamp": glide_time(last_seen),
                },
            });
            if let (Ci::Host(h), Some(object)) = (ci, item.as_object_mut()) {
                let lookup = host_lookup(h);
                if !lookup.is_empty() {
                    object.insert("lookup".into(), Value::Array(lookup));
                }
            }
            item
        })
        .collect();
    let relations: Vec<Value> = batch
        .relations
        .iter()
        .map(|(dependent, host)| json!({"parent": dependent, "child": host, "type": RUNS_ON}))
        .collect();
    json!({"items": items, "relations": relations})
}

/// `text` percent-encoded for a query string (unreserved characters kept).
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What an answer's JSON says went wrong: ServiceNow's `error.message`, else the start of it;
/// raw (the report escapes it when it prints).
fn answer_message(text: &str) -> String {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string));
    message.unwrap_or_else(|| text.chars().take(200).collect())
}

/// [`answer_message`] escaped for an error line.
fn answer_error(text: &str) -> String {
    crate::untrusted::text(&answer_message(text)).to_string()
}

/// Refuses what is not a 2xx with an error naming `url` (never a credential).
fn check_status(method: &str, url: &str, status: u16, text: &str) -> Result<(), String> {
    match status {
        200..=299 => Ok(()),
        401 => Err(format!(
            "{method} {url}: 401 unauthorized: the instance refused the credentials (cmdb.servicenow user and secret)"
        )),
        403 => Err(format!(
            "{method} {url}: 403 forbidden: the user lacks a role (itil, or import_transformer and the cmdb roles): {}",
            answer_error(text)
        )),
        _ => Err(format!("{method} {url}: status {status}: {}", answer_error(text))),
    }
}

/// Reads an identifyreconcile answer into `tally`: one result per item, found by its
/// `inputIndices` (else its position).
pub fn read_answer(
    url: &str,
    text: &str,
    batch: &Batch<'_>,
    classes: &Classes,
    tally: &mut Tally,
) -> Result<(), String> {
    let answer: Value = serde_json::from_str(text).map_err(|e| format!("POST {url}: not a json answer: {e}"))?;
    let result = answer.get("result").unwrap_or(&answer);
    let items =
        result.get("items").and_then(Value::as_array).ok_or_else(|| format!("POST {url}: an answer without items"))?;
    for (position, item) in items.iter().enumerate() {
        let index = item
            .pointer("/inputIndices/0")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(position);
        let Some(ci) = batch.cis.get(index) else { continue };
        let class = class_of(ci, classes);
        let retired = ci.retired();
        let errors = item.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty());
        if let Some(first) = errors.and_then(|e| e.first()) {
            let field = |k: &str| first.get(k).and_then(Value::as_str).unwrap_or_default().chars().take(300).collect();
            tally.refuse(
                ItemError {
                    class: class.to_string(),
                    key: ci.key().to_string(),
                    error: field("error"),
                    message: field("message"),
                },
                retired,
            );
            continue;
        }
        let outcome = match item.get("operation").and_then(Value::as_str).unwrap_or_default() {
            op if op.starts_with("INSERT") => Outcome::Inserted,
            op if op.starts_with("UPDATE") => Outcome::Updated,
            "NO_CHANGE" => Outcome::Unchanged,
            other => {
                let error = ItemError {
                    class: class.to_string(),
                    key: ci.key().to_string(),
                    error: "UNKNOWN_OPERATION".into(),
                    message: format!("operation {:?}", other.chars().take(60).collect::<String>()),
                };
                tally.refuse(error, retired);
                continue;
            }
        };
        tally.record(class, ci.key(), outcome, retired);
    }
    Ok(())
}

/// The ServiceNow target with its credentials read.
pub struct ServiceNow {
    config: ServiceNowConfig,
    secret: String,
}

impl std::fmt::Debug for ServiceNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNow").field("instance_url", &self.config.instance_url).finish_non_exhaustive()
    }
}

impl ServiceNow {
    /// `config` with its secret read (from its file or the environment).
    pub fn new(config: ServiceNowConfig) -> Result<Self, String> {
        let secret = read_secret(
            "cmdb.servicenow",
            config.secret_file.as_ref(),
            config.secret_env.as_ref(),
            config.secret.as_ref(),
        )?;
        Ok(Self { config, secret })
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        use base64::Engine;
        let authorization = match self.config.auth {
            ServiceNowAuth::Basic => {
                let pair = format!("{}:{}", self.config.user, self.secret);
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
            }
            ServiceNowAuth::Bearer => format!("Bearer {}", self.secret),
        };
        vec![
            ("Authorization", authorization),
            ("Accept", "application/json".into()),
            ("Content-Type", "application/json".into()),
        ]
    }

    fn base(&self) -> &str {
        self.config.instance_url.trim_end_matches('/')
    }

    /// The classes the instance has among those configured (module docs, 1).
    fn probe(&self, http: &mut Http) -> Result<Classes, String> {
        let c = &self.config;
        let mut wanted = vec![&c.server_class, &c.server_fallback_class, &c.model_class, &c.model_fallback_class];
        wanted.sort();
        wanted.dedup();
        let names: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
        let url = format!(
            "{}/api/now/table/sys_db_object?sysparm_query=nameIN{}&sysparm_fields=name&sysparm_limit=100",
            self.base(),
            names.join(",")
        );
        let (status, text) = http.send(&url, &self.headers(), None)?;
        check_status("GET", &url, status, &text)?;
        let answer: Value = serde_json::from_str(&text).map_err(|e| format!("GET {url}: not a json answer: {e}"))?;
        let existing: Vec<String> = answer
            .get("result")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("GET {url}: an answer without result"))?
            .iter()
            .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        choose_classes(&existing, c).map_err(|e| format!("GET {url}: {e}"))
    }

    /// Pushes `inventory` (module docs), counting into `report`.
    pub fn push(&self, inventory: &CmdbInventory, dry_run: bool, report: &mut PushReport) -> Result<(), String> {
        let c = &self.config;
        let mut http = Http::new("cmdb.servicenow", c.ca_file.as_deref(), c.timeout, c.max_retry_wait)?;
        let mut tally = Tally::default();
        let outcome = self.push_batches(&mut http, inventory, dry_run, &mut tally);
        tally.finish(report);
        report.requests += http.requests;
        report.throttled += http.throttled;
        report.waited_ms += u64::try_from(http.waited.as_millis()).unwrap_or(u64::MAX);
        outcome
    }

    fn push_batches(
        &self,
        http: &mut Http,
        inventory: &CmdbInventory,
        dry_run: bool,
        tally: &mut Tally,
    ) -> Result<(), String> {
        let c = &self.config;
        let classes = self.probe(http)?;
        let source_name = if c.source_name.is_empty() { &c.data_source } else { &c.source_name };
        let url = format!(
            "{}/api/now/identifyreconcile{}?sysparm_data_source={}",
            self.base(),
            if dry_run { "/query" } else { "" },
            query_escape(&c.data_source)
        );
        let headers = self.headers();
        for batch in batches(inventory, c.batch_size) {
            let body = payload(&batch, &classes, source_name).to_string();
            let (status, text) = http.send(&url, &headers, Some(&body))?;
            if batch_refused(status) {
                tracing::warn!(url = %url, status, cis = batch.cis.len(), "cmdb batch refused whole: its cis count failed, the push goes on");
                refuse_batch(
                    tally,
                    &batch,
                    |ci| class_of(ci, &classes).to_string(),
                    &url,
                    status,
                    &answer_message(&text),
                );
                continue;
            }
            check_status("POST", &url, status, &text)?;
            read_answer(&url, &text, &batch, &classes, tally)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServiceNowConfig {
        let text = "instance_url = \"https://x.service-now.com\"\ndata_source = \"aiscout\"\nuser = \"u\"\nsecret_env = \"P\"\n";
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_probe_picks_the_preferred_class_else_the_fallback_else_says_which_is_missing() {
        let c = config();
        let has = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = has(&["cmdb_ci_appl_ai_application", "alm_ai_model_digital_asset", "cmdb_ci_appl"]);
        assert_eq!(
            choose_classes(&all, &c).unwrap(),
            Classes { server: "cmdb_ci_appl_ai_application".into(), model: "alm_ai_model_digital_asset".into() }
        );
        assert_eq!(
            choose_classes(&has(&["cmdb_ci_appl"]), &c).unwrap(),
            Classes { server: "cmdb_ci_appl".into(), model: "cmdb_ci_appl".into() }
        );
        let mut custom = c.clone();
        custom.model_fallback_class = "u_ai_model".into();
        assert_eq!(choose_classes(&has(&["cmdb_ci_appl", "u_ai_model"]), &custom).unwrap().model, "u_ai_model");
        let e = choose_classes(&has(&["cmdb_ci_appl_ai_application"]), &custom).unwrap_err();
        assert_eq!(
            e,
            "the instance has neither alm_ai_model_digital_asset nor u_ai_model (cmdb.servicenow.model_class, model_fallback_class)"
        );
    }

    fn host(os: &str) -> CmdbHost {
        CmdbHost {
            agent_id: "agent-1".into(),
            hostname: "gpu-01".into(),
            os: os.into(),
            kernel: "6.8.0".into(),
            arch: "x86_64".into(),
            ip_addresses: vec!["10.0.0.5".into(), "fd00::5".into()],
            serial: String::new(),
            product_uuid: "4c4c4544-0056".into(),
            machine_id: "abc123".into(),
            mac_addresses: vec!["52:54:00:12:34:56".into()],
            cloud_instance_id: "i-0abc".into(),
            last_seen_ms: 1_700_000_000_000,
            retired: false,
            identity_withheld: false,
        }
    }

    #[test]
    fn hosts_map_to_a_server_class_by_os_with_their_identifiers() {
        assert_eq!(host_class("Ubuntu 24.04.1 LTS"), "cmdb_ci_linux_server");
        assert_eq!(host_class("Windows Server 2022"), "cmdb_ci_win_server");
        assert_eq!(host_class("macOS 15.1"), "cmdb_ci_computer");
        assert_eq!(host_class(""), "cmdb_ci_computer");
        let h = host("Ubuntu 24.04.1 LTS");
        let classes = Classes { server: "cmdb_ci_appl".into(), model: "u_ai_model".into() };
        let batch = Batch { cis: vec![Ci::Host(&h)], relations: vec![] };
        let p = payload(&batch, &classes, "aiscout");
        let item = &p["items"][0];
        assert_eq!(item["className"], "cmdb_ci_linux_server");
        assert_eq!(
            item["values"],
            json!({"name": "gpu-01", "serial_number": "4c4c4544-0056", "ip_address": "10.0.0.5",
                "mac_address": "52:54:00:12:34:56", "os": "Ubuntu 24.04.1 LTS", "os_version": "24.04.1",
                "cpu_type": "x86_64", "correlation_id": "abc123", "object_id": "i-0abc",
                "short_description": "aiscout host, kernel 6.8.0", "install_status": "1"})
        );
        assert_eq!(
            item["sys_object_source_info"],
            json!({"source_name": "aiscout", "source_native_key": "agent-1", "source_recency_timestamp": "2023-11-14 22:13:20"})
        );
        assert_eq!(item["lookup"][0]["values"]["serial_number_type"], "uuid");
        assert_eq!(item["lookup"][1]["className"], "cmdb_ci_network_adapter");
    }

    #[test]
    fn servers_and_models_run_on_their_host_and_gone_ones_are_retired() {
        let h = host("Ubuntu 24.04");
        let s = CmdbServer {
            asset_id: "runtime:1".into(),
            agent_id: "agent-1".into(),
            kind: "ollama".into(),
            ports: vec![11434],
            exposure: "all_interfaces".into(),
            auth: "default".into(),
            exe: "/usr/local/bin/ollama".into(),
            version: "0.5.1".into(),
            last_seen_ms: 0,
            retired: false,
        };
        let m = CmdbModel {
            asset_id: "model:ab".into(),
            name: "tinyllama".into(),
            format: "gguf".into(),
            sha256: "ab".into(),
            size: 10,
            architecture: "llama".into(),
            parameters: 1_100_000_000,
            quantization: "Q4_K_M".into(),
            license: String::new(),
            source: "ollama:tinyllama:latest".into(),
            verdict: "safe".into(),
            hosts: vec!["agent-1".into()],
            last_seen_ms: 0,
            retired: true,
        };
        let inventory = CmdbInventory { hosts: vec![h], servers: vec![s], models: vec![m] };
        let all = batches(&inventory, 100);
        assert_eq!(all.len(), 1);
        let classes = Classes { server: "cmdb_ci_appl_ai_application".into(), model: "cmdb_ci_appl".into() };
        let p = payload(&all[0], &classes, "aiscout");
        assert_eq!(p["items"][1]["className"], "cmdb_ci_appl_ai_application");
        assert_eq!(p["items"][1]["values"]["name"], "ollama:11434");
        assert_eq!(p["items"][1]["values"]["tcp_port"], "11434");
        assert_eq!(p["items"][1]["values"]["install_directory"], "/usr/local/bin");
        assert_eq!(p["items"][1]["values"]["install_status"], "1");
        assert_eq!(p["items"][2]["className"], "cmdb_ci_appl");
        assert_eq!(p["items"][2]["values"]["install_status"], "7", "a model no host has any more is retired");
        assert_eq!(
            p["items"][2]["values"]["short_description"],
            "aiscout model: gguf, llama, 1100000000 parameters, 10 bytes, from ollama:tinyllama:latest, safety verdict safe"
        );
        assert_eq!(
            p["relations"],
            json!([{"parent": 1, "child": 0, "type": RUNS_ON}, {"parent": 2, "child": 0, "type": RUNS_ON}])
        );
    }

    #[test]
    fn answers_are_counted_per_class_and_refusals_kept() {
        let h = host("Ubuntu 24.04");
        let inventory = CmdbInventory {
            hosts: vec![h.clone(), CmdbHost { agent_id: "agent-2".into(), ..h }],
            ..Default::default()
        };
        let all = batches(&inventory, 100);
        let classes = Classes { server: "cmdb_ci_appl".into(), model: "cmdb_ci_appl".into() };
        let mut tally = Tally::default();
        let answer = json!({"result": {"items": [
            {"className": "cmdb_ci_linux_server", "operation": "NO_CHANGE", "inputIndices": [1], "errors": []},
            {"className": "cmdb_ci_linux_server", "operation": "INSERT", "inputIndices": [0],
             "errors": [{"error": "INVALID_INPUT_DATA", "message": "data source\nunknown"}]},
        ]}});
        read_answer("u", &answer.to_string(), &all[0], &classes, &mut tally).unwrap();
        // The same CI refused again (a host sent with each of its batches) counts once.
        read_answer("u", &answer.to_string(), &all[0], &classes, &mut tally).unwrap();
        let mut report = PushReport::default();
        tally.finish(&mut report);
        let counts = report.classes["cmdb_ci_linux_server"];
        assert_eq!((counts.unchanged, counts.failed, counts.inserted), (1, 1, 0));
        assert_eq!((report.errors.len(), report.errors_total), (1, 1));
        assert_eq!(report.errors[0].key, "agent-1");
        assert_eq!(report.errors[0].error, "INVALID_INPUT_DATA");
        assert!(report.text().contains("data source\\u{a}unknown"), "escaped: {}", report.text());
        assert!(read_answer("https://i/x", "<html>", &all[0], &classes, &mut Tally::default())
            .unwrap_err()
            .starts_with("POST https://i/x: not a json answer"));
    }

    #[test]
    fn every_value_is_cut_to_its_field_and_lists_to_64() {
        let mut h = host("Ubuntu 24.04");
        h.hostname = "é".repeat(300);
        h.kernel = "k".repeat(2000);
        h.serial = "S".repeat(300);
        h.mac_addresses = (0..100).map(|i| format!("52:54:00:00:00:{i:02x}")).collect();
        let classes = Classes { server: "cmdb_ci_appl".into(), model: "cmdb_ci_appl".into() };
        let batch = Batch { cis: vec![Ci::Host(&h)], relations: vec![] };
        let p = payload(&batch, &classes, "aiscout");
        let item = &p["items"][0];
        let name = item["values"]["name"].as_str().unwrap();
        assert_eq!(name, "é".repeat(127), "cut to 255 bytes on a char boundary");
        assert_eq!(item["values"]["serial_number"].as_str().unwrap().len(), 255);
        assert_eq!(item["values"]["short_description"].as_str().unwrap().len(), 1000);
        let lookup = item["lookup"].as_array().unwrap();
        assert_eq!(lookup.len(), 2 + 64, "serial, uuid and 64 adapters");
        assert_eq!(lookup[0]["values"]["serial_number"].as_str().unwrap().len(), 255);
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("abc", 255), "abc");
    }

    #[test]
    fn errors_name_the_url_and_never_the_credentials() {
        let e = check_status("POST", "https://i/api/now/identifyreconcile", 401, "{}").unwrap_err();
        assert!(e.starts_with("POST https://i/api/now/identifyreconcile: 401 unauthorized"), "{e}");
        let e = check_status("GET", "https://i/t", 500, r#"{"error":{"message":"boom\u001b[2J"}}"#).unwrap_err();
        assert_eq!(e, "GET https://i/t: status 500: boom\\u{1b}[2J");
        assert_eq!(query_escape("ai scout&x"), "ai%20scout%26x");
    }
}

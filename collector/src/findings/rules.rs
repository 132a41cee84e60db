//! The rules of [`super::RULES`] over a live inventory. Every entry is the agent's JSON
//! (`docs/scan-json.md`), read field by field: a missing or mistyped field means the rule does
//! not apply to that entry, never a failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use super::advisories::Ecosystem;
use super::{
    finding_id, Rule, Settings, BELOW_FLOOR, EXPOSED_SERVER, LICENCE, MAX_TITLE_CHARS, MCP_SERVER, PLAINTEXT_KEY,
    SILENT_HOST, SPREAD, UNAPPROVED_FRAMEWORK, UNAPPROVED_MODEL, UNSAFE_MODEL, VULNERABLE_VERSION,
};
use crate::policy::Policy;
use crate::store::{Acknowledgement, AssetKind, LiveInventory, NewFinding};

/// A live entry, parsed.
struct Entry<'a> {
    agent_id: &'a str,
    host: &'a str,
    asset_id: &'a str,
    first_seen_ms: i64,
    json: Value,
}

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// `text` cut to [`MAX_TITLE_CHARS`] characters.
fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_TITLE_CHARS) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text,
    }
}

/// The last path component of `path`, for titles.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn finding(
    rule: &Rule,
    subject: String,
    severity: &str,
    title: String,
    evidence: Value,
    hosts: BTreeSet<String>,
    assets: BTreeSet<String>,
) -> NewFinding {
    NewFinding {
        finding_id: finding_id(rule.id, &subject),
        rule_id: rule.id.to_string(),
        subject,
        severity: severity.to_string(),
        title: cut(title),
        evidence_json: evidence.to_string(),
        hosts: hosts.into_iter().collect(),
        assets: assets.into_iter().collect(),
        exception: None,
    }
}

/// A finding of `rule` about one entry: its host and its asset.
fn entry_finding(
    rule: &Rule,
    e: &Entry<'_>,
    subject: String,
    severity: &str,
    title: String,
    evidence: Value,
) -> NewFinding {
    let (hosts, assets) = (BTreeSet::from([e.agent_id.to_string()]), BTreeSet::from([e.asset_id.to_string()]));
    finding(rule, subject, severity, title, evidence, hosts, assets)
}

/// Most sightings, processes and servers listed in one finding's evidence (the counts and the
/// hosts list stay whole).
const MAX_EVIDENCE_ITEMS: usize = 100;

/// Every rule over `inventory` at `now_ms`, under `policy` when one is applied: its rules, its
/// severity overrides and its exceptions.
pub(super) fn run(
    inventory: &LiveInventory,
    settings: &Settings,
    policy: Option<&Policy>,
    now_ms: i64,
) -> Vec<NewFinding> {
    let hostnames: HashMap<&str, &str> =
        inventory.hosts.iter().map(|h| (h.agent_id.as_str(), h.hostname.as_str())).collect();
    let mut by_kind: HashMap<AssetKind, Vec<Entry<'_>>> = HashMap::new();
    for e in &inventory.entries {
        let Ok(json @ Value::Object(_)) = serde_json::from_str::<Value>(&e.entry_json) else { continue };
        let host = hostnames.get(e.agent_id.as_str()).copied().unwrap_or(e.agent_id.as_str());
        let entry = Entry { agent_id: &e.agent_id, host, asset_id: &e.asset_id, first_seen_ms: e.first_seen_ms, json };
        by_kind.entry(e.kind).or_default().push(entry);
    }
    let empty = Vec::new();
    let models = by_kind.get(&AssetKind::Model).unwrap_or(&empty);
    let runtimes = by_kind.get(&AssetKind::Runtime).unwrap_or(&empty);
    let mut out = Vec::new();
    let verdicts = model_verdicts(models);
    out.extend(unsafe_models(models, runtimes));
    out.extend(exposed_servers(runtimes, &verdicts));
    out.extend(plaintext_keys(by_kind.get(&AssetKind::Tooling).unwrap_or(&empty)));
    out.extend(vulnerable_versions(by_kind.get(&AssetKind::Framework).unwrap_or(&empty), runtimes, settings));
    out.extend(silent_hosts(inventory, settings, now_ms));
    out.extend(mcp_servers(by_kind.get(&AssetKind::Tooling).unwrap_or(&empty)));
    out.extend(spread(models, settings, now_ms));
    let Some(policy) = policy else { return out };
    out.extend(unapproved_models(models, policy));
    out.extend(licences(models, policy));
    out.extend(below_floor(by_kind.get(&AssetKind::Framework).unwrap_or(&empty), policy));
    out.extend(unapproved_frameworks(by_kind.get(&AssetKind::Framework).unwrap_or(&empty), policy));
    for f in &mut out {
        if let Some(severity) = policy.severity.get(&f.rule_id) {
            f.severity.clone_from(severity);
        }
        let names: Vec<&str> = f.hosts.iter().filter_map(|a| hostnames.get(a.as_str()).copied()).collect();
        if let Some(e) = policy.exceptions.iter().find(|e| e.covers(&f.rule_id, &f.subject, &names, now_ms)) {
            f.exception = Some(Acknowledgement {
                reason: e.reason.clone(),
                by: format!("{}v{}: {}", crate::store::POLICY_ACK_PREFIX, policy.version, e.owner),
                at_ms: now_ms,
                expires_ms: e.expires_ms,
            });
        }
    }
    out
}

/// The names a model goes by: its file, its own name, its Ollama name.
fn model_names(m: &Value) -> Vec<&str> {
    let mut names = Vec::new();
    if let Some(path) = text(m, "path") {
        names.push(file_name(path));
    }
    if let Some(name) = m.get("metadata").and_then(|x| text(x, "name")) {
        names.push(name);
    }
    if let Some(name) = m.get("source").and_then(|x| text(x, "name")) {
        names.push(name);
    }
    names
}

/// One model's live entries, hosts and sightings (for evidence, capped).
type ModelGroup<'a> = (Vec<&'a Value>, BTreeSet<String>, Vec<Value>);

/// Models of one asset, grouped: every live entry's JSON and every host (files shipped by
/// installed packages left out).
fn by_asset<'a>(models: &'a [Entry<'a>]) -> BTreeMap<&'a str, ModelGroup<'a>> {
    let mut out: BTreeMap<&str, ModelGroup<'a>> = BTreeMap::new();
    for m in models {
        if m.json.get("owner").is_some_and(Value::is_object) {
            continue; // a file an installed package shipped
        }
        let slot = out.entry(m.asset_id).or_insert_with(|| (Vec::new(), BTreeSet::new(), Vec::new()));
        slot.0.push(&m.json);
        slot.1.insert(m.agent_id.to_string());
        if slot.2.len() < MAX_EVIDENCE_ITEMS {
            slot.2.push(json!({"agent_id": m.agent_id, "host": m.host, "path": text(&m.json, "path")}));
        }
    }
    out
}

/// A medium finding of `rule` about the model `asset_id`.
fn model_finding(rule: &Rule, asset_id: &str, title: String, evidence: Value, hosts: BTreeSet<String>) -> NewFinding {
    finding(rule, asset_id.to_string(), "medium", title, evidence, hosts, BTreeSet::from([asset_id.to_string()]))
}

/// Each sighting is judged on its own: a model is unapproved while any host holds it under no
/// approved digest, repo or name (another host's approved name cannot clear it).
fn unapproved_models(models: &[Entry<'_>], policy: &Policy) -> Vec<NewFinding> {
    if !policy.lists_approved_models() {
        return Vec::new();
    }
    by_asset(models)
        .into_iter()
        .filter_map(|(asset_id, (entries, hosts, sightings))| {
            let unapproved = entries.iter().find(|json| {
                let sha = text(json, "sha256").unwrap_or("");
                let repo = json.get("source").and_then(|s| text(s, "repo"));
                !policy.approves_model(sha, repo, &model_names(json))
            })?;
            let names = model_names(unapproved);
            let name = names.first().copied().unwrap_or("?");
            let format = text(unapproved, "format").unwrap_or("?");
            let title = format!("unapproved model {name} ({format}) on {} host(s)", hosts.len());
            let evidence = json!({"asset_id": asset_id, "sha256": text(unapproved, "sha256"),
                "repo": unapproved.get("source").and_then(|s| text(s, "repo")), "names": names,
                "policy_version": policy.version, "sightings": sightings});
            Some(model_finding(&UNAPPROVED_MODEL, asset_id, title, evidence, hosts))
        })
        .collect()
}

/// Any sighting's declared licence outside the policy makes the finding.
fn licences(models: &[Entry<'_>], policy: &Policy) -> Vec<NewFinding> {
    by_asset(models)
        .into_iter()
        .filter_map(|(asset_id, (entries, hosts, sightings))| {
            let (json, licence, why) = entries.iter().find_map(|json| {
                let licence = json.get("metadata").and_then(|m| text(m, "license"))?;
                policy.licence_problem(licence).map(|why| (*json, licence, why))
            })?;
            let name = model_names(json).first().copied().unwrap_or("?").to_string();
            let title = format!("model {name} declares licence {licence}, {why} by the policy");
            let evidence = json!({"asset_id": asset_id, "licence": licence, "why": why,
                "policy_version": policy.version, "sightings": sightings});
            Some(model_finding(&LICENCE, asset_id, title, evidence, hosts))
        })
        .collect()
}

fn unapproved_frameworks(frameworks: &[Entry<'_>], policy: &Policy) -> Vec<NewFinding> {
    let mut out = Vec::new();
    for f in frameworks {
        let Some(name) = text(&f.json, "name") else { continue };
        let environment = f.json.get("environment");
        let kind = environment.and_then(|e| text(e, "kind")).unwrap_or("");
        if kind == "python-project" || kind == "node-project" || policy.approves_framework(name) {
            continue;
        }
        let location = environment.and_then(|e| text(e, "path")).unwrap_or("");
        let version = text(&f.json, "version").unwrap_or("?");
        let title = format!("{}: {name} {version} is not an approved framework ({location})", f.host);
        let evidence = json!({"agent_id": f.agent_id, "host": f.host, "ecosystem": text(&f.json, "ecosystem"),
            "name": name, "version": version, "environment": location, "policy_version": policy.version});
        out.push(entry_finding(
            &UNAPPROVED_FRAMEWORK,
            f,
            format!("{}|{name}|{location}", f.agent_id),
            "medium",
            title,
            evidence,
        ));
    }
    out
}

fn below_floor(frameworks: &[Entry<'_>], policy: &Policy) -> Vec<NewFinding> {
    let mut out = Vec::new();
    for f in frameworks {
        let (Some(name), Some(version)) = (text(&f.json, "name"), text(&f.json, "version")) else { continue };
        let environment = f.json.get("environment");
        let kind = environment.and_then(|e| text(e, "kind")).unwrap_or("");
        if kind == "python-project" || kind == "node-project" {
            continue;
        }
        let Some(floor) = policy.below_floor(name, version) else { continue };
        let location = environment.and_then(|e| text(e, "path")).unwrap_or("");
        let title = format!("{}: {name} {version} is below the policy floor {floor} ({location})", f.host);
        let evidence = json!({"agent_id": f.agent_id, "host": f.host, "name": name, "version": version,
            "floor": floor, "environment": location, "policy_version": policy.version});
        out.push(entry_finding(&BELOW_FLOOR, f, format!("{}|{name}|{location}", f.agent_id), "high", title, evidence));
    }
    out
}

/// Of each model digest: its worst verdict (`dangerous` > `suspicious` > the rest) and its asset.
fn model_verdicts<'a>(models: &'a [Entry<'a>]) -> HashMap<&'a str, (&'a str, &'a str)> {
    let rank = |v: &str| match v {
        "dangerous" => 2,
        "suspicious" => 1,
        _ => 0,
    };
    let mut out: HashMap<&str, (&str, &str)> = HashMap::new();
    for m in models {
        let (Some(sha), Some(verdict)) =
            (text(&m.json, "sha256"), m.json.get("safety").and_then(|s| text(s, "verdict")))
        else {
            continue;
        };
        let slot = out.entry(sha).or_insert((verdict, m.asset_id));
        if rank(verdict) > rank(slot.0) {
            slot.0 = verdict;
        }
    }
    out
}

/// The models a runtime has open, by digest and path.
fn open_models(runtime: &Value) -> Vec<(&str, &str)> {
    runtime
        .get("open_models")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(|m| (text(m, "sha256").unwrap_or(""), text(m, "path").unwrap_or(""))).collect())
        .unwrap_or_default()
}

/// The directories a running server names as where its models are: absolute paths among its
/// command-line arguments (`--model-store=/srv/models` counts), and the values of its
/// `*MODELS*`, `*MODEL_DIR*`, `*MODEL_PATH*` and `HF_HOME` variables. `/` alone is never one.
fn model_dirs(runtime: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let args = runtime.get("cmdline").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    for arg in args.skip(1) {
        let value = arg.split_once('=').map_or(arg, |(_, v)| v);
        if value.starts_with('/') && value.len() > 1 && !value.contains("<redacted>") {
            out.push(value.trim_end_matches('/').to_string());
        }
    }
    if let Some(env) = runtime.get("environment").and_then(Value::as_object) {
        for (name, value) in env {
            let upper = name.to_ascii_uppercase();
            let named = upper.contains("MODELS")
                || upper.contains("MODEL_DIR")
                || upper.contains("MODEL_PATH")
                || upper == "HF_HOME";
            if let (true, Some(v)) = (named, value.as_str().filter(|v| v.starts_with('/') && v.len() > 1)) {
                out.push(v.trim_end_matches('/').to_string());
            }
        }
    }
    out
}

/// Its non-loopback listening sockets, as `address:port`.
fn exposed_sockets(runtime: &Value) -> Vec<String> {
    let mut out: Vec<String> = runtime
        .get("listening")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|l| text(l, "exposure").is_some_and(|x| x != "loopback"))
                .map(|l| {
                    let address = text(l, "address").unwrap_or("?");
                    let port = l.get("port").and_then(Value::as_u64).unwrap_or(0);
                    if address.contains(':') {
                        format!("[{address}]:{port}")
                    } else {
                        format!("{address}:{port}")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

fn unsafe_models(models: &[Entry<'_>], runtimes: &[Entry<'_>]) -> Vec<NewFinding> {
    struct Group<'a> {
        verdict: &'a str,
        format: &'a str,
        name: &'a str,
        sha: &'a str,
        sightings: Vec<Value>,
        /// Each live sighting's host and path, for the served-directory check.
        places: Vec<(&'a str, &'a str)>,
        hosts: BTreeSet<String>,
    }
    // Indexes built once: the processes that have each digest open, and each host's servers
    // with the directories they serve (a process opens only files of its own host).
    let mut open_by_sha: HashMap<&str, Vec<(&Entry<'_>, &str)>> = HashMap::new();
    let mut dirs_by_host: HashMap<&str, Vec<(&Entry<'_>, Vec<String>)>> = HashMap::new();
    for r in runtimes {
        for (sha, path) in open_models(&r.json).into_iter().filter(|(sha, _)| !sha.is_empty()) {
            open_by_sha.entry(sha).or_default().push((r, path));
        }
        let dirs = model_dirs(&r.json);
        if !dirs.is_empty() {
            dirs_by_host.entry(r.agent_id).or_default().push((r, dirs));
        }
    }
    let mut groups: BTreeMap<&str, Group<'_>> = BTreeMap::new();
    for m in models {
        let verdict = m.json.get("safety").and_then(|s| text(s, "verdict")).unwrap_or("");
        if verdict != "dangerous" && verdict != "suspicious" {
            continue;
        }
        let path = text(&m.json, "path").unwrap_or("");
        let g = groups.entry(m.asset_id).or_insert_with(|| Group {
            verdict,
            format: text(&m.json, "format").unwrap_or(""),
            name: file_name(path),
            sha: text(&m.json, "sha256").unwrap_or(""),
            sightings: Vec::new(),
            places: Vec::new(),
            hosts: BTreeSet::new(),
        });
        if verdict == "dangerous" {
            g.verdict = "dangerous";
        }
        g.hosts.insert(m.agent_id.to_string());
        g.places.push((m.agent_id, path));
        if g.sightings.len() >= MAX_EVIDENCE_ITEMS {
            continue;
        }
        let reasons: Vec<&str> = m
            .json
            .get("safety")
            .and_then(|s| s.get("findings"))
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(|x| text(x, "subject").or_else(|| text(x, "kind"))).take(10).collect())
            .unwrap_or_default();
        g.sightings.push(
            json!({"agent_id": m.agent_id, "host": m.host, "path": path, "verdict": verdict, "reasons": reasons}),
        );
    }
    groups
        .into_iter()
        .map(|(asset_id, g)| {
            let mut hosts = g.hosts;
            let openers = if g.sha.is_empty() { &[][..] } else { open_by_sha.get(g.sha).map_or(&[][..], Vec::as_slice) };
            let processes: Vec<Value> = openers
                .iter()
                .take(MAX_EVIDENCE_ITEMS)
                .map(|(r, path)| {
                    json!({"agent_id": r.agent_id, "host": r.host, "pid": r.json.get("pid"), "kind": text(&r.json, "kind"),
                        "path": path, "listening": exposed_sockets(&r.json)})
                })
                .collect();
            hosts.extend(openers.iter().map(|(r, _)| r.agent_id.to_string()));
            // A server on the same host whose command line or model variables name a directory
            // the file sits in serves it, open yet or not.
            let mut served = Vec::new();
            'places: for (agent, path) in &g.places {
                for (r, dirs) in dirs_by_host.get(agent).map_or(&[][..], Vec::as_slice) {
                    if let Some(dir) = dirs.iter().find(|d| path.starts_with(&format!("{}/", d.trim_end_matches('/')))) {
                        served.push(json!({"agent_id": r.agent_id, "host": r.host, "pid": r.json.get("pid"),
                            "kind": text(&r.json, "kind"), "directory": dir, "path": path}));
                        if served.len() >= MAX_EVIDENCE_ITEMS {
                            break 'places;
                        }
                    }
                }
            }
            let severity = match (g.verdict, processes.is_empty() && served.is_empty()) {
                ("dangerous", false) => "critical",
                ("dangerous", true) => "high",
                _ => "medium",
            };
            let where_ = match (processes.first(), served.first()) {
                (Some(p), _) => format!(
                    ", open by {} on {}",
                    text(p, "kind").unwrap_or("a process"),
                    text(p, "host").unwrap_or("?")
                ),
                (None, Some(p)) => format!(
                    ", in the directory {} serves on {}",
                    text(p, "kind").unwrap_or("a server"),
                    text(p, "host").unwrap_or("?")
                ),
                (None, None) => String::new(),
            };
            let title = format!("{} {} model {} on {} host(s){where_}", g.verdict, g.format, g.name, hosts.len());
            let evidence = json!({"asset_id": asset_id, "sha256": g.sha, "format": g.format, "verdict": g.verdict,
                "sightings": g.sightings, "processes": processes, "served_from": served});
            finding(&UNSAFE_MODEL, asset_id.to_string(), severity, title, evidence, hosts, BTreeSet::from([asset_id.to_string()]))
        })
        .collect()
}

fn exposed_servers(runtimes: &[Entry<'_>], verdicts: &HashMap<&str, (&str, &str)>) -> Vec<NewFinding> {
    let mut out = Vec::new();
    for r in runtimes {
        let sockets = exposed_sockets(&r.json);
        if sockets.is_empty() {
            continue;
        }
        let kind = text(&r.json, "kind").unwrap_or("process");
        let auth = r.json.get("auth");
        let (unauthenticated, how) = match auth.and_then(|a| text(a, "state")) {
            Some("configured") => continue,
            Some("disabled") => (true, "with authentication disabled"),
            Some("default") => match auth.and_then(|a| text(a, "server_default")) {
                Some("none") => (true, "without authentication"),
                _ => continue,
            },
            _ => (false, "with authentication unknown"),
        };
        let open = open_models(&r.json);
        let served: Vec<Value> = open
            .iter()
            .map(|(sha, path)| {
                let verdict = verdicts.get(sha).map_or("unknown", |v| v.0);
                json!({"path": path, "sha256": sha, "verdict": verdict})
            })
            .collect();
        let dangerous = open.iter().find(|(sha, _)| verdicts.get(sha).is_some_and(|v| v.0 == "dangerous"));
        let severity = match (dangerous.is_some(), unauthenticated) {
            (true, _) => "critical",
            (false, true) => "high",
            (false, false) => "medium",
        };
        let serves = match (dangerous, open.first()) {
            (Some((_, path)), _) => format!(" serves dangerous {}", file_name(path)),
            (None, Some((_, path))) => format!(" serves {}", file_name(path)),
            (None, None) => String::new(),
        };
        let title = format!("{}: {kind}{serves} on {} {how}", r.host, sockets.join(", "));
        let subject = format!("{}|{kind}|{}", r.agent_id, sockets.join(","));
        let mut assets = BTreeSet::from([r.asset_id.to_string()]);
        assets.extend(open.iter().filter_map(|(sha, _)| verdicts.get(sha)).map(|v| v.1.to_string()));
        let evidence = json!({
            "agent_id": r.agent_id, "host": r.host, "kind": kind, "pid": r.json.get("pid"), "exe": r.json.get("exe"),
            "listening": sockets, "auth": auth, "open_models": served, "container": r.json.get("container"),
        });
        out.push(finding(
            &EXPOSED_SERVER,
            subject,
            severity,
            title,
            evidence,
            BTreeSet::from([r.agent_id.to_string()]),
            assets,
        ));
    }
    out
}

fn plaintext_keys(tooling: &[Entry<'_>]) -> Vec<NewFinding> {
    let mut out = Vec::new();
    for t in tooling {
        if text(&t.json, "kind") != Some("api_key") {
            continue;
        }
        let found_in = text(&t.json, "found_in").unwrap_or("");
        if !matches!(found_in, "dotenv" | "shell_profile" | "mcp_config") {
            continue;
        }
        let variable = text(&t.json, "variable").unwrap_or("?");
        let provider = text(&t.json, "provider").unwrap_or("unknown provider");
        let path = text(&t.json, "path").unwrap_or("?");
        let title = format!("{}: {variable} ({provider}) in plaintext in {path}", t.host);
        let subject = format!("{}|{path}|{variable}", t.agent_id);
        let evidence = json!({"agent_id": t.agent_id, "host": t.host, "path": path, "variable": variable,
            "provider": provider, "found_in": found_in});
        out.push(finding(
            &PLAINTEXT_KEY,
            subject,
            "medium",
            title,
            evidence,
            BTreeSet::from([t.agent_id.to_string()]),
            BTreeSet::from([t.asset_id.to_string()]),
        ));
    }
    out
}

fn vulnerable_versions(frameworks: &[Entry<'_>], runtimes: &[Entry<'_>], settings: &Settings) -> Vec<NewFinding> {
    /// Of one advisory on one host: the affected installs, their assets, the hostname.
    #[derive(Default)]
    struct Hit {
        installs: Vec<Value>,
        assets: BTreeSet<String>,
        host: String,
    }
    let mut hits: BTreeMap<(usize, String), Hit> = BTreeMap::new();
    let mut check = |ecosystem: Ecosystem, name: &str, version: &str, entry: &Entry<'_>, location: &str| {
        for (i, a) in settings.advisories.iter().enumerate() {
            if a.affects(ecosystem, name, version) {
                let hit = hits.entry((i, entry.agent_id.to_string())).or_default();
                hit.host = entry.host.to_string();
                hit.installs.push(json!({"name": name, "version": version, "location": location}));
                hit.assets.insert(entry.asset_id.to_string());
            }
        }
    };
    for f in frameworks {
        let (Some(ecosystem), Some(name), Some(version)) = (
            text(&f.json, "ecosystem").and_then(Ecosystem::of_framework),
            text(&f.json, "name"),
            text(&f.json, "version"),
        ) else {
            continue;
        };
        let kind = f.json.get("environment").and_then(|e| text(e, "kind")).unwrap_or("");
        if kind == "python-project" || kind == "node-project" {
            continue; // a declared requirement, not an installed version
        }
        let location = f.json.get("environment").and_then(|e| text(e, "path")).unwrap_or("");
        check(ecosystem, name, version, f, location);
    }
    for r in runtimes {
        let (Some(kind), Some(version)) =
            (text(&r.json, "kind"), r.json.get("identity").and_then(|i| text(i, "version")))
        else {
            continue;
        };
        let location = text(&r.json, "exe").unwrap_or("");
        check(Ecosystem::Server, kind, version, r, location);
    }
    hits.into_iter()
        .filter_map(|((i, agent_id), Hit { installs, assets, host })| {
            let a = settings.advisories.get(i)?;
            let first = installs.first()?;
            let title = format!(
                "{host}: {} {} is affected by {} ({})",
                text(first, "name").unwrap_or("?"),
                text(first, "version").unwrap_or("?"),
                a.id,
                a.summary
            );
            let evidence = json!({"agent_id": agent_id, "host": host, "advisory": a.id, "aliases": a.aliases,
                "summary": a.summary, "installs": installs});
            Some(finding(
                &VULNERABLE_VERSION,
                format!("{}|{agent_id}", a.id),
                a.severity(),
                title,
                evidence,
                BTreeSet::from([agent_id.clone()]),
                assets,
            ))
        })
        .collect()
}

fn silent_hosts(inventory: &LiveInventory, settings: &Settings, now_ms: i64) -> Vec<NewFinding> {
    let after = i64::try_from(settings.silent_after.as_millis()).unwrap_or(i64::MAX);
    inventory
        .hosts
        .iter()
        .filter_map(|h| {
            let seen = h.last_seen_ms.unwrap_or(h.enrolled_at_ms);
            let silent_for = now_ms.saturating_sub(seen);
            if silent_for <= after {
                return None;
            }
            let hours = silent_for / 3_600_000;
            let title = format!("{}: silent for {hours} h", h.hostname);
            let evidence = json!({"agent_id": h.agent_id, "host": h.hostname, "last_seen_ms": h.last_seen_ms,
                "silent_for_ms": silent_for});
            Some(finding(
                &SILENT_HOST,
                h.agent_id.clone(),
                "low",
                title,
                evidence,
                BTreeSet::from([h.agent_id.clone()]),
                BTreeSet::new(),
            ))
        })
        .collect()
}

/// Shell interpreters: an MCP server started as one runs whatever it is told.
const SHELLS: [&str; 9] = ["sh", "bash", "zsh", "dash", "fish", "ksh", "cmd", "powershell", "pwsh"];
/// Fragments of the names of MCP servers made to run commands.
const COMMAND_SERVERS: [&str; 6] =
    ["server-shell", "mcp-shell", "shell-server", "server-commands", "desktop-commander", "terminal"];
/// Fragments of variable and header names that carry credentials.
const CREDENTIAL_NAMES: [&str; 7] = ["key", "token", "secret", "password", "passwd", "auth", "credential"];

fn mcp_servers(tooling: &[Entry<'_>]) -> Vec<NewFinding> {
    let mut out = Vec::new();
    for t in tooling {
        if text(&t.json, "kind") != Some("mcp_config") {
            continue;
        }
        let path = text(&t.json, "path").unwrap_or("?");
        let client = text(&t.json, "client").unwrap_or("?");
        for server in t.json.get("servers").and_then(Value::as_array).into_iter().flatten() {
            let name = text(server, "name").unwrap_or("?");
            let command = text(server, "command").unwrap_or("");
            let program = file_name(command).trim_end_matches(".exe").to_ascii_lowercase();
            let args: Vec<&str> = server
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut reasons = Vec::new();
            if SHELLS.contains(&program.as_str()) {
                reasons.push(format!("runs a shell ({program})"));
            }
            if let Some(pkg) = std::iter::once(command).chain(args.iter().copied()).find(|a| {
                let a = a.to_ascii_lowercase();
                COMMAND_SERVERS.iter().any(|c| a.contains(c))
            }) {
                reasons.push(format!("is a command-execution server ({})", file_name(pkg)));
            }
            let names = |key: &str| -> Vec<String> {
                server
                    .get(key)
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .filter_map(Value::as_str)
                            .filter(|n| {
                                let n = n.to_ascii_lowercase();
                                CREDENTIAL_NAMES.iter().any(|c| n.contains(c))
                            })
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let credentials: Vec<String> = names("env").into_iter().chain(names("headers")).collect();
            if !credentials.is_empty() {
                reasons.push(format!("carries credentials ({})", credentials.join(", ")));
            }
            if reasons.is_empty() {
                continue;
            }
            let title = format!("{}: MCP server {name} ({client}) {}", t.host, reasons.join("; "));
            let evidence = json!({"agent_id": t.agent_id, "host": t.host, "config": path, "client": client,
                "server": name, "transport": text(server, "transport"), "command": command, "args": args,
                "credential_names": credentials, "reasons": reasons});
            out.push(entry_finding(&MCP_SERVER, t, format!("{}|{path}|{name}", t.agent_id), "medium", title, evidence));
        }
    }
    out
}

fn spread(models: &[Entry<'_>], settings: &Settings, now_ms: i64) -> Vec<NewFinding> {
    let window = i64::try_from(settings.spread_window.as_millis()).unwrap_or(i64::MAX);
    let since = now_ms.saturating_sub(window);
    let mut recent: BTreeMap<&str, (BTreeSet<String>, Option<&Value>)> = BTreeMap::new();
    for m in models.iter().filter(|m| m.first_seen_ms >= since) {
        let slot = recent.entry(m.asset_id).or_insert_with(|| (BTreeSet::new(), None));
        slot.0.insert(m.agent_id.to_string());
        slot.1.get_or_insert(&m.json);
    }
    recent
        .into_iter()
        .filter(|(_, (hosts, _))| hosts.len() >= settings.spread_hosts)
        .map(|(asset_id, (hosts, json))| {
            let name = json.map(model_names).and_then(|n| n.first().map(|s| s.to_string())).unwrap_or_default();
            let hours = window / 3_600_000;
            let title = format!("model {name} appeared on {} hosts within {hours} h", hosts.len());
            let evidence = json!({"asset_id": asset_id, "hosts": hosts.len(), "window_ms": window,
                "sha256": json.and_then(|j| text(j, "sha256"))});
            finding(
                &SPREAD,
                asset_id.to_string(),
                "medium",
                title,
                evidence,
                hosts,
                BTreeSet::from([asset_id.to_string()]),
            )
        })
        .collect()
}

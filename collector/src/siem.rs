//! Findings to the SIEM: every `[[siem]]` target gets the finding events of the audit trail
//! (`finding.opened`, `.reopened`, `.resolved`, `.acknowledged`, `.acknowledgement_expired`,
//! `.severity_changed`)
//! whose finding is at or above its `min_severity`, in order, in batches (docs/findings.md,
//! *Events to the SIEM*).
//!
//! # Delivery
//! The audit trail is the outbox: it is durable and ordered, and each target keeps a cursor
//! (the last sequence it accepted) in the store. A target's worker reads the events after its
//! cursor, sends a batch, and moves the cursor only when the target accepted it; on failure it
//! waits (1 s doubling to 60 s) and sends the same batch again. So nothing is lost while a SIEM
//! is down or the collector restarts, and delivery is at least once: every event carries its
//! idempotency key `<target>-<seq>` for the receiver to drop a repeat (Elastic does: it is the
//! document `_id`, created with `create`, and a repeat answers 409).
//!
//! # Targets
//! - `webhook`: `POST url` with `{"source": "aiscout", "events": [...]}`; `X-Aiscout-Timestamp`
//!   (Unix seconds) and `X-Aiscout-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." +
//!   body)>`, so a receiver checks who sent it and refuses an old timestamp (a replay);
//!   `Idempotency-Key: <target>-<first seq>-<last seq>`.
//! - `splunk_hec`: `POST url/services/collector/event` with `Authorization: Splunk <token>`,
//!   one HEC event object per finding event (`time`, `host`, `source`, `sourcetype
//!   aiscout:finding`, `event`).
//! - `elastic`: `POST url/_bulk` with `Authorization: ApiKey <key>`, one `create` of an ECS
//!   document (`event.kind: alert`, `event.category`, `rule.*`, `host.*`, `file.hash.sha256`,
//!   `aiscout.*`) per finding event into `index`.
//!
//! Every event carries its audit record's `seq` and `sha256`: kept by the SIEM, they anchor
//! the audit chain outside the collector (`aiscout-collector audit verify` prints the last).
//! Events are filtered by the severity their audit record states, not the finding's current
//! one, so a later downgrade never makes a target skip an event it was owed.
//!
//! The secret (HMAC key, HEC token, API key) is read from `secret_file` at start and never
//! logged.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::{SiemKind, SiemTarget};
use crate::store::{AuditRecord, FindingRecord, Store};

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest a request may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// One event as it is sent.
struct Event {
    seq: u64,
    record: AuditRecord,
    finding: FindingRecord,
}

impl Event {
    fn id(&self, target: &str) -> String {
        format!("{target}-{}", self.seq)
    }
}

/// A target ready to send: its settings, secret and HTTP agent.
pub struct Sender {
    target: SiemTarget,
    secret: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("target", &self.target.name).finish_non_exhaustive()
    }
}

impl Sender {
    /// `target` with its secret read from its `secret_file`.
    pub fn new(target: SiemTarget) -> Result<Self, String> {
        let secret = crate::read_secret_file(&target.secret_file)
            .map_err(|e| format!("siem {}: secret_file {}: {e}", target.name, target.secret_file.display()))?
            .trim()
            .to_string();
        if secret.is_empty() {
            return Err(format!("siem {}: secret_file {} is empty", target.name, target.secret_file.display()));
        }
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into();
        Ok(Self { target, secret, agent })
    }

    /// The request for `events`: URL, headers and body.
    fn request(&self, events: &[Event], now_secs: u64) -> (String, Vec<(&'static str, String)>, String) {
        let name = &self.target.name;
        let url = self.target.url.trim_end_matches('/');
        match self.target.kind {
            SiemKind::Webhook => {
                let body = json!({"source": "aiscout", "events": events.iter().map(|e| webhook_event(name, e)).collect::<Vec<_>>()})
                    .to_string();
                let signature = sign(&self.secret, now_secs, &body);
                let first = events.first().map_or(0, |e| e.seq);
                let last = events.last().map_or(0, |e| e.seq);
                let headers = vec![
                    ("Content-Type", "application/json".to_string()),
                    ("X-Aiscout-Timestamp", now_secs.to_string()),
                    ("X-Aiscout-Signature", format!("sha256={signature}")),
                    ("Idempotency-Key", format!("{name}-{first}-{last}")),
                ];
                (url.to_string(), headers, body)
            }
            SiemKind::SplunkHec => {
                let url = if url.ends_with("/services/collector/event") {
                    url.to_string()
                } else {
                    format!("{url}/services/collector/event")
                };
                let body: String = events
                    .iter()
                    .map(|e| {
                        json!({
                            "time": e.record.at_ms / 1000,
                            "host": first_host(&e.finding),
                            "source": "aiscout",
                            "sourcetype": "aiscout:finding",
                            "event": webhook_event(name, e),
                        })
                        .to_string()
                    })
                    .collect();
                let headers = vec![
                    ("Content-Type", "application/json".to_string()),
                    ("Authorization", format!("Splunk {}", self.secret)),
                ];
                (url, headers, body)
            }
            SiemKind::Elastic => {
                let index = self.target.index.as_deref().unwrap_or("aiscout-findings");
                let mut body = String::new();
                for e in events {
                    body.push_str(&json!({"create": {"_index": index, "_id": e.id(name)}}).to_string());
                    body.push('\n');
                    body.push_str(&ecs(name, e).to_string());
                    body.push('\n');
                }
                let headers = vec![
                    ("Content-Type", "application/x-ndjson".to_string()),
                    ("Authorization", format!("ApiKey {}", self.secret)),
                ];
                (format!("{url}/_bulk"), headers, body)
            }
        }
    }

    /// Sends `events`; `Ok` when the target accepted every one.
    fn send(&self, events: &[Event], now_secs: u64) -> Result<(), String> {
        let (url, headers, body) = self.request(events, now_secs);
        let mut request = self.agent.post(&url);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let mut response = request.send(body).map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default();
        if !(200..300).contains(&status) {
            let short: String = text.chars().take(200).collect();
            return Err(format!("POST {url}: status {status}: {short}"));
        }
        if self.target.kind == SiemKind::Elastic {
            bulk_accepted(&text).map_err(|e| format!("POST {url}: {e}"))?;
        }
        Ok(())
    }
}

/// `hex(HMAC-SHA256(secret, "<timestamp>.<body>"))`.
pub fn sign(secret: &str, timestamp: u64, body: &str) -> String {
    // HMAC accepts a key of any length: `new_from_slice` cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("{timestamp}.{body}").as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// The host names of a finding's evidence, or its first agent id.
fn first_host(f: &FindingRecord) -> String {
    serde_json::from_str::<Value>(&f.found.evidence_json)
        .ok()
        .and_then(|e| e.get("host").and_then(Value::as_str).map(str::to_string))
        .or_else(|| f.found.hosts.first().cloned())
        .unwrap_or_default()
}

fn webhook_event(target: &str, e: &Event) -> Value {
    json!({"id": e.id(target), "seq": e.seq, "action": e.record.kind, "at_ms": e.record.at_ms,
        "detail": serde_json::from_str::<Value>(&e.record.detail_json).unwrap_or(Value::Null),
        "audit": {"seq": e.record.seq, "sha256": e.record.sha256},
        "finding": crate::findings::to_json(&e.finding)})
}

/// The ECS document of `e`.
fn ecs(target: &str, e: &Event) -> Value {
    let f = &e.finding;
    let evidence: Value = serde_json::from_str(&f.found.evidence_json).unwrap_or(Value::Null);
    let category = match f.found.rule_id.as_str() {
        "vulnerable-version" | "framework-below-floor" => "vulnerability",
        "exposed-inference-server" => "network",
        "unsafe-model-serialization" => "malware",
        "silent-host" => "host",
        _ => "configuration",
    };
    let severity = match f.found.severity.as_str() {
        "critical" => 99,
        "high" => 73,
        "medium" => 47,
        "low" => 21,
        _ => 0,
    };
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.record.at_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    let rule = crate::findings::rule(&f.found.rule_id);
    let mut doc = json!({
        "@timestamp": at,
        "message": f.found.title,
        "event": {"kind": "alert", "category": [category], "type": ["info"], "action": e.record.kind,
            "id": e.id(target), "severity": severity, "dataset": "aiscout.findings", "module": "aiscout"},
        "rule": {"id": f.found.rule_id, "name": rule.map(|r| r.title), "description": rule.map(|r| r.description),
            "ruleset": "aiscout"},
        "host": {"name": first_host(f), "id": f.found.hosts.first()},
        "aiscout": {"finding": crate::findings::to_json(f), "audit": {"seq": e.record.seq, "sha256": e.record.sha256}},
    });
    let sha = evidence.get("sha256").and_then(Value::as_str).filter(|s| !s.is_empty());
    let path = evidence.pointer("/sightings/0/path").or_else(|| evidence.get("path")).and_then(Value::as_str);
    if let (Some(object), true) = (doc.as_object_mut(), sha.is_some() || path.is_some()) {
        object.insert("file".into(), json!({"path": path, "hash": {"sha256": sha}}));
    }
    doc
}

/// Whether a `_bulk` answer accepted every item: created (201) or already there (409).
fn bulk_accepted(text: &str) -> Result<(), String> {
    let answer: Value = serde_json::from_str(text).map_err(|e| format!("not a bulk answer: {e}"))?;
    if answer.get("errors") == Some(&Value::Bool(false)) {
        return Ok(());
    }
    let items = answer.get("items").and_then(Value::as_array).ok_or("a bulk answer without items")?;
    for item in items {
        let status = item.get("create").and_then(|c| c.get("status")).and_then(Value::as_u64).unwrap_or(0);
        if status != 201 && status != 409 {
            return Err(format!("an item was refused with status {status}"));
        }
    }
    Ok(())
}

/// Delivers to `sender`'s target until `stop` turns true (module docs, *Delivery*).
pub async fn run(store: Arc<dyn Store>, sender: Sender, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sender = Arc::new(sender);
    let name = sender.target.name.clone();
    let mut backoff = Duration::from_secs(1);
    loop {
        let (s, t) = (Arc::clone(&store), Arc::clone(&sender));
        let outcome = tokio::task::spawn_blocking(move || deliver_once(&*s, &t)).await;
        let wait = match outcome {
            Ok(Ok(0)) => {
                backoff = Duration::from_secs(1);
                Duration::from_secs(1)
            }
            Ok(Ok(sent)) => {
                tracing::debug!(target_name = %name, sent, "siem events delivered");
                backoff = Duration::from_secs(1);
                Duration::ZERO
            }
            Ok(Err(e)) => {
                tracing::warn!(target_name = %name, error = %e, retry_ms = u64::try_from(backoff.as_millis()).unwrap_or(0), "siem delivery failed; the events wait in the outbox");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
            Err(e) => {
                tracing::warn!(target_name = %name, error = %e, "siem delivery died; trying again");
                backoff
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One batch: the events after the cursor, filtered by severity, sent; the number sent.
fn deliver_once(store: &dyn Store, sender: &Sender) -> Result<usize, String> {
    let target = &sender.target;
    let cursor = store.siem_cursor(&target.name).map_err(|e| e.to_string())?;
    let records = store.finding_events(cursor, target.batch_max).map_err(|e| e.to_string())?;
    let Some(last) = records.last().map(|r| r.seq) else { return Ok(0) };
    let min = crate::findings::severity_rank(&target.min_severity);
    let mut events = Vec::new();
    for record in records {
        let Some(finding) = store.finding(&record.subject).map_err(|e| e.to_string())? else { continue };
        // The severity when the event happened (its audit record says it), not the finding's
        // now: a later downgrade must not make a target skip an event it was owed.
        let detail: Value = serde_json::from_str(&record.detail_json).unwrap_or(Value::Null);
        let at_the_time = detail.get("severity").and_then(Value::as_str).unwrap_or(&finding.found.severity);
        if crate::findings::severity_rank(at_the_time) >= min {
            events.push(Event { seq: record.seq, record, finding });
        }
    }
    let now = crate::now_ms();
    if !events.is_empty() {
        let secs = u64::try_from(now / 1000).unwrap_or(0);
        if let Err(e) = sender.send(&events, secs) {
            let _ = store.note_siem_error(&target.name, &e, now);
            return Err(e);
        }
    }
    let sent = events.len();
    store.advance_siem_cursor(&target.name, last, sent as u64, now).map_err(|e| e.to_string())?;
    Ok(sent.max(1))
}

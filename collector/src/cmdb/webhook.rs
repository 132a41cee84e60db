//! The generic CMDB target: the inventory as JSON records POSTed in signed batches to a URL, for
//! CMDBs without a ServiceNow-style API (docs/exports.md, *Webhook*).
//!
//! Each request is `{"source": "aiscout", "schema": "aiscout.cmdb.v1", "push": <push id>,
//! "batch": n, "batches": N, "records": [...]}`, signed as the SIEM webhook is:
//! `X-Aiscout-Timestamp` (Unix seconds) and `X-Aiscout-Signature: sha256=<hex
//! HMAC-SHA256(secret, timestamp + "." + body)>`, with `Idempotency-Key: <push id>-<n>`. The
//! batches follow [`super::batches`]: a host record comes before the server and model records
//! that name it, in the same request. A record is keyed by `key` (the agent id of a host, the
//! asset id of a server or a model), stable across pushes: the receiver upserts on it. A record
//! with `"retired": true` is gone from the fleet; nothing is ever sent to be deleted. A batch
//! answered a 4xx other than 401, 403 and 429 counts its records failed and the push goes on.

use serde_json::{json, Value};

use super::config::{read_secret, WebhookConfig};
use super::{batch_refused, batches, refuse_batch, Ci, CmdbInventory, Http, Outcome, PushReport, Tally};

/// The schema every body names.
pub const SCHEMA: &str = "aiscout.cmdb.v1";

/// The record of one CI (docs/exports.md, *Webhook*), every text cut to
/// [`super::MAX_FIELD_BYTES`] and every list to [`super::MAX_LIST_ITEMS`].
pub fn record(ci: &Ci<'_>) -> Value {
    let mut record = match ci {
        Ci::Host(h) => json!({
            "type": "host", "key": h.agent_id, "retired": h.retired, "last_seen": crate::rfc3339_seconds(h.last_seen_ms),
            "hostname": h.hostname, "os": h.os, "kernel": h.kernel, "arch": h.arch, "ip_addresses": h.ip_addresses,
            "serial": h.serial, "product_uuid": h.product_uuid, "machine_id": h.machine_id,
            "mac_addresses": h.mac_addresses, "cloud_instance_id": h.cloud_instance_id,
            "identity_withheld": h.identity_withheld,
        }),
        Ci::Server(s) => json!({
            "type": "server", "key": s.asset_id, "host_key": s.agent_id, "retired": s.retired,
            "last_seen": crate::rfc3339_seconds(s.last_seen_ms), "kind": s.kind, "ports": s.ports, "exposure": s.exposure,
            "auth": s.auth, "exe": s.exe, "version": s.version,
        }),
        Ci::Model(m) => json!({
            "type": "model", "key": m.asset_id, "host_keys": m.hosts, "retired": m.retired,
            "last_seen": crate::rfc3339_seconds(m.last_seen_ms), "name": m.name, "format": m.format, "sha256": m.sha256,
            "size": m.size, "architecture": m.architecture, "parameters": m.parameters,
            "quantization": m.quantization, "license": m.license, "source": m.source, "verdict": m.verdict,
        }),
    };
    cap(&mut record);
    record
}

/// Cuts every string in `value` to [`super::MAX_FIELD_BYTES`] and every array to
/// [`super::MAX_LIST_ITEMS`]: one agent's overlong text must not make the receiver refuse a
/// batch.
fn cap(value: &mut Value) {
    match value {
        Value::String(s) => {
            let end = super::cut(s, super::MAX_FIELD_BYTES).len();
            s.truncate(end);
        }
        Value::Array(items) => {
            items.truncate(super::MAX_LIST_ITEMS);
            items.iter_mut().for_each(cap);
        }
        Value::Object(fields) => fields.values_mut().for_each(cap),
        _ => {}
    }
}

/// The record type of `ci`, the report's "class".
fn record_type(ci: &Ci<'_>) -> &'static str {
    match ci {
        Ci::Host(_) => "host",
        Ci::Server(_) => "server",
        Ci::Model(_) => "model",
    }
}

/// The webhook target with its HMAC key read.
pub struct Webhook {
    config: WebhookConfig,
    secret: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.config.url).finish_non_exhaustive()
    }
}

impl Webhook {
    /// `config` with its secret read.
    pub fn new(config: WebhookConfig) -> Result<Self, String> {
        let secret = read_secret(
            "cmdb.webhook",
            config.secret_file.as_ref(),
            config.secret_env.as_ref(),
            config.secret.as_ref(),
        )?;
        Ok(Self { config, secret })
    }

    /// POSTs `inventory` in batches (module docs), counting into `report`.
    pub fn push(&self, inventory: &CmdbInventory, report: &mut PushReport) -> Result<(), String> {
        let c = &self.config;
        let mut http = Http::new("cmdb.webhook", c.ca_file.as_deref(), c.timeout, c.max_retry_wait)?;
        let mut tally = Tally::default();
        let all = batches(inventory, c.batch_size);
        let push_id = format!("cmdb-{}", report.started_at_ms);
        let mut outcome = Ok(());
        for (n, batch) in all.iter().enumerate() {
            let records: Vec<Value> = batch.cis.iter().map(record).collect();
            let body = json!({"source": "aiscout", "schema": SCHEMA, "push": push_id, "batch": n + 1,
                "batches": all.len(), "records": records})
            .to_string();
            let now = u64::try_from(crate::now_ms() / 1000).unwrap_or(0);
            let headers = [
                ("Content-Type", "application/json".to_string()),
                ("X-Aiscout-Timestamp", now.to_string()),
                ("X-Aiscout-Signature", format!("sha256={}", crate::siem::sign(&self.secret, now, &body))),
                ("Idempotency-Key", format!("{push_id}-{}", n + 1)),
            ];
            let sent = http.send(&c.url, &headers, Some(&body)).and_then(|(status, text)| {
                if (200..300).contains(&status) {
                    Ok(true)
                } else if batch_refused(status) {
                    tracing::warn!(url = %c.url, status, records = batch.cis.len(), "cmdb batch refused whole: its records count failed, the push goes on");
                    let short: String = text.chars().take(200).collect();
                    refuse_batch(&mut tally, batch, |ci| record_type(ci).to_string(), &c.url, status, &short);
                    Ok(false)
                } else {
                    let short: String = text.chars().take(200).collect();
                    Err(format!("POST {}: status {status}: {}", c.url, crate::untrusted::text(&short)))
                }
            });
            match sent {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
            for ci in &batch.cis {
                tally.record(record_type(ci), ci.key(), Outcome::Delivered, ci.retired());
            }
        }
        tally.finish(report);
        report.requests += http.requests;
        report.throttled += http.throttled;
        report.waited_ms += u64::try_from(http.waited.as_millis()).unwrap_or(u64::MAX);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdb::{CmdbHost, CmdbServer};

    #[test]
    fn records_carry_stable_keys_and_name_their_host() {
        let h = CmdbHost {
            agent_id: "a1".into(),
            hostname: "h".into(),
            os: "Debian GNU/Linux 12".into(),
            kernel: "6.1".into(),
            arch: "aarch64".into(),
            ip_addresses: vec![],
            serial: "S1".into(),
            product_uuid: String::new(),
            machine_id: "m".into(),
            mac_addresses: vec![],
            cloud_instance_id: String::new(),
            last_seen_ms: 0,
            retired: true,
            identity_withheld: false,
        };
        let r = record(&Ci::Host(&h));
        assert_eq!(
            (r["type"].as_str(), r["key"].as_str(), r["retired"].as_bool()),
            (Some("host"), Some("a1"), Some(true))
        );
        assert_eq!(r["last_seen"], "1970-01-01T00:00:00Z");
        let s = CmdbServer {
            asset_id: "runtime:x".into(),
            agent_id: "a1".into(),
            kind: "vllm".into(),
            ports: vec![8000],
            exposure: "loopback".into(),
            auth: "configured".into(),
            exe: String::new(),
            version: String::new(),
            last_seen_ms: 0,
            retired: false,
        };
        let r = record(&Ci::Server(&s));
        assert_eq!((r["host_key"].as_str(), r["ports"][0].as_u64()), (Some("a1"), Some(8000)));
    }

    #[test]
    fn records_are_cut_as_servicenow_fields_are() {
        let s = CmdbServer {
            asset_id: "runtime:x".into(),
            agent_id: "a1".into(),
            kind: "vllm".into(),
            ports: (1..=200).collect(),
            exposure: String::new(),
            auth: String::new(),
            exe: format!("/{}", "ü".repeat(400)),
            version: String::new(),
            last_seen_ms: 0,
            retired: false,
        };
        let r = record(&Ci::Server(&s));
        assert_eq!(r["ports"].as_array().unwrap().len(), 64);
        let exe = r["exe"].as_str().unwrap();
        assert_eq!((exe.len(), exe.chars().count()), (255, 128), "cut on a char boundary");
    }
}

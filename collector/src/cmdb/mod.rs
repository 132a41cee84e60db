//! The inventory pushed to a CMDB: hosts, the inference servers that run on them and the models
//! they hold, to ServiceNow ([`servicenow`]) or to any CMDB through a signed JSON webhook
//! ([`webhook`]), by `aiscout-collector push …` or on a schedule by `serve` (docs/exports.md, *CMDB push*).
//!
//! # What is pushed
//! [`read_inventory`] reads the store once:
//! 1. **Hosts**: every agent but a superseded one (its successor is the same machine): its
//!    hostname, host facts (os, kernel, ip addresses) and identity facts (serial, DMI UUID,
//!    machine id, MACs). A decommissioned or revoked host is sent **retired**.
//! 2. **Servers**: runtime assets whose kind is a known server (anything but `ml-process`), or
//!    that listen on a port. Each runs on one host (its identity names the agent).
//! 3. **Models**: model assets that are not package files, related to every host with a live
//!    sighting of them (to the hosts that last had them when none has).
//! 4. An asset with no live sighting left is sent **retired** (`install_status` 7), never
//!    deleted: the CMDB keeps its history and a rerun does not insert it again.
//!
//! Every CI carries a stable key, the agent id for a host and the asset id for the others, so
//! a rerun updates what the previous run inserted.
//!
//! # What an agent can make the push do
//! A host's serial, DMI UUID, machine id and MACs are what its agent stated at enrollment: a
//! hostile agent can state another machine's. They are withheld ([`CmdbHost::identity_withheld`])
//! from a retired host, which ServiceNow then reconciles by its source key alone, and from every
//! host that shares one with another unretired host (a clone or a liar): no CMDB identification
//! rule can match either to another machine's CI. Every text is cut to its field's length
//! ([`MAX_FIELD_BYTES`], [`MAX_DESCRIPTION_BYTES`]) and every list to [`MAX_LIST_ITEMS`], and a
//! batch the CMDB refuses whole with a 4xx ([`batch_refused`]) counts its CIs failed while the
//! push goes on.
//!
//! # Batches
//! [`batches`] cuts the CIs in requests of at most `batch_size` items, host by host: a host,
//! then its servers and models, each with its relation to the host. A dependent CI is always in
//! a batch with its host: a host with more dependents than a batch holds is sent again at the
//! head of the next batch (the CMDB answers it unchanged). A model on several hosts is sent once
//! with each of them; the report counts every CI once.
//!
//! # Requests
//! Requests go through [`Http`]: rustls with the system's roots and an optional extra CA, no
//! redirect, a timeout, every answer read to at most [`MAX_RESPONSE_BYTES`], and a 429 waited out
//! as its `Retry-After` says, until the push has waited `max_retry_wait` in all. Errors name the
//! URL, never a credential.
//!
//! # Files
//! - `config.rs`: `[cmdb.servicenow]` and `[cmdb.webhook]`, validated key by key; secrets.
//! - `inventory.rs`: [`read_inventory`] and [`batches`].
//! - `report.rs`: [`PushReport`], and [`Tally`] which counts each CI once.
//! - `http.rs`: [`Http`], the client of both targets.
//! - [`servicenow`], [`webhook`]: the targets.
//! - this file: [`Target`], the schedule of `serve`, the report kept and logged.

pub mod config;
mod http;
mod inventory;
mod report;
pub mod servicenow;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

pub use config::{CmdbConfig, Secret, ServiceNowAuth, ServiceNowConfig, WebhookConfig};
pub use http::{Http, MAX_RESPONSE_BYTES};
pub use inventory::{batches, read_inventory, Batch, Ci, CmdbHost, CmdbInventory, CmdbModel, CmdbServer};
pub use report::{ClassCounts, ItemError, Outcome, PushReport, Tally};

use crate::store::Store;

/// Unix milliseconds as ServiceNow's `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn glide_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

/// Longest text put in a CI field or a webhook record, in bytes (ServiceNow's `name` and most
/// string fields hold 255 characters; a byte cut is never longer).
pub const MAX_FIELD_BYTES: usize = 255;

/// Longest `short_description` (ServiceNow's field holds 1000 characters).
pub const MAX_DESCRIPTION_BYTES: usize = 1000;

/// Most items of a list (MAC or IP addresses, ports) pushed for one CI, as `aiscout_proto::bom`
/// caps a host's addresses: one agent cannot make a request the CMDB refuses for its size.
pub const MAX_LIST_ITEMS: usize = 64;

/// `text` cut to at most `max` bytes, on a char boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..end]
}

/// Whether a batch answered `status` is refused on its own (its CIs counted failed, the push
/// going on): a 4xx that is not about the credentials (401, 403) or the rate (429), such as
/// 413 for a body too large or 400 for one the CMDB cannot read. Anything else that is not a
/// 2xx stops the push.
pub fn batch_refused(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 429)
}

/// Counts every CI of `batch` failed: the CMDB refused the whole request with `status`.
fn refuse_batch(
    tally: &mut Tally,
    batch: &Batch<'_>,
    class_of: impl Fn(&Ci<'_>) -> String,
    url: &str,
    status: u16,
    answer: &str,
) {
    // Kept raw as the CMDB's own messages are: the report escapes them when it prints.
    let message: String = format!("POST {url}: status {status}: {answer}").chars().take(300).collect();
    for ci in &batch.cis {
        let error = ItemError {
            class: class_of(ci),
            key: ci.key().to_string(),
            error: format!("HTTP_{status}"),
            message: message.clone(),
        };
        tally.refuse(error, ci.retired());
    }
}

/// A configured target, ready to push: its credentials read.
#[derive(Debug)]
pub enum Target {
    /// ServiceNow.
    ServiceNow(servicenow::ServiceNow),
    /// The webhook.
    Webhook(webhook::Webhook),
}

impl Target {
    /// `servicenow` or `webhook`: the report's and the API's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ServiceNow(_) => "servicenow",
            Self::Webhook(_) => "webhook",
        }
    }

    /// Pushes the inventory of `store`; the report says what happened, a failure included.
    pub fn push(&self, store: &dyn Store, dry_run: bool) -> PushReport {
        let mut report = PushReport::start(self.name(), dry_run);
        let outcome =
            read_inventory(store).map_err(|e| format!("reading the inventory: {e}")).and_then(|inventory| match self {
                Self::ServiceNow(s) => s.push(&inventory, dry_run, &mut report),
                Self::Webhook(w) => w.push(&inventory, &mut report),
            });
        report.error = outcome.err();
        report.ok = report.error.is_none() && report.errors_total == 0;
        report.finished_at_ms = crate::now_ms();
        report
    }
}

/// The targets `serve` pushes to on a schedule, with their intervals.
pub fn scheduled(config: &CmdbConfig) -> Result<Vec<(Target, Duration)>, String> {
    let mut out = Vec::new();
    if let Some(s) = &config.servicenow {
        if let Some(interval) = s.interval {
            out.push((Target::ServiceNow(servicenow::ServiceNow::new(s.clone())?), interval));
        }
    }
    if let Some(w) = &config.webhook {
        if let Some(interval) = w.interval {
            out.push((Target::Webhook(webhook::Webhook::new(w.clone())?), interval));
        }
    }
    Ok(out)
}

/// Pushes to `target` now and then every `interval` until `stop` turns true, off the async
/// runtime; each report is logged and kept in the store for `GET /api/v1/cmdb/last-push`.
pub async fn run_periodically(
    store: Arc<dyn Store>,
    target: Target,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let target = Arc::new(target);
    loop {
        let (s, t) = (Arc::clone(&store), Arc::clone(&target));
        match tokio::task::spawn_blocking(move || {
            let report = t.push(&*s, false);
            record(&*s, &report);
            report
        })
        .await
        {
            Ok(report) => log_report(&report),
            Err(e) => {
                tracing::warn!(target_name = target.name(), error = %e, "cmdb push died; trying at the next interval")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Keeps `report` as its target's last push (a dry run is not kept).
pub fn record(store: &dyn Store, report: &PushReport) {
    if report.dry_run {
        return;
    }
    let json = serde_json::to_string(report).unwrap_or_default();
    if let Err(e) = store.record_cmdb_push(&report.target, report.finished_at_ms, &json) {
        tracing::warn!(target_name = %report.target, error = %e, "cannot keep the cmdb push report");
    }
}

/// Logs `report`, fields first.
pub fn log_report(r: &PushReport) {
    let count = |f: fn(&ClassCounts) -> u64| r.classes.values().map(f).sum::<u64>();
    let (inserted, updated, unchanged, failed) =
        (count(|c| c.inserted), count(|c| c.updated), count(|c| c.unchanged), count(|c| c.failed));
    match &r.error {
        None if r.ok => {
            tracing::info!(target_name = %r.target, inserted, updated, unchanged, failed, requests = r.requests, throttled = r.throttled, "cmdb push done")
        }
        None => {
            let first = r.errors.first().map(|e| format!("{} {}: {}", e.class, e.error, e.message)).unwrap_or_default();
            tracing::warn!(target_name = %r.target, inserted, updated, unchanged, failed,
                first_error = %crate::untrusted::text(&first), "cmdb push: some cis were refused");
        }
        Some(e) => {
            tracing::warn!(target_name = %r.target, inserted, updated, unchanged, failed, error = %crate::untrusted::text(e), "cmdb push failed")
        }
    }
}

#[cfg(test)]
mod tests;

//! Verification through the collector's HTTP API after every agent has finished.
//!
//! 1. `GET /api/v1/hosts` (every keyset page): the live sightings count of each simulated
//!    host must equal the entries its simulated agent holds.
//! 2. `GET /api/v1/assets?kind=model&include_owned=true` (every page): the live model assets
//!    must be exactly the distinct model digests live anywhere in the simulated fleet. Assets
//!    the fleet does not hold are a difference too, unless hosts outside the simulation hold
//!    live sightings (another run's agents): they are then reported, not counted.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

/// Differences listed at most, per check.
const MAX_LISTED: usize = 20;

/// What the simulator expects the store to hold.
#[derive(Debug, Default)]
pub struct Expected {
    /// Live entries per agent id.
    pub sightings: BTreeMap<String, u64>,
    /// Distinct live model digests across the fleet.
    pub model_digests: BTreeSet<String>,
}

/// The outcome of the checks.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Verification {
    /// Whether nothing differed.
    pub ok: bool,
    /// Simulated hosts checked.
    pub hosts_checked: usize,
    /// Of which with a different live sightings count (or missing).
    pub hosts_differing: usize,
    /// Distinct live model digests the fleet holds.
    pub expected_models: usize,
    /// Live model assets the store lists.
    pub stored_models: usize,
    /// Hosts outside the simulation that hold live sightings.
    pub foreign_hosts: usize,
    /// What differs, one line each (the first ones).
    pub differences: Vec<String>,
}

impl Verification {
    /// One line, or the differences under it.
    pub fn text(&self) -> String {
        let mut out = format!(
            "verification: {} ({} hosts checked, {} differ; live model assets: {} expected, {} stored{})",
            if self.ok { "ok" } else { "MISMATCH" },
            self.hosts_checked,
            self.hosts_differing,
            self.expected_models,
            self.stored_models,
            if self.foreign_hosts > 0 {
                format!("; {} hosts outside the simulation", self.foreign_hosts)
            } else {
                String::new()
            }
        );
        for d in &self.differences {
            out.push_str("\n  ");
            out.push_str(d);
        }
        out
    }
}

/// The collector's HTTP API.
#[derive(Debug)]
pub struct Api {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// A bearer token with the `read` scope.
    pub token: String,
}

impl Api {
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let body = ureq::get(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .with_context(|| format!("GET {url}"))?;
        serde_json::from_str(&body).with_context(|| format!("GET {url}: not json"))
    }

    /// Every item of a paged listing at `path`.
    fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = match &after {
                None => self.get(&format!("{path}{separator}limit=1000"))?,
                Some(cursor) => self.get(&format!("{path}{separator}limit=1000&after={cursor}"))?,
            };
            items.extend(page.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(cursor) => after = Some(cursor.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// Checks the store against `expected` (module docs).
pub fn verify(api: &Api, expected: &Expected) -> anyhow::Result<Verification> {
    let mut v = Verification { hosts_checked: expected.sightings.len(), ..Verification::default() };
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for host in api.all("/api/v1/hosts")? {
        let id = host.get("agent_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let sightings = host.get("sightings").and_then(Value::as_u64).unwrap_or(0);
        stored.insert(id, sightings);
    }
    let mut host_lines = Vec::new();
    for (agent_id, want) in &expected.sightings {
        match stored.get(agent_id) {
            Some(got) if got == want => {}
            Some(got) => host_lines.push(format!("host {agent_id}: {got} live sightings stored, {want} held")),
            None => host_lines.push(format!("host {agent_id}: not listed, {want} entries held")),
        }
    }
    v.hosts_differing = host_lines.len();
    v.foreign_hosts = stored.iter().filter(|(id, n)| **n > 0 && !expected.sightings.contains_key(*id)).count();

    let assets = api.all("/api/v1/assets?kind=model&include_owned=true")?;
    let listed: BTreeSet<String> = assets
        .iter()
        .filter_map(|a| a.get("id").and_then(Value::as_str))
        .filter_map(|id| id.strip_prefix("model:"))
        .map(str::to_owned)
        .collect();
    v.expected_models = expected.model_digests.len();
    v.stored_models = listed.len();
    let missing: Vec<&String> = expected.model_digests.difference(&listed).collect();
    let extra: Vec<&String> = listed.difference(&expected.model_digests).collect();
    let mut model_lines: Vec<String> = missing.iter().map(|d| format!("model {d}: held, not listed live")).collect();
    let extra_counts = v.foreign_hosts == 0;
    if !extra.is_empty() {
        let verb = if extra_counts {
            "listed live, held by no simulated host"
        } else {
            "listed live (hosts outside the simulation?)"
        };
        model_lines.extend(extra.iter().map(|d| format!("model {d}: {verb}")));
    }
    v.ok = host_lines.is_empty() && missing.is_empty() && (extra.is_empty() || !extra_counts);
    if !missing.is_empty() || !extra.is_empty() {
        v.differences.push(format!(
            "live model assets: {} held but not listed, {} listed but not held",
            missing.len(),
            extra.len()
        ));
    }
    v.differences.extend(host_lines.into_iter().take(MAX_LISTED));
    v.differences.extend(model_lines.into_iter().take(MAX_LISTED));
    Ok(v)
}

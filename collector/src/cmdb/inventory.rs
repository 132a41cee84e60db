//! What is pushed, read from the store, and its cut into batches (`super`, *What is pushed*
//! and *Batches*).

use std::collections::HashMap;

use aiscout_proto::bom;
use serde_json::Value;

use crate::store::{AssetFilter, AssetKind, AssetSummary, ExportFilter, HostFilter, PageRequest, Store, StoreError};

/// Most hosts one model is related to (the store lists as many hostnames per asset).
const MAX_MODEL_HOSTS: usize = AssetSummary::MAX_HOSTNAMES;

/// A host as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdbHost {
    /// Its agent: the stable key.
    pub agent_id: String,
    /// The hostname it enrolled with.
    pub hostname: String,
    /// `PRETTY_NAME` of its os-release (agent-supplied).
    pub os: String,
    /// Its kernel release.
    pub kernel: String,
    /// Its architecture.
    pub arch: String,
    /// Its own addresses, IPv4 first.
    pub ip_addresses: Vec<String>,
    /// DMI product serial.
    pub serial: String,
    /// DMI product UUID.
    pub product_uuid: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// Burnt-in MACs of its physical interfaces.
    pub mac_addresses: Vec<String>,
    /// The cloud instance id, when on a cloud.
    pub cloud_instance_id: String,
    /// Last heard from (ms).
    pub last_seen_ms: i64,
    /// Decommissioned or revoked: sent retired.
    pub retired: bool,
    /// The serial, DMI UUID, machine id and MACs are left empty: the host is retired, or one of
    /// them is also claimed by another unretired host ([`withhold_shared_identity`]).
    pub identity_withheld: bool,
}

/// An inference server as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdbServer {
    /// The runtime asset: the stable key.
    pub asset_id: String,
    /// The host it runs on (agent id).
    pub agent_id: String,
    /// `ollama`, `vllm`, …, or `ml-process`.
    pub kind: String,
    /// TCP ports it listens on, sorted.
    pub ports: Vec<u16>,
    /// The widest exposure of those: `all_interfaces`, `specific`, `loopback`, or empty.
    pub exposure: String,
    /// `configured`, `disabled`, `default`, or empty when unknown.
    pub auth: String,
    /// Its executable.
    pub exe: String,
    /// The version its endpoint stated, when identified.
    pub version: String,
    /// Last seen (ms).
    pub last_seen_ms: i64,
    /// No live sighting left: sent retired.
    pub retired: bool,
}

/// A model as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdbModel {
    /// The model asset (`model:<digest>`): the stable key.
    pub asset_id: String,
    /// Its own name, its repository, or its file's name.
    pub name: String,
    /// Its format (`gguf`, `safetensors`, …).
    pub format: String,
    /// The content digest (file SHA-256 or group tree digest).
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Architecture, when the header says.
    pub architecture: String,
    /// Parameters, when the header says.
    pub parameters: u64,
    /// Quantization, when the header says.
    pub quantization: String,
    /// Declared license.
    pub license: String,
    /// Where it comes from: `huggingface:org/name`, `ollama:name:tag`, or empty.
    pub source: String,
    /// The fleet-wide safety verdict (`safe`, `unknown`, `suspicious`, `dangerous`).
    pub verdict: String,
    /// The hosts (agent ids) it is related to.
    pub hosts: Vec<String>,
    /// Last seen (ms).
    pub last_seen_ms: i64,
    /// No live sighting left: sent retired.
    pub retired: bool,
}

/// What is pushed, read from the store in one go ([`read_inventory`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdbInventory {
    /// Hosts, by agent id.
    pub hosts: Vec<CmdbHost>,
    /// Servers, by asset id.
    pub servers: Vec<CmdbServer>,
    /// Models, by asset id.
    pub models: Vec<CmdbModel>,
}

/// Every page of a listing.
fn all_pages<T>(
    page: impl FnMut(&PageRequest) -> Result<crate::store::Page<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    crate::store::each_page(PageRequest::MAX_LIMIT, page, |item| -> Result<(), StoreError> {
        out.push(item);
        Ok(())
    })?;
    Ok(out)
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Reads what is pushed (module docs, *What is pushed*).
pub fn read_inventory(store: &dyn Store) -> Result<CmdbInventory, StoreError> {
    let agents = all_pages(|p| store.hosts(&HostFilter::default(), p))?;
    // A superseded agent's host is its successor's: its CIs go there.
    let successor: HashMap<String, String> =
        agents.iter().filter_map(|h| h.agent.superseded_by.clone().map(|s| (h.agent.agent_id.clone(), s))).collect();
    let host_of = |agent: &str| {
        let mut at = agent.to_string();
        for _ in 0..8 {
            match successor.get(&at) {
                Some(next) => at = next.clone(),
                None => break,
            }
        }
        at
    };
    let mut hosts = Vec::new();
    for h in agents.iter().filter(|h| h.agent.superseded_by.is_none()) {
        let a = &h.agent;
        let facts = crate::export::host_facts(h);
        let identity = a.identity_json.as_deref().map_or(Value::Null, crate::export::entry);
        let list = |v: &Value, key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .take(super::MAX_LIST_ITEMS)
                .map(str::to_string)
                .collect()
        };
        let mut ips = list(&facts, "ip_addresses");
        ips.sort_by_key(|ip| ip.contains(':'));
        let retired = a.decommissioned_at_ms.is_some() || a.revoked_at_ms.is_some();
        hosts.push(CmdbHost {
            agent_id: a.agent_id.clone(),
            hostname: a.hostname.clone(),
            os: text(&facts, "/os"),
            kernel: text(&facts, "/kernel"),
            arch: text(&facts, "/arch"),
            ip_addresses: ips,
            serial: text(&identity, "/product_serial"),
            product_uuid: text(&identity, "/product_uuid"),
            machine_id: text(&identity, "/machine_id"),
            mac_addresses: list(&identity, "mac_addresses"),
            cloud_instance_id: text(&identity, "/cloud_instance_id"),
            last_seen_ms: a.last_seen_ms.unwrap_or(a.enrolled_at_ms),
            retired,
            identity_withheld: false,
        });
    }
    withhold_shared_identity(&mut hosts);
    let host_retired: HashMap<&str, bool> = hosts.iter().map(|h| (h.agent_id.as_str(), h.retired)).collect();

    // The live hosts of each model, walked in chunks: never the whole inventory in memory.
    let mut live_hosts: HashMap<String, Vec<String>> = HashMap::new();
    let models = ExportFilter { kind: Some(AssetKind::Model), ..ExportFilter::default() };
    crate::store::each_sighting(store, &models, |s| -> Result<(), StoreError> {
        // Repeats are dropped where the list is used (sorted there).
        live_hosts.entry(s.key.asset_id.clone()).or_default().push(host_of(&s.key.agent_id));
        Ok(())
    })?;
    let listing = |kind| {
        let filter = AssetFilter { kind: Some(kind), include_removed: true, ..AssetFilter::default() };
        all_pages(|p| store.assets(&filter, p))
    };
    // The latest entry of an asset and the hosts of its sightings, newest first: for an asset
    // with no live sighting (the listing has no entry for it), or whose live sightings are all
    // on revoked hosts (the live inventory leaves those out).
    let from_sightings = |asset: &AssetSummary| -> Result<(Value, Vec<String>), StoreError> {
        let Some(detail) = store.asset(&asset.id, &PageRequest::first(PageRequest::MAX_LIMIT))? else {
            return Ok((Value::Null, Vec::new()));
        };
        let mut sightings = detail.sightings.items;
        sightings.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
        let entry = sightings.first().map_or(Value::Null, |s| crate::export::entry(&s.json));
        let mut hosts: Vec<String> = Vec::new();
        for s in &sightings {
            let host = host_of(&s.agent_id);
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        Ok((entry, hosts))
    };
    let entry_of = |asset: &AssetSummary| -> Result<Value, StoreError> {
        match asset.latest_entry.as_deref() {
            Some(entry) => Ok(crate::export::entry(entry)),
            None => Ok(from_sightings(asset)?.0),
        }
    };

    let mut servers = Vec::new();
    for asset in listing(AssetKind::Runtime)? {
        let entry = entry_of(&asset)?;
        if !bom::is_server(&entry) {
            continue;
        }
        let kind = bom::text_at(&entry, &["kind"]).unwrap_or("ml-process").to_string();
        let listening = entry.get("listening").and_then(Value::as_array).cloned().unwrap_or_default();
        // The runtime identity is ["<agent id>", "<kind>", "<discriminator>"].
        let identity: Value = serde_json::from_str(&asset.identity).unwrap_or(Value::Null);
        let Some(agent) = identity.get(0).and_then(Value::as_str) else { continue };
        let mut ports: Vec<u16> = listening
            .iter()
            .filter_map(|l| l.get("port").and_then(Value::as_u64))
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports.truncate(super::MAX_LIST_ITEMS);
        let exposures: Vec<&str> = listening.iter().filter_map(|l| l.get("exposure").and_then(Value::as_str)).collect();
        let exposure =
            ["all_interfaces", "specific", "loopback"].into_iter().find(|e| exposures.contains(e)).unwrap_or("");
        let agent_id = host_of(agent);
        // Live sightings may be on a revoked host, which the inventory no longer has.
        let retired = asset.live_sightings == 0 || host_retired.get(agent_id.as_str()).copied().unwrap_or(true);
        servers.push(CmdbServer {
            asset_id: asset.id.clone(),
            agent_id,
            kind,
            ports,
            exposure: exposure.to_string(),
            auth: text(&entry, "/auth/state"),
            exe: text(&entry, "/exe"),
            version: text(&entry, "/identity/version"),
            last_seen_ms: asset.last_seen_ms,
            retired,
        });
    }

    let mut models = Vec::new();
    for asset in listing(AssetKind::Model)? {
        // The live hosts leave out revoked ones, whose sightings may still count as live.
        let mut hosts = live_hosts.remove(&asset.id).unwrap_or_default();
        let retired = hosts.is_empty();
        let entry = if retired {
            let (entry, last_hosts) = from_sightings(&asset)?;
            hosts = last_hosts;
            entry
        } else {
            entry_of(&asset)?
        };
        hosts.sort();
        hosts.dedup();
        hosts.truncate(MAX_MODEL_HOSTS);
        let source = match text(&entry, "/source/kind").as_str() {
            "" => String::new(),
            "huggingface" => format!("huggingface:{}", text(&entry, "/source/repo")),
            "ollama" => format!("ollama:{}", text(&entry, "/source/name")),
            other => other.to_string(),
        };
        let name = bom::model_name(&entry);
        let verdict = asset.verdict.map(|v| v.as_str().to_string()).unwrap_or_else(|| text(&entry, "/safety/verdict"));
        models.push(CmdbModel {
            asset_id: asset.id.clone(),
            name,
            format: text(&entry, "/format"),
            sha256: asset.identity.clone(),
            size: entry.get("size").and_then(Value::as_u64).unwrap_or(0),
            architecture: text(&entry, "/metadata/architecture"),
            parameters: entry.pointer("/metadata/parameters").and_then(Value::as_u64).unwrap_or(0),
            quantization: text(&entry, "/metadata/quantization"),
            license: text(&entry, "/metadata/license"),
            source,
            verdict,
            hosts,
            last_seen_ms: asset.last_seen_ms,
            retired,
        });
    }
    Ok(CmdbInventory { hosts, servers, models })
}

/// Withholds the agent-stated identifiers (serial, DMI UUID, machine id, MACs) of every retired
/// host, and of every host one of whose identifiers another unretired host claims too: a
/// clone or a liar, neither of which a CMDB may match to a machine's CI by them. Identifiers
/// are compared trimmed and without case.
pub(crate) fn withhold_shared_identity(hosts: &mut [CmdbHost]) {
    fn claims(h: &CmdbHost) -> impl Iterator<Item = (&'static str, String)> + '_ {
        let one = [("serial", &h.serial), ("uuid", &h.product_uuid), ("machine", &h.machine_id)];
        one.into_iter()
            .chain(h.mac_addresses.iter().map(|m| ("mac", m)))
            .map(|(kind, v)| (kind, v.trim().to_lowercase()))
            .filter(|(_, v)| !v.is_empty())
    }
    let mut claimants: HashMap<(&'static str, String), usize> = HashMap::new();
    for h in hosts.iter().filter(|h| !h.retired) {
        let mut own: Vec<_> = claims(h).collect();
        own.sort();
        own.dedup();
        for claim in own {
            *claimants.entry(claim).or_default() += 1;
        }
    }
    for h in hosts.iter_mut() {
        if h.retired || claims(h).any(|c| claimants.get(&c).is_some_and(|n| *n > 1)) {
            h.serial.clear();
            h.product_uuid.clear();
            h.machine_id.clear();
            h.mac_addresses.clear();
            h.identity_withheld = true;
        }
    }
}

/// One CI of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ci<'a> {
    /// A host.
    Host(&'a CmdbHost),
    /// A server, which runs on the batch's host.
    Server(&'a CmdbServer),
    /// A model, on the batch's host.
    Model(&'a CmdbModel),
}

impl Ci<'_> {
    /// Its stable key: the agent id or the asset id.
    pub fn key(&self) -> &str {
        match self {
            Ci::Host(h) => &h.agent_id,
            Ci::Server(s) => &s.asset_id,
            Ci::Model(m) => &m.asset_id,
        }
    }

    /// Whether it is sent retired.
    pub fn retired(&self) -> bool {
        match self {
            Ci::Host(h) => h.retired,
            Ci::Server(s) => s.retired,
            Ci::Model(m) => m.retired,
        }
    }
}

/// One request's worth of CIs: `relations` are (dependent, host) indices into `cis`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The CIs, each host before its dependents.
    pub cis: Vec<Ci<'a>>,
    /// (dependent index, host index).
    pub relations: Vec<(usize, usize)>,
}

/// The inventory in batches of at most `size` CIs (module docs, *Batches*); `size` is at least 2.
pub fn batches(inventory: &CmdbInventory, size: usize) -> Vec<Batch<'_>> {
    let size = size.max(2);
    // Each host's dependents, its servers then its models in inventory order, indexed once
    // rather than searched for per host (a model lists each of its hosts once).
    let mut on: HashMap<&str, Vec<Ci<'_>>> = HashMap::new();
    for s in &inventory.servers {
        on.entry(s.agent_id.as_str()).or_default().push(Ci::Server(s));
    }
    for m in &inventory.models {
        for h in &m.hosts {
            on.entry(h.as_str()).or_default().push(Ci::Model(m));
        }
    }
    let mut out: Vec<Batch<'_>> = Vec::new();
    let mut current = Batch::default();
    for host in &inventory.hosts {
        let dependents = on.remove(host.agent_id.as_str()).unwrap_or_default();
        if current.cis.len() + 1 + dependents.len() > size && !current.cis.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        let mut host_at = current.cis.len();
        current.cis.push(Ci::Host(host));
        for ci in dependents {
            if current.cis.len() == size {
                out.push(std::mem::take(&mut current));
                host_at = 0;
                current.cis.push(Ci::Host(host));
            }
            current.relations.push((current.cis.len(), host_at));
            current.cis.push(ci);
        }
    }
    if !current.cis.is_empty() {
        out.push(current);
    }
    out
}

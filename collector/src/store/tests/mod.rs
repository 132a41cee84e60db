//! Behaviour tests of the store through the [`Store`] trait: the conformance suite, run against
//! SQLite and, when `AISCOUT_TEST_POSTGRES` is set, PostgreSQL (`backend.rs`).

mod agents;
pub(crate) mod backend;
mod batches;
mod bounds;
mod concurrency;
mod persistence;
mod queries;
mod rate;
mod tokens;

use super::{
    AgentRegistration, ApplyOutcome, AssetDetail, AssetFilter, AssetKind, BatchMode, HostFacts, HostFilter, HostStatus,
    HostSummary, IdentityStatus, IngestAsset, IngestBatch, IngestRemoval, PageRequest, Sighting, SqliteStore, Store,
};

pub(super) const SHA_A: &str = "d53ded3de5debad164ac22d3946b5a47d6fb6456f6ca2e412f3245d635eff791";
pub(super) const SHA_B: &str = "1e2479aff50b61ac379b8e45cf9c1c6f2b813b7af896f8d4f82756af0c165554";
pub(super) const SHA_C: &str = "916595a85cd8498a533485bb47474969191a752d1ec41d300bb89a6a3c55ac68";

/// The default listing with the assets no host has any more (the store's view of history).
pub(super) const WITH_REMOVED: AssetFilter = AssetFilter {
    kind: None,
    include_owned: false,
    include_removed: true,
    search: None,
    agent_id: None,
    format: None,
    verdict: None,
    first_seen_since: None,
    last_seen_since: None,
    ecosystem: None,
    name: None,
    version: None,
    exposure: None,
};

/// [`WITH_REMOVED`] of one kind.
pub(super) fn of_kind(kind: AssetKind) -> AssetFilter {
    AssetFilter { kind: Some(kind), ..WITH_REMOVED }
}

pub(crate) use backend::{store, store_with_quota, TestStore};

pub(crate) fn registration(agent_id: &str, hostname: &str, fingerprint: &str, now_ms: i64) -> AgentRegistration {
    AgentRegistration {
        agent_id: agent_id.to_owned(),
        cert_serial: format!("serial-{agent_id}"),
        cert_fingerprint: format!("cert-{agent_id}"),
        cert_not_after_ms: now_ms + 86_400_000,
        cert_ca_sha256: "ca-1".to_owned(),
        machine_fingerprint: fingerprint.to_owned(),
        hostname: hostname.to_owned(),
        agent_version: "0.1.0".to_owned(),
        now_ms,
    }
}

/// A store with agents `a` (host-a) and `b` (host-b).
pub(crate) fn store_with_two_agents() -> TestStore {
    let store = store();
    store.upsert_agent(&registration("a", "host-a", "fp-a", 10)).expect("enroll a");
    store.upsert_agent(&registration("b", "host-b", "fp-b", 20)).expect("enroll b");
    store
}

pub(crate) fn model(path: &str, sha: &str) -> IngestAsset {
    IngestAsset {
        kind: AssetKind::Model,
        local_key: path.to_owned(),
        json: format!(r#"{{"path":"{path}","format":"gguf","sha256":"{sha}","group":null}}"#),
    }
}

pub(crate) fn framework(env: &str, name: &str, version: &str) -> IngestAsset {
    IngestAsset {
        kind: AssetKind::Framework,
        local_key: format!("{env}:{name}"),
        json: format!(
            r#"{{"ecosystem":"pypi","name":"{name}","version":"{version}","environment":{{"path":"{env}","kind":"venv"}}}}"#
        ),
    }
}

pub(super) fn runtime(kind: &str, port: u16) -> IngestAsset {
    IngestAsset {
        kind: AssetKind::Runtime,
        local_key: format!("{kind}:{port}"),
        json: format!(r#"{{"pid":42,"kind":"{kind}","exe":"/usr/bin/{kind}","listening":[{{"port":{port}}}]}}"#),
    }
}

pub(super) fn removal(kind: AssetKind, local_key: &str) -> IngestRemoval {
    IngestRemoval { kind, local_key: local_key.to_owned() }
}

pub(crate) fn delta(sequence: u64, observed_at_ms: i64, upserts: Vec<IngestAsset>) -> IngestBatch {
    IngestBatch {
        sequence,
        mode: BatchMode::Delta,
        upserts,
        removals: Vec::new(),
        host: None,
        observed_at_ms,
        received_at_ms: observed_at_ms + 5,
    }
}

pub(super) fn snapshot_part(
    sequence: u64,
    snapshot_id: u64,
    last_part: bool,
    observed_at_ms: i64,
    upserts: Vec<IngestAsset>,
) -> IngestBatch {
    IngestBatch {
        mode: BatchMode::SnapshotPart { snapshot_id, first_part: false, last_part },
        ..delta(sequence, observed_at_ms, upserts)
    }
}

pub(super) fn host_facts(hostname: &str, fingerprint: &str) -> HostFacts {
    HostFacts {
        json: format!(r#"{{"hostname":"{hostname}","os":"Debian GNU/Linux 12"}}"#),
        hostname: hostname.to_owned(),
        machine_fingerprint: fingerprint.to_owned(),
    }
}

pub(super) fn apply(store: &dyn Store, agent_id: &str, batch: &IngestBatch) -> ApplyOutcome {
    store.apply_batch(agent_id, batch).expect("apply batch")
}

/// Everything the query API can see, read page by page with a small limit.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dump {
    /// Every host.
    pub hosts: Vec<HostSummary>,
    /// Every asset with every sighting.
    pub assets: Vec<AssetDetail>,
}

pub(super) fn dump(store: &dyn Store) -> Dump {
    let mut hosts = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let got = store.hosts(&HostFilter::default(), &page).expect("hosts");
        hosts.extend(got.items);
        match got.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    let mut assets = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let got = store.assets(&WITH_REMOVED, &page).expect("assets");
        for summary in got.items {
            assets.push(asset(store, &summary.id));
        }
        match got.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    Dump { hosts, assets }
}

/// The one model asset of `store`'s listing.
pub(super) fn model_summary(store: &dyn Store) -> crate::store::AssetSummary {
    let page = store.assets(&of_kind(AssetKind::Model), &PageRequest::default()).unwrap();
    assert_eq!(page.items.len(), 1, "{page:#?}");
    page.items.into_iter().next().unwrap()
}

/// The asset with all its sightings (one big page).
pub(super) fn asset(store: &dyn Store, asset_id: &str) -> AssetDetail {
    store.asset(asset_id, &PageRequest::first(1000)).expect("asset").expect("asset exists")
}

/// The sighting at `local_key` on `agent_id` (the only one, live or not).
pub(super) fn sighting(store: &dyn Store, agent_id: &str, local_key: &str) -> Sighting {
    let mut found: Vec<Sighting> = dump(store)
        .assets
        .into_iter()
        .flat_map(|a| a.sightings.items)
        .filter(|s| s.agent_id == agent_id && s.local_key == local_key)
        .collect();
    assert_eq!(found.len(), 1, "sightings at {agent_id}:{local_key}: {found:?}");
    found.remove(0)
}

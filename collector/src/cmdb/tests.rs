//! The CIs read from a real store and cut into batches.

use super::http::retry_after;
use super::*;
use crate::store::{
    AgentRegistration, AssetKind, BatchMode, HostFacts, IngestAsset, IngestBatch, IngestRemoval, SqliteStore,
};

fn registration(agent_id: &str, hostname: &str) -> AgentRegistration {
    AgentRegistration {
        agent_id: agent_id.into(),
        cert_serial: format!("serial-{agent_id}"),
        cert_fingerprint: format!("cert-{agent_id}"),
        cert_not_after_ms: 1_000_000_000,
        cert_ca_sha256: "ca".into(),
        machine_fingerprint: format!("fp-{agent_id}"),
        hostname: hostname.into(),
        agent_version: "0.1.0".into(),
        now_ms: 10,
    }
}

fn model(path: &str, sha: &str) -> IngestAsset {
    IngestAsset {
        kind: AssetKind::Model,
        local_key: path.into(),
        json: format!(
            r#"{{"path":"{path}","format":"gguf","size":7,"sha256":"{sha}","metadata":{{"name":"tiny","parameters":3}},"safety":{{"verdict":"safe"}}}}"#
        ),
    }
}

fn runtime(kind: &str, port: Option<u16>) -> IngestAsset {
    let listening = port.map(|p| format!(r#"[{{"address":"0.0.0.0","port":{p},"exposure":"all_interfaces"}}]"#));
    IngestAsset {
        kind: AssetKind::Runtime,
        local_key: format!("{kind}:{port:?}"),
        json: format!(
            r#"{{"pid":42,"kind":"{kind}","exe":"/usr/bin/{kind}","cmdline":["{kind}"],"listening":{},"auth":{{"state":"default"}}}}"#,
            listening.unwrap_or_else(|| "[]".into())
        ),
    }
}

fn batch(sequence: u64, upserts: Vec<IngestAsset>, removals: Vec<IngestRemoval>) -> IngestBatch {
    IngestBatch {
        sequence,
        mode: BatchMode::Delta,
        upserts,
        removals,
        host: Some(HostFacts {
            json: r#"{"hostname":"h","os":"Ubuntu 24.04 LTS","kernel":"6.8","arch":"x86_64","ip_addresses":["fd00::1","10.1.1.1"]}"#.into(),
            hostname: "h".into(),
            machine_fingerprint: "fp".into(),
        }),
        observed_at_ms: 100 * sequence as i64,
        received_at_ms: 100 * sequence as i64,
    }
}

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[test]
fn the_inventory_has_hosts_servers_and_models_with_gone_ones_retired() {
    let store = SqliteStore::open_in_memory().unwrap();
    for (id, name) in [("a", "host-a"), ("b", "host-b"), ("c", "host-c")] {
        store.upsert_agent(&registration(id, name)).unwrap();
    }
    store
        .set_identity_facts(
            "a",
            r#"{"machine_id":"m-a","product_serial":"SER-A","mac_addresses":["52:54:00:00:00:0a"]}"#,
        )
        .unwrap();
    let upserts = vec![
        model("/m/a.gguf", SHA_A),
        model("/m/b.gguf", SHA_B),
        runtime("ollama", Some(11434)),
        runtime("ml-process", None),
    ];
    store.apply_batch("a", &batch(1, upserts, vec![])).unwrap();
    store.apply_batch("b", &batch(1, vec![model("/x/a.gguf", SHA_A)], vec![])).unwrap();
    // b.gguf goes away from a; c is decommissioned.
    let gone = IngestRemoval { kind: AssetKind::Model, local_key: "/m/b.gguf".into() };
    store.apply_batch("a", &batch(2, vec![], vec![gone])).unwrap();
    store.decommission_agent("c", 500).unwrap();

    let inv = read_inventory(&store).unwrap();
    let hosts: Vec<(&str, bool)> = inv.hosts.iter().map(|h| (h.agent_id.as_str(), h.retired)).collect();
    assert_eq!(hosts, [("a", false), ("b", false), ("c", true)]);
    let a = &inv.hosts[0];
    assert_eq!((a.serial.as_str(), a.machine_id.as_str(), a.os.as_str()), ("SER-A", "m-a", "Ubuntu 24.04 LTS"));
    assert_eq!(a.ip_addresses, ["10.1.1.1", "fd00::1"], "ipv4 first");
    // The ml-process that listens on nothing is not a server.
    assert_eq!(inv.servers.len(), 1);
    assert_eq!((inv.servers[0].kind.as_str(), inv.servers[0].agent_id.as_str()), ("ollama", "a"));
    assert_eq!((inv.servers[0].ports.clone(), inv.servers[0].exposure.as_str()), (vec![11434], "all_interfaces"));
    let models: Vec<(&str, Vec<String>, bool)> =
        inv.models.iter().map(|m| (m.sha256.as_str(), m.hosts.clone(), m.retired)).collect();
    assert_eq!(
        models,
        [(SHA_A, vec!["a".to_string(), "b".to_string()], false), (SHA_B, vec!["a".to_string()], true)],
        "a gone model keeps the host that last had it"
    );
    assert_eq!((inv.models[1].name.as_str(), inv.models[1].format.as_str()), ("tiny", "gguf"));

    // Batches of 3: host a with its server and first model, a again with the rest, then b
    // with its copy of the shared model, then c alone.
    let all = batches(&inv, 3);
    let keys: Vec<Vec<&str>> = all.iter().map(|b| b.cis.iter().map(Ci::key).collect()).collect();
    let (ma, mb) = (format!("model:{SHA_A}"), format!("model:{SHA_B}"));
    let server = inv.servers[0].asset_id.as_str();
    assert_eq!(keys, [vec!["a", server, ma.as_str()], vec!["a", mb.as_str()], vec!["b", ma.as_str(), "c"]]);
    for b in &all {
        assert!(b.cis.len() <= 3);
        for (dependent, host) in &b.relations {
            assert!(matches!(b.cis[*host], Ci::Host(_)) && *host < *dependent, "{keys:?}");
        }
        // Every dependent has its relation to a host of the same batch.
        let dependents = b.cis.iter().filter(|c| !matches!(c, Ci::Host(_))).count();
        assert_eq!(b.relations.len(), dependents, "{keys:?}");
    }
}

#[test]
fn a_host_with_more_dependents_than_a_batch_holds_heads_each_of_its_batches() {
    let host = CmdbHost {
        agent_id: "h".into(),
        hostname: "h".into(),
        os: String::new(),
        kernel: String::new(),
        arch: String::new(),
        ip_addresses: vec![],
        serial: String::new(),
        product_uuid: String::new(),
        machine_id: String::new(),
        mac_addresses: vec![],
        cloud_instance_id: String::new(),
        last_seen_ms: 0,
        retired: false,
    };
    let models: Vec<CmdbModel> = (0..5)
        .map(|i| CmdbModel {
            asset_id: format!("model:{i}"),
            name: String::new(),
            format: String::new(),
            sha256: String::new(),
            size: 0,
            architecture: String::new(),
            parameters: 0,
            quantization: String::new(),
            license: String::new(),
            source: String::new(),
            verdict: String::new(),
            hosts: vec!["h".into()],
            last_seen_ms: 0,
            retired: false,
        })
        .collect();
    let lone = CmdbHost { agent_id: "z".into(), ..host.clone() };
    let inv = CmdbInventory { hosts: vec![host, lone], servers: vec![], models };
    let all = batches(&inv, 2);
    let keys: Vec<Vec<&str>> = all.iter().map(|b| b.cis.iter().map(Ci::key).collect()).collect();
    assert_eq!(
        keys,
        [
            vec!["h", "model:0"],
            vec!["h", "model:1"],
            vec!["h", "model:2"],
            vec!["h", "model:3"],
            vec!["h", "model:4"],
            vec!["z"]
        ]
    );
    assert!(all.iter().take(5).all(|b| b.relations == [(1, 0)]));
    let all = batches(&inv, 4);
    let keys: Vec<Vec<&str>> = all.iter().map(|b| b.cis.iter().map(Ci::key).collect()).collect();
    assert_eq!(keys, [vec!["h", "model:0", "model:1", "model:2"], vec!["h", "model:3", "model:4", "z"]]);
}

#[test]
fn times_and_retry_after_are_read_as_servicenow_and_http_say() {
    assert_eq!(glide_time(1_700_000_000_999), "2023-11-14 22:13:20");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(retry_after(Some("1")), Duration::from_secs(1));
    assert_eq!(retry_after(Some("0")), Duration::from_secs(1), "never a busy loop");
    assert_eq!(retry_after(Some("86400")), Duration::from_secs(300));
    assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), Duration::from_secs(5));
    assert_eq!(retry_after(None), Duration::from_secs(5));
}

//! The CIs read from a real store and cut into batches.

use super::http::retry_after;
use super::*;
use crate::store::{AgentRegistration, AssetKind, BatchMode, HostFacts, IngestAsset, IngestBatch, IngestRemoval};

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
    let store = crate::store::tests::store();
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
        identity_withheld: false,
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
    assert_eq!(retry_after(Some("1")), Duration::from_secs(1));
    assert_eq!(retry_after(Some("0")), Duration::from_secs(1), "never a busy loop");
    assert_eq!(retry_after(Some("86400")), Duration::from_secs(300));
    assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), Duration::from_secs(5));
    assert_eq!(retry_after(None), Duration::from_secs(5));
}

#[test]
fn assets_seen_only_on_a_revoked_host_are_retired() {
    let store = crate::store::tests::store();
    for (id, name) in [("a", "host-a"), ("b", "host-b")] {
        store.upsert_agent(&registration(id, name)).unwrap();
    }
    store.apply_batch("a", &batch(1, vec![model("/m/a.gguf", SHA_A)], vec![])).unwrap();
    store.apply_batch("b", &batch(1, vec![model("/m/b.gguf", SHA_B), runtime("vllm", Some(8000))], vec![])).unwrap();
    // b is revoked by a store that leaves its sightings live: the asset listing still counts
    // them, the inventory must not.
    store.execute("UPDATE agents SET revoked_at_ms = 500 WHERE agent_id = 'b'");
    let inv = read_inventory(&store).unwrap();
    let models: Vec<(&str, bool)> = inv.models.iter().map(|m| (m.sha256.as_str(), m.retired)).collect();
    assert_eq!(models, [(SHA_A, false), (SHA_B, true)]);
    assert_eq!(inv.models[1].hosts, ["b"], "a retired model keeps the host that last had it");
    let servers: Vec<(&str, bool)> = inv.servers.iter().map(|s| (s.agent_id.as_str(), s.retired)).collect();
    assert_eq!(servers, [("b", true)], "a server on a revoked host is retired");
}

#[test]
fn agent_stated_identifiers_are_withheld_from_retired_hosts_and_shared_ones() {
    let store = crate::store::tests::store();
    for id in ["honest", "liar", "victim", "gone", "reused"] {
        store.upsert_agent(&registration(id, id)).unwrap();
    }
    let macs: Vec<String> = (0..100).map(|i| format!("\"52:54:00:00:01:{i:02x}\"")).collect();
    let facts = [
        ("honest", format!(r#"{{"product_serial":"SER-H","mac_addresses":[{}]}}"#, macs.join(","))),
        // The liar states the victim's MAC (in capitals): neither may be matched by it.
        ("liar", r#"{"product_serial":"SER-L","mac_addresses":["AA:BB:CC:00:00:01"]}"#.to_string()),
        ("victim", r#"{"product_serial":"SER-V","mac_addresses":["aa:bb:cc:00:00:01"]}"#.to_string()),
        // A retired host's identifiers are never sent, and claim nothing.
        ("gone", r#"{"product_serial":"SER-R","product_uuid":"U-R"}"#.to_string()),
        ("reused", r#"{"product_serial":"SER-R","machine_id":"m-r"}"#.to_string()),
    ];
    for (id, json) in &facts {
        store.set_identity_facts(id, json).unwrap();
    }
    store.decommission_agent("gone", 500).unwrap();
    let inv = read_inventory(&store).unwrap();
    let by_id = |id: &str| inv.hosts.iter().find(|h| h.agent_id == id).unwrap();
    let honest = by_id("honest");
    assert_eq!((honest.serial.as_str(), honest.identity_withheld), ("SER-H", false));
    assert_eq!(honest.mac_addresses.len(), MAX_LIST_ITEMS, "lists are capped");
    for id in ["liar", "victim", "gone"] {
        let h = by_id(id);
        assert!(h.identity_withheld, "{id}");
        assert!(h.serial.is_empty() && h.product_uuid.is_empty() && h.machine_id.is_empty(), "{id}");
        assert!(h.mac_addresses.is_empty(), "{id}");
    }
    let reused = by_id("reused");
    assert_eq!((reused.serial.as_str(), reused.identity_withheld), ("SER-R", false));

    // Nothing in the ServiceNow payload lets IRE match the liar, the victim or the gone host
    // by hardware: the gone host is only its source key and its status.
    let classes = servicenow::Classes { server: "cmdb_ci_appl".into(), model: "cmdb_ci_appl".into() };
    for id in ["liar", "victim", "gone"] {
        let batch = Batch { cis: vec![Ci::Host(by_id(id))], relations: vec![] };
        let item = &servicenow::payload(&batch, &classes, "aiscout")["items"][0];
        assert!(item.get("lookup").is_none(), "{id}: {item}");
        assert!(item["values"].get("serial_number").is_none() && item["values"].get("mac_address").is_none(), "{id}");
        assert_eq!(item["sys_object_source_info"]["source_native_key"], id);
    }
    let batch = Batch { cis: vec![Ci::Host(by_id("gone"))], relations: vec![] };
    let item = &servicenow::payload(&batch, &classes, "aiscout")["items"][0];
    assert_eq!(item["values"], serde_json::json!({"install_status": "7"}));
    let record = webhook::record(&Ci::Host(by_id("liar")));
    assert_eq!((record["serial"].as_str(), record["identity_withheld"].as_bool()), (Some(""), Some(true)));
}

/// A CMDB on loopback answering each request in turn with `answers` (status, body); the
/// request bodies, in order, when joined.
fn cmdb_answering(answers: Vec<(u16, String)>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for (status, answer) in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            bodies.push(String::from_utf8(body).unwrap());
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                answer.len()
            );
            let mut stream = reader.into_inner();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(answer.as_bytes()).unwrap();
        }
        bodies
    });
    (port, server)
}

fn three_hosts() -> CmdbInventory {
    let host = |id: &str| CmdbHost {
        agent_id: id.into(),
        hostname: id.into(),
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
        identity_withheld: false,
    };
    CmdbInventory { hosts: vec![host("h1"), host("h2"), host("h3")], ..CmdbInventory::default() }
}

#[test]
fn a_servicenow_batch_refused_whole_fails_its_cis_and_the_push_goes_on() {
    let probe = r#"{"result":[{"name":"cmdb_ci_appl"}]}"#.to_string();
    let inserted = r#"{"result":{"items":[{"operation":"INSERT","inputIndices":[0],"errors":[]}]}}"#.to_string();
    let (port, server) = cmdb_answering(vec![
        (200, probe),
        (413, r#"{"error":{"message":"request entity too large"}}"#.into()),
        (200, inserted),
    ]);
    let config: ServiceNowConfig = toml::from_str(&format!(
        "instance_url = \"http://127.0.0.1:{port}\"\ndata_source = \"aiscout\"\nuser = \"u\"\nsecret = \"pw\"\n\
         allow_literal_secret = true\nbatch_size = 2\n"
    ))
    .unwrap();
    let target = servicenow::ServiceNow::new(config).unwrap();
    let mut report = PushReport::default();
    target.push(&three_hosts(), false, &mut report).unwrap();
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 3, "the batch after the refused one is sent");
    let counts = report.classes["cmdb_ci_computer"];
    assert_eq!((counts.failed, counts.inserted), (2, 1));
    assert_eq!(report.errors_total, 2);
    let url = format!("http://127.0.0.1:{port}/api/now/identifyreconcile?sysparm_data_source=aiscout");
    assert_eq!(report.errors[0].error, "HTTP_413");
    assert_eq!(report.errors[0].message, format!("POST {url}: status 413: request entity too large"));
    assert_eq!((report.errors[0].key.as_str(), report.errors[1].key.as_str()), ("h1", "h2"));
}

#[test]
fn a_webhook_batch_refused_whole_fails_its_records_and_the_push_goes_on() {
    let (port, server) = cmdb_answering(vec![(400, "bad record".into()), (204, String::new())]);
    let config: WebhookConfig = toml::from_str(&format!(
        "url = \"http://127.0.0.1:{port}/hook\"\nsecret = \"k\"\nallow_literal_secret = true\nbatch_size = 2\n"
    ))
    .unwrap();
    let target = webhook::Webhook::new(config).unwrap();
    let mut report = PushReport::default();
    target.push(&three_hosts(), &mut report).unwrap();
    assert_eq!(server.join().unwrap().len(), 2);
    let counts = report.classes["host"];
    assert_eq!((counts.failed, counts.delivered), (2, 1));
    assert_eq!(report.errors[0].message, format!("POST http://127.0.0.1:{port}/hook: status 400: bad record"));
}

#[test]
fn a_server_error_or_refused_credentials_still_stop_the_push() {
    for status in [401, 403, 500] {
        let (port, server) = cmdb_answering(vec![(status, "no".into())]);
        let config: WebhookConfig = toml::from_str(&format!(
            "url = \"http://127.0.0.1:{port}/hook\"\nsecret = \"k\"\nallow_literal_secret = true\nbatch_size = 2\n"
        ))
        .unwrap();
        let mut report = PushReport::default();
        let e = webhook::Webhook::new(config).unwrap().push(&three_hosts(), &mut report).unwrap_err();
        assert_eq!(e, format!("POST http://127.0.0.1:{port}/hook: status {status}: no"));
        assert_eq!(server.join().unwrap().len(), 1);
    }
}

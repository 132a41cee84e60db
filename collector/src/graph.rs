//! The process ↔ model ↔ host ↔ exposure picture of one host or one model
//! (`GET /api/v1/graph?host=|asset=`), built from live sightings.
//!
//! Nodes: `host:<agent>`, `model:<asset>` (or `model:sha256:<digest>` for a model a process has
//! open that no sighting of the graph names), `process:<agent>:<pid>`, and
//! `socket:<agent>:<address>:<port>`. Edges: host `stores` model (with its path), host `runs`
//! process, process `has_open` model, process `listens` socket (with its exposure). Agent
//! strings are JSON-escaped values; whoever draws them escapes them again for the page.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::store::{AssetKind, LiveEntry};

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// The graph of `entries`; `hostnames` by agent id.
pub fn build(entries: &[LiveEntry], hostnames: &HashMap<String, String>) -> Value {
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    let mut edges: Vec<Value> = Vec::new();
    let parsed: Vec<(&LiveEntry, Value)> =
        entries.iter().filter_map(|e| serde_json::from_str::<Value>(&e.entry_json).ok().map(|j| (e, j))).collect();
    let mut by_sha: HashMap<String, String> = HashMap::new();
    let host = |nodes: &mut BTreeMap<String, Value>, agent: &str| {
        let id = format!("host:{agent}");
        nodes.entry(id.clone()).or_insert_with(|| {
            json!({"id": id, "type": "host", "agent_id": agent, "label": hostnames.get(agent).map_or(agent, String::as_str)})
        });
        id
    };
    for (e, j) in parsed.iter().filter(|(e, _)| e.kind == AssetKind::Model) {
        let id = format!("model:{}", e.asset_id);
        let path = text(j, "path").unwrap_or_default();
        let sha = text(j, "sha256").unwrap_or_default();
        by_sha.insert(sha.to_string(), id.clone());
        nodes.entry(id.clone()).or_insert_with(|| {
            json!({"id": id, "type": "model", "asset_id": e.asset_id, "sha256": sha, "format": text(j, "format"),
                "verdict": j.get("safety").and_then(|s| text(s, "verdict")),
                "label": path.rsplit('/').next().unwrap_or(path)})
        });
        let h = host(&mut nodes, &e.agent_id);
        edges.push(json!({"from": h, "to": id, "type": "stores", "path": path}));
    }
    for (e, j) in parsed.iter().filter(|(e, _)| e.kind == AssetKind::Runtime) {
        let pid = j.get("pid").and_then(Value::as_u64).unwrap_or(0);
        let id = format!("process:{}:{pid}", e.agent_id);
        let kind = text(j, "kind").unwrap_or("process");
        nodes.insert(
            id.clone(),
            json!({"id": id, "type": "process", "pid": pid, "kind": kind, "label": format!("{kind} ({pid})"),
                "auth": j.get("auth").and_then(|a| text(a, "state")), "container": j.get("container")}),
        );
        let h = host(&mut nodes, &e.agent_id);
        edges.push(json!({"from": h, "to": id, "type": "runs"}));
        for m in j.get("open_models").and_then(Value::as_array).into_iter().flatten() {
            let sha = text(m, "sha256").unwrap_or_default();
            let path = text(m, "path").unwrap_or_default();
            let model = match by_sha.get(sha) {
                Some(model) => model.clone(),
                None => {
                    let model = format!("model:sha256:{sha}");
                    nodes.entry(model.clone()).or_insert_with(|| {
                        json!({"id": model, "type": "model", "sha256": sha, "label": path.rsplit('/').next().unwrap_or(path)})
                    });
                    model
                }
            };
            edges.push(json!({"from": id, "to": model, "type": "has_open", "path": path, "via": m.get("via")}));
        }
        for l in j.get("listening").and_then(Value::as_array).into_iter().flatten() {
            let address = text(l, "address").unwrap_or("?");
            let port = l.get("port").and_then(Value::as_u64).unwrap_or(0);
            let socket = format!("socket:{}:{address}:{port}", e.agent_id);
            let exposure = text(l, "exposure").unwrap_or("?");
            let label = if address.contains(':') { format!("[{address}]:{port}") } else { format!("{address}:{port}") };
            nodes.entry(socket.clone()).or_insert_with(|| {
                json!({"id": socket, "type": "socket", "label": label, "exposure": exposure,
                    "exposed": exposure != "loopback"})
            });
            edges.push(json!({"from": id, "to": socket, "type": "listens"}));
        }
    }
    json!({"nodes": nodes.into_values().collect::<Vec<_>>(), "edges": edges})
}

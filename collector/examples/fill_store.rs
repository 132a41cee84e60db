//! Fills a collector database with a synthetic fleet for the benchmarks
//! (`scripts/bench/export-memory.sh`, `scripts/bench/dashboard.sh`):
//! `fill_store DB HOSTS PER_HOST [MODEL_POOL]`.
//!
//! Each host holds `PER_HOST` sightings through the real ingest path (`Store::apply_batch`):
//! 90 % model files drawn from a pool of `MODEL_POOL` digests (default 5,000; so the same model
//! is on many hosts, as in a real fleet), 9 % framework packages from a pool of 300, and 1 %
//! servers listening on a port. One digest in 50 is a dangerous pickle-like model. Every 20th
//! host was last heard from two days ago (silent). Entries are shaped like the agent's
//! (docs/scan-json.md); times are the current time.

use std::path::PathBuf;
use std::process::ExitCode;

use aiscout_collector::store::limits::AgentQuota;
use aiscout_collector::store::{AgentRegistration, AssetKind, BatchMode, IngestAsset, IngestBatch, SqliteStore, Store};
use serde_json::json;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(db), Some(hosts), Some(per_host), Some(pool)) = (
        args.get(1).map(PathBuf::from),
        args.get(2).and_then(|h| h.parse::<u64>().ok()),
        args.get(3).and_then(|p| p.parse::<u64>().ok()),
        args.get(4).map_or(Some(5000), |p| p.parse::<u64>().ok().filter(|p| *p > 0)),
    ) else {
        eprintln!("usage: fill_store DB HOSTS PER_HOST [MODEL_POOL]");
        return ExitCode::from(2);
    };
    match fill(&db, hosts, per_host, pool) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fill_store: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fill(db: &std::path::Path, hosts: u64, per_host: u64, pool: u64) -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open(db)?.with_quota(AgentQuota { max_stored_bytes: u64::MAX });
    let real_now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis())?;
    for h in 0..hosts {
        let now = if h % 20 == 19 { real_now - 2 * 86_400_000 } else { real_now };
        let agent_id = format!("agent-{h:06}");
        store.upsert_agent(&AgentRegistration {
            agent_id: agent_id.clone(),
            cert_serial: format!("serial-{h}"),
            cert_fingerprint: format!("cert-{h}"),
            cert_not_after_ms: now + 86_400_000,
            cert_ca_sha256: "ca".into(),
            machine_fingerprint: format!("fp-{h}"),
            hostname: format!("host-{h:06}.example.internal"),
            agent_version: "0.1.0".into(),
            now_ms: now,
        })?;
        let upserts = (0..per_host)
            .map(|i| {
                let slot = h.wrapping_mul(7919).wrapping_add(i);
                match i % 100 {
                    0 => IngestAsset {
                        kind: AssetKind::Runtime,
                        local_key: format!("server:{i}"),
                        json: json!({"pid": 1000 + i, "kind": "vllm", "exe": "/usr/bin/python3",
                            "listening": [{"address": "0.0.0.0", "port": 8000 + i, "exposure": "all_interfaces"}],
                            "auth": {"state": "default", "server_default": "none", "evidence": []},
                            "open_models": [{"path": format!("/srv/models/10/m{}.gguf", (slot + 10) % pool),
                                "sha256": format!("{:064x}", (slot + 10) % pool), "via": ["mmap"]}]})
                        .to_string(),
                    },
                    1..=9 => IngestAsset {
                        kind: AssetKind::Framework,
                        local_key: format!("/opt/venv{i}:pkg{}", slot % 300),
                        json: json!({"ecosystem": "pypi", "name": format!("pkg{}", slot % 300), "version": "1.2.3",
                            "environment": {"path": format!("/opt/venv{i}"), "kind": "venv"}, "category": "core"})
                        .to_string(),
                    },
                    _ if (slot % pool) % 50 == 7 => {
                        let path = format!("/srv/models/{i}/m{}.pkl", slot % pool);
                        IngestAsset {
                            kind: AssetKind::Model,
                            local_key: path.clone(),
                            json: json!({"path": path, "format": "pickle", "sha256": format!("{:064x}", slot % pool),
                                "size": 40_000u64, "digest_source": "hashed", "metadata": {},
                                "source": null, "group": null, "owner": null,
                                "safety": {"verdict": "dangerous", "findings": [{"kind": "import", "subject": "os.system",
                                    "detail": "calls os.system when loaded", "severity": "critical",
                                    "atlas": ["AML.T0011.000"], "owasp": ["LLM03:2025"]}]}})
                            .to_string(),
                        }
                    }
                    _ => {
                        let path = format!("/srv/models/{i}/m{}.gguf", slot % pool);
                        IngestAsset {
                            kind: AssetKind::Model,
                            local_key: path.clone(),
                            json: json!({"path": path, "format": "gguf", "sha256": format!("{:064x}", slot % pool),
                                "size": 4_000_000_000u64, "digest_source": "hashed",
                                "metadata": {"architecture": "llama", "parameters": 6_738_415_616u64,
                                    "quantization": "Q4_K_M", "context_length": 4096},
                                "source": null, "group": null, "owner": null,
                                "safety": {"verdict": "safe", "findings": []}})
                            .to_string(),
                        }
                    }
                }
            })
            .collect();
        store.apply_batch(
            &agent_id,
            &IngestBatch {
                sequence: 1,
                mode: BatchMode::Delta,
                upserts,
                removals: Vec::new(),
                host: None,
                observed_at_ms: now,
                received_at_ms: now,
            },
        )?;
    }
    Ok(())
}

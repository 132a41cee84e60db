//! Ingest micro-benchmark: how many sightings per second `Store::apply_batch` stores, SQLite or
//! PostgreSQL, with several agents streaming at once.
//!
//! `ingest_bench [--pg URL] [--agents N] [--threads T] [--batch B] [--entries E] [--shared PCT]
//! [--rounds R] [--changed PCT] [--snapshots] [--authorize] [--admit] [--keep]`
//!
//! Enrolls `N` agents (default 16) in a fresh store: a SQLite file in a temporary directory, or
//! a new schema of the PostgreSQL database `URL` (dropped at the end). Each agent holds `E`
//! entries (default 2,000): 90 % model files, `PCT` % of them (default 50) drawn from a pool
//! of 200 digests every agent shares (the same model on every host), the rest the agent's own;
//! 8 % framework packages from a shared pool of 100; 2 % servers. `T` threads (default 4) apply,
//! agent after agent, first a snapshot of the `E` entries in parts of `B` upserts (default 500),
//! then `R` rounds (default 3) of deltas re-sending every entry in batches of `B`, `--changed`
//! percent of them (default 0) with a new file size; with `--snapshots` each round is a full
//! snapshot instead, as the agent's `schedule.snapshot_every` sends. With `--authorize` each
//! batch is preceded by `Store::agent`, and with `--admit` counted and applied together by
//! `Store::admit_and_apply`, as the gRPC path does; `--keep` keeps the PostgreSQL schema.
//! Prints sightings/s and the p50/p99 time per batch of each phase.

// The figures are this program's output.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiscout_collector::store::limits::AgentQuota;
use aiscout_collector::store::postgres::PgOptions;
use aiscout_collector::store::{
    AgentRegistration, AssetKind, BatchMode, IngestAsset, IngestBatch, PgStore, RateBudget, RateCharge, SqliteStore,
    Store,
};
use serde_json::json;

/// The rate budget of `--admit`: counted, never over.
const UNLIMITED: RateBudget = RateBudget { messages_per_minute: u32::MAX, bytes_per_minute: u64::MAX };

/// The command line.
#[derive(Debug, Clone)]
struct Args {
    pg: Option<String>,
    agents: u64,
    threads: u64,
    batch: usize,
    entries: u64,
    shared: u64,
    rounds: u64,
    changed: u64,
    snapshots: bool,
    authorize: bool,
    admit: bool,
    keep: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        pg: None,
        agents: 16,
        threads: 4,
        batch: 500,
        entries: 2000,
        shared: 50,
        rounds: 3,
        changed: 0,
        snapshots: false,
        authorize: false,
        admit: false,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let switch = match flag.as_str() {
            "--snapshots" => Some(&mut args.snapshots),
            "--authorize" => Some(&mut args.authorize),
            "--admit" => Some(&mut args.admit),
            "--keep" => Some(&mut args.keep),
            _ => None,
        };
        if let Some(switch) = switch {
            *switch = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--pg" => args.pg = Some(value.clone()),
            "--agents" => args.agents = number()?.max(1),
            "--threads" => args.threads = number()?.max(1),
            "--batch" => args.batch = usize::try_from(number()?.max(1)).map_err(|e| e.to_string())?,
            "--entries" => args.entries = number()?.max(1),
            "--shared" => args.shared = number()?.min(100),
            "--rounds" => args.rounds = number()?,
            "--changed" => args.changed = number()?.min(100),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "ingest_bench: {e}\nusage: ingest_bench [--pg URL] [--agents N] [--threads T] [--batch B] \
                 [--entries E] [--shared PCT] [--rounds R] [--changed PCT] [--snapshots] [--authorize] [--admit] \
                 [--keep]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

fn run(args: &Args) -> Result<(), Error> {
    let quota = AgentQuota { max_stored_bytes: u64::MAX / 2 };
    let _dir;
    let mut drop_schema = None;
    let store: Arc<dyn Store> = match &args.pg {
        Some(url) => {
            let schema = format!("ingest_bench_{}_{}", std::process::id(), now_ms());
            let options = PgOptions {
                pool_size: u32::try_from(args.threads + 2).unwrap_or(16),
                schema: Some(schema.clone()),
                ..PgOptions::default()
            };
            drop_schema = Some((url.clone(), schema));
            Arc::new(PgStore::open_with(url, &options)?.with_quota(quota))
        }
        None => {
            let dir = tempfile::tempdir()?;
            let store = SqliteStore::open(&dir.path().join("bench.db"))?.with_quota(quota);
            _dir = dir;
            Arc::new(store)
        }
    };
    println!(
        "{} agents={} threads={} batch={} entries={} shared={}% rounds={} changed={}% snapshots={} authorize={} \
         admit={}",
        if args.pg.is_some() { "postgresql" } else { "sqlite" },
        args.agents,
        args.threads,
        args.batch,
        args.entries,
        args.shared,
        args.rounds,
        args.changed,
        args.snapshots,
        args.authorize,
        args.admit
    );
    for a in 0..args.agents {
        let now = now_ms();
        store.upsert_agent(&AgentRegistration {
            agent_id: agent_id(a),
            cert_serial: format!("serial-{a}"),
            cert_fingerprint: format!("cert-{a}"),
            cert_not_after_ms: now + 86_400_000,
            cert_ca_sha256: "ca".into(),
            machine_fingerprint: format!("fp-{a}"),
            hostname: format!("host-{a:05}.example.internal"),
            agent_version: "0.1.0".into(),
            now_ms: now,
        })?;
    }
    let result = phases(args, &store);
    drop(store);
    if let Some((url, schema)) = drop_schema {
        if args.keep {
            println!("kept schema {schema}");
            return result;
        }
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))?;
    }
    result
}

fn agent_id(a: u64) -> String {
    format!("agent-{a:05}")
}

/// The agent's `i`-th entry; `generation` changes the file size of `--changed` % of them.
fn entry(args: &Args, agent: u64, i: u64, generation: u64) -> IngestAsset {
    let mixed = i.wrapping_mul(2_654_435_761) % 100;
    let size = if generation > 0 && (i.wrapping_mul(40_503) + generation) % 100 < args.changed {
        4_000_000_000 + generation
    } else {
        4_000_000_000
    };
    match mixed {
        0..=1 => IngestAsset {
            kind: AssetKind::Runtime,
            local_key: format!("server:{i}"),
            json: json!({"pid": 1000 + i, "kind": "vllm", "exe": "/usr/bin/python3",
                "listening": [{"address": "127.0.0.1", "port": 8000 + i, "exposure": "loopback"}],
                "auth": {"state": "default", "server_default": "none", "evidence": []},
                "open_models": []})
            .to_string(),
        },
        2..=9 => IngestAsset {
            kind: AssetKind::Framework,
            local_key: format!("/opt/venv{i}:pkg{}", i % 100),
            json: json!({"ecosystem": "pypi", "name": format!("pkg{}", i % 100), "version": "1.2.3",
                "environment": {"path": format!("/opt/venv{i}"), "kind": "venv"}, "category": "core",
                "size": size})
            .to_string(),
        },
        _ => {
            let digest = if (i.wrapping_mul(7_919) % 100) < args.shared {
                format!("{:064x}", i % 200)
            } else {
                format!("{:032x}{:032x}", agent + 1, i)
            };
            let path = format!("/srv/models/{}/m{i}.gguf", i % 13);
            IngestAsset {
                kind: AssetKind::Model,
                local_key: path.clone(),
                json: json!({"path": path, "format": "gguf", "sha256": digest,
                    "size": size, "digest_source": "hashed",
                    "metadata": {"architecture": "llama", "parameters": 6_738_415_616u64,
                        "quantization": "Q4_K_M", "context_length": 4096, "name": format!("model {i}")},
                    "source": null, "group": null, "owner": null,
                    "safety": {"verdict": "safe", "findings": []}})
                .to_string(),
            }
        }
    }
}

/// The batches of one agent for one phase: a snapshot (generation 0) or a round of deltas.
fn batches(args: &Args, agent: u64, generation: u64, first_sequence: u64) -> Vec<IngestBatch> {
    let all: Vec<IngestAsset> = (0..args.entries).map(|i| entry(args, agent, i, generation)).collect();
    let parts: Vec<Vec<IngestAsset>> = all.chunks(args.batch).map(<[IngestAsset]>::to_vec).collect();
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(n, upserts)| IngestBatch {
            sequence: first_sequence + n as u64,
            mode: if generation == 0 || args.snapshots {
                BatchMode::SnapshotPart { snapshot_id: first_sequence, first_part: n == 0, last_part: n + 1 == count }
            } else {
                BatchMode::Delta
            },
            upserts,
            removals: Vec::new(),
            host: None,
            observed_at_ms: 0,
            received_at_ms: 0,
        })
        .collect()
}

fn phases(args: &Args, store: &Arc<dyn Store>) -> Result<(), Error> {
    let per_phase = args.entries.div_ceil(args.batch as u64);
    for generation in 0..=args.rounds {
        let first_sequence = 1 + generation * per_phase;
        let name = if generation == 0 { "snapshot".to_owned() } else { format!("deltas {generation}") };
        phase(args, store, &name, generation, first_sequence)?;
    }
    Ok(())
}

/// Applies one phase's batches of every agent from `args.threads` threads.
fn phase(args: &Args, store: &Arc<dyn Store>, name: &str, generation: u64, first_sequence: u64) -> Result<(), Error> {
    // Built before the clock starts.
    let work: Vec<(u64, Vec<IngestBatch>)> =
        (0..args.agents).map(|a| (a, batches(args, a, generation, first_sequence))).collect();
    let queues: Vec<Vec<(u64, Vec<IngestBatch>)>> =
        (0..args.threads).map(|t| work.iter().filter(|(a, _)| a % args.threads == t).cloned().collect()).collect();
    let times = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let started = Instant::now();
    let mut handles = Vec::new();
    for queue in queues {
        let (store, times, authorize, admit) = (Arc::clone(store), Arc::clone(&times), args.authorize, args.admit);
        handles.push(std::thread::spawn(move || -> Result<u64, Error> {
            let mut stored = 0u64;
            let mut mine = Vec::new();
            for (a, batches) in queue {
                let agent = agent_id(a);
                for mut batch in batches {
                    let t0 = Instant::now();
                    let now = now_ms();
                    batch.observed_at_ms = now;
                    batch.received_at_ms = now;
                    if authorize && store.agent(&agent)?.is_none() {
                        return Err(format!("{agent} is not enrolled").into());
                    }
                    let charge = RateCharge { messages: 1, bytes: 100_000, now_ms: now };
                    let outcome = if admit {
                        store
                            .admit_and_apply(&agent, &charge, &UNLIMITED, &batch)?
                            .map_err(|_| format!("{agent}: over an unlimited rate"))?
                    } else {
                        store.apply_batch(&agent, &batch)?
                    };
                    match outcome {
                        aiscout_collector::store::ApplyOutcome::Applied(summary) => {
                            if !summary.rejected.is_empty() {
                                return Err(format!("{agent}: rejected {:?}", summary.rejected.first()).into());
                            }
                            stored += summary.upserted;
                        }
                        other => return Err(format!("{agent}: {other:?}").into()),
                    }
                    mine.push(t0.elapsed());
                }
            }
            if let Ok(mut all) = times.lock() {
                all.extend(mine);
            }
            Ok(stored)
        }));
    }
    let mut stored = 0;
    for handle in handles {
        stored += handle.join().map_err(|_| "a thread panicked")??;
    }
    let elapsed = started.elapsed();
    let mut times = times.lock().map_err(|_| "poisoned")?.clone();
    times.sort_unstable();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).copied().unwrap_or_default()
    };
    println!(
        "{name:>10}: {stored:>8} sightings in {:>7.2} s = {:>8.0} sightings/s; {} batches, p50 {:>7.1} ms, p99 {:>7.1} ms",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        times.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0
    );
    Ok(())
}

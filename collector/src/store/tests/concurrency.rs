//! Two collectors writing one database at the same time: dedup is the database's job.
//!
//! Each "collector" is its own store handle (its own pool or connection) on one database, and
//! each writer a real thread; a barrier releases them together so their transactions overlap.

use std::sync::{Arc, Barrier};

use super::*;

/// Two handles on one database: two PostgreSQL pools on one schema, or two SQLite
/// connections on one file.
pub(super) fn two_collectors() -> (Arc<dyn Store>, Arc<dyn Store>, Option<tempfile::TempDir>) {
    match std::env::var(backend::POSTGRES_VAR) {
        Ok(url) if !url.is_empty() => {
            let first = backend::postgres_store(&url);
            let schema = first.schema().expect("a test schema").to_owned();
            let options = crate::store::postgres::PgOptions {
                pool_size: 4,
                schema: Some(schema),
                ..crate::store::postgres::PgOptions::default()
            };
            let second = crate::store::PgStore::open_with(&url, &options).expect("second collector");
            (Arc::new(first), Arc::new(second), None)
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("store.db");
            let first = SqliteStore::open(&path).unwrap();
            let second = SqliteStore::open(&path).unwrap();
            (Arc::new(first), Arc::new(second), Some(dir))
        }
    }
}

#[test]
fn two_collectors_ingesting_one_model_from_many_agents_at_once_make_one_asset() {
    let (first, second, _dir) = two_collectors();
    const AGENTS: usize = 16;
    for i in 0..AGENTS {
        let id = format!("agent-{i:02}");
        first.upsert_agent(&registration(&id, &format!("host-{i:02}"), &format!("fp-{i}"), 10)).unwrap();
    }
    let barrier = Arc::new(Barrier::new(AGENTS));
    let writers: Vec<_> = (0..AGENTS)
        .map(|i| {
            // Half the agents talk to each collector.
            let store = Arc::clone(if i % 2 == 0 { &first } else { &second });
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let id = format!("agent-{i:02}");
                barrier.wait();
                // The same model and framework on every host, and one of the host's own.
                let own = format!("{:064x}", i + 1000);
                let batch = delta(
                    1,
                    1_000 + i64::try_from(i).unwrap(),
                    vec![
                        model("/models/shared.gguf", SHA_A),
                        framework("/venv", "torch", "2.3.0"),
                        model("/models/own.gguf", &own),
                    ],
                );
                store.apply_batch(&id, &batch).map(|o| matches!(o, ApplyOutcome::Applied(_)))
            })
        })
        .collect();
    for writer in writers {
        assert!(writer.join().unwrap().unwrap(), "every batch applied");
    }
    for store in [&first, &second] {
        let shared = asset(&**store, &format!("model:{SHA_A}"));
        assert_eq!(shared.asset.live_sightings, AGENTS as u64, "one model asset, a sighting per host");
        // The first batch applied, whichever thread that was.
        assert!((1_000..1_000 + AGENTS as i64).contains(&shared.asset.first_seen_ms));
        let all = store.assets(&WITH_REMOVED, &PageRequest::first(1000)).unwrap();
        // One shared model, one framework, one own model per host.
        assert_eq!(all.total, 2 + AGENTS as u64, "{:?}", all.items.iter().map(|a| &a.id).collect::<Vec<_>>());
    }
}

#[test]
fn one_agent_streaming_to_two_collectors_at_once_applies_each_sequence_once() {
    let (first, second, _dir) = two_collectors();
    first.upsert_agent(&registration("a", "host-a", "fp-a", 10)).unwrap();
    // The agent reconnected to the other collector while its old stream still delivered: both
    // receive batches 1 to 20, interleaved; each applies once and the sequence ends at 20.
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [Arc::clone(&first), Arc::clone(&second)]
        .into_iter()
        .map(|store| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut applied = 0;
                for seq in 1..=20u64 {
                    let path = format!("/m/{seq}");
                    let sha = format!("{seq:064x}");
                    let at = 1_000 + i64::try_from(seq).unwrap();
                    match store.apply_batch("a", &delta(seq, at, vec![model(&path, &sha)])).unwrap() {
                        ApplyOutcome::Applied(_) | ApplyOutcome::Gap { .. } => applied += 1,
                        ApplyOutcome::AlreadyApplied { .. } => {}
                    }
                }
                applied
            })
        })
        .collect();
    let applied: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    // Each thread sends in order, so the store is always at least at the sequence before the
    // one a thread sends: no gap, every sequence applied by exactly one of them.
    assert_eq!(applied, 20);
    assert_eq!(first.agent("a").unwrap().unwrap().last_sequence, 20);
    let models = first.assets(&of_kind(AssetKind::Model), &PageRequest::first(1000)).unwrap();
    assert_eq!(models.total, 20);
}

#[test]
#[ignore = "needs AISCOUT_TEST_POSTGRES; scripts/test.sh runs it with --include-ignored"]
fn a_call_waits_its_turn_for_a_busy_pool_instead_of_failing() {
    use std::time::{Duration, Instant};
    let url = std::env::var(backend::POSTGRES_VAR).expect("AISCOUT_TEST_POSTGRES names the database");
    let first = backend::postgres_store(&url);
    // One connection, a short wait for it, a long queue: a busy pool must not look like a
    // database that is down.
    let options = crate::store::postgres::PgOptions {
        pool_size: 1,
        connect_timeout: Duration::from_secs(1),
        queue_timeout: Duration::from_secs(20),
        schema: Some(first.schema().expect("a test schema").to_owned()),
        ..crate::store::postgres::PgOptions::default()
    };
    let store = Arc::new(crate::store::PgStore::open_with(&url, &options).expect("a one-connection store"));
    store.upsert_agent(&registration("a", "host-a", "fp-a", 10)).unwrap();
    let taken = Arc::new(Barrier::new(2));
    let holder = {
        let (store, taken) = (Arc::clone(&store), Arc::clone(&taken));
        std::thread::spawn(move || {
            store.with_client(|_| {
                taken.wait();
                std::thread::sleep(Duration::from_secs(3));
            })
        })
    };
    taken.wait();
    let started = Instant::now();
    let agent = store.agent("a").expect("the call waits for the connection instead of failing after 1 s");
    assert_eq!(agent.map(|a| a.hostname).as_deref(), Some("host-a"));
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited for the holder: {:?}", started.elapsed());
    holder.join().unwrap();
}

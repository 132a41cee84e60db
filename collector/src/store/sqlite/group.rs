//! Group commit of batches: the call that takes the connection applies, in one transaction,
//! every batch queued by the calls waiting behind it, each in its own savepoint, and commits
//! once for all of them.
//!
//! Why: a commit fsyncs the WAL (`synchronous=FULL`, module docs of `sqlite`) and writes every
//! page the transaction touched, the shared index pages included, so under many concurrent
//! streams the single writer spent its time committing. Grouping keeps each batch's outcome its
//! own (a batch that fails rolls back to its savepoint, the others commit), and keeps the
//! promise the acknowledgement makes: a call returns only after the commit that holds its batch.
//!
//! How: a call queues its batch, then locks the connection. If the call that held it before
//! applied this batch, the outcome is waiting; otherwise the queue's oldest batches (at most
//! [`MAX_GROUP_BATCHES`], and [`MAX_GROUP_ENTRIES`] entries, so a group's transaction stays
//! short for the readers queued on the same connection) are applied, until its own is.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, TransactionBehavior};

use super::{batch, db_error};
use crate::store::error::StoreError;
use crate::store::limits::AgentQuota;
use crate::store::types::{ApplyOutcome, IngestBatch};

/// Most batches one transaction applies.
pub(crate) const MAX_GROUP_BATCHES: usize = 64;

/// Most entries (upserts and removals) one transaction applies, unless its first batch alone
/// has more.
pub(crate) const MAX_GROUP_ENTRIES: usize = 4_000;

/// A batch waiting for a commit, and its outcome once committed.
#[derive(Debug)]
pub(crate) struct Queued {
    agent_id: String,
    batch: IngestBatch,
    outcome: Mutex<Option<Result<ApplyOutcome, StoreError>>>,
}

impl Queued {
    fn take_outcome(&self) -> Option<Result<ApplyOutcome, StoreError>> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn set_outcome(&self, outcome: Result<ApplyOutcome, StoreError>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

/// The batches queued for the next group.
#[derive(Debug, Default)]
pub(crate) struct Queue(Mutex<Vec<Arc<Queued>>>);

impl Queue {
    /// Queues `batch` of `agent_id`.
    pub(crate) fn push(&self, agent_id: &str, batch: &IngestBatch) -> Arc<Queued> {
        let queued =
            Arc::new(Queued { agent_id: agent_id.to_owned(), batch: batch.clone(), outcome: Mutex::new(None) });
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&queued));
        queued
    }

    /// The oldest queued batches, within the group's bounds.
    fn next_group(&self) -> Vec<Arc<Queued>> {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut entries = 0usize;
        let mut take = 0usize;
        for q in queue.iter().take(MAX_GROUP_BATCHES) {
            let n = q.batch.upserts.len().saturating_add(q.batch.removals.len());
            if take > 0 && entries.saturating_add(n) > MAX_GROUP_ENTRIES {
                break;
            }
            entries = entries.saturating_add(n);
            take += 1;
        }
        queue.drain(..take).collect()
    }

    /// Batches queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn holds(&self, queued: &Arc<Queued>) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|q| Arc::ptr_eq(q, queued))
    }
}

/// The outcome of `mine`, applying groups on `conn` (held by the caller) until it is known.
pub(crate) fn apply(
    conn: &mut Connection,
    queue: &Queue,
    mine: &Arc<Queued>,
    quota: &AgentQuota,
) -> Result<ApplyOutcome, StoreError> {
    loop {
        if let Some(outcome) = mine.take_outcome() {
            return outcome;
        }
        if !queue.holds(mine) {
            // Taken by a call that did not finish its group (it panicked): nothing committed it.
            return Err(StoreError::Backend {
                operation: "apply batch",
                source: "the group holding this batch was not committed".into(),
            });
        }
        let group = queue.next_group();
        let outcomes = apply_group(conn, &group, quota);
        for (queued, outcome) in group.iter().zip(outcomes) {
            queued.set_outcome(outcome);
        }
    }
}

/// Applies `group` in one transaction, each batch in a savepoint; the outcomes in its order.
fn apply_group(
    conn: &mut Connection,
    group: &[Arc<Queued>],
    quota: &AgentQuota,
) -> Vec<Result<ApplyOutcome, StoreError>> {
    const OPERATION: &str = "apply batch";
    // Every batch of the group fails alike: busy stays busy (`db_error`), the rest is the
    // backend's error, its text for each.
    let all_failed = |e: rusqlite::Error| -> Vec<Result<ApplyOutcome, StoreError>> {
        let text = e.to_string();
        let busy = matches!(db_error(OPERATION, e), StoreError::Busy { .. });
        group
            .iter()
            .map(|_| {
                Err(if busy {
                    StoreError::Busy { operation: OPERATION }
                } else {
                    StoreError::Backend { operation: OPERATION, source: text.clone().into() }
                })
            })
            .collect()
    };
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return all_failed(e),
    };
    let mut outcomes = Vec::with_capacity(group.len());
    for queued in group {
        if let Err(e) = tx.execute_batch("SAVEPOINT batch") {
            return all_failed(e);
        }
        let outcome = batch::apply(&tx, &queued.agent_id, &queued.batch, quota);
        let end = if outcome.is_ok() { "RELEASE batch" } else { "ROLLBACK TO batch; RELEASE batch" };
        if let Err(e) = tx.execute_batch(end) {
            return all_failed(e);
        }
        outcomes.push(outcome.map_err(|e| e.into_store(OPERATION)));
    }
    match tx.commit() {
        Ok(()) => outcomes,
        Err(e) => all_failed(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::store::tests::{delta, model, registration};
    use crate::store::{ApplyOutcome, AssetFilter, PageRequest, SqliteStore, Store, StoreError};

    #[test]
    fn batches_queued_together_commit_together_and_each_fails_alone() {
        const AGENTS: usize = 6;
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        for i in 0..AGENTS {
            store.upsert_agent(&registration(&format!("a{i}"), &format!("h{i}"), &format!("fp{i}"), 10)).unwrap();
        }
        // The connection is held until every batch is queued: the next call to take it applies
        // all six in one transaction.
        let writers = store.with_connection(|_| {
            let writers: Vec<_> = (0..AGENTS)
                .map(|i| {
                    let store = Arc::clone(&store);
                    std::thread::spawn(move || {
                        // Agent a2's batch is invalid (sequence 0): it alone is refused.
                        let sequence = if i == 2 { 0 } else { 1 };
                        let sha = format!("{:064x}", i + 1);
                        store.apply_batch(&format!("a{i}"), &delta(sequence, 100, vec![model("/m.gguf", &sha)]))
                    })
                })
                .collect();
            while store.queue.len() < AGENTS {
                std::thread::sleep(Duration::from_millis(1));
            }
            writers
        });
        let outcomes: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        for (i, outcome) in outcomes.iter().enumerate() {
            if i == 2 {
                assert!(matches!(outcome, Err(StoreError::InvalidBatch { .. })), "{outcome:?}");
            } else {
                assert!(matches!(outcome, Ok(ApplyOutcome::Applied(s)) if s.upserted == 1), "a{i}: {outcome:?}");
            }
        }
        let assets = store.assets(&AssetFilter::default(), &PageRequest::default()).unwrap();
        assert_eq!(assets.total, AGENTS as u64 - 1, "every batch but the refused one is stored");
        assert_eq!(store.agent("a2").unwrap().unwrap().last_sequence, 0);
        assert_eq!(store.agent("a3").unwrap().unwrap().last_sequence, 1);
    }

    #[test]
    fn a_group_is_bounded_by_batches_and_entries() {
        let queue = super::Queue::default();
        let big = delta(1, 1, (0..3_000).map(|i| model(&format!("/m{i}"), &format!("{i:064x}"))).collect());
        let small = delta(1, 1, vec![model("/m", &format!("{:064x}", 1))]);
        queue.push("a", &big);
        queue.push("b", &big);
        assert_eq!(queue.next_group().len(), 1, "3,000 + 3,000 entries are over the bound");
        assert_eq!(queue.next_group().len(), 1, "a batch alone is applied whatever its size");
        for _ in 0..super::MAX_GROUP_BATCHES + 5 {
            queue.push("c", &small);
        }
        assert_eq!(queue.next_group().len(), super::MAX_GROUP_BATCHES);
        assert_eq!(queue.next_group().len(), 5);
    }
}

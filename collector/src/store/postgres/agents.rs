//! Agents, as `sqlite/agents.rs` (the host-status rules are its [`host_status`]). What differs:
//! SQLite's single writer made each read-then-write safe; here several collectors write at
//! once, so the revocation check of an upsert and a decommission are one conditional statement,
//! a resurface and a reinstall's settlement lock the agent's row, and enrollments and
//! resurfaces of one machine fingerprint take an advisory lock on it, so two agents enrolling
//! together still see each other (a clone is flagged, not two `new` hosts). Ids sort bytewise
//! (`COLLATE "C"`), as in SQLite.

use postgres::Row;

use super::{Fail, Res, Tx};
use crate::store::error::StoreError;
use crate::store::sqlite::agents::host_status;
use crate::store::types::{Agent, AgentRegistration, HostStatus};

/// Columns read by [`from_row`], in its order, for a table aliased `a`.
pub(super) const AGENT_COLUMNS: &str = "a.agent_id, a.cert_serial, a.cert_fingerprint, a.cert_not_after_ms, \
     a.machine_fingerprint, a.reported_machine_fingerprint, a.hostname, a.agent_version, a.enrolled_at_ms, \
     a.last_seen_ms, a.last_sequence, a.revoked_at_ms, a.host_facts_json, a.install_key_sha256, a.superseded_by, \
     a.superseded_at_ms, a.clone_detected_at_ms, a.reported_hostname, a.stored_bytes, a.cert_ca_sha256, \
     a.decommissioned_at_ms, a.identity_json";

/// First key of the advisory locks on a machine fingerprint (the second is the fingerprint's
/// hash). The two-key form does not overlap the one-key locks of `super::locks`.
const FINGERPRINT_LOCK: i32 = 0x6169_7363;

/// `value`, read from `column`, as the unsigned number the store holds there; out of range is
/// an error naming the column (the schema's checks keep it from happening).
pub(super) fn stored<T: TryFrom<i64>>(value: i64, column: &'static str) -> Res<T> {
    T::try_from(value).map_err(|_| {
        Fail::Store(StoreError::Backend {
            operation: "read a stored number",
            source: format!("{column} holds {value}, which is out of range").into(),
        })
    })
}

/// The agent in the columns of [`AGENT_COLUMNS`], first in `row`.
pub(super) fn from_row(row: &Row) -> Res<Agent> {
    Ok(Agent {
        agent_id: row.try_get(0)?,
        cert_serial: row.try_get(1)?,
        cert_fingerprint: row.try_get(2)?,
        cert_not_after_ms: row.try_get(3)?,
        machine_fingerprint: row.try_get(4)?,
        reported_machine_fingerprint: row.try_get(5)?,
        hostname: row.try_get(6)?,
        agent_version: row.try_get(7)?,
        enrolled_at_ms: row.try_get(8)?,
        last_seen_ms: row.try_get(9)?,
        last_sequence: stored(row.try_get::<_, i64>(10)?, "agents.last_sequence")?,
        revoked_at_ms: row.try_get(11)?,
        host_facts_json: row.try_get(12)?,
        install_key_sha256: row.try_get(13)?,
        superseded_by: row.try_get(14)?,
        superseded_at_ms: row.try_get(15)?,
        clone_detected_at_ms: row.try_get(16)?,
        reported_hostname: row.try_get(17)?,
        stored_bytes: stored(row.try_get::<_, i64>(18)?, "agents.stored_bytes")?,
        cert_ca_sha256: row.try_get(19)?,
        decommissioned_at_ms: row.try_get(20)?,
        identity_json: row.try_get(21)?,
    })
}

/// Holds, until the transaction ends, the lock on machine fingerprint `fingerprint`.
fn lock_fingerprint(tx: &mut Tx<'_>, fingerprint: &str) -> Res<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&FINGERPRINT_LOCK, &fingerprint])?;
    Ok(())
}

/// Registers the agent or updates its certificate and facts; refused for a revoked agent (the
/// upsert does not touch a revoked row, so a racing revocation cannot be overwritten).
pub(super) fn upsert(tx: &mut Tx<'_>, agent: &AgentRegistration) -> Res<()> {
    let changed = tx.execute(
        "INSERT INTO agents (agent_id, cert_serial, cert_fingerprint, cert_not_after_ms, machine_fingerprint, \
             hostname, agent_version, enrolled_at_ms, cert_ca_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (agent_id) DO UPDATE SET cert_serial = excluded.cert_serial, \
             cert_fingerprint = excluded.cert_fingerprint, cert_not_after_ms = excluded.cert_not_after_ms, \
             cert_ca_sha256 = excluded.cert_ca_sha256, \
             machine_fingerprint = excluded.machine_fingerprint, hostname = excluded.hostname, \
             agent_version = excluded.agent_version \
         WHERE agents.revoked_at_ms IS NULL",
        &[
            &agent.agent_id,
            &agent.cert_serial,
            &agent.cert_fingerprint,
            &agent.cert_not_after_ms,
            &agent.machine_fingerprint,
            &agent.hostname,
            &agent.agent_version,
            &agent.now_ms,
            &agent.cert_ca_sha256,
        ],
    )?;
    if changed == 0 {
        return Err(StoreError::AgentRevoked { agent_id: agent.agent_id.clone() }.into());
    }
    Ok(())
}

/// Revokes `agent_id` at `now_ms` (a second revocation keeps the first time) and closes its
/// live sightings (as `sqlite/agents.rs`).
pub(super) fn revoke(tx: &mut Tx<'_>, agent_id: &str, now_ms: i64) -> Res<()> {
    let changed = tx.execute(
        "UPDATE agents SET revoked_at_ms = COALESCE(revoked_at_ms, $2) WHERE agent_id = $1",
        &[&agent_id, &now_ms],
    )?;
    if changed == 0 {
        return Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into());
    }
    tx.execute(
        "UPDATE sightings SET removed_at_ms = $2 WHERE agent_id = $1 AND removed_at_ms IS NULL",
        &[&agent_id, &now_ms],
    )?;
    Ok(())
}

pub(super) fn get(tx: &mut Tx<'_>, agent_id: &str) -> Res<Option<Agent>> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.agent_id = $1");
    match tx.query_opt(&sql, &[&agent_id])? {
        Some(row) => Ok(Some(from_row(&row)?)),
        None => Ok(None),
    }
}

pub(super) fn by_machine_fingerprint(tx: &mut Tx<'_>, fingerprint: &str) -> Res<Vec<Agent>> {
    let sql = format!(
        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.machine_fingerprint = $1 \
         ORDER BY a.enrolled_at_ms, a.agent_id COLLATE \"C\""
    );
    tx.query(&sql, &[&fingerprint])?.iter().map(from_row).collect()
}

/// Registers a newly enrolled agent and settles its host's status (`sqlite/agents.rs`,
/// [`host_status`]), under the lock of its machine fingerprint.
pub(super) fn enroll(tx: &mut Tx<'_>, agent: &AgentRegistration, install_key_sha256: Option<&str>) -> Res<HostStatus> {
    let sharing: Vec<Agent> = if agent.machine_fingerprint.is_empty() {
        Vec::new()
    } else {
        lock_fingerprint(tx, &agent.machine_fingerprint)?;
        by_machine_fingerprint(tx, &agent.machine_fingerprint)?
    };
    upsert(tx, agent)?;
    let (status, pending) = host_status(&agent.agent_id, &sharing, install_key_sha256);
    tx.execute(
        "UPDATE agents SET install_key_sha256 = $2, supersedes_pending = $3 WHERE agent_id = $1",
        &[&agent.agent_id, &install_key_sha256, &pending],
    )?;
    if let HostStatus::Clone { of } = &status {
        let flagged: Vec<&str> = of.iter().chain(std::iter::once(&agent.agent_id)).map(String::as_str).collect();
        tx.execute(
            "UPDATE agents SET clone_detected_at_ms = COALESCE(clone_detected_at_ms, $2) WHERE agent_id = ANY($1)",
            &[&flagged, &agent.now_ms],
        )?;
    }
    Ok(status)
}

/// After `agent_id`'s first complete snapshot: supersedes the agents its enrollment proved it
/// reinstalls and closes their live sightings (as `sqlite/agents.rs`); its row is locked first,
/// so the pending list is settled once. Returns the agents superseded.
pub(super) fn settle_reinstall(tx: &mut Tx<'_>, agent_id: &str, now_ms: i64) -> Res<Vec<String>> {
    let pending: Option<String> =
        match tx.query_opt("SELECT supersedes_pending FROM agents WHERE agent_id = $1 FOR UPDATE", &[&agent_id])? {
            Some(row) => row.try_get(0)?,
            None => None,
        };
    let Some(pending) = pending else { return Ok(Vec::new()) };
    let olds: Vec<String> = serde_json::from_str(&pending).unwrap_or_default();
    let mut superseded = Vec::new();
    for old in olds {
        let changed = tx.execute(
            "UPDATE agents SET superseded_by = $2, superseded_at_ms = $3 \
             WHERE agent_id = $1 AND revoked_at_ms IS NULL AND superseded_by IS NULL",
            &[&old, &agent_id, &now_ms],
        )?;
        if changed > 0 {
            tx.execute(
                "UPDATE sightings SET removed_at_ms = $2 WHERE agent_id = $1 AND removed_at_ms IS NULL",
                &[&old, &now_ms],
            )?;
            superseded.push(old);
        }
    }
    tx.execute("UPDATE agents SET supersedes_pending = NULL WHERE agent_id = $1", &[&agent_id])?;
    Ok(superseded)
}

/// A superseded agent called again: it is live again and it and every live agent sharing its
/// fingerprint are flagged as clones (as `sqlite/agents.rs`), under the fingerprint's lock and
/// with its row locked. Returns whether `agent_id` was superseded.
pub(super) fn resurface(tx: &mut Tx<'_>, agent_id: &str, now_ms: i64) -> Res<bool> {
    let Some(seen) = get(tx, agent_id)? else {
        return Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into());
    };
    if seen.superseded_by.is_none() || seen.revoked_at_ms.is_some() {
        return Ok(false);
    }
    lock_fingerprint(tx, &seen.machine_fingerprint)?;
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.agent_id = $1 FOR UPDATE");
    let agent = match tx.query_opt(&sql, &[&agent_id])? {
        Some(row) => from_row(&row)?,
        None => return Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into()),
    };
    if agent.superseded_by.is_none() || agent.revoked_at_ms.is_some() {
        return Ok(false);
    }
    tx.execute(
        "UPDATE agents SET superseded_by = NULL, superseded_at_ms = NULL, \
             clone_detected_at_ms = COALESCE(clone_detected_at_ms, $3) \
         WHERE revoked_at_ms IS NULL AND (agent_id = $1 OR (machine_fingerprint = $2 AND superseded_by IS NULL))",
        &[&agent_id, &agent.machine_fingerprint, &now_ms],
    )?;
    Ok(true)
}

/// Decommissions the agent's host (as `sqlite/agents.rs`); `false` when it already was. The
/// update is conditional, so of two racing calls one wins (and one audit record is written).
pub(super) fn decommission(tx: &mut Tx<'_>, agent_id: &str, now_ms: i64) -> Res<bool> {
    let changed = tx.execute(
        "UPDATE agents SET decommissioned_at_ms = $2, revoked_at_ms = COALESCE(revoked_at_ms, $2) \
         WHERE agent_id = $1 AND decommissioned_at_ms IS NULL",
        &[&agent_id, &now_ms],
    )?;
    if changed == 0 {
        return match tx.query_opt("SELECT 1 FROM agents WHERE agent_id = $1", &[&agent_id])? {
            Some(_) => Ok(false),
            None => Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into()),
        };
    }
    tx.execute(
        "UPDATE sightings SET removed_at_ms = $2 WHERE agent_id = $1 AND removed_at_ms IS NULL",
        &[&agent_id, &now_ms],
    )?;
    Ok(true)
}

pub(super) fn set_identity(tx: &mut Tx<'_>, agent_id: &str, identity_json: &str) -> Res<()> {
    tx.execute("UPDATE agents SET identity_json = $2 WHERE agent_id = $1", &[&agent_id, &identity_json])?;
    Ok(())
}

/// The agent was heard from at `now_ms`: its last-seen time moves forward, never back.
pub(super) fn touch(tx: &mut Tx<'_>, agent_id: &str, now_ms: i64) -> Res<()> {
    tx.execute(
        "UPDATE agents SET last_seen_ms = GREATEST(last_seen_ms, $2) WHERE agent_id = $1",
        &[&agent_id, &now_ms],
    )?;
    Ok(())
}

/// Counts a message against `agent_id`'s rate-limit window (`store::rate_window`, whose
/// statement is written with SQLite's placeholders).
pub(super) fn admit_message(
    tx: &mut Tx<'_>,
    agent_id: &str,
    charge: &crate::store::types::RateCharge,
    budget: &crate::store::types::RateBudget,
) -> Res<Option<i64>> {
    use crate::store::rate_window::{parameters, wait_ms, ADMIT, WINDOW_START};
    static STATEMENTS: std::sync::LazyLock<(String, String)> =
        std::sync::LazyLock::new(|| (ADMIT.replace('?', "$"), WINDOW_START.replace('?', "$")));
    let [now, messages, bytes, message_budget, byte_budget, window] = parameters(charge, budget);
    let fits = tx.query_opt(
        STATEMENTS.0.as_str(),
        &[&agent_id, &now, &messages, &bytes, &message_budget, &byte_budget, &window],
    )?;
    if fits.is_some() {
        return Ok(None);
    }
    let start: i64 = tx.query_one(STATEMENTS.1.as_str(), &[&agent_id])?.try_get(0)?;
    Ok(Some(wait_ms(start, now)))
}

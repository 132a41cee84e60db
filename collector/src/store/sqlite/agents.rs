//! Agents: registration, revocation, lookups.

use rusqlite::{OptionalExtension, Row, Transaction};

use super::Res;
use crate::store::error::StoreError;
use crate::store::types::{Agent, AgentRegistration, HostStatus};

/// Columns read by [`from_row`], in its order, for a table aliased `a`.
pub(super) const AGENT_COLUMNS: &str = "a.agent_id, a.cert_serial, a.cert_fingerprint, a.cert_not_after_ms, \
     a.machine_fingerprint, a.reported_machine_fingerprint, a.hostname, a.agent_version, a.enrolled_at_ms, \
     a.last_seen_ms, a.last_sequence, a.revoked_at_ms, a.host_facts_json, a.install_key_sha256, a.superseded_by, \
     a.superseded_at_ms, a.clone_detected_at_ms, a.reported_hostname, a.stored_bytes, a.cert_ca_sha256, \
     a.decommissioned_at_ms, a.identity_json";

/// Number of columns in [`AGENT_COLUMNS`].
pub(super) const AGENT_COLUMN_COUNT: usize = 22;

/// The agent in the first [`AGENT_COLUMN_COUNT`] columns of `row`.
pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Agent> {
    Ok(Agent {
        agent_id: row.get(0)?,
        cert_serial: row.get(1)?,
        cert_fingerprint: row.get(2)?,
        cert_not_after_ms: row.get(3)?,
        machine_fingerprint: row.get(4)?,
        reported_machine_fingerprint: row.get(5)?,
        hostname: row.get(6)?,
        agent_version: row.get(7)?,
        enrolled_at_ms: row.get(8)?,
        last_seen_ms: row.get(9)?,
        last_sequence: u64::try_from(row.get::<_, i64>(10)?).unwrap_or_default(),
        revoked_at_ms: row.get(11)?,
        host_facts_json: row.get(12)?,
        install_key_sha256: row.get(13)?,
        superseded_by: row.get(14)?,
        superseded_at_ms: row.get(15)?,
        clone_detected_at_ms: row.get(16)?,
        reported_hostname: row.get(17)?,
        stored_bytes: u64::try_from(row.get::<_, i64>(18)?).unwrap_or_default(),
        cert_ca_sha256: row.get(19)?,
        decommissioned_at_ms: row.get(20)?,
        identity_json: row.get(21)?,
    })
}

pub(super) fn upsert(tx: &Transaction<'_>, agent: &AgentRegistration) -> Res<()> {
    let revoked: Option<Option<i64>> = tx
        .query_row("SELECT revoked_at_ms FROM agents WHERE agent_id = ?1", [&agent.agent_id], |r| r.get(0))
        .optional()?;
    if let Some(Some(_)) = revoked {
        return Err(StoreError::AgentRevoked { agent_id: agent.agent_id.clone() }.into());
    }
    tx.execute(
        "INSERT INTO agents (agent_id, cert_serial, cert_fingerprint, cert_not_after_ms, machine_fingerprint, \
             hostname, agent_version, enrolled_at_ms, cert_ca_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (agent_id) DO UPDATE SET cert_serial = excluded.cert_serial, \
             cert_fingerprint = excluded.cert_fingerprint, cert_not_after_ms = excluded.cert_not_after_ms, \
             cert_ca_sha256 = excluded.cert_ca_sha256, \
             machine_fingerprint = excluded.machine_fingerprint, hostname = excluded.hostname, \
             agent_version = excluded.agent_version",
        rusqlite::params![
            agent.agent_id,
            agent.cert_serial,
            agent.cert_fingerprint,
            agent.cert_not_after_ms,
            agent.machine_fingerprint,
            agent.hostname,
            agent.agent_version,
            agent.now_ms,
            agent.cert_ca_sha256,
        ],
    )?;
    Ok(())
}

/// Revokes `agent_id` at `now_ms` (a second revocation keeps the first time). Its live
/// sightings are closed then: a revoked agent no longer reports, so what it said last is
/// history, not the host's present (a reinstall that lost its install key is retired this way).
pub(super) fn revoke(tx: &Transaction<'_>, agent_id: &str, now_ms: i64) -> Res<()> {
    let changed = tx.execute(
        "UPDATE agents SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE agent_id = ?1",
        rusqlite::params![agent_id, now_ms],
    )?;
    if changed == 0 {
        return Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into());
    }
    tx.execute(
        "UPDATE sightings SET removed_at_ms = ?2 WHERE agent_id = ?1 AND removed_at_ms IS NULL",
        rusqlite::params![agent_id, now_ms],
    )?;
    Ok(())
}

pub(super) fn get(tx: &Transaction<'_>, agent_id: &str) -> Res<Option<Agent>> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.agent_id = ?1");
    Ok(tx.query_row(&sql, [agent_id], from_row).optional()?)
}

pub(super) fn by_machine_fingerprint(tx: &Transaction<'_>, fingerprint: &str) -> Res<Vec<Agent>> {
    let sql = format!(
        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.machine_fingerprint = ?1 ORDER BY a.enrolled_at_ms, a.agent_id"
    );
    let mut stmt = tx.prepare(&sql)?;
    let agents = stmt.query_map([fingerprint], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(agents)
}

/// Registers a newly enrolled agent and settles its host's status (docs/fleet.md, *Reinstall
/// and clone*). A live agent with the same machine fingerprint is superseded only on proof:
/// its stored install-key hash equals the new one's (the same installation, enrolling again),
/// and even then only once the new agent's first complete snapshot arrives
/// (`supersedes_pending`). A shared fingerprint without proof flags every agent sharing it as
/// a clone and closes nothing: a fingerprint is a claim, not a credential.
pub(super) fn enroll(
    tx: &Transaction<'_>,
    agent: &AgentRegistration,
    install_key_sha256: Option<&str>,
) -> Res<HostStatus> {
    let sharing: Vec<Agent> = if agent.machine_fingerprint.is_empty() {
        Vec::new()
    } else {
        by_machine_fingerprint(tx, &agent.machine_fingerprint)?
    };
    upsert(tx, agent)?;
    let (status, pending) = host_status(&agent.agent_id, &sharing, install_key_sha256);
    tx.execute(
        "UPDATE agents SET install_key_sha256 = ?2, supersedes_pending = ?3 WHERE agent_id = ?1",
        rusqlite::params![agent.agent_id, install_key_sha256, pending],
    )?;
    if let HostStatus::Clone { of } = &status {
        for id in of.iter().chain(std::iter::once(&agent.agent_id)) {
            tx.execute(
                "UPDATE agents SET clone_detected_at_ms = COALESCE(clone_detected_at_ms, ?2) WHERE agent_id = ?1",
                rusqlite::params![id, agent.now_ms],
            )?;
        }
    }
    Ok(status)
}

/// The status [`enroll`] gives `agent_id`'s host, given the agents `sharing` its machine
/// fingerprint (oldest first), and the JSON array of the agents it supersedes at its first
/// complete snapshot (`supersedes_pending`), if any (shared by the backends).
pub(crate) fn host_status(
    agent_id: &str,
    sharing: &[Agent],
    install_key_sha256: Option<&str>,
) -> (HostStatus, Option<String>) {
    let live: Vec<&Agent> = sharing
        .iter()
        .filter(|a| a.agent_id != agent_id && a.revoked_at_ms.is_none() && a.superseded_by.is_none())
        .collect();
    let proven = |a: &Agent| install_key_sha256.is_some() && a.install_key_sha256.as_deref() == install_key_sha256;
    let (same_install, others): (Vec<&Agent>, Vec<&Agent>) = live.iter().partition(|a| proven(a));
    let ids = |agents: &[&Agent]| agents.iter().map(|a| a.agent_id.clone()).collect::<Vec<_>>();
    let status = if live.is_empty() {
        HostStatus::New
    } else if others.is_empty() {
        HostStatus::Reinstall { superseded: ids(&same_install) }
    } else {
        HostStatus::Clone { of: ids(&others) }
    };
    let pending = match &status {
        HostStatus::Reinstall { superseded } => Some(serde_json::json!(superseded).to_string()),
        _ => None,
    };
    (status, pending)
}

/// After `agent_id`'s first complete snapshot: the agents its enrollment proved it reinstalls
/// are superseded and their live sightings closed at `now_ms` (the snapshot states the host
/// again, and one host must not count twice). Returns the agents superseded.
pub(super) fn settle_reinstall(tx: &Transaction<'_>, agent_id: &str, now_ms: i64) -> Res<Vec<String>> {
    let pending: Option<String> = tx
        .query_row("SELECT supersedes_pending FROM agents WHERE agent_id = ?1", [agent_id], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(pending) = pending else { return Ok(Vec::new()) };
    let olds: Vec<String> = serde_json::from_str(&pending).unwrap_or_default();
    let mut superseded = Vec::new();
    for old in olds {
        let changed = tx.execute(
            "UPDATE agents SET superseded_by = ?2, superseded_at_ms = ?3 \
             WHERE agent_id = ?1 AND revoked_at_ms IS NULL AND superseded_by IS NULL",
            rusqlite::params![old, agent_id, now_ms],
        )?;
        if changed > 0 {
            tx.execute(
                "UPDATE sightings SET removed_at_ms = ?2 WHERE agent_id = ?1 AND removed_at_ms IS NULL",
                rusqlite::params![old, now_ms],
            )?;
            superseded.push(old);
        }
    }
    tx.execute("UPDATE agents SET supersedes_pending = NULL WHERE agent_id = ?1", [agent_id])?;
    Ok(superseded)
}

/// A superseded agent called again, so its host was not reinstalled but cloned: it is live
/// again and it and every live agent sharing its fingerprint are flagged as clones. Returns
/// whether `agent_id` was superseded (the caller then asks it for a snapshot, since its
/// sightings were closed).
pub(super) fn resurface(tx: &Transaction<'_>, agent_id: &str, now_ms: i64) -> Res<bool> {
    let Some(agent) = get(tx, agent_id)? else {
        return Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into());
    };
    if agent.superseded_by.is_none() || agent.revoked_at_ms.is_some() {
        return Ok(false);
    }
    tx.execute(
        "UPDATE agents SET superseded_by = NULL, superseded_at_ms = NULL, \
             clone_detected_at_ms = COALESCE(clone_detected_at_ms, ?3) \
         WHERE revoked_at_ms IS NULL AND (agent_id = ?1 OR (machine_fingerprint = ?2 AND superseded_by IS NULL))",
        rusqlite::params![agent_id, agent.machine_fingerprint, now_ms],
    )?;
    Ok(true)
}

pub(super) fn decommission(tx: &Transaction<'_>, agent_id: &str, now_ms: i64) -> Res<bool> {
    let known: Option<Option<i64>> = tx
        .query_row("SELECT decommissioned_at_ms FROM agents WHERE agent_id = ?1", [agent_id], |r| r.get(0))
        .optional()?;
    match known {
        None => return Err(StoreError::UnknownAgent { agent_id: agent_id.to_string() }.into()),
        Some(Some(_)) => return Ok(false),
        Some(None) => {}
    }
    tx.execute(
        "UPDATE agents SET decommissioned_at_ms = ?2, revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE agent_id = ?1",
        rusqlite::params![agent_id, now_ms],
    )?;
    tx.execute(
        "UPDATE sightings SET removed_at_ms = ?2 WHERE agent_id = ?1 AND removed_at_ms IS NULL",
        rusqlite::params![agent_id, now_ms],
    )?;
    Ok(true)
}

pub(super) fn set_identity(tx: &Transaction<'_>, agent_id: &str, identity_json: &str) -> Res<()> {
    tx.execute("UPDATE agents SET identity_json = ?2 WHERE agent_id = ?1", rusqlite::params![agent_id, identity_json])?;
    Ok(())
}

/// The agent was heard from at `now_ms` (a stream opened or a batch arrived): its last-seen
/// time moves forward, never back.
pub(super) fn touch(tx: &Transaction<'_>, agent_id: &str, now_ms: i64) -> Res<()> {
    tx.execute(
        "UPDATE agents SET last_seen_ms = MAX(COALESCE(last_seen_ms, ?2), ?2) WHERE agent_id = ?1",
        rusqlite::params![agent_id, now_ms],
    )?;
    Ok(())
}

/// Counts a message against `agent_id`'s rate-limit window (`store::rate_window`).
pub(super) fn admit_message(
    tx: &Transaction<'_>,
    agent_id: &str,
    charge: &crate::store::types::RateCharge,
    budget: &crate::store::types::RateBudget,
) -> Res<Option<i64>> {
    use crate::store::rate_window::{parameters, wait_ms, ADMIT, WINDOW_START};
    let [now, messages, bytes, message_budget, byte_budget, window] = parameters(charge, budget);
    let fits: Option<i64> = tx
        .prepare_cached(ADMIT)?
        .query_row(rusqlite::params![agent_id, now, messages, bytes, message_budget, byte_budget, window], |r| r.get(0))
        .optional()?;
    if fits.is_some() {
        return Ok(None);
    }
    let start: i64 = tx.query_row(WINDOW_START, [agent_id], |r| r.get(0))?;
    Ok(Some(wait_ms(start, now)))
}

//! Agents: registration, revocation, lookups.

use rusqlite::{OptionalExtension, Row, Transaction};

use super::Res;
use crate::store::error::StoreError;
use crate::store::types::{Agent, AgentRegistration, HostStatus};

/// Columns read by [`from_row`], in its order, for a table aliased `a`.
pub(super) const AGENT_COLUMNS: &str = "a.agent_id, a.cert_serial, a.cert_fingerprint, a.cert_not_after_ms, \
     a.machine_fingerprint, a.reported_machine_fingerprint, a.hostname, a.agent_version, a.enrolled_at_ms, \
     a.last_seen_ms, a.last_sequence, a.revoked_at_ms, a.host_facts_json, a.install_key_sha256, a.superseded_by, \
     a.superseded_at_ms, a.clone_detected_at_ms, a.cert_ca_sha256";

/// Number of columns in [`AGENT_COLUMNS`].
pub(super) const AGENT_COLUMN_COUNT: usize = 18;

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
        cert_ca_sha256: row.get(17)?,
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

pub(super) fn revoke(tx: &Transaction<'_>, agent_id: &str, now_ms: i64) -> Res<()> {
    let changed = tx.execute(
        "UPDATE agents SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE agent_id = ?1",
        rusqlite::params![agent_id, now_ms],
    )?;
    if changed == 0 {
        return Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into());
    }
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

/// Registers a newly enrolled agent and settles its host's status (docs/fleet.md): the live
/// agents with its fingerprint are superseded (a reinstall) unless they are a known clone
/// group, which the new agent then joins.
pub(super) fn enroll(tx: &Transaction<'_>, agent: &AgentRegistration, install_key_sha256: &str) -> Res<HostStatus> {
    let live: Vec<Agent> = if agent.machine_fingerprint.is_empty() {
        Vec::new()
    } else {
        by_machine_fingerprint(tx, &agent.machine_fingerprint)?
            .into_iter()
            .filter(|a| a.agent_id != agent.agent_id && a.revoked_at_ms.is_none() && a.superseded_by.is_none())
            .collect()
    };
    upsert(tx, agent)?;
    let status = if live.is_empty() {
        HostStatus::New
    } else if live.iter().any(|a| a.clone_detected_at_ms.is_some()) {
        HostStatus::Clone { of: live.iter().map(|a| a.agent_id.clone()).collect() }
    } else {
        HostStatus::Reinstall { superseded: live.iter().map(|a| a.agent_id.clone()).collect() }
    };
    let clone_at = matches!(status, HostStatus::Clone { .. }).then_some(agent.now_ms);
    tx.execute(
        "UPDATE agents SET install_key_sha256 = ?2, clone_detected_at_ms = ?3 WHERE agent_id = ?1",
        rusqlite::params![agent.agent_id, install_key_sha256, clone_at],
    )?;
    if let HostStatus::Reinstall { superseded } = &status {
        for old in superseded {
            tx.execute(
                "UPDATE agents SET superseded_by = ?2, superseded_at_ms = ?3 WHERE agent_id = ?1",
                rusqlite::params![old, agent.agent_id, agent.now_ms],
            )?;
            // The new agent's first snapshot sights the host's entries again: the old
            // sightings would count them twice.
            tx.execute(
                "UPDATE sightings SET removed_at_ms = ?2 WHERE agent_id = ?1 AND removed_at_ms IS NULL",
                rusqlite::params![old, agent.now_ms],
            )?;
        }
    }
    Ok(status)
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

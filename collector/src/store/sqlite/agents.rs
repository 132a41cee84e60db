//! Agents: registration, revocation, lookups.

use rusqlite::{OptionalExtension, Row, Transaction};

use super::Res;
use crate::store::error::StoreError;
use crate::store::types::{Agent, AgentRegistration};

/// Columns read by [`from_row`], in its order, for a table aliased `a`.
pub(super) const AGENT_COLUMNS: &str = "a.agent_id, a.cert_serial, a.cert_fingerprint, a.cert_not_after_ms, \
     a.machine_fingerprint, a.reported_machine_fingerprint, a.hostname, a.agent_version, a.enrolled_at_ms, \
     a.last_seen_ms, a.last_sequence, a.revoked_at_ms, a.host_facts_json";

/// Number of columns in [`AGENT_COLUMNS`].
pub(super) const AGENT_COLUMN_COUNT: usize = 13;

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
             hostname, agent_version, enrolled_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (agent_id) DO UPDATE SET cert_serial = excluded.cert_serial, \
             cert_fingerprint = excluded.cert_fingerprint, cert_not_after_ms = excluded.cert_not_after_ms, \
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

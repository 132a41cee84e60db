//! `aiscout-agent status` as text.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use super::human_bytes;
use crate::fleet::status::AgentStatus;

/// A time in ms since the epoch as RFC 3339, or `never`.
fn at(ms: Option<i64>) -> String {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .map_or_else(|| "never".to_string(), |t| humantime::format_rfc3339_seconds(t).to_string())
}

/// Writes `status` (whose daemon is `alive` or not) and its `problems`.
pub fn write_status(status: &AgentStatus, alive: bool, problems: &[String], out: &mut dyn Write) -> io::Result<()> {
    let running = if alive { "running" } else { "not running" };
    writeln!(
        out,
        "aiscout-agent {} (pid {}): {running}, started {}",
        status.version,
        status.pid,
        at(Some(status.started_at_ms))
    )?;
    writeln!(out, "status written   {}", at(Some(status.updated_at_ms)))?;
    writeln!(out, "agent id         {}", status.agent_id.as_deref().unwrap_or("not enrolled"))?;
    match &status.last_inventory {
        Some(i) => writeln!(
            out,
            "last inventory   {} ({} models, {} errors, {} ms)",
            at(Some(i.finished_at_ms)),
            i.models,
            i.errors,
            i.duration_ms
        )?,
        None => writeln!(out, "last inventory   none yet")?,
    }
    writeln!(out, "last collection  {}", at(status.last_collection_at_ms))?;
    writeln!(
        out,
        "last send ok     {} (failed sends in a row: {})",
        at(status.last_send_ok_at_ms),
        status.failed_sends
    )?;
    writeln!(
        out,
        "spool            {} batches, {} of {}",
        status.spool_records,
        human_bytes(status.spool_bytes),
        human_bytes(status.spool_max_bytes)
    )?;
    writeln!(out, "config reloads   {}", status.reloads)?;
    if !status.restart_pending.is_empty() {
        writeln!(out, "restart pending  {} (changed, applied at the next start)", status.restart_pending.join(", "))?;
    }
    if problems.is_empty() {
        writeln!(out, "healthy")?;
    } else {
        writeln!(out, "problems:")?;
        for p in problems {
            writeln!(out, "  - {p}")?;
        }
    }
    Ok(())
}

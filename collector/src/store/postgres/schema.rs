//! Schema versions of the PostgreSQL store and their migrations (as `sqlite/schema.rs`).
//!
//! `schema_version` holds one row: the version the database is at. Migration `n` (1-based) is
//! `MIGRATIONS[n - 1]`. Pending migrations run in one transaction with the version update,
//! under an advisory lock, so collectors starting together migrate once and a failure leaves
//! the old version. A migration is never edited once released: a change is a new one appended.
//! The versions are this backend's own: its v1 is the SQLite store's v17.

use super::{db_error, locks, Tx};
use crate::store::error::StoreError;

/// The migrations, oldest first.
const MIGRATIONS: &[&str] = &[include_str!("schema_v1.sql"), include_str!("schema_v2.sql")];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`CURRENT_VERSION`]; returns that version. `url` (without its
/// password) names the database in errors.
pub(super) fn migrate(client: &mut postgres::Client, url: &str) -> Result<i64, StoreError> {
    let err = |e| db_error("migrate schema", e);
    let mut tx: Tx<'_> = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&locks::MIGRATE]).map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)").map_err(err)?;
    let found: Option<i64> = match tx.query_opt("SELECT version FROM schema_version", &[]).map_err(err)? {
        Some(row) => Some(row.try_get(0).map_err(err)?),
        None => None,
    };
    let found = match found {
        Some(v) => v,
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[]).map_err(err)?;
            0
        }
    };
    if found > CURRENT_VERSION {
        return Err(StoreError::SchemaTooNew { path: url.into(), found, supported: CURRENT_VERSION });
    }
    let pending = usize::try_from(found).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(pending) {
        tx.batch_execute(sql).map_err(err)?;
    }
    tx.execute("UPDATE schema_version SET version = $1", &[&CURRENT_VERSION]).map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(CURRENT_VERSION)
}

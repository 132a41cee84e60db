//! Schema versions and their migrations.
//!
//! `schema_version` holds one row: the version the database is at. Migration `n` (1-based) is
//! `MIGRATIONS[n - 1]` and takes the database from version `n - 1` to `n`. At open, every pending
//! migration runs in one immediate transaction with the version update, so two collectors opening
//! one file never both migrate and a crash mid-migration leaves the old version. A migration is
//! never edited once released: a change is a new one appended here.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::db_error;
use crate::store::error::StoreError;

/// The migrations, oldest first.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
    include_str!("schema_v7.sql"),
    include_str!("schema_v8.sql"),
    include_str!("schema_v9.sql"),
    include_str!("schema_v10.sql"),
    include_str!("schema_v11.sql"),
    include_str!("schema_v12.sql"),
    include_str!("schema_v13.sql"),
    include_str!("schema_v14.sql"),
    include_str!("schema_v15.sql"),
    include_str!("schema_v16.sql"),
    include_str!("schema_v17.sql"),
    include_str!("schema_v18.sql"),
    include_str!("schema_v19.sql"),
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`CURRENT_VERSION`]; returns that version.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, StoreError> {
    let err = |e| db_error("migrate schema", e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT").map_err(err)?;
    let found: Option<i64> =
        tx.query_row("SELECT version FROM schema_version", [], |r| r.get(0)).optional().map_err(err)?;
    let found = match found {
        Some(v) => v,
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", []).map_err(err)?;
            0
        }
    };
    if found > CURRENT_VERSION {
        return Err(StoreError::SchemaTooNew { path: path.to_owned(), found, supported: CURRENT_VERSION });
    }
    let pending = usize::try_from(found).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(pending) {
        tx.execute_batch(sql).map_err(err)?;
    }
    tx.execute("UPDATE schema_version SET version = ?1", [CURRENT_VERSION]).map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(CURRENT_VERSION)
}

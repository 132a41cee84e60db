//! Enrollment and API tokens, as `sqlite/tokens.rs`. What differs: secret hashes are `BYTEA`;
//! spending a use stays one conditional `UPDATE`, which PostgreSQL re-checks on the row's
//! newest version, so racing enrollments never spend one use twice; an API token's last use is
//! written only if no racing request wrote it since it was read. Ids sort bytewise
//! (`COLLATE "C"`), as in SQLite.

use postgres::Row;

use super::agents::stored;
use super::{Res, Tx};
use crate::store::error::{StoreError, TokenError};
use crate::store::secret::{new_secret, new_token_id, secret_hash, API_PREFIX, ENROLLMENT_PREFIX};
use crate::store::sqlite::tokens::{refusal, scopes_from_text, scopes_text};
use crate::store::types::{ApiToken, EnrollmentToken, IssuedToken, NewApiToken, NewEnrollmentToken, TokenUse};

pub(super) fn create_enrollment(tx: &mut Tx<'_>, token: &NewEnrollmentToken) -> Res<IssuedToken> {
    if token.uses == 0 {
        return Err(StoreError::InvalidArgument {
            field: "uses",
            reason: "an enrollment token needs at least one use".into(),
        }
        .into());
    }
    let issued = IssuedToken { id: new_token_id()?, secret: new_secret(ENROLLMENT_PREFIX)? };
    let hash = secret_hash(issued.secret.expose());
    tx.execute(
        "INSERT INTO enrollment_tokens (token_id, secret_sha256, label, uses_left, expires_at_ms, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&issued.id, &hash.as_slice(), &token.label, &i64::from(token.uses), &token.expires_at_ms, &token.now_ms],
    )?;
    Ok(issued)
}

/// Spends one use; the inner result is the token's verdict, committed either way (a refusal
/// writes nothing).
pub(super) fn consume_enrollment(tx: &mut Tx<'_>, secret: &str, now_ms: i64) -> Res<Result<TokenUse, TokenError>> {
    let hash = secret_hash(secret);
    let spent = tx.query_opt(
        "UPDATE enrollment_tokens SET uses_left = uses_left - 1 \
         WHERE secret_sha256 = $1 AND uses_left > 0 AND expires_at_ms > $2 AND revoked_at_ms IS NULL \
         RETURNING token_id, label, uses_left",
        &[&hash.as_slice(), &now_ms],
    )?;
    if let Some(r) = spent {
        let uses_left = stored(r.try_get::<_, i64>(2)?, "enrollment_tokens.uses_left")?;
        return Ok(Ok(TokenUse { token_id: r.try_get(0)?, label: r.try_get(1)?, uses_left }));
    }
    let found = match tx.query_opt(
        "SELECT token_id, uses_left, revoked_at_ms FROM enrollment_tokens WHERE secret_sha256 = $1",
        &[&hash.as_slice()],
    )? {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
        None => None,
    };
    Ok(Err(refusal(found)))
}

/// Every enrollment token, oldest first.
pub(super) fn list_enrollment(tx: &mut Tx<'_>) -> Res<Vec<EnrollmentToken>> {
    let rows = tx.query(
        "SELECT token_id, label, uses_left, expires_at_ms, created_at_ms, revoked_at_ms FROM enrollment_tokens \
         ORDER BY created_at_ms, token_id COLLATE \"C\"",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(EnrollmentToken {
                id: r.try_get(0)?,
                label: r.try_get(1)?,
                uses_left: stored(r.try_get::<_, i64>(2)?, "enrollment_tokens.uses_left")?,
                expires_at_ms: r.try_get(3)?,
                created_at_ms: r.try_get(4)?,
                revoked_at_ms: r.try_get(5)?,
            })
        })
        .collect()
}

/// Revokes an enrollment token; `false` when no unrevoked token has this id.
pub(super) fn revoke_enrollment(tx: &mut Tx<'_>, token_id: &str, now_ms: i64) -> Res<bool> {
    let changed = tx.execute(
        "UPDATE enrollment_tokens SET revoked_at_ms = $2 WHERE token_id = $1 AND revoked_at_ms IS NULL",
        &[&token_id, &now_ms],
    )?;
    Ok(changed > 0)
}

pub(super) fn create_api(tx: &mut Tx<'_>, token: &NewApiToken) -> Res<IssuedToken> {
    if token.scopes.is_empty() {
        return Err(StoreError::InvalidArgument {
            field: "scopes",
            reason: "an api token needs at least one scope".into(),
        }
        .into());
    }
    let issued = IssuedToken { id: new_token_id()?, secret: new_secret(API_PREFIX)? };
    let hash = secret_hash(issued.secret.expose());
    tx.execute(
        "INSERT INTO api_tokens (token_id, secret_sha256, label, created_at_ms, scopes, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&issued.id, &hash.as_slice(), &token.label, &token.now_ms, &scopes_text(&token.scopes), &token.expires_at_ms],
    )?;
    Ok(issued)
}

/// Columns read by [`api_from_row`], in its order.
const API_COLUMNS: &str = "token_id, label, scopes, created_at_ms, expires_at_ms, last_used_at_ms, revoked_at_ms";

fn api_from_row(r: &Row) -> Res<ApiToken> {
    Ok(ApiToken {
        id: r.try_get(0)?,
        label: r.try_get(1)?,
        scopes: scopes_from_text(r.try_get::<_, &str>(2)?),
        created_at_ms: r.try_get(3)?,
        expires_at_ms: r.try_get(4)?,
        last_used_at_ms: r.try_get(5)?,
        revoked_at_ms: r.try_get(6)?,
    })
}

/// The unrevoked, unexpired token with this secret; records its use when the recorded one is
/// older than [`ApiToken::LAST_USED_GRANULARITY_MS`]. The write is conditional on the value read,
/// so of racing requests one writes and the others return the time it wrote.
pub(super) fn verify_api(tx: &mut Tx<'_>, secret: &str, now_ms: i64) -> Res<Option<ApiToken>> {
    let hash = secret_hash(secret);
    let found = tx.query_opt(
        &format!(
            "SELECT {API_COLUMNS} FROM api_tokens WHERE secret_sha256 = $1 AND revoked_at_ms IS NULL \
             AND (expires_at_ms IS NULL OR expires_at_ms > $2)"
        ),
        &[&hash.as_slice(), &now_ms],
    )?;
    let Some(row) = found else { return Ok(None) };
    let mut token = api_from_row(&row)?;
    let stale = token.last_used_at_ms.is_none_or(|t| now_ms.saturating_sub(t) >= ApiToken::LAST_USED_GRANULARITY_MS);
    if stale {
        let written = tx.execute(
            "UPDATE api_tokens SET last_used_at_ms = $2 \
             WHERE token_id = $1 AND last_used_at_ms IS NOT DISTINCT FROM $3",
            &[&token.id, &now_ms, &token.last_used_at_ms],
        )?;
        token.last_used_at_ms = if written > 0 {
            Some(now_ms)
        } else {
            tx.query_one("SELECT last_used_at_ms FROM api_tokens WHERE token_id = $1", &[&token.id])?.try_get(0)?
        };
    }
    Ok(Some(token))
}

/// Every API token, revoked and expired ones included, oldest first.
pub(super) fn list_api(tx: &mut Tx<'_>) -> Res<Vec<ApiToken>> {
    let rows =
        tx.query(&format!("SELECT {API_COLUMNS} FROM api_tokens ORDER BY created_at_ms, token_id COLLATE \"C\""), &[])?;
    rows.iter().map(api_from_row).collect()
}

pub(super) fn revoke_api(tx: &mut Tx<'_>, token_id: &str, now_ms: i64) -> Res<bool> {
    let changed = tx.execute(
        "UPDATE api_tokens SET revoked_at_ms = $2 WHERE token_id = $1 AND revoked_at_ms IS NULL",
        &[&token_id, &now_ms],
    )?;
    Ok(changed > 0)
}

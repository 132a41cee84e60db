//! Enrollment and API tokens, stored as the SHA-256 of their secrets.

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::Res;
use crate::store::error::{StoreError, TokenError};
use crate::store::secret::{new_secret, new_token_id, secret_hash, API_PREFIX, ENROLLMENT_PREFIX};
use crate::store::types::{ApiToken, EnrollmentToken, IssuedToken, NewApiToken, NewEnrollmentToken, Scope, TokenUse};

pub(super) fn create_enrollment(tx: &Transaction<'_>, token: &NewEnrollmentToken) -> Res<IssuedToken> {
    if token.uses == 0 {
        return Err(StoreError::InvalidArgument {
            field: "uses",
            reason: "an enrollment token needs at least one use".into(),
        }
        .into());
    }
    let issued = IssuedToken { id: new_token_id()?, secret: new_secret(ENROLLMENT_PREFIX)? };
    tx.execute(
        "INSERT INTO enrollment_tokens (token_id, secret_sha256, label, uses_left, expires_at_ms, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            issued.id,
            secret_hash(issued.secret.expose()),
            token.label,
            token.uses,
            token.expires_at_ms,
            token.now_ms
        ],
    )?;
    Ok(issued)
}

/// Spends one use; the inner result is the token's verdict, committed either way (a refusal
/// writes nothing).
pub(super) fn consume_enrollment(tx: &Transaction<'_>, secret: &str, now_ms: i64) -> Res<Result<TokenUse, TokenError>> {
    let hash = secret_hash(secret);
    let spent = tx
        .query_row(
            "UPDATE enrollment_tokens SET uses_left = uses_left - 1 \
             WHERE secret_sha256 = ?1 AND uses_left > 0 AND expires_at_ms > ?2 AND revoked_at_ms IS NULL \
             RETURNING token_id, label, uses_left",
            params![hash, now_ms],
            |r| Ok(TokenUse { token_id: r.get(0)?, label: r.get(1)?, uses_left: r.get(2)? }),
        )
        .optional()?;
    if let Some(spent) = spent {
        return Ok(Ok(spent));
    }
    let found: Option<(String, i64, Option<i64>)> = tx
        .query_row(
            "SELECT token_id, uses_left, revoked_at_ms FROM enrollment_tokens WHERE secret_sha256 = ?1",
            [hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(Err(refusal(found)))
}

/// Why a token that could not be spent was refused, from its `(token_id, uses_left,
/// revoked_at_ms)`, `None` when no token has the secret (shared by the backends).
pub(crate) fn refusal(found: Option<(String, i64, Option<i64>)>) -> TokenError {
    match found {
        None => TokenError::Unknown,
        Some((token_id, _, Some(_))) => TokenError::Revoked { token_id },
        Some((token_id, 0, None)) => TokenError::Exhausted { token_id },
        Some((token_id, _, None)) => TokenError::Expired { token_id },
    }
}

/// Every enrollment token, oldest first.
pub(super) fn list_enrollment(tx: &Transaction<'_>) -> Res<Vec<EnrollmentToken>> {
    let mut statement = tx.prepare(
        "SELECT token_id, label, uses_left, expires_at_ms, created_at_ms, revoked_at_ms FROM enrollment_tokens \
         ORDER BY created_at_ms, token_id",
    )?;
    let rows = statement.query_map([], |r| {
        Ok(EnrollmentToken {
            id: r.get(0)?,
            label: r.get(1)?,
            uses_left: r.get(2)?,
            expires_at_ms: r.get(3)?,
            created_at_ms: r.get(4)?,
            revoked_at_ms: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes an enrollment token; `false` when no unrevoked token has this id.
pub(super) fn revoke_enrollment(tx: &Transaction<'_>, token_id: &str, now_ms: i64) -> Res<bool> {
    let changed = tx.execute(
        "UPDATE enrollment_tokens SET revoked_at_ms = ?2 WHERE token_id = ?1 AND revoked_at_ms IS NULL",
        params![token_id, now_ms],
    )?;
    Ok(changed > 0)
}

/// The scopes as stored: names joined by `,`, in [`Scope::ALL`] order, each once.
pub(crate) fn scopes_text(scopes: &[Scope]) -> String {
    let names: Vec<&str> = Scope::ALL.into_iter().filter(|s| scopes.contains(s)).map(Scope::as_str).collect();
    names.join(",")
}

/// Stored scopes back; a name this build does not know (written by a newer collector) grants nothing.
pub(crate) fn scopes_from_text(text: &str) -> Vec<Scope> {
    let granted: Vec<Scope> = text.split(',').filter_map(Scope::from_name).collect();
    Scope::ALL.into_iter().filter(|s| granted.contains(s)).collect()
}

pub(super) fn create_api(tx: &Transaction<'_>, token: &NewApiToken) -> Res<IssuedToken> {
    if token.scopes.is_empty() {
        return Err(StoreError::InvalidArgument {
            field: "scopes",
            reason: "an api token needs at least one scope".into(),
        }
        .into());
    }
    let issued = IssuedToken { id: new_token_id()?, secret: new_secret(API_PREFIX)? };
    tx.execute(
        "INSERT INTO api_tokens (token_id, secret_sha256, label, created_at_ms, scopes, expires_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            issued.id,
            secret_hash(issued.secret.expose()),
            token.label,
            token.now_ms,
            scopes_text(&token.scopes),
            token.expires_at_ms
        ],
    )?;
    Ok(issued)
}

/// Columns read by [`api_from_row`], in its order.
const API_COLUMNS: &str = "token_id, label, scopes, created_at_ms, expires_at_ms, last_used_at_ms, revoked_at_ms";

fn api_from_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        label: r.get(1)?,
        scopes: scopes_from_text(&r.get::<_, String>(2)?),
        created_at_ms: r.get(3)?,
        expires_at_ms: r.get(4)?,
        last_used_at_ms: r.get(5)?,
        revoked_at_ms: r.get(6)?,
    })
}

/// The unrevoked, unexpired token with this secret; records its use when the recorded one is
/// older than [`ApiToken::LAST_USED_GRANULARITY_MS`].
pub(super) fn verify_api(tx: &Transaction<'_>, secret: &str, now_ms: i64) -> Res<Option<ApiToken>> {
    let found = tx
        .query_row(
            &format!(
                "SELECT {API_COLUMNS} FROM api_tokens WHERE secret_sha256 = ?1 AND revoked_at_ms IS NULL \
                 AND (expires_at_ms IS NULL OR expires_at_ms > ?2)"
            ),
            params![secret_hash(secret), now_ms],
            api_from_row,
        )
        .optional()?;
    let Some(mut token) = found else { return Ok(None) };
    let stale = token.last_used_at_ms.is_none_or(|t| now_ms.saturating_sub(t) >= ApiToken::LAST_USED_GRANULARITY_MS);
    if stale {
        tx.execute("UPDATE api_tokens SET last_used_at_ms = ?2 WHERE token_id = ?1", params![token.id, now_ms])?;
        token.last_used_at_ms = Some(now_ms);
    }
    Ok(Some(token))
}

/// Every API token, revoked and expired ones included, oldest first.
pub(super) fn list_api(tx: &Transaction<'_>) -> Res<Vec<ApiToken>> {
    let mut statement =
        tx.prepare(&format!("SELECT {API_COLUMNS} FROM api_tokens ORDER BY created_at_ms, token_id"))?;
    let rows = statement.query_map([], api_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn revoke_api(tx: &Transaction<'_>, token_id: &str, now_ms: i64) -> Res<bool> {
    let changed = tx.execute(
        "UPDATE api_tokens SET revoked_at_ms = ?2 WHERE token_id = ?1 AND revoked_at_ms IS NULL",
        params![token_id, now_ms],
    )?;
    Ok(changed > 0)
}

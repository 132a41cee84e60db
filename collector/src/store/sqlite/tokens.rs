//! Enrollment and API tokens, stored as the SHA-256 of their secrets.

use rusqlite::{params, OptionalExtension, Transaction};

use super::Res;
use crate::store::error::{StoreError, TokenError};
use crate::store::secret::{new_secret, new_token_id, secret_hash, API_PREFIX, ENROLLMENT_PREFIX};
use crate::store::types::{ApiToken, IssuedToken, NewEnrollmentToken, TokenUse};

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
             WHERE secret_sha256 = ?1 AND uses_left > 0 AND expires_at_ms > ?2 \
             RETURNING token_id, label, uses_left",
            params![hash, now_ms],
            |r| Ok(TokenUse { token_id: r.get(0)?, label: r.get(1)?, uses_left: r.get(2)? }),
        )
        .optional()?;
    if let Some(spent) = spent {
        return Ok(Ok(spent));
    }
    let found: Option<(String, i64)> = tx
        .query_row("SELECT token_id, uses_left FROM enrollment_tokens WHERE secret_sha256 = ?1", [hash], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(Err(match found {
        None => TokenError::Unknown,
        Some((token_id, 0)) => TokenError::Exhausted { token_id },
        Some((token_id, _)) => TokenError::Expired { token_id },
    }))
}

pub(super) fn create_api(tx: &Transaction<'_>, label: &str, now_ms: i64) -> Res<IssuedToken> {
    let issued = IssuedToken { id: new_token_id()?, secret: new_secret(API_PREFIX)? };
    tx.execute(
        "INSERT INTO api_tokens (token_id, secret_sha256, label, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![issued.id, secret_hash(issued.secret.expose()), label, now_ms],
    )?;
    Ok(issued)
}

pub(super) fn verify_api(tx: &Transaction<'_>, secret: &str) -> Res<Option<ApiToken>> {
    Ok(tx
        .query_row(
            "SELECT token_id, label, created_at_ms FROM api_tokens WHERE secret_sha256 = ?1 AND revoked_at_ms IS NULL",
            [secret_hash(secret)],
            |r| Ok(ApiToken { id: r.get(0)?, label: r.get(1)?, created_at_ms: r.get(2)? }),
        )
        .optional()?)
}

pub(super) fn revoke_api(tx: &Transaction<'_>, token_id: &str, now_ms: i64) -> Res<bool> {
    let changed = tx.execute(
        "UPDATE api_tokens SET revoked_at_ms = ?2 WHERE token_id = ?1 AND revoked_at_ms IS NULL",
        params![token_id, now_ms],
    )?;
    Ok(changed > 0)
}

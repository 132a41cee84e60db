//! Token secrets: generated from the operating system's CSPRNG, stored only as SHA-256.
//!
//! A secret is `<prefix>_<64 hex>` (32 random bytes); the prefix tells a secret scanner and an
//! operator which kind of token leaked. A token's public id is 16 hex characters (8 random
//! bytes). Lookups go by the SHA-256 of the presented secret, so the database never holds
//! anything that would let its reader authenticate.

use sha2::{Digest, Sha256};

use super::error::StoreError;
use super::types::TokenSecret;

/// Prefix of enrollment token secrets.
pub const ENROLLMENT_PREFIX: &str = "aiscout_enroll";
/// Prefix of API bearer token secrets.
pub const API_PREFIX: &str = "aiscout_api";

/// A fresh public token id.
pub fn new_token_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// A fresh secret with `prefix`.
pub fn new_secret(prefix: &str) -> Result<TokenSecret, StoreError> {
    let mut bytes = [0u8; 32];
    fill(&mut bytes)?;
    Ok(TokenSecret(format!("{prefix}_{}", hex::encode(bytes))))
}

/// What the store keeps of a secret.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn fill(bytes: &mut [u8]) -> Result<(), StoreError> {
    getrandom::fill(bytes).map_err(|e| StoreError::Random { source: e.to_string().into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() -> Result<(), StoreError> {
        let a = new_secret(API_PREFIX)?;
        let b = new_secret(API_PREFIX)?;
        assert_ne!(a, b);
        assert!(a.expose().starts_with("aiscout_api_"));
        assert_eq!(a.expose().len(), "aiscout_api_".len() + 64);
        assert_eq!(secret_hash(a.expose()), secret_hash(a.expose()));
        assert_ne!(secret_hash(a.expose()), secret_hash(b.expose()));
        assert_eq!(format!("{a:?}"), "TokenSecret(<redacted>)");
        assert_eq!(new_token_id()?.len(), 16);
        Ok(())
    }
}

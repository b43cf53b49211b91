//! Passwords and secrets: argon2id hashes for passwords, 256-bit random secrets for sessions and tokens,
//! stored as their SHA-256 (a random secret of that size needs no slow hash; a password does).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

/// Prefix of API tokens, so a leaked one is recognisable in a log or a secret scanner.
pub const TOKEN_PREFIX: &str = "wpt_";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the system's random number generator failed: {0}")]
    Random(String),
    #[error("the hashing task failed: {0}")]
    Task(String),
}

/// OWASP's argon2id recommendation (19 MiB, two passes, one lane): 50–60 ms per hash on the 2-core machine
/// this was measured on (`watchpost user add` minus `watchpost user list`, release build), which bounds how
/// fast a guesser can try passwords, even with the database in hand.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id PHC string for `password`. Runs on the blocking pool: it is deliberately slow.
pub async fn hash_password(password: String) -> Result<String, SecretError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| SecretError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| SecretError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| SecretError::Task(e.to_string()))?
}

/// A well-formed hash that matches no password: checked when the user does not exist, so that a wrong
/// name takes as long as a wrong password and names cannot be probed by timing.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6t4ZbvvBFE9rAm7rJGO4F0Cqz8vd4dM6m9xpZ5WmIeo";

/// Whether `password` matches `hash` (or, with `None`, the decoy, which never matches).
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    let exists = hash.is_some();
    let hash = hash.unwrap_or_else(|| DECOY_HASH.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
        && exists
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A new session secret (the cookie's value).
pub fn new_session_secret() -> Result<String, SecretError> {
    Ok(hex(&random_bytes::<32>()?))
}

/// A new API token, shown once.
pub fn new_token() -> Result<String, SecretError> {
    Ok(format!("{TOKEN_PREFIX}{}", hex(&random_bytes::<32>()?)))
}

/// A one-time setup code for the first admin account.
pub fn new_setup_code() -> Result<String, SecretError> {
    Ok(hex(&random_bytes::<16>()?))
}

/// What the store keeps of a session secret or token.
pub fn digest(secret: &str) -> SecretDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// A SHA-256 digest: what identifies a session or token inside the server.
pub type SecretDigest = [u8; 32];

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (digest(a), digest(b));
    a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
        assert!(
            PasswordHash::new(DECOY_HASH).is_ok(),
            "the decoy parses, so it costs a real check"
        );
    }

    #[test]
    fn secrets_are_random_and_compared_whole() {
        let (a, b) = (new_session_secret().unwrap(), new_session_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(new_token().unwrap().starts_with(TOKEN_PREFIX));
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert_eq!(digest("x").len(), 32);
    }
}

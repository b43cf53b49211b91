//! Passwords and secrets: argon2id hashes for passwords, 256-bit random secrets for sessions and tokens,
//! stored as their SHA-256 (a random secret of that size needs no slow hash; a password does).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

/// Prefix of API tokens, so a leaked one is recognisable in a log or a secret scanner.
pub const TOKEN_PREFIX: &str = "wpt_";
/// Prefix of agent tokens: told apart from API tokens at a glance, and by the server before any lookup.
pub const AGENT_TOKEN_PREFIX: &str = "wpa_";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Every hashing slot is taken and the queue is full: try again shortly.
    #[error("the server is busy checking passwords: try again in a moment")]
    Busy,
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

/// Where hashes and checks run: at most one per core at once, since each takes 19 MiB and a core for
/// 50–60 ms, so more at once only adds memory (120 at once once took 1.6 GB) without finishing any sooner;
/// and at most `queue` waiting, past which a request is turned away at once with [`SecretError::Busy`] rather
/// than queue without bound.
struct HashPool {
    slots: Semaphore,
    waiting: AtomicUsize,
    queue: usize,
}

/// The process's pool: eight hashes' worth of waiting per core, well under a second of queue.
static POOL: LazyLock<HashPool> = LazyLock::new(|| HashPool::new(cores(), 8 * cores()));

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl HashPool {
    fn new(slots: usize, queue: usize) -> Self {
        HashPool {
            slots: Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// Runs `work` (a hash or a check) in a slot, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SecretError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SecretError::Busy);
        }
        let permit = self.slots.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|e| SecretError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| SecretError::Task(e.to_string()))
    }
}

/// An argon2id PHC string for `password`. Runs in a hashing slot: it is deliberately slow.
pub async fn hash_password(password: String) -> Result<String, SecretError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| SecretError::Hash(e.to_string()))?;
    POOL.run(move || {
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| SecretError::Hash(e.to_string()))
    })
    .await?
}

/// A well-formed hash that matches no password: checked when the user does not exist, so that a wrong
/// name takes as long as a wrong password and names cannot be probed by timing.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6t4ZbvvBFE9rAm7rJGO4F0Cqz8vd4dM6m9xpZ5WmIeo";

/// Whether `password` matches `hash` (or, with `None`, the decoy, which never matches); [`SecretError::Busy`]
/// when no hashing slot is free soon.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, SecretError> {
    let exists = hash.is_some();
    let hash = hash.unwrap_or_else(|| DECOY_HASH.to_owned());
    let matches = POOL.run(move || check(&password, &hash)).await?;
    Ok(matches && exists)
}

fn check(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
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

/// A new agent token, shown once.
pub fn new_agent_token() -> Result<String, SecretError> {
    Ok(format!(
        "{AGENT_TOKEN_PREFIX}{}",
        hex(&random_bytes::<32>()?)
    ))
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
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password("anything".into(), None).await.unwrap());
        assert!(
            PasswordHash::new(DECOY_HASH).is_ok(),
            "the decoy parses, so it costs a real check"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_beyond_the_queue_is_turned_away_and_the_rest_checked() {
        // A pool of its own: the process's is shared with the other tests.
        let pool = HashPool::new(2, 16);
        let checks = (0..58).map(|_| pool.run(|| check("guess", DECOY_HASH)));
        let results = futures::future::join_all(checks).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(SecretError::Busy)))
            .count();
        assert_eq!(busy, 40, "two run, sixteen wait, the rest are turned away");
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(false) | Err(SecretError::Busy)))
        );
        // Once the burst is over, a check gets a slot again.
        assert_eq!(
            pool.run(|| check("guess", DECOY_HASH)).await.ok(),
            Some(false)
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

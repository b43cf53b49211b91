//! Leases: at most one holder of a name at a time. Today they say who runs a command on an exclusive target;
//! in scale-out they will also say which instance evaluates alerts and polls a shared target.
//!
//! The seam: [`Leases`] is what the rest of the server asks. In one process it is [`LocalLeases`], a map under
//! a lock. Across instances (`--bus`) it is [`KvLeases`], on a NATS KV bucket: create-if-absent takes a
//! name, compare-and-set on the revision renews it while it is held, the bucket's age limit is the TTL (a
//! dead holder's lease runs out), and the [`Lease`]'s revision fences what its holder does (a deposed
//! holder's revision is stale).

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Who holds a name, as a refusal names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub who: String,
    /// What they are doing with it, e.g. the command they run.
    pub what: String,
    pub since_ms: i64,
}

/// A name held. Give it back with [`Leases::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a lease is held until it is released"]
pub struct Lease {
    pub name: String,
    /// Rises with every grant of any name: a holder can prove it holds the newest grant.
    pub revision: u64,
}

/// Why a name was not granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Someone holds it.
    Held(Holder),
    /// The place leases are kept cannot be reached, so nobody can be sure of holding anything.
    Unavailable(String),
}

#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes `name` for `holder` when nobody holds it; otherwise says who does.
    async fn acquire(&self, name: &str, holder: Holder) -> Result<Lease, Refusal>;

    /// Gives `lease` back. A lease that was since granted again (a newer revision) is left alone.
    fn release(&self, lease: &Lease);
}

/// Leases of one process.
#[derive(Default)]
pub struct LocalLeases {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    revision: u64,
    names: HashMap<String, (u64, Holder)>,
}

#[async_trait]
impl Leases for LocalLeases {
    async fn acquire(&self, name: &str, holder: Holder) -> Result<Lease, Refusal> {
        // A poisoned lock only means a panic elsewhere while holding it; the map itself stays consistent.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, current)) = held.names.get(name) {
            return Err(Refusal::Held(current.clone()));
        }
        held.revision += 1;
        let revision = held.revision;
        held.names.insert(name.to_owned(), (revision, holder));
        Ok(Lease {
            name: name.to_owned(),
            revision,
        })
    }

    fn release(&self, lease: &Lease) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held
            .names
            .get(&lease.name)
            .is_some_and(|(revision, _)| *revision == lease.revision)
        {
            held.names.remove(&lease.name);
        }
    }
}

/// Leases on a NATS KV bucket, shared by every instance on the bus.
pub struct KvLeases {
    kv: kv::Store,
    ttl: Duration,
    /// The renewals of the leases this instance holds, by (name, granted revision).
    held: Mutex<HashMap<(String, u64), CancellationToken>>,
    /// Ends every renewal when the instance goes (its leases then run out after the TTL).
    gone: CancellationToken,
}

/// A name as a KV key: letters, digits, `-` and `_` as they are, anything else as `=XX` per byte.
fn key_of(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            key.push(char::from(b));
        } else {
            key.push_str(&format!("={b:02X}"));
        }
    }
    key
}

impl KvLeases {
    /// The bucket `bucket` (made if missing), whose entries live `ttl` unless renewed.
    pub async fn open(
        context: &jetstream::Context,
        bucket: &str,
        ttl: Duration,
    ) -> Result<Arc<KvLeases>, String> {
        // The bucket's stream, made as the client's `create_key_value` makes it: that call first asks for
        // account details in a form Debian's nats-server 2.9 does not answer with.
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: format!("KV_{bucket}"),
                description: Some("Watchpost's leases: who holds what, renewed while held".into()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: ttl,
                storage: jetstream::stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: jetstream::stream::DiscardPolicy::New,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot make the lease bucket {bucket}: {e}"))?;
        let kv = context
            .get_key_value(bucket)
            .await
            .map_err(|e| format!("cannot open the lease bucket {bucket}: {e}"))?;
        Ok(Arc::new(KvLeases {
            kv,
            ttl,
            held: Mutex::default(),
            gone: CancellationToken::new(),
        }))
    }

    /// Keeps `key` alive from `revision` on, every third of the TTL, until released or lost.
    fn renew(&self, key: String, value: bytes::Bytes, mut revision: u64, stop: CancellationToken) {
        let (kv, every, gone) = (self.kv.clone(), self.ttl / 3, self.gone.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = gone.cancelled() => return,
                    _ = stop.cancelled() => {
                        // Given back: only our own grant is removed, never a newer holder's.
                        let _ = kv.delete_expect_revision(&key, Some(revision)).await;
                        return;
                    }
                    _ = tokio::time::sleep(every) => {}
                }
                match kv.update(&key, value.clone(), revision).await {
                    Ok(next) => revision = next,
                    Err(e) => {
                        tracing::warn!(
                            lease = %key,
                            "a lease could not be renewed and may pass to another instance: {e}"
                        );
                        return;
                    }
                }
            }
        });
    }
}

impl Drop for KvLeases {
    fn drop(&mut self) {
        self.gone.cancel();
    }
}

#[async_trait]
impl Leases for KvLeases {
    async fn acquire(&self, name: &str, holder: Holder) -> Result<Lease, Refusal> {
        let key = key_of(name);
        let value = bytes::Bytes::from(format!(
            "{}\n{}\n{}",
            holder.since_ms, holder.who, holder.what
        ));
        // Twice at most: a holder's entry may run out between our create and our read of it.
        for _ in 0..2 {
            match self.kv.create(&key, value.clone()).await {
                Ok(revision) => {
                    let stop = CancellationToken::new();
                    self.held
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert((name.to_owned(), revision), stop.clone());
                    self.renew(key, value, revision, stop);
                    return Ok(Lease {
                        name: name.to_owned(),
                        revision,
                    });
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    match self.kv.get(&key).await {
                        Ok(Some(current)) => return Err(Refusal::Held(holder_of(&current))),
                        Ok(None) => continue,
                        Err(e) => return Err(Refusal::Unavailable(e.to_string())),
                    }
                }
                Err(e) => return Err(Refusal::Unavailable(e.to_string())),
            }
        }
        Err(Refusal::Unavailable(format!(
            "{name} changed hands too fast to take"
        )))
    }

    fn release(&self, lease: &Lease) {
        if let Some(stop) = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(lease.name.clone(), lease.revision))
        {
            stop.cancel();
        }
    }
}

/// A holder as [`KvLeases::acquire`] wrote it: `since_ms`, `who` and `what`, one per line.
fn holder_of(value: &[u8]) -> Holder {
    let text = String::from_utf8_lossy(value);
    let mut lines = text.splitn(3, '\n');
    Holder {
        since_ms: lines.next().and_then(|t| t.parse().ok()).unwrap_or(0),
        who: lines.next().unwrap_or("another instance").to_owned(),
        what: lines.next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(who: &str) -> Holder {
        Holder {
            who: who.into(),
            what: "restart".into(),
            since_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_name_has_one_holder_until_it_is_released() {
        let leases = LocalLeases::default();
        let first = leases.acquire("web-1", holder("ana")).await.unwrap();
        assert_eq!(
            leases.acquire("web-1", holder("bo")).await,
            Err(Refusal::Held(holder("ana")))
        );
        assert!(leases.acquire("web-2", holder("bo")).await.is_ok());
        leases.release(&first);
        let again = leases.acquire("web-1", holder("bo")).await.unwrap();
        assert!(again.revision > first.revision);
    }

    #[tokio::test]
    async fn releasing_a_stale_lease_leaves_the_newer_grant_alone() {
        let leases = LocalLeases::default();
        let old = leases.acquire("web-1", holder("ana")).await.unwrap();
        leases.release(&old);
        let new = leases.acquire("web-1", holder("bo")).await.unwrap();
        leases.release(&old);
        assert_eq!(
            leases.acquire("web-1", holder("cy")).await,
            Err(Refusal::Held(holder("bo")))
        );
        leases.release(&new);
        assert!(leases.acquire("web-1", holder("cy")).await.is_ok());
    }

    #[test]
    fn any_name_makes_a_key_nats_accepts() {
        assert_eq!(
            key_of("command-target:web-1/nginx"),
            "command-target=3Aweb-1=2Fnginx"
        );
        assert_eq!(key_of("ä"), "=C3=A4");
    }

    /// Two instances on one bucket of the machine's NATS (127.0.0.1:4222, or `WATCHPOST_TEST_NATS`): one
    /// holder at a time, held past the TTL while renewed, given back at once, and taken over after the
    /// TTL when its holder dies without giving it back.
    #[tokio::test]
    async fn instances_share_leases_on_nats_and_a_dead_holder_s_run_out() {
        let url =
            std::env::var("WATCHPOST_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let context = jetstream::new(async_nats::connect(&url).await.expect("NATS answers"));
        let bucket = format!(
            "wp_test_leases_{}_{}",
            std::process::id(),
            crate::clock::now_micros()
        );
        let ttl = Duration::from_secs(2);
        let a = KvLeases::open(&context, &bucket, ttl).await.unwrap();
        let b = KvLeases::open(&context, &bucket, ttl).await.unwrap();
        let name = "command-target:web-1/nginx";
        let lease = a.acquire(name, holder("ana")).await.unwrap();
        assert_eq!(
            b.acquire(name, holder("bo")).await,
            Err(Refusal::Held(holder("ana")))
        );
        tokio::time::sleep(ttl * 2).await;
        assert_eq!(
            b.acquire(name, holder("bo")).await,
            Err(Refusal::Held(holder("ana"))),
            "renewed past its TTL while held"
        );
        a.release(&lease);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let taken = loop {
            if let Ok(l) = b.acquire(name, holder("bo")).await {
                break l;
            }
            assert!(std::time::Instant::now() < deadline, "given back at once");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            taken.revision > lease.revision,
            "a later grant, a higher revision"
        );
        // B dies holding it: its lease runs out after the TTL and A takes it.
        drop(b);
        let died = std::time::Instant::now();
        loop {
            match a.acquire(name, holder("cy")).await {
                Ok(_) => break,
                Err(Refusal::Held(h)) => assert_eq!(h, holder("bo")),
                Err(other) => panic!("{other:?}"),
            }
            assert!(died.elapsed() < ttl * 4, "taken over after the TTL");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = context.delete_stream(format!("KV_{bucket}")).await;
    }
}

//! The live streams that are open, and whose credential each was opened with.
//!
//! A stream is checked once, when it opens; after that it would carry events for as long as the tab stays
//! open. So whatever ends or narrows a credential ends its streams too: signing out ends that session's
//! streams; disabling or removing a user or changing a password ends all the user's; a new role ends them
//! with a request to reload (the next stream carries what the new role may see); revoking a token ends the
//! token's; a session's expiry ends its streams at that moment. Each tab is told why
//! ([`shared::StreamClosed`]). The per-user limit (`--max-streams-per-user`) lives here as well: one stream
//! past it ends the user's oldest.

use crate::auth::principal::{Principal, PrincipalKind};
use crate::auth::secrets::SecretDigest;
use shared::{AfterClose, StreamClosed};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which open streams an ending applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The streams of one session (signing out).
    Session(SecretDigest),
    /// Every stream of one user, whatever the session.
    User(i64),
    /// The streams of one API token.
    Token(i64),
}

#[derive(Debug, Clone, Copy)]
enum Owner {
    Session { user: i64, session: SecretDigest },
    Token(i64),
}

impl Owner {
    fn is(&self, which: Which) -> bool {
        match (*self, which) {
            (Owner::Session { session, .. }, Which::Session(s)) => session == s,
            (Owner::Session { user, .. }, Which::User(u)) => user == u,
            (Owner::Token(id), Which::Token(t)) => id == t,
            _ => false,
        }
    }
}

struct Entry {
    owner: Owner,
    ending: Arc<OnceLock<StreamClosed>>,
    cancel: CancellationToken,
}

impl Entry {
    fn end(&self, closed: StreamClosed) {
        // The first reason wins: a stream ended twice keeps telling the first story.
        let _ = self.ending.set(closed);
        self.cancel.cancel();
    }
}

/// Every open stream, by an id of its own, in opening order (ids only grow).
pub struct OpenStreams {
    per_user: usize,
    open: Mutex<std::collections::BTreeMap<u64, Entry>>,
    next_id: AtomicU64,
    /// Endings of the last [`REMEMBER_ENDS_MS`]: a stream whose credential was checked before one of them
    /// but that registers after it is ended too (the check and the registration are not one step).
    recent_ends: Mutex<Vec<(Which, i64, StreamClosed)>>,
}

/// How long an ending is remembered for streams still on their way in.
const REMEMBER_ENDS_MS: i64 = 60_000;

impl OpenStreams {
    pub fn new(per_user: usize) -> Arc<Self> {
        Arc::new(OpenStreams {
            per_user: per_user.max(1),
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            recent_ends: Mutex::default(),
        })
    }

    /// Registers a stream of `principal`. A session's stream past the user's limit ends the user's oldest.
    pub fn open(self: &Arc<Self>, principal: &Principal) -> Ticket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (owner, expires_ms) = match principal.kind {
            PrincipalKind::User {
                id: user,
                session,
                expires_ms,
            } => (Owner::Session { user, session }, Some(expires_ms)),
            PrincipalKind::Token { id } => (Owner::Token(id), None),
        };
        let entry = Entry {
            owner,
            ending: Arc::default(),
            cancel: CancellationToken::new(),
        };
        let ticket = Ticket {
            streams: self.clone(),
            id,
            ending: entry.ending.clone(),
            cancel: entry.cancel.clone(),
            expires_ms,
        };
        let missed = self.recent_ends.lock().ok().and_then(|ends| {
            ends.iter()
                .find(|(which, at, _)| *at >= principal.checked_ms && owner.is(*which))
                .map(|(_, _, closed)| closed.clone())
        });
        if let Some(closed) = missed {
            entry.end(closed);
        }
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, entry);
            if let Owner::Session { user, .. } = owner {
                let theirs: Vec<u64> = open
                    .iter()
                    .filter(|(_, e)| e.owner.is(Which::User(user)) && !e.cancel.is_cancelled())
                    .map(|(id, _)| *id)
                    .collect();
                let excess = theirs.len().saturating_sub(self.per_user);
                for oldest in &theirs[..excess] {
                    if let Some(e) = open.get(oldest) {
                        e.end(StreamClosed {
                            reason: format!(
                                "live updates stopped in this tab: more than {} tabs of yours were \
                                 open; reload to use this one again",
                                self.per_user
                            ),
                            then: AfterClose::Stay,
                        });
                    }
                }
            }
        }
        ticket
    }

    /// Ends the streams `which` names, telling each tab `reason`; how many were open.
    pub fn end(&self, which: Which, reason: &str, then: AfterClose) -> usize {
        let now = crate::clock::now_millis();
        if let Ok(mut ends) = self.recent_ends.lock() {
            ends.retain(|(_, at, _)| now - at < REMEMBER_ENDS_MS);
            ends.push((
                which,
                now,
                StreamClosed {
                    reason: reason.to_owned(),
                    then,
                },
            ));
        }
        let Ok(open) = self.open.lock() else { return 0 };
        let mut ended = 0;
        for entry in open.values().filter(|e| e.owner.is(which)) {
            entry.end(StreamClosed {
                reason: reason.to_owned(),
                then,
            });
            ended += 1;
        }
        if ended > 0 {
            tracing::info!(?which, ended, reason, "live streams ended");
        }
        ended
    }

    /// How many streams are open (for `/healthz` and tests).
    pub fn len(&self) -> usize {
        self.open.lock().map_or(0, |o| o.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The limit per user, for messages.
    pub fn per_user(&self) -> usize {
        self.per_user
    }
}

/// One open stream's registration, given back when the stream ends.
pub struct Ticket {
    streams: Arc<OpenStreams>,
    id: u64,
    ending: Arc<OnceLock<StreamClosed>>,
    cancel: CancellationToken,
    /// When the session it was opened with expires (ms since the epoch); tokens do not.
    expires_ms: Option<i64>,
}

impl Ticket {
    /// Resolves when the stream must end, with what to tell its tab. Made once per stream and polled with
    /// every frame: it holds the one expiry timer.
    pub fn ended(&self) -> Pin<Box<dyn Future<Output = StreamClosed> + Send>> {
        let (cancel, ending, expires_ms) =
            (self.cancel.clone(), self.ending.clone(), self.expires_ms);
        Box::pin(async move {
            let expiry = async {
                match expires_ms {
                    Some(at) => {
                        let left = at.saturating_sub(crate::clock::now_millis()).max(0);
                        tokio::time::sleep(Duration::from_millis(left.unsigned_abs())).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => ending.get().cloned().unwrap_or_else(|| StreamClosed {
                    reason: "the server ended live updates in this tab".into(),
                    then: AfterClose::Stay,
                }),
                () = expiry => StreamClosed {
                    reason: "your session expired: sign in again to see live values".into(),
                    then: AfterClose::SignIn,
                },
            }
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.open.lock() {
            open.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Role;

    fn user(id: i64, session: u8) -> Principal {
        Principal {
            name: format!("user{id}"),
            role: Role::Viewer,
            access: shared::Access::uniform(Role::Viewer),
            outside: None,
            kind: PrincipalKind::User {
                id,
                session: [session; 32],
                expires_ms: i64::MAX,
            },
            checked_ms: crate::clock::now_millis(),
        }
    }

    fn token(id: i64) -> Principal {
        Principal {
            name: format!("token:{id}"),
            role: Role::Viewer,
            access: shared::Access::uniform(Role::Viewer),
            outside: None,
            kind: PrincipalKind::Token { id },
            checked_ms: crate::clock::now_millis(),
        }
    }

    async fn ended_now(ticket: &Ticket) -> Option<StreamClosed> {
        tokio::time::timeout(Duration::from_millis(50), ticket.ended())
            .await
            .ok()
    }

    #[tokio::test]
    async fn endings_reach_exactly_the_streams_they_name() {
        let streams = OpenStreams::new(8);
        let (a1, a2, b, t) = (
            streams.open(&user(1, 1)),
            streams.open(&user(1, 2)),
            streams.open(&user(2, 3)),
            streams.open(&token(1)),
        );
        assert_eq!(streams.len(), 4);
        assert_eq!(
            streams.end(Which::Session([1; 32]), "signed out", AfterClose::SignIn),
            1
        );
        let closed = ended_now(&a1).await.expect("the session's stream ends");
        assert_eq!(
            (closed.reason.as_str(), closed.then),
            ("signed out", AfterClose::SignIn)
        );
        assert!(
            ended_now(&a2).await.is_none(),
            "the user's other session stays"
        );
        assert_eq!(streams.end(Which::User(1), "role", AfterClose::Reload), 2);
        assert_eq!(
            ended_now(&a2).await.map(|c| c.then),
            Some(AfterClose::Reload)
        );
        // The first reason stays.
        assert_eq!(
            ended_now(&a1).await.map(|c| c.then),
            Some(AfterClose::SignIn)
        );
        assert!(ended_now(&b).await.is_none());
        assert_eq!(streams.end(Which::Token(1), "revoked", AfterClose::Stay), 1);
        assert!(ended_now(&t).await.is_some());
        drop((a1, a2, b, t));
        assert!(streams.is_empty(), "dropped tickets leave");
    }

    #[tokio::test]
    async fn past_the_limit_the_oldest_of_that_user_ends_and_tokens_are_not_counted() {
        let streams = OpenStreams::new(2);
        let first = streams.open(&user(1, 1));
        let _tokens: Vec<_> = (0..5).map(|_| streams.open(&token(9))).collect();
        let second = streams.open(&user(1, 2));
        let other = streams.open(&user(2, 3));
        assert!(ended_now(&first).await.is_none());
        let third = streams.open(&user(1, 1));
        assert!(
            ended_now(&first)
                .await
                .unwrap()
                .reason
                .contains("more than 2 tabs")
        );
        for t in [&second, &third, &other] {
            assert!(ended_now(t).await.is_none());
        }
    }

    #[tokio::test]
    async fn a_stream_checked_before_an_ending_but_registered_after_it_ends_too() {
        let streams = OpenStreams::new(8);
        let checked = user(1, 1);
        streams.end(
            Which::Session([1; 32]),
            "you signed out",
            AfterClose::SignIn,
        );
        let late = streams.open(&checked);
        assert_eq!(
            ended_now(&late).await.map(|c| c.then),
            Some(AfterClose::SignIn)
        );
        // A credential checked after the ending (signed in again) is not touched.
        let mut fresh = user(1, 1);
        fresh.checked_ms += 1;
        let newer = streams.open(&fresh);
        assert!(ended_now(&newer).await.is_none());
    }

    #[tokio::test]
    async fn a_session_stream_ends_when_the_session_expires() {
        let streams = OpenStreams::new(8);
        let mut p = user(1, 1);
        p.kind = PrincipalKind::User {
            id: 1,
            session: [1; 32],
            expires_ms: crate::clock::now_millis() + 30,
        };
        let ticket = streams.open(&p);
        let closed = tokio::time::timeout(Duration::from_secs(5), ticket.ended())
            .await
            .expect("it ends at the expiry");
        assert_eq!(closed.then, AfterClose::SignIn);
    }
}

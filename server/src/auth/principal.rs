//! Whom a request is from, as the rest of the server sees it once [`super::authenticate`] has found out.

use super::secrets::SecretDigest;
use shared::{Access, Role};

/// Whom a request is from: a signed-in user or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    /// The role in the hub's own environment, where the hub's own actions (its users, tokens, rules,
    /// commands) are taken; [`Role::Viewer`] when the reader has none there, whose views then show
    /// nothing of it (see `access`).
    pub role: Role,
    /// The role in every environment, by which events, snapshots, history and the error log are scoped.
    pub access: Access,
    /// The hub's own environment, when the reader has no role in it: every action on the hub is then
    /// refused, and its views show only the other environments.
    pub outside: Option<String>,
    pub kind: PrincipalKind,
    /// When the credential was found valid (ms since the epoch): an ending at or after this, which the
    /// request could not have seen, still applies to what it opens.
    pub checked_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// Signed in with a session cookie.
    User {
        id: i64,
        /// The session's digest, so that signing out can end this session's streams.
        session: SecretDigest,
        /// When the session ends (ms since the epoch).
        expires_ms: i64,
    },
    Token {
        id: i64,
    },
}

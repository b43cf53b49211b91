//! Security alerts: what the sign-in, token and permission checks noticed. Each alert is its whole current
//! value keyed by id (an acknowledgement re-sends it with who acknowledged), so applying one is an upsert.

use serde::{Deserialize, Serialize};

/// How urgent an alert is, in the words alerting tools use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// The severity named `s` (as [`Severity::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// What was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityKind {
    /// A sign-in with a wrong name or password.
    FailedLogin,
    /// Too many failed sign-ins from one address or for one user: a temporary lockout began.
    BruteForce,
    /// A user signed in from an address they never used before.
    NewAddress,
    /// Someone tried an action their role does not allow.
    Forbidden,
    /// A request came with an unknown or revoked API token.
    InvalidToken,
}

impl SecurityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityKind::FailedLogin => "failed_login",
            SecurityKind::BruteForce => "brute_force",
            SecurityKind::NewAddress => "new_address",
            SecurityKind::Forbidden => "forbidden",
            SecurityKind::InvalidToken => "invalid_token",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SecurityKind::FailedLogin => "Failed sign-in",
            SecurityKind::BruteForce => "Sign-ins locked",
            SecurityKind::NewAddress => "Sign-in from a new address",
            SecurityKind::Forbidden => "Forbidden action",
            SecurityKind::InvalidToken => "Invalid API token",
        }
    }

    /// The kind named `s` (as [`SecurityKind::as_str`] writes it).
    pub fn parse(s: &str) -> Option<SecurityKind> {
        SecurityKind::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub const ALL: [SecurityKind; 5] = [
        SecurityKind::FailedLogin,
        SecurityKind::BruteForce,
        SecurityKind::NewAddress,
        SecurityKind::Forbidden,
        SecurityKind::InvalidToken,
    ];
}

/// One alert, as stored and as the stream carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityAlert {
    pub id: i64,
    pub t_ms: i64,
    pub kind: SecurityKind,
    pub severity: Severity,
    /// The account concerned, as typed for a failed sign-in.
    pub user: Option<String>,
    pub ip: Option<String>,
    /// What happened, for a person; never a secret.
    pub message: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
}

/// Alerts a snapshot carries, newest first; older ones stay in the store.
pub const RECENT_SECURITY: usize = 50;

/// Upserts `alert` into `list` (newest first, by id), keeping at most [`RECENT_SECURITY`].
pub fn merge_alert(list: &mut Vec<SecurityAlert>, alert: &SecurityAlert) {
    match list.iter_mut().find(|a| a.id == alert.id) {
        Some(existing) => *existing = alert.clone(),
        None => {
            let at = list
                .iter()
                .position(|a| a.id < alert.id)
                .unwrap_or(list.len());
            list.insert(at, alert.clone());
            list.truncate(RECENT_SECURITY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: i64) -> SecurityAlert {
        SecurityAlert {
            id,
            t_ms: id,
            kind: SecurityKind::FailedLogin,
            severity: Severity::Warning,
            user: Some("ana".into()),
            ip: Some("10.0.0.1".into()),
            message: "m".into(),
            acknowledged_by: None,
            acknowledged_ms: None,
        }
    }

    #[test]
    fn alerts_are_upserted_newest_first_and_capped() {
        let mut list = Vec::new();
        for id in [1, 3, 2] {
            merge_alert(&mut list, &alert(id));
        }
        assert_eq!(list.iter().map(|a| a.id).collect::<Vec<_>>(), [3, 2, 1]);
        let mut acked = alert(2);
        acked.acknowledged_by = Some("olga".into());
        merge_alert(&mut list, &acked);
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].acknowledged_by.as_deref(), Some("olga"));
        for id in 10..100 {
            merge_alert(&mut list, &alert(id));
        }
        assert_eq!(list.len(), RECENT_SECURITY);
        assert_eq!(list[0].id, 99);
    }
}

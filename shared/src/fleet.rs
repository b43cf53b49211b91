//! The fleet: every host the hub hears from (its own included), the environment each belongs to, and how it
//! stands — what the fleet page lists and the host selector offers.

use crate::{CommandInfo, HostId};
use serde::{Deserialize, Serialize};

/// How a host stands, from its agent's contact and readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Readings arrive.
    Live,
    /// The agent is in contact, but no reading came for three intervals.
    Stale,
    /// No contact for the hub's `--offline-after` (or never).
    Offline,
    /// An operator marked it expected-offline until a time: whatever its contact, it raises no alerts and
    /// is shown grey.
    Maintenance,
}

impl Presence {
    pub const ALL: [Presence; 4] = [
        Presence::Live,
        Presence::Stale,
        Presence::Offline,
        Presence::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Live => "live",
            Presence::Stale => "stale",
            Presence::Offline => "offline",
            Presence::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Presence> {
        Presence::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One host of the fleet, whole: an upsert keyed by `host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetHost {
    pub host: HostId,
    pub environment: String,
    pub presence: Presence,
    /// When `presence` last changed (Unix ms).
    pub since_ms: i64,
    /// The host's last contact (Unix ms); `None` for a host added but never heard from.
    pub seen_ms: Option<i64>,
    /// How often the host samples.
    pub interval_ms: u64,
    /// The agent's version (the hub's own for the hub's host); empty before the first contact.
    pub version: String,
    /// The host the hub itself runs on.
    pub hub: bool,
    /// The host was removed (its agent's token revoked): readers drop it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// Until when (Unix ms) an operator marked it in maintenance, and who; past that it is judged by its
    /// contact again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    /// The commands its agent declares (its `--commands` file): the host decides what may run on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandInfo>,
    /// Whether its agent holds open the stream the hub sends runs down: only then can a command run there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listening: bool,
    /// The sampling interval an operator set for its agent from the hub, which overrides the agent's own
    /// `--interval` until it is cleared; `interval_ms` above is what the agent reports it samples at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_set: Option<IntervalSetting>,
}

/// A sampling interval set from the hub for a host's agent, and who set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalSetting {
    pub interval_ms: u64,
    pub by: String,
}

/// The intervals the hub may set for an agent: no faster than the hub's own default, no slower than a
/// host that is still watched.
pub const MIN_SET_INTERVAL_MS: u64 = 1_000;
pub const MAX_SET_INTERVAL_MS: u64 = 3_600_000;

/// A host's maintenance window: expected offline until `until_ms`, set by `by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub until_ms: i64,
    pub by: String,
}

/// The longest maintenance window an operator may set: longer is a host to remove, not to wait for.
pub const MAX_MAINTENANCE_MS: i64 = 30 * 24 * 3600 * 1000;

/// A host added for an agent, as the admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledHost {
    pub id: i64,
    pub name: String,
    pub environment: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
    /// The agent's last push, if it ever pushed.
    pub seen_ms: Option<i64>,
}

/// A host just added: its listing, and its agent's token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHost {
    pub host: EnrolledHost,
    pub token: String,
}

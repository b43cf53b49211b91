//! Notification channels as the Alerts page shows them: where alerts are sent, and whether that works.

use serde::{Deserialize, Serialize};

/// How a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// JSON like Grafana's webhook notifier, POSTed to a URL.
    Webhook,
    /// A Slack-compatible incoming webhook.
    Slack,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Email => "email",
        }
    }
}

/// Where a channel's deliveries stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Nothing sent yet.
    #[default]
    Idle,
    /// The last delivery arrived.
    Ok,
    /// The last attempt failed and another will follow.
    Retrying,
    /// The last delivery failed after every retry.
    Failing,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Idle => "idle",
            DeliveryState::Ok => "ok",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Failing => "failing",
        }
    }
}

/// One channel: never its URL or password (a Slack URL is a secret), only where it points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub name: String,
    pub kind: ChannelKind,
    /// The host it delivers to, and for email how many recipients.
    pub target: String,
    /// The least severity it is sent.
    pub min_severity: crate::Severity,
    pub state: DeliveryState,
    /// Notifications delivered, and given up on after every retry.
    pub sent: u64,
    pub failed: u64,
    pub last_ok_ms: Option<i64>,
    /// What went wrong last, worded for a person, and when.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

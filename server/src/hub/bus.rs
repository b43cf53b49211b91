//! The bus: where an event gets its sequence number and from where every hub receives it.
//!
//! This is the seam for scale-out. In one process the [`Hub`] is its own bus: it numbers each event from the
//! clock (so ids survive a restart) and fans it out at once. Across instances the bus is meant to be a
//! JetStream stream: `publish` sends the event to the stream, each instance consumes the stream in order and
//! hands every message to its hub with [`Hub::ingest`], the stream sequence as the event's id — so a browser
//! may resume on any instance, and the stream itself holds what a resume replays.

use super::Hub;
use shared::{Event, HostId, Scope};

pub trait Bus: Send + Sync + 'static {
    /// Sequences `event` (of `host`, when it is about one, in the hub's own environment) and delivers it to
    /// every hub. Never waits for a reader.
    fn publish(&self, host: Option<HostId>, event: Event);

    /// As [`Bus::publish`], for an event of `scope` (an agent's host, in its own environment).
    fn publish_in(&self, scope: Scope, event: Event);
}

/// One process: the hub numbers and fans out events itself.
impl Bus for Hub {
    fn publish(&self, host: Option<HostId>, event: Event) {
        Hub::publish(self, host, event);
    }

    fn publish_in(&self, scope: Scope, event: Event) {
        Hub::publish_in(self, scope, event);
    }
}

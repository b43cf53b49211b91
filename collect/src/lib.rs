//! The sources a host runs for itself: its health ([`host`]) and the log files it is told to follow
//! ([`tail`]). The hub runs them for the machine it is on; `watchpost-agent` runs the very same code on every
//! other host, so there is one collector and a reading means the same wherever it was taken. Each source
//! knows only its [`Sink`]: the hub's outlet, or the agent's batches to the hub.

pub mod clock;
pub mod host;
pub mod tail;
pub mod wire;

use shared::{Event, HostId, NewLog};
use std::future::Future;
use std::pin::Pin;

/// Where the host and file-tail sources put what they read: in the hub, its outlet and log book; in an agent,
/// its spool of batches for the hub.
pub trait Sink: Send + Sync + 'static {
    /// A reading or a change of state.
    fn emit(&self, host: Option<HostId>, event: Event);

    /// Lines a source read; kept (all or none) before they are published.
    fn lines(
        &self,
        entries: Vec<NewLog>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

//! The live store: the browser's copy of the server's state, as signals, plus the stream that feeds it.
//!
//! One `EventSource` per tab feeds one store held in context; every panel reads from the store and never
//! asks the server for anything itself. The server renders the first HTML from a snapshot, the browser seeds
//! the store with the same snapshot while hydrating, then the stream takes over.

use leptos::prelude::*;
use shared::{Envelope, LiveState};

/// After this long without any event while the browser retries, the indicator says Offline.
const OFFLINE_AFTER_MS: f64 = 30_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Before the stream first opened (and on the server, which never opens one).
    Connecting,
    Live,
    /// The browser lost the stream and is retrying.
    Reconnecting,
    /// Retrying for a long time, or the server refused the stream.
    Offline,
    /// The server ended the stream for good (see [`LiveStore::closed_reason`]).
    Closed,
    /// The session is over (signed out elsewhere, expired, disabled): nothing moves until signing in again.
    SignedOut,
}

impl Connection {
    pub fn label(self) -> &'static str {
        match self {
            Connection::Connecting => "Connecting…",
            Connection::Live => "Live",
            Connection::Reconnecting => "Reconnecting…",
            Connection::Offline => "Offline",
            Connection::Closed => "Closed",
            Connection::SignedOut => "Signed out",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Live => "live",
            Connection::Reconnecting => "reconnecting",
            Connection::Offline => "offline",
            Connection::Closed => "closed",
            Connection::SignedOut => "signed-out",
        }
    }
}

#[derive(Clone, Copy)]
pub struct LiveStore {
    pub state: RwSignal<LiveState>,
    connection: RwSignal<Connection>,
    /// Browser clock (ms) when the last event of any kind arrived.
    last_event_at: RwSignal<Option<f64>>,
    /// Browser clock (ms) when the last host reading arrived (in a health event or a snapshot).
    last_reading_at: RwSignal<Option<f64>>,
    /// Browser clock (ms), ticking once a second, so ages and staleness move without events.
    now: RwSignal<Option<f64>>,
    /// Counts `accounts` events (admins only), so the admin page reloads its lists.
    accounts_changed: RwSignal<u64>,
    /// Why the server ended this tab's stream for good, if it did.
    closed: RwSignal<Option<String>>,
    /// The serving instance said the bus it shares with other instances is away (until it says it is back,
    /// or the stream opens again: a new stream is told at once if it still is).
    bus_away: RwSignal<bool>,
    /// Command output this tab received or read, by run.
    pub outputs: RwSignal<std::collections::BTreeMap<i64, RunOutput>>,
}

/// A run's output as this tab holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutput {
    pub lines: Vec<shared::OutputLine>,
    /// The stream stopped carrying lines here; the rest is in the run's log.
    pub capped: bool,
    /// A chunk arrived past the end: lines in between must be read from the log.
    pub gap: bool,
}

/// Runs whose output a tab keeps (the newest).
const KEPT_OUTPUTS: usize = 20;

impl LiveStore {
    /// Creates the store and provides it to every component below.
    pub fn provide() -> Self {
        let store = LiveStore {
            state: RwSignal::new(LiveState::default()),
            connection: RwSignal::new(Connection::Connecting),
            last_event_at: RwSignal::new(None),
            last_reading_at: RwSignal::new(None),
            now: RwSignal::new(None),
            accounts_changed: RwSignal::new(0),
            closed: RwSignal::new(None),
            bus_away: RwSignal::new(false),
            outputs: RwSignal::new(Default::default()),
        };
        provide_context(store);
        store
    }

    pub fn expect() -> Self {
        expect_context::<LiveStore>()
    }

    /// Applies an envelope: the only way state enters the store.
    pub fn apply(&self, env: &Envelope) {
        self.apply_all(std::slice::from_ref(env));
    }

    /// Applies envelopes in order, the state's in one update: what arrived on the stream since the last
    /// flush redraws the page once, not once each (200 hosts reading every second are 200 events a second).
    pub fn apply_all(&self, envs: &[Envelope]) {
        let mut state_changed = false;
        for env in envs {
            match &env.event {
                shared::Event::Accounts(_) => {
                    self.accounts_changed.try_update(|n| *n += 1);
                }
                shared::Event::CommandOutput(chunk) => {
                    self.add_output(chunk.run, chunk.first, &chunk.lines, chunk.capped)
                }
                _ => state_changed = true,
            }
        }
        if state_changed {
            // `try_`: a page left while its last envelopes waited has no store any more.
            self.state.try_update(|s| {
                for env in envs {
                    // What a snapshot already holds (the page's own, applied while these waited) is not
                    // applied again: a chart's point appended twice would show twice.
                    let held = s.seq > 0
                        && env.seq <= s.seq
                        && !matches!(env.event, shared::Event::Snapshot(_));
                    if !held
                        && !matches!(
                            env.event,
                            shared::Event::Accounts(_) | shared::Event::CommandOutput(_)
                        )
                    {
                        s.apply(env);
                    }
                }
            });
        }
    }

    /// Adds lines of a run's output at their numbers (each line once).
    pub fn add_output(&self, run: i64, first: u64, lines: &[shared::OutputLine], capped: bool) {
        self.outputs.try_update(|outputs| {
            let output = outputs.entry(run).or_default();
            if !shared::merge_output(&mut output.lines, first, lines) {
                output.gap = true;
            }
            output.capped |= capped;
            while outputs.len() > KEPT_OUTPUTS {
                outputs.pop_first();
            }
        });
    }

    /// Changes whenever accounts change (read it to reload with them).
    pub fn accounts_changed(&self) -> u64 {
        self.accounts_changed.get()
    }

    /// Why the server ended this tab's stream, if it did: the tab then stays closed until reloaded.
    pub fn closed_reason(&self) -> Option<String> {
        self.closed.get()
    }

    /// Whether this tab's instance has lost the event bus: other instances' events wait until it is back.
    pub fn bus_away(&self) -> bool {
        self.bus_away.get()
    }

    /// The connection as the header shows it.
    pub fn connection(&self) -> Connection {
        match self.connection.get() {
            Connection::Reconnecting
                if self.event_age_ms().is_some_and(|a| a > OFFLINE_AFTER_MS) =>
            {
                Connection::Offline
            }
            c => c,
        }
    }

    /// The browser's clock (ms), ticking once a second; `None` on the server.
    pub fn now_ms(&self) -> Option<f64> {
        self.now.get()
    }

    /// Milliseconds since the last event, once the browser has received one.
    pub fn event_age_ms(&self) -> Option<f64> {
        Some(self.now.get()? - self.last_event_at.get()?)
    }

    /// True when no reading came for three collector intervals: values on screen may be out of date.
    pub fn stale(&self) -> bool {
        let interval = self.state.with(|s| s.interval_ms) as f64;
        match (self.now.get(), self.last_reading_at.get()) {
            (Some(now), Some(at)) if interval > 0.0 => now - at > 3.0 * interval,
            _ => false,
        }
    }
}

#[cfg(feature = "hydrate")]
pub use client::connect;

#[cfg(feature = "hydrate")]
mod client {
    //! The `EventSource` side. The browser reconnects by itself after network errors, sending
    //! `Last-Event-ID`; only when the server refuses the stream (the source closes) do we reopen it ourselves.

    use super::{Connection, LiveStore};
    use leptos::prelude::*;
    use shared::{AfterClose, Envelope, Event, EventKind, StreamClosed};
    use std::cell::RefCell;
    use std::time::Duration;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;
    use web_sys::{EventSource, MessageEvent};

    const URL: &str = "/api/events";
    /// Wait before reopening a stream the server closed, so a refusing server is not hammered.
    const REOPEN_AFTER: Duration = Duration::from_secs(3);

    /// How long envelopes gather before they are applied together: short enough to read as at once, long
    /// enough that a busy fleet redraws a page a few times a second rather than at every event.
    const FLUSH_AFTER: Duration = Duration::from_millis(50);

    thread_local! {
        static STREAM: RefCell<Option<Stream>> = const { RefCell::new(None) };
        /// Envelopes received and not yet applied, and the store (the page's) they are for; a flush is due
        /// while there are any.
        static PENDING: RefCell<Option<(LiveStore, Vec<Envelope>)>> = const { RefCell::new(None) };
        /// Numbers each page's stream: moving from one page to another mounts the new page (which opens its
        /// stream) before the old one is cleaned up, and the old page must not close the new page's stream.
        static GENERATION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    struct Stream {
        generation: u64,
        source: EventSource,
        _listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    }

    impl Drop for Stream {
        fn drop(&mut self) {
            self.source.close();
        }
    }

    /// Starts the clock and the stream for this tab; both stop when the owning component is cleaned up.
    pub fn connect(store: LiveStore) {
        let tick = move || store.now.set(Some(js_sys::Date::now()));
        tick();
        let clock = set_interval_with_handle(tick, Duration::from_secs(1)).ok();
        let generation = GENERATION.with(|g| {
            g.set(g.get() + 1);
            g.get()
        });
        open(store, generation);
        on_cleanup(move || {
            if let Some(handle) = clock {
                handle.clear();
            }
            STREAM.with(|s| {
                let mut s = s.borrow_mut();
                if s.as_ref().is_some_and(|s| s.generation == generation) {
                    s.take();
                }
            });
        });
    }

    fn open(store: LiveStore, generation: u64) {
        // A page cleaned up while its reopening waited does not open a stream again.
        if GENERATION.with(|g| g.get()) != generation {
            return;
        }
        let source = match EventSource::new(URL) {
            Ok(source) => source,
            Err(e) => {
                leptos::logging::error!("cannot open the event stream: {e:?}");
                store.connection.set(Connection::Offline);
                return;
            }
        };
        let mut listeners: Vec<Closure<dyn FnMut(web_sys::Event)>> = Vec::new();

        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            set_connection(store, Connection::Live);
            // Perhaps another instance, perhaps later: it says so at once if its bus is away.
            if store.bus_away.get_untracked() {
                store.bus_away.set(false);
            }
        });
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        listeners.push(on_open);

        let watched = source.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if watched.ready_state() == EventSource::CLOSED {
                // The server refused the stream. An ended session is one reason, and retrying would not
                // help it: ask whether we are still signed in before trying again.
                set_connection(store, Connection::Offline);
                leptos::task::spawn_local(async move {
                    if signed_out().await {
                        end(
                            store,
                            StreamClosed {
                                reason: "you are signed out (the session ended)".into(),
                                then: AfterClose::SignIn,
                            },
                        );
                    } else {
                        set_timeout(move || open(store, generation), REOPEN_AFTER);
                    }
                });
            } else {
                set_connection(store, Connection::Reconnecting);
            }
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        listeners.push(on_error);

        for kind in EventKind::ALL {
            let on_message =
                Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                    if let Some(data) = event
                        .dyn_ref::<MessageEvent>()
                        .and_then(|m| m.data().as_string())
                    {
                        receive(store, kind, &data);
                    }
                });
            if let Err(e) = source.add_event_listener_with_callback(
                kind.as_str(),
                on_message.as_ref().unchecked_ref(),
            ) {
                leptos::logging::error!("cannot listen for {} events: {e:?}", kind.as_str());
            }
            listeners.push(on_message);
        }
        // Replacing the previous stream drops it, which closes it.
        STREAM.with(|s| {
            *s.borrow_mut() = Some(Stream {
                generation,
                source,
                _listeners: listeners,
            })
        });
    }

    fn receive(store: LiveStore, kind: EventKind, data: &str) {
        let now = js_sys::Date::now();
        store.last_event_at.set(Some(now));
        set_connection(store, Connection::Live);
        if kind == EventKind::Ping {
            return;
        }
        if kind == EventKind::Bus {
            match serde_json::from_str::<shared::BusNotice>(data) {
                Ok(notice) => store.bus_away.set(!notice.reachable),
                Err(e) => leptos::logging::error!("ignoring a malformed bus notice: {e}"),
            }
            return;
        }
        if kind == EventKind::Closed {
            let closed = serde_json::from_str::<StreamClosed>(data).unwrap_or(StreamClosed {
                reason: "the server ended this tab's live updates".into(),
                then: AfterClose::Stay,
            });
            end(store, closed);
            return;
        }
        match serde_json::from_str::<Envelope>(data) {
            Ok(env) => {
                if matches!(env.event, Event::Health(_) | Event::Snapshot(_)) {
                    store.last_reading_at.set(Some(now));
                }
                // Another page's envelopes still waiting (a page just replaced its stream) go to that
                // page's store first, so none is lost to the new page or applied to the wrong one.
                let (earlier, first) = PENDING.with(|p| {
                    let mut p = p.borrow_mut();
                    let earlier = p.take_if(|(other, _)| other.state != store.state);
                    let (_, batch) = p.get_or_insert_with(|| (store, Vec::new()));
                    batch.push(env);
                    (earlier, batch.len() == 1)
                });
                if let Some((other, batch)) = earlier {
                    other.apply_all(&batch);
                }
                if first {
                    set_timeout(flush, FLUSH_AFTER);
                }
            }
            Err(e) => leptos::logging::error!("ignoring a malformed {} event: {e}", kind.as_str()),
        }
    }

    /// Applies what gathered since the first envelope of the batch arrived.
    fn flush() {
        if let Some((store, batch)) = PENDING.with(|p| p.borrow_mut().take()) {
            store.apply_all(&batch);
        }
    }

    /// Acts on the end of the stream. Closing the source stops the browser's own reconnecting, which would
    /// only close another tab in turn, or be refused.
    fn end(store: LiveStore, closed: StreamClosed) {
        STREAM.with(|s| s.borrow_mut().take());
        match closed.then {
            AfterClose::Reload => {
                // A new role: the page and its stream start over with what the role may see.
                if let Some(window) = web_sys::window()
                    && window.location().reload().is_ok()
                {
                    return;
                }
                set_connection(store, Connection::Closed);
            }
            AfterClose::SignIn => set_connection(store, Connection::SignedOut),
            AfterClose::Stay => set_connection(store, Connection::Closed),
        }
        store.closed.set(Some(closed.reason));
    }

    /// Whether the server says this browser has no session (a 401 from `/api/me`); a server that cannot be
    /// reached is not a sign-out.
    async fn signed_out() -> bool {
        gloo_net::http::Request::get("/api/me")
            .header("accept", "application/json")
            .send()
            .await
            .is_ok_and(|r| r.status() == 401)
    }

    fn set_connection(store: LiveStore, connection: Connection) {
        if store.connection.get_untracked() != connection {
            store.connection.set(connection);
        }
    }
}

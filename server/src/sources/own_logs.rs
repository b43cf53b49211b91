//! Watchpost's own WARN and ERROR events, copied from tracing into the error log.

use crate::clock::now_millis;
use crate::logs::{LogBook, MAX_FIELD_BYTES, MAX_FIELDS, clip, truncate};
use crate::outlet::OWN_SERVICE;
use crate::tasks::Tasks;
use shared::Level;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use store::NewLog;
use tokio::sync::mpsc;
use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Own log events waiting to be written; past this they are dropped rather than slow the code that logs.
const OWN_QUEUE: usize = 1024;
/// Entries one line of code may write per [`THROTTLE_WINDOW`]. Some WARN lines are caused by requests
/// without an account (a refused cross-site POST, a wrong setup code): a flood of those must not become a
/// flood of rows. Past it, entries of that line are counted, and the next one after the window says how
/// many were left out.
const PER_CALLSITE: u32 = 30;
const THROTTLE_WINDOW: Duration = Duration::from_secs(60);

/// The tracing layer that copies Watchpost's own WARN and ERROR events into the error log.
pub struct CaptureLayer {
    tx: mpsc::Sender<NewLog>,
    throttle: Mutex<HashMap<Identifier, Window>>,
}

/// One line of code's entries in the current window.
struct Window {
    began: Instant,
    written: u32,
    left_out: u64,
}

impl CaptureLayer {
    /// Whether an entry of `callsite` may be written now, and how many of its entries the window before
    /// left out (to say so).
    fn admit(&self, callsite: Identifier) -> (bool, u64) {
        let Ok(mut throttle) = self.throttle.lock() else {
            return (true, 0);
        };
        let now = Instant::now();
        let window = throttle.entry(callsite).or_insert(Window {
            began: now,
            written: 0,
            left_out: 0,
        });
        let mut reported = 0;
        if now.duration_since(window.began) >= THROTTLE_WINDOW {
            reported = std::mem::take(&mut window.left_out);
            window.began = now;
            window.written = 0;
        }
        if window.written < PER_CALLSITE {
            window.written += 1;
            (true, reported)
        } else {
            window.left_out += 1;
            (false, reported)
        }
    }
}

/// The receiving end of [`CaptureLayer`], drained by [`spawn_own_log_writer`].
pub struct OwnLogs(mpsc::Receiver<NewLog>);

/// A layer to install in the process's subscriber, and the entries it captures.
pub fn capture_layer() -> (CaptureLayer, OwnLogs) {
    let (tx, rx) = mpsc::channel(OWN_QUEUE);
    (
        CaptureLayer {
            tx,
            throttle: Mutex::default(),
        },
        OwnLogs(rx),
    )
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            _ => return,
        };
        // The writer's own complaints would otherwise feed back into the writer.
        if meta.target().starts_with(module_path!()) {
            return;
        }
        let (admitted, left_out) = self.admit(meta.callsite());
        if !admitted {
            return;
        }
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let mut fields = visitor.fields;
        fields.insert("target".into(), meta.target().into());
        if left_out > 0 {
            fields.insert("left_out_before".into(), left_out.to_string());
            visitor.message = format!(
                "{} ({left_out} more like it in the minute before were not written)",
                visitor.message
            );
        }
        let entry = NewLog {
            t_ms: now_millis(),
            level,
            service: OWN_SERVICE.into(),
            message: truncate(visitor.message),
            fields,
        };
        // Never block the code that logs: a full queue drops the entry.
        let _ = self.tx.try_send(entry);
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.put(field, text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else if self.fields.len() < MAX_FIELDS {
            self.fields
                .insert(field.name().to_owned(), clip(value, MAX_FIELD_BYTES));
        }
    }
}

/// Writes captured own entries, a batch at a time, until shutdown.
pub fn spawn_own_log_writer(book: LogBook, OwnLogs(mut rx): OwnLogs, tasks: &Tasks) {
    let shutdown = tasks.token().clone();
    tasks.spawn(async move {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(entry) => batch.push(entry),
                    None => break,
                },
                () = shutdown.cancelled() => break,
            }
            // Whatever else arrived meanwhile goes in the same transaction.
            while let Ok(entry) = rx.try_recv() {
                batch.push(entry);
            }
            if let Err(e) = book.append(std::mem::take(&mut batch)).await {
                tracing::warn!("cannot store Watchpost's own log entries: {e}");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_copies_warnings_and_errors_with_their_fields() {
        use tracing_subscriber::prelude::*;
        let (layer, OwnLogs(mut rx)) = capture_layer();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "server::startup", "not copied");
            tracing::warn!(target: "server::startup", disk = "/data", "disk nearly full");
            tracing::error!(target: "server::stream", "boom");
            tracing::error!("the writer's own complaint is not copied");
        });
        let warn = rx.try_recv().unwrap();
        assert_eq!(
            (warn.level, warn.message.as_str()),
            (Level::Warn, "disk nearly full")
        );
        assert_eq!(warn.service, OWN_SERVICE);
        assert_eq!(warn.fields["disk"], "/data");
        assert_eq!(warn.fields["target"], "server::startup");
        let error = rx.try_recv().unwrap();
        assert_eq!(
            (error.level, error.message.as_str()),
            (Level::Error, "boom")
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_flood_from_one_line_of_code_is_capped() {
        use tracing_subscriber::prelude::*;
        let (layer, OwnLogs(mut rx)) = capture_layer();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                tracing::warn!(target: "server::http", i, "cross-origin request refused");
            }
            tracing::error!(target: "server::startup", "another line is not held back");
        });
        let mut written = Vec::new();
        while let Ok(entry) = rx.try_recv() {
            written.push(entry);
        }
        assert_eq!(written.len(), PER_CALLSITE as usize + 1);
        assert_eq!(
            written.last().unwrap().message,
            "another line is not held back"
        );
    }
}

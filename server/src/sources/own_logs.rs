//! Watchpost's own WARN and ERROR events, copied from tracing into the error log.

use crate::clock::now_millis;
use crate::logs::{LogBook, MAX_FIELD_BYTES, MAX_FIELDS, clip, truncate};
use crate::outlet::OWN_SERVICE;
use crate::tasks::Tasks;
use shared::Level;
use std::collections::BTreeMap;
use std::time::Duration;
use store::NewLog;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Own log events waiting to be written; past this they are dropped rather than slow the code that logs.
const OWN_QUEUE: usize = 1024;

/// The tracing layer that copies Watchpost's own WARN and ERROR events into the error log.
pub struct CaptureLayer {
    tx: mpsc::Sender<NewLog>,
}

/// The receiving end of [`CaptureLayer`], drained by [`spawn_own_log_writer`].
pub struct OwnLogs(mpsc::Receiver<NewLog>);

/// A layer to install in the process's subscriber, and the entries it captures.
pub fn capture_layer() -> (CaptureLayer, OwnLogs) {
    let (tx, rx) = mpsc::channel(OWN_QUEUE);
    (CaptureLayer { tx }, OwnLogs(rx))
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
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let mut fields = visitor.fields;
        fields.insert("target".into(), meta.target().into());
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
}

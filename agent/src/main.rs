//! `watchpost-agent`: runs the hub's host and file-tail sources on another host and pushes what they read to
//! the hub. It only connects out (no port is opened here), and keeps what it read in a bounded spool on disk
//! until the hub has acknowledged it, so an outage of the hub or the network loses nothing the spool holds.
//! It also holds the hub's stream of orders, on which it runs the commands its host declares.

mod config;
mod orders;
mod pace;
mod push;
mod spool;

use crate::config::Config;
use crate::spool::Spool;
use collect::Sink;
use collect::host::{Collector, CollectorStatus, HostSampler};
use collect::wire::Record;
use shared::{Event, HostId, NewLog};
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(config) => config,
        Err(config::Exit::Message(message)) => {
            eprintln!("watchpost-agent: {message}");
            return ExitCode::from(2);
        }
        Err(config::Exit::Shown) => return ExitCode::SUCCESS,
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("watchpost-agent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("watchpost-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    #[error(transparent)]
    Collector(#[from] collect::host::CollectorError),
    #[error(transparent)]
    Push(#[from] push::PushSetupError),
}

async fn run(config: Config) -> Result<(), RunError> {
    let spool = Arc::new(Mutex::new(Spool::open(
        &config.spool_dir,
        config.spool_max,
    )?));
    let ready = Arc::new(Notify::new());
    let sink: Arc<dyn Sink> = Arc::new(SpoolSink {
        spool: spool.clone(),
        ready: ready.clone(),
    });
    let shutdown = CancellationToken::new();
    let sampler = HostSampler::new()?.named(HostId(config.name.clone()));
    let mut collector = Collector::spawn(
        sampler,
        sink.clone(),
        config.interval,
        Arc::new(CollectorStatus::default()),
    )?;
    let pace = pace::Pace::new(config.interval, collector.pacer());
    let pusher = push::Pusher::new(&config, spool.clone(), ready.clone(), pace.clone())?;
    let orders = orders::Orders::new(&config, pace)?;
    if let Some(tailers) = collect::tail::spawn_tailers(&config.tail_logs, sink, &shutdown) {
        tokio::spawn(tailers);
    }
    tracing::info!(
        hub = %config.hub,
        name = %config.name,
        environment = %config.environment,
        interval = %humantime::format_duration(config.interval),
        spool = %config.spool_dir.display(),
        commands = config.commands.len(),
        "watchpost-agent {} started",
        env!("CARGO_PKG_VERSION")
    );
    let listening = tokio::spawn(orders.run(shutdown.clone()));
    tokio::select! {
        () = pusher.run(shutdown.clone()) => {}
        () = stop_signal() => {}
    }
    // Commands under way stop with the stream of orders, which the hub then ends as Interrupted.
    shutdown.cancel();
    let _ = listening.await;
    collector.stop();
    tracing::info!(
        "stopped; what the hub has not acknowledged stays in the spool for the next start"
    );
    Ok(())
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Lines cut into records of about a quarter of a batch each (a line's JSON is its text and some 100 bytes).
fn records_of(entries: Vec<NewLog>) -> Vec<Vec<NewLog>> {
    const RECORD_BYTES: usize = collect::wire::MAX_BATCH_BYTES / 4;
    let size = |l: &NewLog| {
        100 + l.message.len()
            + l.service.len()
            + l.fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
    };
    let mut records = Vec::new();
    let (mut current, mut bytes) = (Vec::new(), 0usize);
    for line in entries {
        let n = size(&line);
        if !current.is_empty() && bytes + n > RECORD_BYTES {
            records.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += n;
        current.push(line);
    }
    if !current.is_empty() {
        records.push(current);
    }
    records
}

/// The agent's end of the sources: every reading and line goes into the spool, and the pusher is woken.
struct SpoolSink {
    spool: Arc<Mutex<Spool>>,
    ready: Arc<Notify>,
}

impl SpoolSink {
    fn keep(&self, record: Record) -> Result<(), String> {
        let kept = self
            .spool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(record)
            .map_err(|e| e.to_string());
        self.ready.notify_one();
        kept.map(drop)
    }
}

impl Sink for SpoolSink {
    fn emit(&self, _host: Option<HostId>, event: Event) {
        if let Event::Health(health) = event
            && let Err(e) = self.keep(Record::Health(health))
        {
            tracing::error!("cannot keep a reading in the spool: {e}");
        }
    }

    fn lines(
        &self,
        entries: Vec<NewLog>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        // A burst of lines (a tailer reads up to a MiB at once) is kept as several records, each well within
        // one push, so no record is ever too large to send.
        let kept = records_of(entries)
            .into_iter()
            .try_for_each(|lines| self.keep(Record::Lines(lines)));
        Box::pin(async move { kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_lines_is_kept_as_records_that_each_fit_a_push() {
        let line = |n: usize| NewLog {
            t_ms: 1,
            level: shared::Level::Info,
            service: "s".into(),
            message: "x".repeat(n),
            fields: Default::default(),
        };
        let burst: Vec<NewLog> = (0..20_000).map(|_| line(500)).collect();
        let records = records_of(burst);
        assert!(records.len() > 1);
        assert_eq!(records.iter().map(Vec::len).sum::<usize>(), 20_000);
        for r in &records {
            let json = serde_json::to_vec(&Record::Lines(r.clone())).unwrap();
            assert!(
                json.len() <= collect::wire::MAX_BATCH_BYTES / 2,
                "{}",
                json.len()
            );
        }
        assert_eq!(records_of(vec![line(10)]).len(), 1);
    }
}

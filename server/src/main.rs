#![recursion_limit = "256"]
//! The `watchpost` binary: parse configuration, start, run until SIGINT/SIGTERM.

use clap::Parser;
use server::Application;
use server::OwnLogs;
use server::{Cli, Command, Config};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    return_large_blocks();
    let cli = Cli::parse();
    let config = match Config::resolve(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("watchpost: {e}");
            return ExitCode::from(2);
        }
    };
    match &cli.command {
        Some(Command::CheckConfig) => {
            println!("{config:#?}");
            return ExitCode::SUCCESS;
        }
        Some(Command::User(command)) => {
            return run_once(server::user_command(&config, command));
        }
        Some(Command::Token(command)) => {
            return run_once(server::token_command(&config, command));
        }
        Some(Command::Serve) | None => {}
    }
    // Console output as RUST_LOG says; WARN and ERROR also go to the dashboard's error log.
    let (capture, own_logs) = server::capture_layer();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                ),
        )
        .with(capture.with_filter(LevelFilter::WARN))
        .init();
    // Each dashboard tab holds a connection: the default soft limit (often 1024) would cap the audience.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    run(
        tokio::runtime::Builder::new_multi_thread(),
        serve(config, own_logs),
    )
}

/// Every password check takes a 19 MiB block (argon2). glibc hands out a block that large with `mmap` and
/// unmaps it when freed, but after the first such free it raises its threshold to that size, so later blocks
/// come from the heap of whichever thread checks, and stay there: a flood of sign-ins from many addresses left
/// the server at 381 MiB instead of 33 MiB (watchpost-bench abuse). A fixed threshold keeps every block of
/// 1 MiB or more mapped only while it is used.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Runs a one-off command (no server) on a small runtime.
fn run_once(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    run(tokio::runtime::Builder::new_current_thread(), command)
}

/// Runs `work` to its end on a runtime from `builder`; an error is one `watchpost:` line on stderr.
fn run(
    mut builder: tokio::runtime::Builder,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("watchpost: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("watchpost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, own_logs: OwnLogs) -> anyhow::Result<()> {
    let app = Application::build_with_logs(config, Some(own_logs)).await?;
    tracing::info!("Watchpost listening on http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    app.run().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

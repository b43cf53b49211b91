//! The binary itself: configuration errors, a port in use, and shutdown on SIGTERM.

use crate::helpers::{add_token, start_binary};
use shared::Role;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_watchpost");

/// Runs the binary to its end with a data directory of its own and no configuration file.
pub(crate) fn run(args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    run_in(data.path(), args)
}

fn run_in(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("WATCHPOST_DATA_DIR", data)
        .env_remove("WATCHPOST_CONFIG")
        .output()
        .expect("the binary runs")
}

/// Asserts the run failed with exactly one `watchpost:` error line and no panic; returns that line.
pub(crate) fn the_one_error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("watchpost:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    errors[0].to_owned()
}

#[test]
fn a_bad_flag_value_exits_non_zero_with_a_message() {
    let out = run(&["--interval", "soon"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--interval") && stderr.contains("soon"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_out_of_range_value_is_one_clear_line() {
    let out = run(&["--interval", "1ms"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("watchpost: interval: must be between"),
        "{stderr}"
    );
}

#[test]
fn a_broken_config_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watchpost.toml");
    std::fs::write(&path, "listen = 3000\n").unwrap();
    let out = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("watchpost.toml") && stderr.contains("listen"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_one_clear_error_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let error = the_one_error_line(&run(&["--listen", &addr]));
    assert!(
        error.contains(&format!("cannot listen on {addr}")),
        "{error}"
    );
    assert!(error.contains("in use"), "{error}");
}

#[test]
fn a_database_from_a_newer_version_is_refused_with_one_clear_line() {
    let data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let path = data.path().join(server::DATABASE_FILE);
        let store = store::SqliteStore::open(&path, &store::OpenOptions::default())
            .await
            .unwrap();
        drop(store);
        // What a future version's migration leaves behind.
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'future', 1, x'00', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    let error = the_one_error_line(&run_in(data.path(), &["--listen", "127.0.0.1:0"]));
    assert!(error.contains("newer Watchpost"), "{error}");
}

#[test]
fn sigterm_ends_open_streams_and_the_process_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let token = tokio::runtime::Runtime::new().unwrap().block_on(add_token(
        data.path(),
        "test",
        Role::Viewer,
    ));
    let (mut child, addr) = start_binary(data.path(), &["--interval", "100ms"]);

    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let request =
        format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The stream ends: the server finishes the chunked body and closes, so the read reaches the end.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the stream is closed by the server, not timed out");
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "the chunked body is terminated cleanly"
    );
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    eprintln!("shutdown took {:?}", signalled.elapsed());
}

/// `check-config` prints every setting but no secret: a database URL's password, whether given on the
/// command line or in a `--postgres-url-file`, never appears.
#[test]
fn check_config_prints_no_password() {
    let data = tempfile::tempdir().unwrap();
    let url_file = data.path().join("billing.url");
    std::fs::write(
        &url_file,
        "postgres://billing:file-s3cret@db.example:5433/billing\n",
    )
    .unwrap();
    let out = run_in(
        data.path(),
        &[
            "--postgres",
            "main=postgres://app:flag-s3cret@127.0.0.1/app",
            "--postgres-url-file",
            &format!("billing={}", url_file.display()),
            "check-config",
        ],
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(
        printed.contains("postgres://app@127.0.0.1:5432/app"),
        "{printed}"
    );
    assert!(
        printed.contains("postgres://billing@db.example:5433/billing"),
        "{printed}"
    );
    // A file that names no URL is refused, naming the setting.
    std::fs::write(&url_file, "").unwrap();
    let out = run_in(
        data.path(),
        &[
            "--postgres-url-file",
            &format!("billing={}", url_file.display()),
            "check-config",
        ],
    );
    assert!(the_one_error_line(&out).contains("postgres-url-file"));
}

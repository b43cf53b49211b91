//! The store on PostgreSQL (`--store`): the real binary against a database of the test's own on the
//! machine's PostgreSQL (127.0.0.1:5432, or `WATCHPOST_TEST_POSTGRES`), removed when the test ends.

use crate::engines::ScratchDatabase;
use crate::helpers::{PATIENCE, get_json, http_client, sign_in, start_binary};
use serde_json::json;
use shared::{AuditPage, Deployment, HistorySeries, LogPage};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_watchpost");

/// The CLI with `WATCHPOST_STORE` set, `stdin` given; its output.
fn cli(store: &str, args: &[&str], stdin: &str) -> Output {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .env("WATCHPOST_STORE", store)
        .env("WATCHPOST_DATA_DIR", data.path())
        .env_remove("WATCHPOST_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Everything a server keeps lives in PostgreSQL: after a SIGKILL, a server started on a fresh data
/// directory with the same `--store` has the accounts (a session signed in before still works), the
/// deployments and their audit trail, the error log and the history, and no SQLite file was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_keeps_everything_there_across_a_kill() {
    let db = ScratchDatabase::new().await;
    let out = cli(
        &db.url,
        &["user", "add", "ana", "--role", "admin", "--password-stdin"],
        "ana's long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&db.url, &["token", "add", "ci", "--role", "operator"], "");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("wpt_"), "{token}");

    let first = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(first.path(), &["--store", &db.url]);
    let base = format!("http://{addr}");
    let ana = sign_in(&base, "ana", "ana's long password").await;
    let report = |body: serde_json::Value| {
        http_client()
            .post(format!("{base}/api/deployments"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let queued: Deployment = report(
        json!({ "service": "shop", "environment": "prod", "version": "1.4.2", "state": "queued" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for state in ["in_progress", "success"] {
        let status = report(json!({ "id": queued.id, "state": state }))
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{state}: {status}");
    }
    let r = ana
        .post(format!("{base}/api/ingest/logs"))
        .header("content-type", "application/x-ndjson")
        .body(
            json!({ "level": "critical", "service": "shop", "message": "payment gateway refused" })
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // The host's readings reach the store once a second.
    let deadline = Instant::now() + PATIENCE;
    while db.count("second_open").await == 0 {
        assert!(
            Instant::now() < deadline,
            "no history written to PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let second = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(second.path(), &["--store", &db.url]);
    let base = format!("http://{addr}");
    let me = ana.get(format!("{base}/api/me")).send().await.unwrap();
    assert_eq!(me.status(), 200, "the session lives in the store");
    let deployments: Vec<Deployment> =
        get_json(&ana, &format!("{base}/api/deployments?service=shop")).await;
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        (deployments[0].version.as_str(), deployments[0].state),
        ("1.4.2", shared::DeployState::Success)
    );
    let trail: AuditPage =
        get_json(&ana, &format!("{base}/api/audit?action=deployment.report")).await;
    assert_eq!(trail.entries.len(), 3);
    assert_eq!(trail.entries[0].actor, "token:ci");
    let logs: LogPage = get_json(&ana, &format!("{base}/api/logs?service=shop")).await;
    assert_eq!(
        logs.entries
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["payment gateway refused"]
    );
    let history: HistorySeries =
        get_json(&ana, &format!("{base}/api/history?metric=cpu&range=1h")).await;
    assert!(
        !history.points.is_empty(),
        "the first server's readings are read back"
    );
    assert!(
        !second.path().join(server::DATABASE_FILE).exists()
            && !first.path().join(server::DATABASE_FILE).exists(),
        "no SQLite store beside the PostgreSQL one"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A store that does not answer at start is one line on stderr, naming the database but never its
/// password, and a non-zero exit.
#[test]
fn a_store_that_does_not_answer_is_one_line_and_a_non_zero_exit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = crate::cli::run(&[
        "--listen",
        "127.0.0.1:0",
        "--store",
        &format!("postgres://ana:s3cret@127.0.0.1:{port}/watchpost"),
    ]);
    let line = crate::cli::the_one_error_line(&out);
    assert!(
        line.contains(&format!("postgres://ana@127.0.0.1:{port}/watchpost")),
        "{line}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("s3cret"),
        "{line}"
    );
}

/// `--store` and `--store-url-file` are one setting given two ways: both at once is refused; the file's
/// URL is used, and `check-config` shows it without its password.
#[test]
fn the_store_url_comes_from_a_flag_or_a_file_and_is_never_printed_with_its_password() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("store-url");
    std::fs::write(
        &file,
        "postgres://watchpost:file-s3cret@db.internal:5433/watchpost\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("WATCHPOST_DATA_DIR", data.path())
            .env_remove("WATCHPOST_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["--store-url-file", file.to_str().unwrap(), "check-config"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("postgres://watchpost@db.internal:5433/watchpost")
            && !printed.contains("s3cret"),
        "{printed}"
    );
    let out = run(&[
        "--store",
        "postgres://a@b/c",
        "--store-url-file",
        file.to_str().unwrap(),
        "check-config",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not both"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["--store", "sqlite://w.db", "check-config"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("postgres://user@host:port/database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

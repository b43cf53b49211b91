//! Configured commands, run for real: scripts the tests write print lines and exit; their runs stream in
//! order to the event stream, end in the right state, are audited before and after, and the faults (a
//! timeout, a missing program, a flood of output, a busy target, Watchpost killed mid-run) end as the issue
//! says.

use crate::helpers::{
    ADMIN, Events, PASSWORD, PATIENCE, TestApp, add_user, get_json, next_envelope, sign_in,
    spawn_app_with, start_binary, stream_of,
};
use serde_json::{Value, json};
use server::testing::{CommandFile, check_all};
use shared::{AuditPage, CommandRun, Event, OutputLine, OutputPage, Role, RunState};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Writes an executable shell script into `dir`; its path.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

/// The commands a test configures, from `[[commands]]` TOML.
fn commands(toml_text: &str) -> Vec<server::testing::CommandSpec> {
    #[derive(serde::Deserialize)]
    struct File {
        commands: Vec<CommandFile>,
    }
    let file: File = toml::from_str(toml_text).expect("valid commands");
    check_all(file.commands).expect("checked commands")
}

/// The usual test command: `job` prints five lines (the third on stderr) naming its target, then exits
/// with the chosen status; `sleep` sleeps; both on targets alpha and beta.
fn job_commands(dir: &Path) -> String {
    let job = script(
        dir,
        "job.sh",
        "for i in 1 2 3 4 5; do if [ $i = 3 ]; then echo \"$1 $i\" >&2; else echo \"$1 $i\"; fi; done\nexit $2",
    );
    let sleeper = script(dir, "sleep.sh", "echo started\nexec sleep 30");
    format!(
        r#"
        [[commands]]
        name = "job"
        program = "{job}"
        args = ["{{target}}", "{{code}}"]
        targets = ["alpha", "beta"]
        params = {{ code = {{ values = ["0", "1"] }} }}

        [[commands]]
        name = "sleep"
        title = "Sleep"
        program = "{sleeper}"
        targets = ["alpha", "beta"]
        timeout = "60s"
        "#
    )
}

async fn app_with_jobs(dir: &Path) -> TestApp {
    let specs = commands(&job_commands(dir));
    spawn_app_with(move |c| c.commands = specs).await
}

/// `POST /api/run_command` as `client`.
async fn run(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    target: &str,
    params: Value,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/run_command"))
        .json(&json!({ "name": name, "target": target, "params": params }))
        .send()
        .await
        .unwrap()
}

/// Starts `job` on `target` as the admin, exiting with `code`.
async fn start_job(app: &TestApp, target: &str, code: &str) -> CommandRun {
    started(
        run(
            &app.client,
            &app.base,
            "job",
            target,
            json!({ "code": code }),
        )
        .await,
    )
    .await
}

async fn started(r: reqwest::Response) -> CommandRun {
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// Reads the stream until run `id` has ended: every state it passed through, and its streamed output.
async fn follow(events: &mut Events, id: i64) -> (Vec<CommandRun>, Vec<OutputLine>, bool) {
    let mut states = Vec::new();
    let mut lines = Vec::new();
    let mut capped = false;
    tokio::time::timeout(PATIENCE, async {
        loop {
            match next_envelope(events).await.1.event {
                Event::Command(run) if run.id == id => {
                    let done = run.state.finished();
                    states.push(run);
                    if done {
                        return;
                    }
                }
                Event::CommandOutput(chunk) if chunk.run == id => {
                    assert_eq!(
                        chunk.first,
                        lines.len() as u64,
                        "chunks in order, none missed"
                    );
                    lines.extend(chunk.lines);
                    capped |= chunk.capped;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the run ends in time");
    (states, lines, capped)
}

/// `POST /api/command_output`: the run's log from line `first`.
async fn output(app: &TestApp, run: i64, first: u64) -> OutputPage {
    app.client
        .post(format!("{}/api/command_output", app.base))
        .form(&[("run", run.to_string()), ("first", first.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn audit(app: &TestApp, query: &str) -> AuditPage {
    let r = app
        .client
        .get(format!("{}/api/audit?{query}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_streams_its_lines_in_order_and_ends_in_the_right_state() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_jobs(dir.path()).await;
    let mut events = app.events(None).await;

    let ok = start_job(&app, "alpha", "0").await;
    assert_eq!(ok.state, RunState::Running);
    let (states, lines, capped) = follow(&mut events, ok.id).await;
    assert_eq!(states.first().map(|r| r.state), Some(RunState::Running));
    let end = states.last().unwrap();
    assert_eq!(
        (
            end.state,
            end.exit_code,
            end.detail.as_str(),
            end.output_lines
        ),
        (RunState::Succeeded, Some(0), "exit status 0", 5)
    );
    // stdout and stderr are read apart, so only each stream's own order is certain.
    let of = |stderr: bool| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.stderr == stderr)
            .map(|l| l.text.clone())
            .collect()
    };
    assert_eq!(of(false), ["alpha 1", "alpha 2", "alpha 4", "alpha 5"]);
    assert_eq!(of(true), ["alpha 3"]);
    assert!(!capped);

    let failed = start_job(&app, "beta", "1").await;
    let (states, _, _) = follow(&mut events, failed.id).await;
    let end = states.last().unwrap();
    assert_eq!(
        (end.state, end.exit_code, end.detail.as_str()),
        (RunState::Failed, Some(1), "exit status 1")
    );

    // Both are in the audit trail, complete: who, role, address, what, target, parameters, result, time.
    let page = audit(&app, "action=command.").await;
    assert_eq!(page.entries.len(), 2);
    let (newest, oldest) = (&page.entries[0], &page.entries[1]);
    assert_eq!(
        (
            oldest.actor.as_str(),
            oldest.role,
            oldest.ip.as_str(),
            oldest.action.as_str(),
            oldest.target.as_str(),
            oldest.params["code"].as_str(),
            oldest.outcome,
            oldest.detail.as_str()
        ),
        (
            ADMIN,
            Role::Admin,
            "127.0.0.1",
            "command.job",
            "alpha",
            "0",
            shared::Outcome::Succeeded,
            "Succeeded: exit status 0"
        )
    );
    assert!(oldest.duration_ms().is_some_and(|d| d >= 0));
    assert_eq!(newest.outcome, shared::Outcome::Failed);

    // The whole output can be read back from the run's log.
    let page = output(&app, ok.id, 0).await;
    assert_eq!(page.lines.len(), 5);
    assert!(page.lines.iter().any(|l| l.stderr && l.text == "alpha 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_kills_the_program_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let hang = script(
        dir.path(),
        "hang.sh",
        &format!(
            "sleep 300 &\necho $! >> {p}\necho $$ >> {p}\necho waiting\nwait",
            p = pids.display()
        ),
    );
    let specs = commands(&format!(
        r#"
        [[commands]]
        name = "hang"
        program = "{hang}"
        targets = ["alpha"]
        timeout = "1s"
        "#
    ));
    let app = spawn_app_with(move |c| c.commands = specs).await;
    let mut events = app.events(None).await;
    let hung = started(run(&app.client, &app.base, "hang", "alpha", json!({})).await).await;
    let (states, lines, _) = follow(&mut events, hung.id).await;
    let end = states.last().unwrap();
    assert_eq!(end.state, RunState::TimedOut, "{end:?}");
    assert!(end.detail.contains("no result after 1s"), "{}", end.detail);
    assert_eq!(lines.first().map(|l| l.text.as_str()), Some("waiting"));
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "the script and its child");
    tokio::time::timeout(PATIENCE, async {
        // Gone, or a zombie nobody waits for (the child's parent was killed too, so init reaps it).
        while pids.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        }) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the script and its child are killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_reason_and_a_viewer_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_jobs(dir.path()).await;
    for (name, target, params, status, message) in [
        (
            "job",
            "alpha",
            json!({ "code": "2" }),
            400,
            "'code': must be one of 0, 1",
        ),
        (
            "job",
            "alpha",
            json!({}),
            400,
            "job needs the parameter 'code'",
        ),
        (
            "job",
            "gamma",
            json!({ "code": "0" }),
            400,
            "'gamma' is not a target of job",
        ),
        (
            "job",
            "alpha",
            json!({ "code": "0", "x": "1" }),
            400,
            "no parameter 'x'",
        ),
        (
            "nope",
            "alpha",
            json!({}),
            404,
            "there is no command 'nope'",
        ),
    ] {
        let r = run(&app.client, &app.base, name, target, params).await;
        assert_eq!(r.status(), status, "{name} {target}");
        let text = r.text().await.unwrap();
        assert!(text.contains(message), "{text}");
    }
    assert!(
        audit(&app, "action=command.").await.entries.is_empty(),
        "nothing refused reaches the trail"
    );

    add_user(app.data_dir(), "vera", Role::Viewer, PASSWORD).await;
    let vera = sign_in(&app.base, "vera", PASSWORD).await;
    let mut admin_events = app.events(None).await;
    let r = run(&vera, &app.base, "sleep", "alpha", json!({})).await;
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("only an operator or above may run sleep on alpha"),
        "{text}"
    );
    // The attempt is a security alert.
    let alert = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Security(alert) = next_envelope(&mut admin_events).await.1.event {
                return alert;
            }
        }
    })
    .await
    .expect("a security alert");
    assert_eq!(alert.kind, shared::SecurityKind::Forbidden);
    assert_eq!(alert.user.as_deref(), Some("vera"));
    // A viewer cannot cancel or read the audit trail either.
    let r = vera
        .get(format!("{}/api/audit", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_target_refuses_a_second_run_naming_who_and_a_cancel_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_jobs(dir.path()).await;
    add_user(app.data_dir(), "olga", Role::Operator, PASSWORD).await;
    let olga = sign_in(&app.base, "olga", PASSWORD).await;
    let mut events = app.events(None).await;
    let sleeping = started(run(&olga, &app.base, "sleep", "alpha", json!({})).await).await;

    // Any exclusive command on the same target: 409 with who runs what; another target is free.
    let r = run(
        &app.client,
        &app.base,
        "job",
        "alpha",
        json!({ "code": "0" }),
    )
    .await;
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("alpha is busy: olga is running sleep there"),
        "{text}"
    );
    let other = start_job(&app, "beta", "0").await;
    assert_eq!(other.target, "beta");

    let r = app
        .client
        .post(format!("{}/api/cancel_command", app.base))
        .form(&[("run", sleeping.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (states, _, _) = follow(&mut events, sleeping.id).await;
    assert!(
        states.iter().any(|r| r.cancelling),
        "the tabs see the cancel under way"
    );
    let end = states.last().unwrap();
    assert_eq!(
        (end.state, end.detail.as_str()),
        (RunState::Cancelled, "cancelled by admin")
    );
    // The target is free again, and cancelling an ended run is a 409.
    start_job(&app, "alpha", "0").await;
    let r = app
        .client
        .post(format!("{}/api/cancel_command", app.base))
        .form(&[("run", sleeping.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let trail = audit(&app, "action=command.cancel").await;
    assert_eq!(trail.entries.len(), 1);
    assert_eq!(trail.entries[0].params["run"], sleeping.id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_fails_with_that_reason() {
    let specs = commands(
        r#"
        [[commands]]
        name = "ghost"
        program = "/nonexistent/ghost"
        targets = ["alpha"]
        "#,
    );
    let app = spawn_app_with(move |c| c.commands = specs).await;
    let mut events = app.events(None).await;
    let ghost = started(run(&app.client, &app.base, "ghost", "alpha", json!({})).await).await;
    let (states, _, _) = follow(&mut events, ghost.id).await;
    let end = states.last().unwrap();
    assert_eq!(
        (end.state, end.detail.as_str()),
        (RunState::Failed, "program not found: /nonexistent/ghost")
    );
    let trail = audit(&app, "").await;
    assert_eq!(
        trail.entries[0].detail,
        "Failed: program not found: /nonexistent/ghost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_flood_is_capped_on_the_stream_and_kept_whole_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // 200,000 lines, about 1.3 MB.
    let flood = script(dir.path(), "flood.sh", "seq 1 200000");
    let specs = commands(&format!(
        r#"
        [[commands]]
        name = "flood"
        program = "{flood}"
        targets = ["alpha"]
        "#
    ));
    let app = spawn_app_with(move |c| c.commands = specs).await;
    let mut events = app.events(None).await;
    let flooding = started(run(&app.client, &app.base, "flood", "alpha", json!({})).await).await;
    let (states, lines, capped) = follow(&mut events, flooding.id).await;
    let end = states.last().unwrap();
    assert_eq!(
        (end.state, end.output_lines),
        (RunState::Succeeded, 200_000)
    );
    assert!(capped, "the stream says it stopped");
    assert_eq!(
        lines.len(),
        2_000,
        "the stream carries the first 2,000 lines"
    );
    assert_eq!(lines[1999].text, "2000");
    let tail = output(&app, flooding.id, 199_990).await;
    let texts: Vec<&str> = tail.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts.first(), Some(&"199991"));
    assert_eq!(texts.last(), Some(&"200000"));
    assert!(!tail.more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_audited_without_secrets() {
    let app = spawn_app_with(|_| {}).await;
    let add_pat = |password: &'static str| {
        app.client
            .post(format!("{}/api/add_user", app.base))
            .form(&[("name", "pat"), ("role", "viewer"), ("password", password)])
            .send()
    };
    assert_eq!(add_pat("pat's secret pw").await.unwrap().status(), 200);
    assert_eq!(add_pat("another pw 123").await.unwrap().status(), 409);
    let page = audit(&app, "action=user.add").await;
    let outcomes: Vec<_> = page.entries.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        [shared::Outcome::Failed, shared::Outcome::Succeeded]
    );
    assert_eq!(page.entries[1].target, "pat");
    assert_eq!(page.entries[1].params["role"], "viewer");
    assert!(page.entries[0].detail.contains("already exists"));
    let everything = app
        .client
        .get(format!("{}/api/audit?format=json", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!everything.contains("secret"), "{everything}");
    // The CSV export: a header and a row per entry.
    let r = app
        .client
        .get(format!("{}/api/audit?format=csv&actor={ADMIN}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"watchpost-audit-")
    );
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with(
        "id,time,actor,role,ip,action,target,params,outcome,detail,duration_ms,host,environment"
    ));
    let r = app
        .client
        .get(format!("{}/api/audit?format=xml", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_under_way_when_watchpost_is_killed_shows_as_interrupted_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    add_user(data.path(), ADMIN, Role::Admin, PASSWORD).await;
    let config = scripts.path().join("watchpost.toml");
    std::fs::write(&config, job_commands(scripts.path())).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let (mut child, addr) = start_binary(data.path(), &["--config", &config]);
    let base = format!("http://{addr}");
    let client = sign_in(&base, ADMIN, PASSWORD).await;
    let sleeping = started(run(&client, &base, "sleep", "alpha", json!({})).await).await;
    child.kill().unwrap(); // SIGKILL: no chance to record anything
    child.wait().unwrap();

    let (mut child, addr) = start_binary(data.path(), &["--config", &config]);
    let base = format!("http://{addr}");
    let client = sign_in(&base, ADMIN, PASSWORD).await;
    let mut events = stream_of(&client, &base, None).await;
    let Event::Snapshot(snapshot) = next_envelope(&mut events).await.1.event else {
        panic!("a snapshot first")
    };
    let run = snapshot
        .runs
        .iter()
        .find(|r| r.id == sleeping.id)
        .expect("the run is in the state");
    assert_eq!(run.state, RunState::Interrupted);
    let page: AuditPage =
        get_json(&client, &format!("{base}/api/audit?action=command.sleep")).await;
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].outcome, shared::Outcome::Interrupted);
    // The target is free after the restart.
    started(run_again(&client, &base).await).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn run_again(client: &reqwest::Client, base: &str) -> reqwest::Response {
    run(client, base, "job", "alpha", json!({ "code": "0" })).await
}

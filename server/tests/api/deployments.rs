//! Deployment status: CI reports over `POST /api/deployments` (GitHub-style statuses, with a token) and deploy
//! commands run from Watchpost both move the (service, environment) indicator, on the stream and in the store.

use crate::helpers::{
    Events, PATIENCE, TestApp, add_token, get_json, http_client, next_envelope, spawn_app_with,
};
use serde_json::{Value, json};
use server::testing::{CommandFile, CommandSpec, check_all};
use shared::{DeployState, Deployment, Event, Role};
use std::os::unix::fs::PermissionsExt;

async fn report(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    http_client()
        .post(format!("{}/api/deployments", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A shell script at `dir/name` holding `script`, and the commands of `toml` (where `{program}` stands for
/// the script's path), checked.
fn deploy_commands(
    dir: &std::path::Path,
    name: &str,
    script: &str,
    toml: &str,
) -> Vec<CommandSpec> {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    #[derive(serde::Deserialize)]
    struct File {
        commands: Vec<CommandFile>,
    }
    let file: File =
        toml::from_str(&toml.replace("{program}", &path.display().to_string())).unwrap();
    check_all(file.commands).unwrap()
}

/// The deployment events of `id` until one is finished.
async fn follow(events: &mut Events, service: &str) -> Vec<Deployment> {
    let mut seen: Vec<Deployment> = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Deployment(d) = next_envelope(events).await.1.event
                && d.service == service
            {
                let done = d.state.finished();
                seen.push(d);
                if done {
                    return;
                }
            }
        }
    })
    .await
    .expect("the deployment finishes in time");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_reports_move_a_deployment_through_its_states() {
    let app = spawn_app_with(|_| {}).await;
    let token = add_token(app.data_dir(), "ci", Role::Operator).await;
    let mut events = app.events(None).await;

    let r = report(
        &app,
        &token,
        json!({ "service": "shop", "environment": "production", "ref": "v1.4.2", "state": "queued",
                "log_url": "https://ci.example/runs/7" }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let queued: Deployment = r.json().await.unwrap();
    assert_eq!(
        (queued.state, queued.version.as_str(), queued.actor.as_str()),
        (DeployState::Queued, "v1.4.2", "token:ci")
    );
    let r = report(
        &app,
        &token,
        json!({ "id": queued.id, "state": "in_progress", "step": "migrating", "progress": 40 }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = report(&app, &token, json!({ "id": queued.id, "state": "success" })).await;
    assert_eq!(r.status(), 200);
    let done: Deployment = r.json().await.unwrap();
    assert_eq!(
        (done.state, done.progress, done.step.as_deref()),
        (DeployState::Success, Some(100.0), None)
    );
    assert!(done.finished_ms.is_some());
    assert_eq!(done.url.as_deref(), Some("https://ci.example/runs/7"));

    // Every tab saw each status, in order.
    let seen = follow(&mut events, "shop").await;
    let states: Vec<_> = seen.iter().map(|d| d.state).collect();
    assert_eq!(
        states,
        [
            DeployState::Queued,
            DeployState::InProgress,
            DeployState::Success
        ]
    );
    assert_eq!(seen[1].step.as_deref(), Some("migrating"));

    let history: Vec<Deployment> = get_json(
        &app.client,
        &format!("{}/api/deployments?service=shop", app.base),
    )
    .await;
    assert_eq!(history, vec![done]);
    let trail: shared::AuditPage = get_json(
        &app.client,
        &format!("{}/api/audit?action=deployment.report", app.base),
    )
    .await;
    assert_eq!(trail.entries.len(), 3);
    assert_eq!(trail.entries[2].actor, "token:ci");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_get_a_clear_error() {
    let app = spawn_app_with(|_| {}).await;
    let token = add_token(app.data_dir(), "ci", Role::Operator).await;
    let viewer = add_token(app.data_dir(), "watcher", Role::Viewer).await;
    let good =
        json!({ "service": "shop", "environment": "prod", "version": "1", "state": "queued" });
    for (body, status, message) in [
        (
            json!({ "service": "shop", "environment": "prod", "version": "1", "state": "done" }),
            400,
            "state must be one of",
        ),
        (
            json!({ "environment": "prod", "version": "1", "state": "queued" }),
            400,
            "service is needed",
        ),
        (
            json!({ "service": "shop", "environment": "prod", "version": "1", "state": "queued",
                    "log_url": "javascript:alert(1)" }),
            400,
            "http:// or https://",
        ),
        (
            json!({ "service": "shop", "environment": "prod", "version": "1", "state": "queued",
                    "progress": 140 }),
            400,
            "between 0 and 100",
        ),
        (
            json!({ "service": "shop", "state": "queued", "colour": "red" }),
            400,
            "unknown field",
        ),
        (
            json!({ "id": 999, "state": "success" }),
            404,
            "no deployment 999",
        ),
    ] {
        let r = report(&app, &token, body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains(message), "{body}: {text}");
    }
    assert_eq!(report(&app, &viewer, good.clone()).await.status(), 403);
    let anonymous = http_client()
        .post(format!("{}/api/deployments", app.base))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let garbage = http_client()
        .post(format!("{}/api/deployments", app.base))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_command_moves_the_indicator_with_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let specs = deploy_commands(
        dir.path(),
        "deploy.sh",
        "#!/bin/sh\necho \"step 1/2: build $1\"\nsleep 0.3\necho 'step 2/2: switch'\nsleep 0.3\n\
         case \"$2\" in *bad*) exit 1;; esac\n",
        r#"
        [[commands]]
        name = "deploy"
        kind = "deploy"
        program = "{program}"
        args = ["{target}", "{version}", "{environment}"]
        targets = ["shop"]
        params = { version = { pattern = "[0-9.]+(-bad)?" }, environment = { values = ["staging", "production"] } }
        "#,
    );
    let app = spawn_app_with(move |c| c.commands = specs).await;
    let mut events = app.events(None).await;
    let start = |version: &str| {
        app.client
            .post(format!("{}/api/run_command", app.base))
            .json(&json!({ "name": "deploy", "target": "shop",
                           "params": { "version": version, "environment": "staging" } }))
            .send()
    };
    let r = start("2.0.1").await.unwrap();
    assert_eq!(r.status(), 200);
    let run: shared::CommandRun = r.json().await.unwrap();
    // A second deploy while the first runs: 409, naming who deploys.
    let r = start("2.0.9").await.unwrap();
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("shop is busy: admin is running deploy there"),
        "{text}"
    );
    let seen = follow(&mut events, "shop").await;
    let states: Vec<_> = seen.iter().map(|d| d.state).collect();
    assert_eq!(states.first(), Some(&DeployState::Queued));
    assert!(states.contains(&DeployState::InProgress));
    assert_eq!(states.last(), Some(&DeployState::Success));
    let steps: Vec<_> = seen
        .iter()
        .filter_map(|d| d.step.clone().zip(d.progress))
        .collect();
    assert_eq!(
        steps,
        [
            ("build shop".to_owned(), 50.0),
            ("switch".to_owned(), 100.0)
        ]
    );
    let last = seen.last().unwrap();
    assert_eq!(
        (
            last.version.as_str(),
            last.environment.as_str(),
            last.run,
            last.actor.as_str()
        ),
        ("2.0.1", "staging", Some(run.id), crate::helpers::ADMIN)
    );

    let r = start("2.0.2-bad").await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = follow(&mut events, "shop").await;
    let last = seen.last().unwrap();
    assert_eq!(
        (last.state, last.description.as_deref()),
        (DeployState::Failure, Some("exit status 1"))
    );
}

/// A deployment carried out by a command only admins may run is seen as far as the command's runs are: a
/// viewer's stream, snapshot and list never show who ran it or its steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_only_deploy_is_not_shown_to_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let specs = deploy_commands(
        dir.path(),
        "rotate.sh",
        "#!/bin/sh\necho 'step 1/1: rotate the secret'\n",
        r#"
        [[commands]]
        name = "rotate"
        kind = "deploy"
        role = "admin"
        program = "{program}"
        targets = ["vault"]
        "#,
    );
    let app = spawn_app_with(move |c| c.commands = specs).await;
    crate::helpers::add_user(
        app.data_dir(),
        "vic",
        Role::Viewer,
        crate::helpers::PASSWORD,
    )
    .await;
    let viewer = crate::helpers::sign_in(&app.base, "vic", crate::helpers::PASSWORD).await;
    let mut viewer_events = crate::helpers::stream_of(&viewer, &app.base, None).await;
    let mut admin_events = app.events(None).await;
    let r = app
        .client
        .post(format!("{}/api/run_command", app.base))
        .json(&json!({ "name": "rotate", "target": "vault" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = follow(&mut admin_events, "vault").await;
    assert_eq!(seen.last().map(|d| d.state), Some(DeployState::Success));
    assert_eq!(seen.last().map(|d| d.audience), Some(Role::Admin));

    // The viewer's stream carried none of it.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        loop {
            if let Event::Deployment(d) = next_envelope(&mut viewer_events).await.1.event {
                panic!("a viewer saw {d:?}");
            }
        }
    })
    .await;
    let listed: Vec<Deployment> = get_json(&viewer, &format!("{}/api/deployments", app.base)).await;
    assert!(listed.is_empty(), "{listed:?}");
    let (_, first) =
        next_envelope(&mut crate::helpers::stream_of(&viewer, &app.base, None).await).await;
    let Event::Snapshot(snapshot) = first.event else {
        panic!("a snapshot first")
    };
    assert!(
        snapshot.deployments.is_empty(),
        "{:?}",
        snapshot.deployments
    );
    let listed: Vec<Deployment> =
        get_json(&app.client, &format!("{}/api/deployments", app.base)).await;
    assert_eq!(listed.len(), 1);
}

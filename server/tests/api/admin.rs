//! The admin's server functions (users and tokens), the permission table behind them, and what the event
//! stream carries to whom: account changes reach admins only, and a user's streams are limited.

use crate::helpers::{
    ADMIN, Events, PASSWORD, PATIENCE, add_user, http_client, next_envelope, next_event, sign_in,
    spawn_app, spawn_app_with, stream_of,
};
use serde_json::Value;
use shared::{AccountsView, AfterClose, Envelope, Event, NewToken, Role, StreamClosed, User};
use std::time::Duration;

/// Calls a server function with a form body, as `ActionForm` does.
async fn call(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(format!("{base}/api/{name}"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn accounts(client: &reqwest::Client, base: &str) -> AccountsView {
    let r = call(client, base, "list_accounts", &[]).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Events of `kind` within `window`, pings and everything else skipped.
async fn events_of(events: &mut Events, kind: &str, window: Duration) -> Vec<Envelope> {
    let mut found = Vec::new();
    let _ = tokio::time::timeout(window, async {
        loop {
            let e = next_event(events).await;
            if e.event == kind {
                found.push(serde_json::from_str(&e.data).unwrap());
            }
        }
    })
    .await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_users_and_tokens_and_the_rules_hold() {
    let app = spawn_app().await;
    let base = &app.base;
    let r = call(
        &app.client,
        base,
        "add_user",
        &[
            ("name", "olga"),
            ("role", "operator"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let olga: User = r.json().await.unwrap();
    assert_eq!(olga.role, Role::Operator);
    // A taken name, a short password, a bad name: each says why.
    for (form, status, message) in [
        (
            vec![("name", "olga"), ("role", "viewer"), ("password", PASSWORD)],
            409,
            "a user named 'olga' already exists",
        ),
        (
            vec![("name", "pat"), ("role", "viewer"), ("password", "short")],
            400,
            "at least 8 characters",
        ),
        (
            vec![("name", "p t"), ("role", "viewer"), ("password", PASSWORD)],
            400,
            "letters, digits",
        ),
    ] {
        let r = call(&app.client, base, "add_user", &form).await;
        assert_eq!(r.status(), status, "{form:?}");
        let text = r.text().await.unwrap();
        assert!(text.contains(message), "{text}");
    }
    // The last admin stays an admin.
    let admin = accounts(&app.client, base)
        .await
        .users
        .into_iter()
        .find(|u| u.name == ADMIN)
        .unwrap();
    let id = admin.id.to_string();
    let r = call(
        &app.client,
        base,
        "update_user",
        &[("id", &id), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("last admin"));
    assert_eq!(
        call(&app.client, base, "remove_user", &[("id", &id)])
            .await
            .status(),
        409
    );

    // Olga signs in; disabling her ends her session at once.
    let as_olga = sign_in(base, "olga", PASSWORD).await;
    assert_eq!(
        as_olga
            .get(format!("{base}/api/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let olga_id = olga.id.to_string();
    let r = call(
        &app.client,
        base,
        "update_user",
        &[("id", &olga_id), ("disabled", "true")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        as_olga
            .get(format!("{base}/api/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // A token is shown once, works at once, and stops at once when revoked.
    let r = call(
        &app.client,
        base,
        "create_token",
        &[("name", "shipper"), ("role", "operator")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let created: NewToken = r.json().await.unwrap();
    let anon = http_client();
    let ingest = || {
        anon.post(format!("{base}/api/ingest/logs"))
            .bearer_auth(&created.secret)
            .json(&serde_json::json!({ "level": "info", "service": "s", "message": "m" }))
            .send()
    };
    assert_eq!(ingest().await.unwrap().status(), 200);
    let listed = accounts(&app.client, base).await.tokens;
    assert!(
        listed
            .iter()
            .any(|t| t.name == "shipper" && t.revoked_ms.is_none())
    );
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&created.secret),
        "never listed again"
    );
    let r = call(
        &app.client,
        base,
        "revoke_token",
        &[("id", &created.token.id.to_string())],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(ingest().await.unwrap().status(), 401);

    assert_eq!(
        call(&app.client, base, "remove_user", &[("id", &olga_id)])
            .await
            .status(),
        200
    );
    assert!(
        accounts(&app.client, base)
            .await
            .users
            .iter()
            .all(|u| u.name != "olga")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_refused_admin_actions() {
    let app = spawn_app().await;
    add_user(app.data_dir(), "vera", Role::Viewer, PASSWORD).await;
    let vera = sign_in(&app.base, "vera", PASSWORD).await;
    for (name, form) in [
        ("list_accounts", vec![]),
        (
            "add_user",
            vec![("name", "x"), ("role", "admin"), ("password", PASSWORD)],
        ),
        ("create_token", vec![("name", "mine"), ("role", "admin")]),
    ] {
        let r = call(&vera, &app.base, name, &form).await;
        assert_eq!(r.status(), 403, "{name}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("only an admin or above may"),
            "{name}: {text}"
        );
    }
    // Nothing was created.
    let view = accounts(&app.client, &app.base).await;
    assert!(view.users.iter().all(|u| u.name != "x") && view.tokens.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_reach_admins_streams_only() {
    let app = spawn_app().await;
    add_user(app.data_dir(), "vera", Role::Viewer, PASSWORD).await;
    let vera = sign_in(&app.base, "vera", PASSWORD).await;
    let mut admin_events = app.events(None).await;
    let mut viewer_events = stream_of(&vera, &app.base, None).await;
    // An id the hub really issued before the change, to resume from below (an id it never issued would get
    // a snapshot, not a replay).
    let (_, before) = next_envelope(&mut admin_events).await;
    let r = call(
        &app.client,
        &app.base,
        "add_user",
        &[
            ("name", "newbie"),
            ("role", "viewer"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);

    let seen = events_of(&mut admin_events, "accounts", Duration::from_secs(2)).await;
    assert_eq!(seen.len(), 1, "the admin's stream carries the change");
    let Event::Accounts(view) = &seen[0].event else {
        panic!("{seen:?}")
    };
    assert!(view.users.iter().any(|u| u.name == "newbie"));

    // The viewer's stream goes on (health events arrive) but never carries accounts, live or replayed.
    let health = events_of(&mut viewer_events, "health", Duration::from_secs(1)).await;
    assert!(!health.is_empty());
    let all = events_of(&mut viewer_events, "accounts", Duration::from_secs(1)).await;
    assert!(all.is_empty());
    // Resuming after an id from before the change: the admin's replay holds the change, the viewer's not.
    let mut admin_replay = stream_of(&app.client, &app.base, Some(before.seq)).await;
    assert_eq!(
        events_of(&mut admin_replay, "accounts", Duration::from_secs(1))
            .await
            .len(),
        1,
        "a replay, not a snapshot"
    );
    let mut replayed = stream_of(&vera, &app.base, Some(before.seq)).await;
    assert!(
        events_of(&mut replayed, "accounts", Duration::from_secs(1))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_limit_a_users_oldest_stream_is_closed_with_a_reason() {
    let app = spawn_app_with(|c| c.stream.max_streams_per_user = 2).await;
    let mut first = app.events(None).await;
    let _second = app.events(None).await;
    next_event(&mut first).await; // the snapshot
    let _third = app.events(None).await;
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            let e = next_event(&mut first).await;
            if e.event == "closed" {
                return e;
            }
        }
    })
    .await
    .expect("the oldest stream is told it is closed");
    let data: Value = serde_json::from_str(&closed.data).unwrap();
    assert!(
        data["reason"]
            .as_str()
            .unwrap()
            .contains("more than 2 tabs"),
        "{data}"
    );
    // And the stream ends.
    let end = tokio::time::timeout(PATIENCE, futures::StreamExt::next(&mut first))
        .await
        .unwrap();
    assert!(end.is_none());
    tokio::time::timeout(PATIENCE, async {
        while app.healthz().await.stream_clients != 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("two streams stay open");
}

/// Waits for the stream's `closed` event; then the stream must end.
async fn closed_event(events: &mut Events) -> StreamClosed {
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            let e = next_event(events).await;
            if e.event == "closed" {
                return serde_json::from_str::<StreamClosed>(&e.data).unwrap();
            }
        }
    })
    .await
    .expect("the stream is told why it ends");
    let end = tokio::time::timeout(PATIENCE, futures::StreamExt::next(events))
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "nothing after the closed event");
    closed
}

/// Whether the stream is still carrying live events (a reading comes through).
async fn still_live(events: &mut Events) -> bool {
    !events_of(events, "health", Duration::from_millis(600))
        .await
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_credential_ends_the_streams_opened_with_it() {
    let app = spawn_app().await;
    let base = &app.base;
    add_user(app.data_dir(), "sam", Role::Operator, PASSWORD).await;
    add_user(app.data_dir(), "tina", Role::Viewer, PASSWORD).await;
    let (sam_laptop, sam_phone) = (
        sign_in(base, "sam", PASSWORD).await,
        sign_in(base, "sam", PASSWORD).await,
    );
    let tina = sign_in(base, "tina", PASSWORD).await;
    let secret = crate::helpers::add_token(app.data_dir(), "agent", Role::Viewer).await;
    let agent = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {secret}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let mut on_laptop = stream_of(&sam_laptop, base, None).await;
    let mut on_phone = stream_of(&sam_phone, base, None).await;
    let mut as_tina = stream_of(&tina, base, None).await;
    let mut as_agent = stream_of(&agent, base, None).await;

    // Signing out on the laptop ends the laptop's stream only.
    let r = sam_laptop
        .post(format!("{base}/api/logout"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let closed = closed_event(&mut on_laptop).await;
    assert_eq!(
        (closed.reason.as_str(), closed.then),
        ("you signed out", AfterClose::SignIn)
    );
    assert!(still_live(&mut on_phone).await, "the other session goes on");

    // A new role: the phone's stream ends and asks for a reload, which opens a stream for the new role.
    let users = accounts(&app.client, base).await.users;
    let id = |name: &str| {
        users
            .iter()
            .find(|u| u.name == name)
            .unwrap()
            .id
            .to_string()
    };
    let r = call(
        &app.client,
        base,
        "update_user",
        &[("id", &id("sam")), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(closed_event(&mut on_phone).await.then, AfterClose::Reload);
    let me: shared::Me = crate::helpers::get_json(&sam_phone, &format!("{base}/api/me")).await;
    assert_eq!(me.role, Role::Viewer, "the session itself goes on");

    // Disabling a user and revoking a token end theirs.
    let r = call(
        &app.client,
        base,
        "update_user",
        &[("id", &id("tina")), ("disabled", "true")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        closed_event(&mut as_tina).await,
        StreamClosed {
            reason: "an admin disabled your account".into(),
            then: AfterClose::SignIn
        }
    );
    assert!(still_live(&mut as_agent).await);
    let token = accounts(&app.client, base)
        .await
        .tokens
        .into_iter()
        .find(|t| t.name == "agent")
        .unwrap();
    let r = call(
        &app.client,
        base,
        "revoke_token",
        &[("id", &token.id.to_string())],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(closed_event(&mut as_agent).await.then, AfterClose::Stay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_session_expires() {
    let app = spawn_app_with(|c| c.auth.session_ttl = Duration::from_secs(2)).await;
    let client = sign_in(&app.base, ADMIN, PASSWORD).await;
    let mut events = stream_of(&client, &app.base, None).await;
    let closed = closed_event(&mut events).await;
    assert_eq!(closed.then, AfterClose::SignIn);
    assert!(closed.reason.contains("expired"), "{}", closed.reason);
    assert_eq!(
        client
            .get(format!("{}/api/events", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "and a new one is refused"
    );
}

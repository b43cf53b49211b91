//! Accounts: signing in and out, the first-run setup link, the session cookie, API tokens, roles on the
//! ingest route, and the same-origin check on state-changing requests.

use crate::helpers::{
    ADMIN, PASSWORD, add_token, add_user, http_client, sign_in, spawn_app, start_binary_with_log,
};
use serde_json::{Value, json};
use shared::Role;
use std::io::Write;
use std::process::{Command, Stdio};

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_works_with_the_right_password_only() {
    let app = spawn_app().await;
    let login = |body: Value| {
        app.anon
            .post(format!("{}/api/login", app.base))
            .json(&body)
            .send()
    };
    // A wrong password and an unknown user get the same answer.
    for (name, password) in [(ADMIN, "wrong password"), ("nobody", PASSWORD)] {
        let r = login(json!({ "name": name, "password": password }))
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("set-cookie").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "wrong user name or password");
    }

    // The HTML form: a failure goes back to the sign-in page, a success to where the user was going.
    let form = |password: &str| {
        app.anon
            .post(format!("{}/api/login", app.base))
            .form(&[
                ("name", ADMIN),
                ("password", password),
                ("next", "/?range=1h"),
            ])
            .send()
    };
    let r = form("nope").await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?failed=1&next=%2F%3Frange%3D1h");
    let r = form(PASSWORD).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?range=1h");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("watchpost_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP unless configured: {cookie}"
    );

    // An open redirect is refused: only local paths are followed, and none a browser would read as another
    // host once it drops tabs and newlines or turns `\` into `/`.
    for next in [
        "//evil.example/",
        "/\t/evil.example",
        "/\\evil.example",
        "/\n/evil.example",
    ] {
        let r = app
            .anon
            .post(format!("{}/api/login", app.base))
            .form(&[("name", ADMIN), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&r), "/", "{next:?}");
    }

    let me: Value = app
        .client
        .get(format!("{}/api/me", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some(ADMIN), Some("admin"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_but_health_and_the_sign_in_page_needs_a_session() {
    let app = spawn_app().await;
    for path in [
        "/api/events",
        "/api/history?metric=cpu&range=1h",
        "/api/logs",
        "/api/me",
        // Route names and traffic are the team's own business; a scraper brings a token.
        "/metrics",
    ] {
        let r = app
            .anon
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("sign in"),
            "{path}: {body}"
        );
    }
    let r = app
        .anon
        .post(format!("{}/api/snapshot", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "server functions too");
    // A browser asking for a page is sent to sign in, and comes back to it afterwards.
    let r = app
        .anon
        .get(format!("{}/?range=24h", app.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?next=/%3Frange%3D24h");
    for path in ["/healthz", "/login"] {
        let r = app
            .anon
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let page = crate::helpers::get_text(&app.anon, &format!("{}/login", app.base)).await;
    assert!(page.contains(r#"action="/api/login""#), "{page}");
    // Where to go after signing in is in the HTML itself, so a form sent before the page is interactive
    // keeps it.
    let page = crate::helpers::get_text(
        &app.anon,
        &format!("{}/login?next=%2F%3Frange%3D24h", app.base),
    )
    .await;
    assert!(
        page.contains(r#"name="next" value="/?range=24h""#),
        "{page}"
    );
    // With the session, the stream opens.
    assert_eq!(app.open_stream(None).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_at_once() {
    let app = spawn_app().await;
    let me = || app.client.get(format!("{}/api/me", app.base)).send();
    assert_eq!(me().await.unwrap().status(), 200);
    let r = app
        .client
        .post(format!("{}/api/logout", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(me().await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_needs_an_operator_and_tokens_work_until_revoked() {
    let app = spawn_app().await;
    let data = app.data_dir().to_owned();
    let line = json!({ "level": "error", "service": "api", "message": "boom" });
    let ingest = |client: &reqwest::Client, token: Option<&str>| {
        let mut r = client
            .post(format!("{}/api/ingest/logs", app.base))
            .json(&line);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    add_user(&data, "vera", Role::Viewer, PASSWORD).await;
    let viewer = sign_in(&app.base, "vera", PASSWORD).await;
    let r = ingest(&viewer, None).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "only an operator or above may ingest logs; vera is viewer"
    );

    let token = add_token(&data, "shipper", Role::Operator).await;
    let anon = http_client();
    assert_eq!(ingest(&anon, Some(&token)).await.unwrap().status(), 200);
    let viewer_token = add_token(&data, "reader", Role::Viewer).await;
    assert_eq!(
        ingest(&anon, Some(&viewer_token)).await.unwrap().status(),
        403
    );

    // Revoked in the store (as the admin page and CLI do): refused on the very next request.
    let store = store::SqliteStore::open(
        &data.join(server::DATABASE_FILE),
        &store::OpenOptions::default(),
    )
    .await
    .unwrap();
    let id = store::Accounts::tokens(&store)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "shipper")
        .unwrap()
        .id;
    store::Accounts::revoke_token(&store, id, 1).await.unwrap();
    let r = ingest(&anon, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not valid"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_post_is_refused() {
    let app = spawn_app().await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let post = |headers: &[(&str, &str)]| {
        let mut r = app
            .client
            .post(format!("{}/api/ingest/logs", app.base))
            .json(&json!({ "level": "warn", "service": "api", "message": "m" }));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", "http://evil.example"),
        ],
    ] {
        let r = post(&headers).await.unwrap();
        assert_eq!(r.status(), 403, "{headers:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "cross-origin request refused");
    }
    let same = format!("http://{host}");
    for headers in [
        vec![("origin", same.as_str())],
        vec![("sec-fetch-site", "same-origin"), ("origin", same.as_str())],
    ] {
        assert_eq!(post(&headers).await.unwrap().status(), 200, "{headers:?}");
    }
    // The sign-in form too: a login CSRF would sign the victim in as the attacker.
    let r = app
        .anon
        .post(format!("{}/api/login", app.base))
        .header("origin", "http://evil.example")
        .json(&json!({ "name": ADMIN, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_install_prints_a_one_time_setup_link() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr, log) = start_binary_with_log(data.path(), &[]);
    let line = log
        .iter()
        .find(|l| l.contains("/setup?code="))
        .unwrap_or_else(|| panic!("a setup link in {log:?}"));
    let code = line
        .split("/setup?code=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let base = format!("http://{addr}");
    let anon = http_client();
    // Nothing but the setup page works yet, and the API says why.
    let r = anon.get(format!("{base}/api/logs")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("setup link"),
        "{body}"
    );

    let setup = |code: &str, password: &str| {
        anon.post(format!("{base}/api/setup"))
            .json(&json!({ "code": code, "name": "root", "password": password }))
            .send()
    };
    assert_eq!(setup(&code, "short").await.unwrap().status(), 400);
    assert_eq!(setup("0000", PASSWORD).await.unwrap().status(), 403);
    let r = setup(&code, PASSWORD).await.unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("root"), Some("admin"))
    );
    // Signed in by the setup itself, and the link is spent.
    assert_eq!(
        anon.get(format!("{base}/api/logs"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(setup(&code, PASSWORD).await.unwrap().status(), 403);
    child.kill().unwrap();
    child.wait().unwrap();
    // No link once an account exists.
    let (mut child, _, log) = start_binary_with_log(data.path(), &[]);
    assert!(!log.iter().any(|l| l.contains("/setup?code=")), "{log:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_adds_users_and_tokens() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchpost"))
            .args(args)
            .env("WATCHPOST_DATA_DIR", data.path())
            .env_remove("WATCHPOST_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(
        &[
            "user",
            "add",
            "olga",
            "--role",
            "operator",
            "--password-stdin",
        ],
        "olga's password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "added olga (operator)\n"
    );
    let out = run(
        &[
            "user",
            "add",
            "olga",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "another one\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a user named 'olga' already exists"));
    let out = run(
        &["user", "add", "bad name", "--role", "viewer"],
        "whatever1\n",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("letters, digits"));
    let out = run(&["user", "add", "x", "--role", "root"], "whatever1\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role 'root'"));
    let out = run(&["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "olga\toperator\n");
    let out = run(&["token", "add", "ci", "--role", "operator"], "");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("wpt_") && token.len() == 68, "{token}");

    let (mut child, addr, log) = start_binary_with_log(data.path(), &[]);
    assert!(!log.iter().any(|l| l.contains("setup?code")));
    let base = format!("http://{addr}");
    let olga = sign_in(&base, "olga", "olga's password").await;
    assert_eq!(
        olga.get(format!("{base}/api/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = http_client()
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["name"], "token:ci");
    child.kill().unwrap();
    child.wait().unwrap();
    // Neither secret is in the database (or its write-ahead log) in the clear.
    for file in ["watchpost.db", "watchpost.db-wal"] {
        let bytes = std::fs::read(data.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{file}"
        );
        assert!(
            !bytes.windows(15).any(|w| w == b"olga's password"),
            "{file}"
        );
    }
}

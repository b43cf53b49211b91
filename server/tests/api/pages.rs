//! The server-rendered dashboard and `/healthz`.

use crate::helpers::{get_text, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_version_clients_last_sample_and_rss() {
    let app = spawn_app().await;
    let _stream = app.open_stream(None).await;
    let report = app.first_sample().await;
    assert_eq!(report.status, "ok");
    assert_eq!(report.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(report.stream_clients, 1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sampled = report.last_sample_ms.unwrap();
    assert!(
        sampled <= now_ms && sampled > now_ms - 60_000,
        "the last sample is recent"
    );
    assert!(report.rss_bytes.unwrap() > 1 << 20, "RSS is a real reading");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_html_carries_current_values_before_any_script_runs() {
    let app = spawn_app().await;
    app.first_sample().await;
    let response = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("Server health"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(html.contains(hostname.trim()), "the host name is rendered");
    // The CPU gauge's figure is in the HTML: a number and a percent sign.
    let at = html
        .find("data-testid=\"gauge-cpu-value\"")
        .expect("the CPU value is rendered");
    let figure: String = html[at..]
        .chars()
        .skip_while(|&c| c != '>')
        .skip(1)
        .take_while(|&c| c != '<')
        .collect();
    assert!(
        figure.ends_with('%') && figure.trim_end_matches('%').parse::<f64>().is_ok(),
        "{figure:?}"
    );
    for panel in [
        "Error log",
        "API performance",
        "Database",
        "Security alerts",
        "Deployments",
        "Controls",
    ] {
        assert!(html.contains(panel), "{panel} has a slot");
    }
    // A fresh install has neither: each says so, and how to get one.
    assert!(html.contains("No deployments yet."));
    assert!(html.contains("No commands are configured."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_page_is_a_404() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/no-such-page", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// Every response carries the security headers; a page's policy names the nonce its inline scripts carry,
/// anything else gets a policy that allows nothing; pages and API answers are never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_apis_carry_security_headers_and_a_nonce_policy() {
    let app = spawn_app().await;
    app.first_sample().await;
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header(&page, "content-security-policy");
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(header(&page, name), value, "{name}");
    }
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy")
        .to_owned();
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the inline scripts carry the policy's nonce"
    );
    // A fresh nonce per response.
    let again = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert!(!header(&again, "content-security-policy").contains(&nonce));

    let api = app
        .client
        .get(format!("{}/api/me", app.base))
        .send()
        .await
        .unwrap();
    assert!(header(&api, "content-security-policy").starts_with("default-src 'none'"));
    assert_eq!(header(&api, "cache-control"), "no-store");
    assert_eq!(header(&api, "x-frame-options"), "DENY");
    let refused = app
        .anon
        .get(format!("{}/api/me", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&refused, "x-content-type-options"), "nosniff");
    let icon = app
        .anon
        .get(format!("{}/favicon.svg", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&icon, "cache-control"), "no-cache");
}

/// An empty built site whose `hash.txt` names `hash` for the JS, the WASM and the CSS.
fn hashed_site(hash: &str) -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("pkg")).unwrap();
    std::fs::write(
        site.path().join("hash.txt"),
        format!("js: {hash}\nwasm: {hash}\ncss: {hash}\n"),
    )
    .unwrap();
    site
}

/// A site built with content hashes (as `cargo leptos build` makes it): the page asks for every static file by
/// its hashed name, and those are kept for a year without revalidation, so a second visit downloads none of
/// them; an unhashed or missing file is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_static_files_are_referenced_by_the_page_and_kept_for_a_year() {
    const HASH: &str = "Xk3_9aZ-0qWmLr7tYb2c1Q";
    let site = hashed_site(HASH);
    for ext in ["js", "wasm", "css"] {
        std::fs::write(site.path().join(format!("pkg/watchpost.{HASH}.{ext}")), ext).unwrap();
    }
    std::fs::write(site.path().join("echarts.7QHXKZ2M.js"), "var echarts;").unwrap();
    std::fs::write(site.path().join("favicon.svg"), "<svg/>").unwrap();
    let root = site.path().to_owned();
    let app = spawn_app_with(move |c| c.server.site_root = root).await;

    let html = get_text(&app.client, &format!("{}/", app.base)).await;
    let files = [
        format!("/pkg/watchpost.{HASH}.js"),
        format!("/pkg/watchpost.{HASH}.wasm"),
        format!("/pkg/watchpost.{HASH}.css"),
        "/echarts.7QHXKZ2M.js".to_owned(),
    ];
    for file in &files {
        assert!(
            html.contains(&format!("\"{file}\"")),
            "the page references {file}"
        );
    }
    assert!(!html.contains("/pkg/watchpost.js"), "no unhashed name");
    assert!(!html.contains("\"/echarts.js\""), "no unhashed name");

    let cache_control = |path: String| {
        let app = &app;
        async move {
            let r = app
                .anon
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let cache = r
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (status, cache)
        }
    };
    for file in files {
        assert_eq!(
            cache_control(file.clone()).await,
            (200, "public, max-age=31536000, immutable".to_owned()),
            "{file}"
        );
    }
    assert_eq!(
        cache_control("/favicon.svg".into()).await,
        (200, "no-cache".to_owned())
    );
    let (status, cache) = cache_control("/pkg/watchpost.AAAAAAAAAAAAAAAAAAAAAA.js".into()).await;
    assert_eq!(status, 404);
    assert!(
        !cache.contains("immutable"),
        "a missing file is not final: {cache}"
    );
}

/// A site with the dashboard's own build beside the whole app's (`scripts/dashboard-build.sh`): the dashboard
/// loads that build and not the whole app, every other page the whole app (which holds them); both with the
/// same stylesheet, and a year of caching for the dashboard's files too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_loads_its_own_build_and_other_pages_the_whole_app() {
    const HASH: &str = "Wa3_9aZ-0qWmLr7tYb2c1Q";
    const DASHBOARD: &str = "5f0c2a9d41e7b3c8a6d2";
    let site = hashed_site(HASH);
    for ext in ["js", "wasm", "css"] {
        std::fs::write(site.path().join(format!("pkg/watchpost.{HASH}.{ext}")), ext).unwrap();
    }
    for ext in ["js", "wasm"] {
        std::fs::write(
            site.path()
                .join(format!("pkg/watchpost-dashboard.{DASHBOARD}.{ext}")),
            ext,
        )
        .unwrap();
    }
    let made_beside = |app_hash: &str| {
        std::fs::write(
            site.path().join("hash-dashboard.txt"),
            format!("js: {DASHBOARD}\nwasm: {DASHBOARD}\napp: {app_hash}\n"),
        )
        .unwrap();
    };
    // Made beside another build of the whole app (cargo-leptos rebuilt the site since): not used.
    made_beside("Zz9_0aZ-0qWmLr7tYb2c1Q");
    let root = site.path().to_owned();
    let app = spawn_app_with(move |c| c.server.site_root = root).await;
    let stale = get_text(&app.client, &format!("{}/", app.base)).await;
    assert!(
        stale.contains(&format!("/pkg/watchpost.{HASH}.js"))
            && !stale.contains("watchpost-dashboard"),
        "a dashboard build made beside another whole app is not used"
    );
    made_beside(HASH);

    let dashboard = get_text(&app.client, &format!("{}/?range=1h", app.base)).await;
    for file in [
        format!("/pkg/watchpost-dashboard.{DASHBOARD}.js"),
        format!("/pkg/watchpost.{HASH}.css"),
    ] {
        assert!(dashboard.contains(&file), "the dashboard references {file}");
    }
    assert!(
        dashboard.contains(&format!("\"watchpost-dashboard.{DASHBOARD}\"")),
        "the dashboard's hydration script loads its own WASM"
    );
    assert!(
        !dashboard.contains(&format!("watchpost.{HASH}.js")),
        "the dashboard does not load the whole app"
    );
    for page in ["/alerts", "/hosts", "/audit", "/login"] {
        let html = get_text(&app.client, &format!("{}{page}", app.base)).await;
        assert!(
            html.contains(&format!("/pkg/watchpost.{HASH}.js")),
            "{page} loads the whole app"
        );
        assert!(
            !html.contains("watchpost-dashboard"),
            "{page} does not load the dashboard's build"
        );
    }
    let wasm = app
        .anon
        .get(format!(
            "{}/pkg/watchpost-dashboard.{DASHBOARD}.wasm",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.status().as_u16(), 200);
    assert_eq!(
        wasm.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=31536000, immutable")
    );
}

/// The release build writes a brotli and a gzip copy beside each static file (`scripts/precompress.mjs`):
/// a browser that accepts brotli gets the `.br` file as it is, one that accepts only gzip the `.gz`, anything
/// else the file itself; each with the file's own type and the year-long caching of its hashed name. A name
/// that is no file is the app's 404 page, not a directory listing or an empty answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompressed_copies_are_sent_to_browsers_that_accept_them() {
    const HASH: &str = "Pq4_9aZ-0qWmLr7tYb2c1Q";
    let site = hashed_site(HASH);
    let wasm = site.path().join(format!("pkg/watchpost.{HASH}.wasm"));
    std::fs::write(&wasm, b"\0asm the module itself").unwrap();
    std::fs::write(wasm.with_extension("wasm.br"), b"brotli copy").unwrap();
    std::fs::write(wasm.with_extension("wasm.gz"), b"gzip copy").unwrap();
    let root = site.path().to_owned();
    let app = spawn_app_with(move |c| c.server.site_root = root).await;

    let fetch = |path: String, accept: Option<&'static str>| {
        let app = &app;
        async move {
            let mut request = app.anon.get(format!("{}{path}", app.base));
            if let Some(accept) = accept {
                request = request.header("accept-encoding", accept);
            }
            let r = request.send().await.unwrap();
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let (encoding, kind, cache) = (
                header("content-encoding"),
                header("content-type"),
                header("cache-control"),
            );
            let vary = header("vary");
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap().to_vec();
            (status, encoding, kind, cache, body, vary)
        }
    };
    let path = format!("/pkg/watchpost.{HASH}.wasm");
    for (accept, encoding, body) in [
        (Some("gzip, deflate, br, zstd"), "br", &b"brotli copy"[..]),
        (Some("gzip"), "gzip", &b"gzip copy"[..]),
        (None, "", &b"\0asm the module itself"[..]),
    ] {
        let (status, got_encoding, kind, cache, got, vary) = fetch(path.clone(), accept).await;
        assert_eq!(status, 200, "{accept:?}");
        assert_eq!(got_encoding, encoding, "{accept:?}");
        assert_eq!(got, body, "{accept:?}");
        assert_eq!(kind, "application/wasm", "{accept:?}");
        assert_eq!(cache, "public, max-age=31536000, immutable", "{accept:?}");
        assert!(
            vary.to_ascii_lowercase().contains("accept-encoding"),
            "{accept:?}: vary {vary}"
        );
    }
    let (status, _, kind, cache, body, _) = fetch("/pkg/nothing-here.wasm".into(), None).await;
    assert_eq!(status, 404);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(String::from_utf8_lossy(&body).contains("Page not found."));
    assert!(!cache.contains("immutable"), "{cache}");
    let (status, ..) = fetch("/pkg/".into(), None).await;
    assert_eq!(status, 404, "no directory listing or index");
}

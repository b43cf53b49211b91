//! Slow and numerous clients: a head or a body sent a byte a second is cut off, an address holds only so many
//! connections before signing in, and the server holds only so many in all; meanwhile a signed-in user still
//! loads the dashboard.

use crate::helpers::{add_token, spawn_app_with};
use shared::Role;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `from` (a loopback address of the test's choosing) to the app at `base`.
async fn connect_from(from: [u8; 4], base: &str) -> TcpStream {
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::from(from), 0)))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Everything the server sends until it closes the connection, or what came within `patience`.
async fn read_until_closed(tcp: &mut TcpStream, patience: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(patience, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// Sends `request` on `tcp` and returns the first bytes of the answer (its status line, at least).
async fn ask(tcp: &mut TcpStream, request: &str) -> String {
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `GET /api/me` with `token`: a signed-in request.
fn me_with(token: &str) -> String {
    format!("GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
}

/// The signed-in client gets the dashboard.
async fn dashboard_loads(app: &crate::helpers::TestApp) {
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

/// Writes `text` a byte a second until the server closes the connection; how long it took.
async fn trickle(tcp: &mut TcpStream, text: &[u8]) -> Duration {
    let began = Instant::now();
    for byte in text {
        if tcp.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if began.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    began.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_a_byte_a_second_is_cut_off() {
    let app = spawn_app_with(|c| {
        c.server.limits.header_read_timeout = Duration::from_secs(2);
        c.server.limits.body_read_timeout = Duration::from_secs(2);
    })
    .await;

    // A head that never ends.
    let mut head = connect_from([127, 0, 0, 21], &app.base).await;
    let writer = tokio::spawn(async move {
        let took = trickle(
            &mut head,
            &b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaa"[..],
        )
        .await;
        (head, took)
    });
    let (mut head, took) = writer.await.unwrap();
    let (_, closed) = read_until_closed(&mut head, Duration::from_secs(5)).await;
    assert!(closed, "the connection is closed");
    assert!(took < Duration::from_secs(10), "cut off after {took:?}");

    // A body that trickles in after a complete head.
    let mut body = connect_from([127, 0, 0, 22], &app.base).await;
    body.write_all(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{",
    )
    .await
    .unwrap();
    let trickled = tokio::spawn(async move {
        let mut body = body;
        trickle(&mut body, &[b' '; 30]).await;
        body
    });
    let mut body = trickled.await.unwrap();
    let (answer, closed) = read_until_closed(&mut body, Duration::from_secs(5)).await;
    assert!(closed, "the connection is closed");
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "a client error for the late body: {answer:?}"
    );

    // Meanwhile and after, a signed-in user is served.
    dashboard_loads(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holds_only_so_many_connections_before_signing_in() {
    let app = spawn_app_with(|c| c.server.limits.max_unsigned_per_address = 4).await;
    let token = add_token(app.data_dir(), "agent", Role::Viewer).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_from([127, 0, 0, 31], &app.base).await);
    }
    // Past the cap, a request that is not signed in is refused, and its connection closed.
    let mut refused = connect_from([127, 0, 0, 31], &app.base).await;
    refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut refused, Duration::from_secs(5)).await;
    assert!(closed && answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert!(answer.contains("have not signed in"), "{answer:?}");
    // One that sends nothing is closed within the probation's two seconds, not the usual thirty.
    let began = std::time::Instant::now();
    let mut silent = connect_from([127, 0, 0, 31], &app.base).await;
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(
        closed && began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    // A signed-in request from the same address is served all the same.
    let mut agent = connect_from([127, 0, 0, 31], &app.base).await;
    assert!(
        ask(&mut agent, &me_with(&token))
            .await
            .starts_with("HTTP/1.1 200"),
        "a signed-in user behind the same address is never turned away"
    );

    // Other addresses, and the signed-in user, are not held up.
    dashboard_loads(&app).await;

    // A connection that signs in stops counting against its address.
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut signed = connect_from([127, 0, 0, 31], &app.base).await;
    assert!(
        ask(&mut signed, &me_with(&token))
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut another = connect_from([127, 0, 0, 31], &app.base).await;
    assert!(
        ask(&mut another, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 200"),
        "admitted: the signed-in connection no longer counts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_client_is_told_to_come_back() {
    let app = spawn_app_with(|c| c.server.limits.max_connections = 3).await;
    // Fill the cap (the signed-in client may hold one of the three, kept alive).
    let mut held = Vec::new();
    let answer = loop {
        assert!(held.len() <= 3, "the cap of 3 was never reached");
        let mut next = connect_from([127, 0, 0, 41 + held.len() as u8], &app.base).await;
        let (answer, closed) = read_until_closed(&mut next, Duration::from_millis(500)).await;
        if closed {
            break answer;
        }
        held.push(next);
    };
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.to_lowercase().contains("retry-after: 5"),
        "{answer:?}"
    );
    // A place freed is a place taken again.
    held.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.client
            .get(format!("{}/api/me", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

//! HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on the same port: many streams on one connection,
//! faults applied per request, a reset fault that resets only its stream, an outage that closes HTTP/2
//! connections too, and the header list bounded as the HTTP/1.1 head is.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use target_app::Role;
use tokio::task::JoinHandle;

use crate::support::{get, sample, send, spawn, Answer};

/// Longest wait for something that must happen; a hang guard, not a measure.
const PATIENCE: Duration = Duration::from_secs(10);

/// An HTTP/2 connection opened by prior knowledge, and the task that drives it.
async fn h2c(addr: SocketAddr) -> (SendRequest<Full<Bytes>>, JoinHandle<hyper::Result<()>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("the server speaks HTTP/2 by prior knowledge");
    (sender, tokio::spawn(conn))
}

/// Sends one request on `sender`'s connection; a stream or connection error comes back as `Err`.
async fn h2_send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    addr: SocketAddr,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, hyper::Error> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    sender.ready().await?;
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .expect("an answer or an error")?;
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn h2_get(sender: &mut SendRequest<Full<Bytes>>, addr: SocketAddr, path: &str) -> Answer {
    h2_send(sender, "GET", addr, path, "", &[]).await.unwrap()
}

#[tokio::test]
async fn h2c_and_http1_share_one_port() {
    let app = spawn(Role::App, |_| {}).await;
    let (mut h2, _driver) = h2c(app.addr).await;
    assert_eq!(h2_get(&mut h2, app.addr, "/health").await.json()["status"], "ok");
    let index = h2_get(&mut h2, app.addr, "/").await;
    assert_eq!(index.status, 200, "{}", index.body);
    assert_eq!(index.json()["service"], "target-app");

    // Every stream is opened before any answer is read: they are in flight together on one connection.
    let streams: Vec<_> = (0..20)
        .map(|_| {
            let req = http::Request::get(format!("http://{}/slow?ms=100", app.addr))
                .body(Full::new(Bytes::new()))
                .unwrap();
            h2.send_request(req)
        })
        .collect();
    for stream in streams {
        let resp = tokio::time::timeout(PATIENCE, stream).await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
    }

    let ans = get(&app.url("/health")).await;
    assert_eq!(ans.status, 200, "HTTP/1.1 on the same listener");
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &metrics,
            r#"http_requests_total{method="GET",route="/slow",status="200"}"#
        ),
        20.0,
        "HTTP/2 requests are counted as HTTP/1.1 ones are"
    );
}

#[tokio::test]
async fn chaos_error_fault_applies_to_h2_requests() {
    let app = spawn(Role::App, |_| {}).await;
    let (mut h2, _driver) = h2c(app.addr).await;
    let spec = r#"{"faults":[{"fault":"error","status":503,"routes":["/"]}]}"#;
    let ans = h2_send(&mut h2, "PUT", app.addr, "/admin/chaos", spec, &[])
        .await
        .unwrap();
    assert_eq!(ans.status, 200, "the chaos API over HTTP/2: {}", ans.body);
    assert_eq!(h2_get(&mut h2, app.addr, "/").await.status, 503);
    assert_eq!(get(&app.url("/")).await.status, 503, "and over HTTP/1.1");
    assert_eq!(
        h2_get(&mut h2, app.addr, "/health").await.status,
        200,
        "probes are never faulted"
    );
}

#[tokio::test]
async fn reset_and_timeout_faults_end_only_their_h2_stream() {
    let app = spawn(Role::App, |_| {}).await;
    let (mut h2, driver) = h2c(app.addr).await;
    for fault in [
        r#"{"faults":[{"fault":"reset","routes":["/"]}]}"#,
        r#"{"faults":[{"fault":"timeout","hold":"100ms","routes":["/"]}]}"#,
    ] {
        assert_eq!(
            send("PUT", &app.url("/admin/chaos"), fault, &[])
                .await
                .unwrap()
                .status,
            200
        );
        let err = h2_send(&mut h2, "GET", app.addr, "/", "", &[])
            .await
            .expect_err("the faulted request gets no answer");
        let text = format!("{err:?}");
        assert!(
            text.contains("INTERNAL_ERROR"),
            "{fault}: the stream is reset: {text}"
        );
        assert_eq!(
            h2_get(&mut h2, app.addr, "/health").await.status,
            200,
            "{fault}: the connection goes on"
        );
    }
    assert!(!driver.is_finished(), "the connection was never closed");
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &metrics,
            r#"http_requests_total{method="GET",route="/",status="aborted"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn outage_closes_h2_connections_then_recovers() {
    let app = spawn(Role::App, |_| {}).await;
    let (mut h2, driver) = h2c(app.addr).await;
    let spec = r#"{"faults":[{"fault":"outage","duration":"1s"}]}"#;
    let ans = h2_send(&mut h2, "PUT", app.addr, "/admin/chaos", spec, &[])
        .await
        .unwrap();
    assert_eq!(ans.status, 200, "{}", ans.body);
    // The server pings idle HTTP/2 connections and this client answers: only the outage can close it.
    let closed = tokio::time::timeout(PATIENCE, driver).await;
    assert!(closed.is_ok(), "the outage closed the HTTP/2 connection");
    assert!(h2_send(&mut h2, "GET", app.addr, "/health", "", &[])
        .await
        .is_err());

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut h2 = loop {
        if let Ok(tcp) = tokio::net::TcpStream::connect(app.addr).await {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            break sender;
        }
        assert!(tokio::time::Instant::now() < deadline, "listening again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(h2_get(&mut h2, app.addr, "/health").await.status, 200);
}

#[tokio::test]
async fn h2_header_list_is_bounded_like_the_http1_head() {
    let app = spawn(Role::App, |_| {}).await;
    let (mut h2, _driver) = h2c(app.addr).await;
    // Over hyper's default HTTP/2 limit (16 KiB), within the head limit.
    let big = "a".repeat(target_app::server::MAX_HEAD_BYTES / 2);
    let ans = h2_send(&mut h2, "GET", app.addr, "/", "", &[("x-big", &big)])
        .await
        .unwrap();
    assert_eq!(ans.status, 200, "{}", ans.body);

    let (mut h2, _driver) = h2c(app.addr).await;
    let huge = "a".repeat(target_app::server::MAX_HEAD_BYTES + 1024);
    let ans = h2_send(&mut h2, "GET", app.addr, "/", "", &[("x-big", &huge)])
        .await
        .unwrap();
    assert_eq!(ans.status, 431);
    assert_eq!(get(&app.url("/health")).await.status, 200, "still serving");
}

//! Each endpoint's status, body shape and effect on the metrics; `promtool check metrics` on real output.

use std::time::Duration;

use target_app::Role;

use crate::support::{get, sample, send, spawn, spawn_pair};

#[tokio::test]
async fn index_lists_the_routes_of_each_role() {
    let (app, downstream) = spawn_pair(|_| {}).await;
    let index = get(&app.url("/")).await.json();
    assert_eq!(index["service"], "target-app");
    let paths: Vec<&str> = index["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    for p in [
        "/",
        "/slow",
        "/error",
        "/external",
        "/generate-load",
        "/checkout",
        "/health",
        "/metrics",
        "/admin/chaos",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    let index = get(&downstream.url("/")).await.json();
    assert_eq!(index["service"], "downstream");
    assert_eq!(
        get(&downstream.url("/slow")).await.status,
        404,
        "the downstream does not serve app routes"
    );
}

#[tokio::test]
async fn health_slow_and_error_answer_as_documented() {
    let app = spawn(Role::App, |_| {}).await;
    assert_eq!(get(&app.url("/health")).await.json()["status"], "ok");

    let started = std::time::Instant::now();
    let slow = get(&app.url("/slow?ms=300")).await;
    assert_eq!(slow.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow.json()["slept_ms"], 300);

    assert_eq!(get(&app.url("/error?type=500")).await.status, 500);
    assert_eq!(get(&app.url("/error?type=404")).await.status, 404);
    assert_eq!(get(&app.url("/error?type=timeout&ms=50")).await.status, 504);
    let random = get(&app.url("/error?type=random&ms=10")).await.status;
    assert!([500, 502, 503, 404, 504].contains(&random), "{random}");

    let bad = get(&app.url("/error?type=teapot")).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("`type`"),
        "{}",
        bad.body
    );
    let bad = get(&app.url("/slow?ms=lots")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("`ms`"), "{}", bad.body);

    assert_eq!(get(&app.url("/no/such/path")).await.status, 404);
    assert_eq!(
        send("DELETE", &app.url("/health"), "", &[]).await.unwrap().status,
        405
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let app = spawn(Role::App, |_| {}).await;
    for _ in 0..3 {
        get(&app.url("/error?type=500")).await;
    }
    get(&app.url("/slow?ms=1")).await;
    get(&app.url("/no/such/path/123")).await;
    let text = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="/error",status="500"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="/slow",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths must never become labels"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_request_duration_seconds_bucket{method="GET",route="/error",status="500",le="1"}"#
        ),
        3.0,
        "histograms have buckets, not quantiles"
    );
    assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
    assert!(sample(&text, "process_open_fds") > 0.0);
}

#[tokio::test]
async fn external_and_checkout_call_the_downstream() {
    let (app, downstream) = spawn_pair(|_| {}).await;
    let ext = get(&app.url("/external")).await;
    assert_eq!(ext.status, 200, "{}", ext.body);
    assert_eq!(ext.json()["downstream"]["source"], "downstream");

    let ok = send(
        "POST",
        &app.url("/checkout"),
        r#"{"items":[{"sku":"A1","qty":2}]}"#,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["status"], "confirmed");
    let bad = send(
        "POST",
        &app.url("/checkout"),
        r#"{"items":[{"sku":"A1","quantity":2}]}"#,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("quantity"), "names the bad field: {}", bad.body);

    let app_metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &app_metrics,
            r#"downstream_requests_total{peer="downstream",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &app_metrics,
            r#"business_operations_total{operation="checkout",outcome="success"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &app_metrics,
            r#"business_operations_total{operation="checkout",outcome="invalid"}"#
        ),
        1.0
    );
    let down_metrics = get(&downstream.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &down_metrics,
            r#"http_requests_total{method="POST",route="/payments/charge",status="200"}"#
        ),
        1.0
    );

    downstream.stop().await;
    let failed = get(&app.url("/external")).await;
    assert_eq!(
        failed.status, 502,
        "a dead downstream is a clean 502: {}",
        failed.body
    );
    let failed = send(
        "POST",
        &app.url("/checkout"),
        r#"{"items":[{"sku":"A1","qty":1}]}"#,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(failed.status, 502);
    let app_metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &app_metrics,
            r#"downstream_requests_total{peer="downstream",status="error"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &app_metrics,
            r#"business_operations_total{operation="checkout",outcome="failure"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn generate_load_does_real_work() {
    let app = spawn(Role::App, |_| {}).await;
    let ans = get(&app.url("/generate-load?ms=40")).await;
    assert_eq!(ans.status, 200);
    let report = &ans.json()["report"];
    assert!(report["products_parsed"].as_u64().unwrap() >= 200, "{report}");
    assert!(report["report_bytes"].as_u64().unwrap() > 0);
    assert_eq!(get(&app.url("/generate-load?ms=999999")).await.status, 400);
}

#[tokio::test]
async fn sheds_load_past_the_concurrency_limit() {
    let app = spawn(Role::App, |c| c.max_concurrency = 4).await;
    let url = app.url("/slow?ms=800");
    let burst: Vec<_> = (0..12)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { get(&url).await.status }
            })
        })
        .collect();
    // Probes stay exempt while the limit is reached.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&app.url("/health")).await.status, 200);
    let mut statuses = Vec::new();
    for b in burst {
        statuses.push(b.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let shed = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!((ok, shed), (4, 8), "{statuses:?}");
    let text = get(&app.url("/metrics")).await.body;
    assert_eq!(sample(&text, r#"http_requests_shed_total{route="/slow"}"#), 8.0);
    assert_eq!(
        sample(&text, "http_requests_in_flight"),
        1.0,
        "only the scrape itself"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn(Role::App, |_| {}).await;
    let huge = "x".repeat(200 * 1024);
    let ans = send("POST", &app.url("/checkout"), &huge, &[]).await.unwrap();
    assert_eq!(ans.status, 413);
}

#[tokio::test]
async fn promtool_accepts_the_metrics() {
    let (app, _downstream) = spawn_pair(|_| {}).await;
    get(&app.url("/external")).await;
    get(&app.url("/error?type=500")).await;
    send(
        "PUT",
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"latency","delay":"1ms"}]}"#,
        &[],
    )
    .await
    .unwrap();
    let text = get(&app.url("/metrics")).await.body;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(r#"chaos_fault_active{fault="latency"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn(Role::App, |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /checkout HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server answered and closed within 20 s");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "after the body timeout, not before"
    );
}

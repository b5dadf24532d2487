//! The chaos API over HTTP: exact ratios, replay by seed, route scoping, auth, bad requests, resets,
//! downstream failures and outages.

use std::time::Duration;

use target_app::Role;

use crate::support::{get, sample, send, spawn, spawn_pair};

async fn put(url: &str, body: &str) -> crate::support::Answer {
    send("PUT", url, body, &[]).await.unwrap()
}

async fn statuses(url: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get(url).await.status);
    }
    out
}

#[tokio::test]
async fn error_ratio_is_exact_and_replays_by_seed() {
    let app = spawn(Role::App, |_| {}).await;
    let spec = r#"{"seed":42,"faults":[{"fault":"error","status":503,"ratio":0.3,"routes":["/"]}]}"#;
    let ans = put(&app.url("/admin/chaos"), spec).await;
    assert_eq!(ans.status, 200, "{}", ans.body);
    let first = statuses(&app.url("/"), 100).await;
    assert_eq!(first.iter().filter(|s| **s == 503).count(), 30);
    for window in first.windows(10) {
        let n = window.iter().filter(|s| **s == 503).count();
        assert!(
            (2..=4).contains(&n),
            "any 10 consecutive requests hold 3 ± 1 faults: {window:?}"
        );
    }
    // Route scoping: /slow is untouched, /health is never faulted.
    assert!(statuses(&app.url("/slow?ms=0"), 20)
        .await
        .iter()
        .all(|s| *s == 200));
    assert!(statuses(&app.url("/health"), 20).await.iter().all(|s| *s == 200));

    put(&app.url("/admin/chaos"), spec).await;
    assert_eq!(
        statuses(&app.url("/"), 100).await,
        first,
        "same seed, same faulted requests"
    );

    let current = get(&app.url("/admin/chaos")).await.json();
    assert_eq!(current["faults"][0]["fault"], "error");
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(sample(&metrics, r#"chaos_fault_active{fault="error"}"#), 1.0);

    let cleared = send("DELETE", &app.url("/admin/chaos"), "", &[]).await.unwrap();
    assert_eq!(cleared.status, 200);
    assert!(statuses(&app.url("/"), 20).await.iter().all(|s| *s == 200));
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(sample(&metrics, r#"chaos_fault_active{fault="error"}"#), 0.0);
}

#[tokio::test]
async fn bad_requests_name_the_problem_and_keep_the_faults() {
    let app = spawn(Role::App, |_| {}).await;
    let good = r#"{"faults":[{"fault":"latency","delay":"5ms"}]}"#;
    assert_eq!(put(&app.url("/admin/chaos"), good).await.status, 200);
    let before = get(&app.url("/admin/chaos")).await.body;

    let cases = [
        (r#"{"faults":[{"fault":"error","ratio":1.5}]}"#, "faults[0].ratio"),
        (r#"{"faults":[{"fault":"gremlins"}]}"#, "gremlins"),
        (r#"{"faults":[{"fault":"error","ratoi":0.5}]}"#, "ratoi"),
        (r#"{"faults":[{"fault":"latency","delay":"fast"}]}"#, "fast"),
        (
            r#"{"faults":[{"fault":"reset","routes":["/metrics"]}]}"#,
            "faults[0].routes[0]",
        ),
        ("not json", "body"),
    ];
    for (body, named) in cases {
        let ans = put(&app.url("/admin/chaos"), body).await;
        assert_eq!(ans.status, 400, "{body}");
        assert!(
            ans.body.contains(named),
            "answer to {body} should name {named}: {}",
            ans.body
        );
    }
    let huge = format!(r#"{{"faults":[],"pad":"{}"}}"#, "x".repeat(100 * 1024));
    assert_eq!(put(&app.url("/admin/chaos"), &huge).await.status, 413);
    assert_eq!(
        get(&app.url("/admin/chaos")).await.body,
        before,
        "faults unchanged"
    );
}

#[tokio::test]
async fn wrong_types_are_named_field_by_field_in_one_answer() {
    let app = spawn(Role::App, |_| {}).await;
    let good = r#"{"faults":[{"fault":"latency","delay":"5ms"}]}"#;
    assert_eq!(put(&app.url("/admin/chaos"), good).await.status, 200);
    let before = get(&app.url("/admin/chaos")).await.body;
    let cases: [(&str, &[&str]); 3] = [
        (
            r#"{"faults":[{"fault":"rate_limit","rps":-1,"burst":0}]}"#,
            &["faults[0].rps", "faults[0].burst"],
        ),
        (
            r#"{"seed":"7","faults":[{"fault":"cpu","threads":"4","utilization":2},{"fault":"outage","duration":90}]}"#,
            &[
                "faults[0].threads",
                "faults[0].utilization",
                "faults[1].duration",
                "seed",
            ],
        ),
        (
            r#"{"faults":[{"fault":"latency","delay":"18446744073709551615s","jitter":"1s"}]}"#,
            &["faults[0].delay"],
        ),
    ];
    for (body, named) in cases {
        let ans = put(&app.url("/admin/chaos"), body).await;
        assert_eq!(ans.status, 400, "{body}: {}", ans.body);
        let fields: Vec<String> = ans.json()["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fields, named, "{body}: {}", ans.body);
    }
    assert_eq!(
        get(&app.url("/admin/chaos")).await.body,
        before,
        "faults unchanged"
    );
}

#[tokio::test]
async fn writes_need_the_token_when_one_is_set() {
    let app = spawn(Role::App, |c| c.chaos_token = Some("s3cret".into())).await;
    let spec = r#"{"faults":[{"fault":"error"}]}"#;
    assert_eq!(put(&app.url("/admin/chaos"), spec).await.status, 401);
    let wrong = send(
        "PUT",
        &app.url("/admin/chaos"),
        spec,
        &[("authorization", "Bearer nope")],
    )
    .await
    .unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(
        send("DELETE", &app.url("/admin/chaos"), "", &[])
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(get(&app.url("/")).await.status, 200, "nothing applied");
    let right = send(
        "PUT",
        &app.url("/admin/chaos"),
        spec,
        &[("authorization", "Bearer s3cret")],
    )
    .await
    .unwrap();
    assert_eq!(right.status, 200);
    assert_eq!(get(&app.url("/")).await.status, 500);
}

/// A local address that is not loopback, if this machine has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn without_a_token_only_loopback_may_write() {
    let Some(ip) = non_loopback_ip() else {
        panic!("this test needs a non-loopback local address to connect from");
    };
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = target_app::Config::embedded(Role::App);
    config.listen = addr;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(target_app::serve(listener, config, async move {
        let _ = rx.await;
    }));
    let url = format!("http://{addr}/admin/chaos");
    let ans = put(&url, r#"{"faults":[{"fault":"error"}]}"#).await;
    assert_eq!(ans.status, 403, "{}", ans.body);
    assert_eq!(get(&url).await.json()["faults"], serde_json::json!([]));
    let _ = tx.send(());
    join.await.unwrap().unwrap();
}

#[tokio::test]
async fn reset_and_timeout_faults_drop_the_connection() {
    let app = spawn(Role::App, |_| {}).await;
    put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"reset","routes":["/"]}]}"#,
    )
    .await;
    let err = send("GET", &app.url("/"), "", &[]).await.unwrap_err();
    assert!(
        err.contains("Connection reset")
            || err.contains("ConnectionReset")
            || err.contains("IncompleteMessage"),
        "{err}"
    );

    put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"timeout","hold":"300ms","routes":["/"]}]}"#,
    )
    .await;
    let started = std::time::Instant::now();
    let err = send("GET", &app.url("/"), "", &[]).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300), "held first");
    assert!(!err.is_empty());
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
async fn downstream_fault_fails_the_dependency_calls() {
    let (app, downstream) = spawn_pair(|_| {}).await;
    put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"downstream","ratio":0.5}]}"#,
    )
    .await;
    let got = statuses(&app.url("/external"), 10).await;
    assert_eq!(got.iter().filter(|s| **s == 502).count(), 5, "{got:?}");
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &metrics,
            r#"downstream_requests_total{peer="downstream",status="error"}"#
        ),
        5.0
    );
    let down = get(&downstream.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &down,
            r#"http_requests_total{method="GET",route="/api/data",status="200"}"#
        ),
        5.0,
        "failed calls never left"
    );
}

#[tokio::test]
async fn latency_fault_delays_requests() {
    let app = spawn(Role::App, |_| {}).await;
    put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"latency","delay":"200ms","routes":["/"]}]}"#,
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(get(&app.url("/")).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Probes are not delayed: under a delay of a minute on every route, `/health` still answers long
    // before it (the bound is the minute, not how busy the machine is).
    let ans = put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"latency","delay":"60s"}]}"#,
    )
    .await;
    assert_eq!(ans.status, 200, "{}", ans.body);
    let health = tokio::time::timeout(Duration::from_secs(30), get(&app.url("/health"))).await;
    assert_eq!(health.expect("probes are not delayed").status, 200);
}

#[tokio::test]
async fn outage_closes_the_listener_then_recovers() {
    let app = spawn(Role::App, |_| {}).await;
    let ans = put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"outage","duration":"1500ms"}]}"#,
    )
    .await;
    assert_eq!(ans.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = send("GET", &app.url("/health"), "", &[]).await.unwrap_err();
    assert!(
        err.contains("onnect"),
        "connections are refused during the outage: {err}"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(get(&app.url("/health")).await.status, 200, "listening again");
    assert_eq!(
        get(&app.url("/admin/chaos")).await.json()["faults"],
        serde_json::json!([]),
        "outage fault ended"
    );
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(sample(&metrics, r#"chaos_fault_active{fault="outage"}"#), 0.0);
}

#[tokio::test]
async fn memory_fault_grows_and_releases() {
    let app = spawn(Role::App, |_| {}).await;
    let before = target_app::metrics::process::rss_bytes().unwrap();
    put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"memory","mb_per_second":200,"limit_mb":64}]}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let grown = target_app::metrics::process::rss_bytes().unwrap();
    assert!(grown > before + 48 * 1024 * 1024, "grew from {before} to {grown}");
    send("DELETE", &app.url("/admin/chaos"), "", &[]).await.unwrap();
    let after = target_app::metrics::process::rss_bytes().unwrap();
    assert!(after + 32 * 1024 * 1024 < grown, "released: {grown} -> {after}");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_past_the_burst() {
    let app = spawn(Role::App, |_| {}).await;
    let bad = put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"rate_limit","rps":0,"burst":0,"routes":["/nope"]}]}"#,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let fields: Vec<String> = bad.json()["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        ["faults[0].routes[0]", "faults[0].rps", "faults[0].burst"],
        "every bad field named at once"
    );

    // One request a second, three at once: far slower than these requests arrive.
    let ans = put(
        &app.url("/admin/chaos"),
        r#"{"faults":[{"fault":"rate_limit","rps":1,"burst":3,"routes":["/"]}]}"#,
    )
    .await;
    assert_eq!(ans.status, 200, "{}", ans.body);
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..6 {
        let resp = client.get(app.url("/").parse().unwrap()).await.unwrap();
        statuses.push(resp.status().as_u16());
        retry_after.push(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    assert_eq!(retry_after[3].as_deref(), Some("1"));
    assert_eq!(retry_after[0], None);
    assert_eq!(
        get(&app.url("/health")).await.status,
        200,
        "probes are never limited"
    );
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(
            &metrics,
            r#"http_requests_total{method="GET",route="/",status="429"}"#
        ),
        3.0
    );
    assert_eq!(sample(&metrics, r#"chaos_fault_active{fault="rate_limit"}"#), 1.0);
}

//! The service under abuse: floods past the concurrency limit, slow and incomplete headers, oversized
//! heads and bodies, malformed query parameters, malformed and huge chaos requests, and telemetry
//! backends that are down or never answer. Each case checks the answer the abuser gets and that the
//! service goes on serving everyone else.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use target_app::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{get, sample, send, spawn, Proc};

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What came back on a raw connection: the bytes received, and how long until the server closed it.
struct Raw {
    received: Vec<u8>,
    closed_after: Duration,
}

impl Raw {
    /// The status code of the answer, if one came.
    fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.received);
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
}

/// Writes `parts` to a fresh connection, `pause` apart, then reads until the server closes it (at most
/// `limit`). A write the server refuses ends the writing, not the test.
async fn raw(addr: SocketAddr, parts: &[Vec<u8>], pause: Duration, limit: Duration) -> Raw {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.split();
    let writing = async {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            if write.write_all(part).await.is_err() {
                break;
            }
        }
        // Keep the connection open: the server is the one that must close it.
        std::future::pending::<()>().await;
    };
    let reading = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        received
    };
    let received = tokio::time::timeout(limit, async {
        tokio::select! {
            () = writing => unreachable!("writing never ends"),
            r = reading => r,
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept the connection open for {limit:?}"));
    Raw {
        received,
        closed_after: started.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_limit_is_shed_with_503_in_bounded_memory() {
    let app = Proc::start(&["--max-concurrency", "16"], &[]);
    let pid = app.child.id();
    // Warm up, so allocator pools and the metrics registry exist before the baseline.
    for _ in 0..50 {
        get(&app.url("/slow?ms=1")).await;
    }
    let before = rss_kib(pid);
    let url = app.url("/slow?ms=200");
    let started = Instant::now();
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..40 {
                    statuses.push(send("GET", &url, "", &[]).await.map(|a| a.status));
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in clients {
        statuses.extend(c.await.unwrap());
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the flood was answered quickly"
    );
    let ok = statuses.iter().filter(|s| **s == Ok(200)).count();
    let shed = statuses.iter().filter(|s| **s == Ok(503)).count();
    assert_eq!(
        ok + shed,
        statuses.len(),
        "only 200 and 503, no failed connection"
    );
    assert!(
        shed > statuses.len() / 2,
        "most of the flood is shed: {ok} ok, {shed} shed"
    );
    // At most 16 at a time for 200 ms each over the time the flood took.
    let ceiling = 16.0 * started.elapsed().as_secs_f64() / 0.2 + 16.0;
    assert!((ok as f64) <= ceiling, "{ok} served in {:?}", started.elapsed());
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(
        sample(&metrics, r#"http_requests_shed_total{route="/slow"}"#),
        shed as f64
    );
    assert_eq!(get(&app.url("/health")).await.status, 200);
    let after = rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB over {} requests",
        statuses.len()
    );
}

#[tokio::test]
async fn slow_and_incomplete_headers_are_cut_off_by_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let app = spawn(Role::App, |c| c.header_timeout = timeout).await;
    let limit = Duration::from_secs(10);
    let cases: [(&str, Vec<Vec<u8>>, Duration); 5] = [
        ("silent", vec![], Duration::ZERO),
        (
            // 22 of the 24 bytes of the HTTP/2 preface: not yet known to be HTTP/1.1 or HTTP/2.
            "stalled HTTP/2 preface",
            vec![b"PRI * HTTP/2.0\r\n\r\nSM\r\n".to_vec()],
            Duration::ZERO,
        ),
        (
            "HTTP/2 preface, then no request",
            vec![b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()],
            Duration::ZERO,
        ),
        (
            "incomplete head",
            vec![b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec()],
            Duration::ZERO,
        ),
        (
            // A byte every 50 ms: each arrives well within the timeout, the whole head never does.
            "slowloris",
            b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                .iter()
                .map(|b| vec![*b])
                .collect(),
            Duration::from_millis(50),
        ),
    ];
    for (what, parts, pause) in cases {
        let r = raw(app.addr, &parts, pause, limit).await;
        assert!(
            r.closed_after >= timeout - Duration::from_millis(50),
            "{what}: closed after {:?}, before the timeout",
            r.closed_after
        );
        assert!(
            r.closed_after < timeout + Duration::from_secs(2),
            "{what}: closed after {:?}",
            r.closed_after
        );
        assert!(
            matches!(r.status(), None | Some(408)),
            "{what}: nothing or 408, got {:?}",
            String::from_utf8_lossy(&r.received)
        );
    }
    assert_eq!(get(&app.url("/health")).await.status, 200, "still serving");
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let app = spawn(Role::App, |_| {}).await;
    let limit = Duration::from_secs(10);

    // A head that fills the whole buffer without ending: exactly the most the server reads.
    let mut head = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    head.resize(target_app::server::MAX_HEAD_BYTES, b'a');
    let r = raw(app.addr, &[head], Duration::ZERO, limit).await;
    assert_eq!(r.status(), Some(431), "{}", String::from_utf8_lossy(&r.received));

    // More headers than the parser takes, each small.
    let mut many = b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let r = raw(app.addr, &[many], Duration::ZERO, limit).await;
    assert_eq!(r.status(), Some(431), "{}", String::from_utf8_lossy(&r.received));

    // A 1 MiB head: the connection is closed (with 431 if it arrives before the reset).
    let mut huge = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    huge.resize(1 << 20, b'a');
    let r = raw(app.addr, &[huge], Duration::ZERO, limit).await;
    assert!(
        matches!(r.status(), None | Some(431)),
        "{}",
        String::from_utf8_lossy(&r.received)
    );

    assert_eq!(get(&app.url("/health")).await.status, 200, "still serving");
}

#[tokio::test]
async fn oversized_bodies_get_413_whatever_their_framing() {
    let app = spawn(Role::App, |_| {}).await;
    let limit = Duration::from_secs(10);
    let max = target_app::exchange::MAX_BODY_BYTES;

    // Declared length over the limit.
    let ans = send("POST", &app.url("/checkout"), &"x".repeat(max + 1), &[])
        .await
        .unwrap();
    assert_eq!(ans.status, 413, "{}", ans.body);
    assert!(
        ans.body.contains(&max.to_string()),
        "names the limit: {}",
        ans.body
    );

    // Chunked, no declared length: 1 KiB chunks past the limit, and no final chunk, so the server is
    // the one that stops reading.
    let mut parts =
        vec![b"POST /checkout HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024)).into_bytes();
    parts.push(chunk.repeat(max / 1024 + 1));
    let r = raw(app.addr, &parts, Duration::from_millis(10), limit).await;
    assert_eq!(r.status(), Some(413), "{}", String::from_utf8_lossy(&r.received));

    assert_eq!(get(&app.url("/health")).await.status, 200, "still serving");
}

#[tokio::test]
async fn malformed_query_parameters_get_400_naming_the_parameter() {
    let app = spawn(Role::App, |_| {}).await;
    let cases = [
        ("/slow?ms=abc", "`ms`", "abc"),
        ("/slow?ms=-5", "`ms`", "-5"),
        ("/slow?ms=", "`ms`", "``"),
        (
            "/slow?ms=99999999999999999999999",
            "`ms`",
            "99999999999999999999999",
        ),
        ("/slow?ms=1e3", "`ms`", "1e3"),
        ("/slow?ms=%41%42", "`ms`", "%41%42"),
        ("/generate-load?ms=0", "`ms`", "1 to 2000"),
        ("/error?type=teapot", "`type`", "teapot"),
        ("/error?type=timeout&ms=soon", "`ms`", "soon"),
    ];
    for (path, names, quotes) in cases {
        let ans = get(&app.url(path)).await;
        assert_eq!(ans.status, 400, "{path}: {}", ans.body);
        let body = ans.json();
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {}", ans.body));
        assert!(
            message.contains(names) && message.contains(quotes),
            "{path}: the message should name {names} and quote {quotes}: {message}"
        );
    }
    assert_eq!(get(&app.url("/slow?ms=5")).await.status, 200);
}

#[tokio::test]
async fn malformed_and_huge_chaos_requests_leave_the_faults_unchanged() {
    let app = spawn(Role::App, |_| {}).await;
    let url = app.url("/admin/chaos");
    let good = r#"{"faults":[{"fault":"latency","delay":"5ms"}]}"#;
    assert_eq!(send("PUT", &url, good, &[]).await.unwrap().status, 200);
    let before = get(&url).await.body;

    let nested = "[".repeat(50_000);
    let many_cpu = format!(
        r#"{{"faults":[{}]}}"#,
        vec![r#"{"fault":"cpu","threads":64}"#; 1000].join(",")
    );
    let many_memory = format!(
        r#"{{"faults":[{}]}}"#,
        vec![r#"{"fault":"memory","mb_per_second":1024,"limit_mb":4096}"#; 500].join(",")
    );
    let many = format!(
        r#"{{"faults":[{}]}}"#,
        vec![r#"{"fault":"error","ratio":0.01}"#; target_app::admin::MAX_FAULTS + 1].join(",")
    );
    let cases: [(&str, &str, u16); 8] = [
        ("deeply nested", &nested, 400),
        ("stray character", "{\"faults\":[\u{fffd}]}", 400),
        (
            "number out of range",
            r#"{"faults":[{"fault":"error","ratio":1e999}]}"#,
            400,
        ),
        ("wrong type", r#"{"faults":{"fault":"error"}}"#, 400),
        ("seed out of range", r#"{"seed":-1,"faults":[]}"#, 400),
        ("1000 CPU faults of 64 threads", &many_cpu, 400),
        ("500 memory faults of 4 GiB", &many_memory, 400),
        ("one fault too many", &many, 400),
    ];
    for (what, body, status) in cases {
        assert!(
            body.len() <= target_app::exchange::MAX_BODY_BYTES,
            "{what} fits the body limit"
        );
        let ans = send("PUT", &url, body, &[]).await.unwrap();
        assert_eq!(ans.status, status, "{what}: {}", ans.body);
        let answer = ans.json();
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or("")
                .contains("faults unchanged"),
            "{what}: {}",
            ans.body
        );
        assert!(
            answer["details"].as_array().is_some_and(|d| !d.is_empty()),
            "{what}: names the problem: {}",
            ans.body
        );
    }

    // Far over the body limit, with and without a declared length.
    let huge = format!(r#"{{"faults":[],"pad":"{}"}}"#, "x".repeat(1 << 20));
    assert_eq!(send("PUT", &url, &huge, &[]).await.unwrap().status, 413);
    let mut parts =
        vec![b"PUT /admin/chaos HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
    parts.push(format!("400\r\n{}\r\n", " ".repeat(1024)).into_bytes().repeat(80));
    let r = raw(
        app.addr,
        &parts,
        Duration::from_millis(10),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.status(), Some(413), "{}", String::from_utf8_lossy(&r.received));

    assert_eq!(get(&url).await.body, before, "faults unchanged");
    let metrics = get(&app.url("/metrics")).await.body;
    assert_eq!(sample(&metrics, r#"chaos_fault_active{fault="cpu"}"#), 0.0);
    assert_eq!(sample(&metrics, r#"chaos_fault_active{fault="memory"}"#), 0.0);
}

/// A listener that accepts connections and never answers; it keeps them until the test ends.
async fn black_hole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Median and 99th percentile of `n` sequential `GET /` requests, in milliseconds.
async fn latencies(app: &Proc, n: usize) -> (f64, f64) {
    let mut ms: Vec<f64> = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(get(&app.url("/")).await.status, 200);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    (ms[n / 2], ms[n * 99 / 100])
}

/// Sends `n` requests from 8 clients at once.
async fn traffic(app: &Proc, n: usize) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = app.url("/");
            tokio::spawn(async move {
                for _ in 0..n / 8 {
                    assert_eq!(get(&url).await.status, 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_silent_telemetry_backend_changes_nothing_for_clients() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let silent = black_hole().await;
    for (what, endpoint) in [("closed port", closed), ("black hole", silent)] {
        let endpoint = format!("http://{endpoint}");
        let app = Proc::start(&["--otlp-endpoint", &endpoint, "--otlp-logs"], &[]);
        let pid = app.child.id();
        let requests = 4000;
        traffic(&app, requests).await;
        let (p50, p99) = latencies(&app, 200).await;
        assert!(
            p50 < 20.0 && p99 < 250.0,
            "{what}: p50 {p50:.1} ms, p99 {p99:.1} ms"
        );
        // Past the exporters' 5 s batch delay, so every queued batch has been tried at least once.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let rss = rss_kib(pid);
        assert!(rss < 128 * 1024, "{what}: RSS {rss} KiB");
        let lines = app.json_lines();
        let served = lines
            .iter()
            .filter(|l| l["message"] == "request completed")
            .count();
        assert!(served >= requests, "{what}: {served} requests logged");
        let complaints: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["level"] == "warn" || l["level"] == "error")
            .collect();
        // The SDK reports each failed batch export (up to 512 spans or log records, or every 5 s) and
        // the first dropped record; one line per request would be thousands.
        assert!(
            complaints.len() <= requests / 100,
            "{what}: {} warnings for {requests} requests, not one per request: {:?}",
            complaints.len(),
            complaints.iter().take(5).collect::<Vec<_>>()
        );
        eprintln!(
            "{what}: p50 {p50:.2} ms, p99 {p99:.2} ms, RSS {rss} KiB, {} warning lines for {} requests",
            complaints.len(),
            served
        );
    }
}

#[tokio::test]
async fn the_chaos_token_never_reaches_the_logs() {
    let token = "tok-4c1d9e-never-logged";
    let wrong = "tok-wrong-guess-never-logged";
    let app = Proc::start(&[], &[("CHAOS_TOKEN", token), ("RUST_LOG", "trace")]);
    let url = app.url("/admin/chaos");
    let spec = r#"{"faults":[{"fault":"error","ratio":0.5}]}"#;
    let bearer = |t: &str| format!("Bearer {t}");
    for (auth, status) in [
        (bearer(wrong), 401),
        (bearer(token), 200),
        (token.to_owned(), 401),
    ] {
        let ans = send("PUT", &url, spec, &[("authorization", auth.as_str())])
            .await
            .unwrap();
        assert_eq!(ans.status, status, "{auth}: {}", ans.body);
        assert!(
            !ans.body.contains(token) && !ans.body.contains(wrong),
            "{}",
            ans.body
        );
    }
    let ans = send("DELETE", &url, "", &[("authorization", &bearer(token))])
        .await
        .unwrap();
    assert_eq!(ans.status, 200);
    // Every line, at every level, after the writer thread has flushed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = app.lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("chaos faults applied")),
        "{lines:?}"
    );
    for line in &lines {
        assert!(
            !line.contains(token) && !line.contains(wrong),
            "a token in the logs: {line}"
        );
    }
}

//! The binary as a process: logs on stdout, SIGTERM drains in-flight requests, then exits cleanly.

use std::time::Duration;

use crate::support::{get, send, Proc};

#[tokio::test]
async fn sigterm_drains_an_in_flight_request() {
    let mut app = Proc::start(&["--drain-timeout", "5s"], &[]);
    let url = app.url("/slow?ms=1500");
    let slow = tokio::spawn(async move { get(&url).await.status });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        send("GET", &app.url("/health"), "", &[]).await.is_err(),
        "no new connections while draining"
    );
    assert_eq!(slow.await.unwrap(), 200, "the in-flight request finished");
    let status = tokio::task::spawn_blocking(move || {
        let status = app.wait(Duration::from_secs(10));
        (status, app.json_lines())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
    let messages: Vec<String> = status
        .1
        .iter()
        .map(|l| l["message"].as_str().unwrap_or("").to_owned())
        .collect();
    for expected in ["listening", "shutting down", "drained all connections", "stopped"] {
        assert!(
            messages.iter().any(|m| m == expected),
            "{expected} missing from {messages:?}"
        );
    }
}

#[tokio::test]
async fn bad_flags_are_refused_with_a_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_target-app"))
        .args(["--drain-timeout", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--drain-timeout") && stderr.contains("soon"),
        "{stderr}"
    );
}

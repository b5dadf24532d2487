//! The generator's own `/metrics` (`--metrics-addr`) on a real run: scraped mid-run it passes
//! `promtool check metrics` and names the running phase; scraped after the reports are written (the
//! endpoint lingers) its counts are exactly those of the JSON report. Needs Debian's `prometheus`
//! package for `promtool` (`scripts/test.sh` installs it).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::scenario_file;

const SCENARIO: &str = r#"
name = "metrics-check"
seed = 5

[[mix]]
path = "/"
weight = 3
[[mix]]
path = "/health"
weight = 1

[[phases]]
name = "calm"
duration = "2s"
rate = { shape = "constant", rps = 80 }

[[phases]]
name = "failing"
duration = "3s"
rate = { shape = "ramp", from = 40, to = 120 }
chaos = [{ fault = "error", status = 500, ratio = 0.5, routes = ["/"] }]
"#;

/// `GET http://addr/path`: the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// Every sample of the text: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (Debian package `prometheus`; scripts/test.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_pass_promtool_and_match_the_json_report() {
    let file = scenario_file("metrics-check", SCENARIO);
    let dir = file.parent().unwrap().to_path_buf();
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);

    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--json",
            report.to_str().unwrap(),
        ])
        .args(["--metrics-addr", "127.0.0.1:0", "--metrics-linger", "20s"])
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("loadgen: metrics at http://") {
                let _ = tx.send(rest.trim_end_matches("/metrics").to_owned());
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("loadgen tells where its metrics are")
        .parse()
        .unwrap();

    // Mid-run: in the second phase.
    std::thread::sleep(Duration::from_millis(3000));
    let (status, text) = http_get(addr, "/metrics").expect("metrics answer mid-run");
    assert!(status.contains(" 200 "), "{status}");
    promtool_check(&text);
    let mid = samples(&text);
    assert_eq!(
        mid.get("loadgen_phase_info{scenario=\"metrics-check\",phase=\"failing\"}"),
        Some(&1.0),
        "{text}"
    );
    let target = mid["loadgen_target_rps"];
    assert!((40.0..=120.0).contains(&target), "ramp 40 → 120 rps: {target}");
    assert!(mid["loadgen_schedule_lag_seconds_count"] > 0.0, "{text}");

    // After the report: the endpoint lingers with the final counts.
    let deadline = Instant::now() + Duration::from_secs(60);
    let json: Value = loop {
        if let Some(v) = std::fs::read_to_string(&report)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            break v;
        }
        assert!(Instant::now() < deadline, "no JSON report");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, text) = http_get(addr, "/metrics").expect("metrics answer after the report");
    let _ = child.kill();
    let _ = child.wait();
    promtool_check(&text);
    let end = samples(&text);
    assert!(
        !text.contains("loadgen_phase_info{"),
        "no phase runs after the end:\n{text}"
    );

    let mut total = 0.0;
    let mut checked = 0;
    for phase in json["phases"].as_array().unwrap() {
        let name = phase["name"].as_str().unwrap();
        for request in phase["requests"].as_array().unwrap() {
            let rname = request["name"].as_str().unwrap();
            let classes = request["figures"]["classes"].as_object().unwrap();
            for (series, value) in end.iter().filter(|(k, _)| {
                k.starts_with(&format!(
                    "loadgen_requests_total{{phase=\"{name}\",request=\"{rname}\","
                ))
            }) {
                let outcome = series
                    .rsplit_once("outcome=\"")
                    .unwrap()
                    .1
                    .trim_end_matches("\"}");
                let expected = classes.get(outcome).and_then(Value::as_f64).unwrap_or(0.0);
                assert_eq!(*value, expected, "{series}");
                checked += 1;
            }
            let reported: f64 = classes.values().filter_map(Value::as_f64).sum();
            total += reported;
        }
        for (metric, field) in [
            ("loadgen_late_total", "late"),
            ("loadgen_dropped_total", "dropped"),
        ] {
            assert_eq!(
                end[&format!("{metric}{{phase=\"{name}\"}}")],
                phase["totals"][field].as_f64().unwrap(),
                "{metric} {name}"
            );
        }
    }
    assert_eq!(
        checked,
        2 * 2 * loadgen::shared::outcome::Class::ALL.len(),
        "a series per phase, request and class"
    );
    let scraped: f64 = end
        .iter()
        .filter(|(k, _)| k.starts_with("loadgen_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(scraped, total);
    assert_eq!(total, 160.0 + 240.0, "80 rps for 2 s, then 40 → 120 rps for 3 s");
    let failing_5xx: f64 = end
        .iter()
        .filter(|(k, _)| k.contains("phase=\"failing\"") && k.contains("outcome=\"http_5xx\""))
        .map(|(_, v)| v)
        .sum();
    assert!(
        failing_5xx > 50.0,
        "half of `/` fails in the second phase: {failing_5xx}"
    );
}

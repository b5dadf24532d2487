//! Alerts end to end: every shipped scenario that expects alerts runs through the real `loadgen`
//! binary, against its embedded target, with a private Prometheus evaluating the stack's own rule
//! files and a private Alertmanager routing with the stack's `alertmanager.yml` to loadgen's own
//! webhook. The expected alerts must go firing, be notified, go inactive and be notified resolved, with
//! every hop timed in the JSON report; a scenario that expects no alert to fire (the baseline) must
//! raise none, not even pending. error-spike instead sends through an Alertmanager this test starts
//! (`--alertmanager`) with the stack's routing, inhibitions and template, every receiver delivering to
//! loadgen's `--notify-listen` address; its routing checks (the page receiver, the slow burn inhibited,
//! the Slack message's snapshot) are judged on that, and the notifications loadgen reports are checked
//! against that Alertmanager's own count of what it sent.
//!
//! The scenarios run at the same time, one child process each, so the whole test takes about as long
//! as the longest scenario (error-spike and slow-burn, 4m30s each). Needs Debian's `prometheus` and
//! `prometheus-alertmanager` packages (`scripts/test.sh` installs them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::repo_dir;

/// Extra time a run may take beyond its scenario's duration (start-up, drain, report).
const RUN_SLACK: Duration = Duration::from_secs(120);

/// The scenario that goes through this test's Alertmanager instead of loadgen's private one.
const ALERTMANAGER_SCENARIO: &str = "error-spike";

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()))
}

fn require(binary: &str, package: &str) {
    assert!(
        on_path(binary),
        "`{binary}` is not on the PATH: the alert tests need a real one. Install Debian's `{package}` \
         package (`apt-get install -y prometheus prometheus-alertmanager`), or run scripts/test.sh, \
         which installs it"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("loadgen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) when dropped.
struct Guard(Child);

impl Guard {
    /// Waits until the child exits or `limit` passes (then kills it and returns `None`).
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.0.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                Err(_) => return None,
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// The body of `GET http://addr/path` when it answers 200.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Whether `GET http://addr/path` answers 200.
fn http_ok(addr: SocketAddr, path: &str) -> bool {
    http_get(addr, path).is_some()
}

/// The sum of the samples of `metric` whose labels contain `labels`, in Prometheus text.
fn metric_sum(text: &str, metric: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A real Alertmanager with the stack's routing, inhibitions and template, every receiver pointed
/// at loadgen's receiver at `webhook` (as loadgen rewrites a configuration it is given).
fn start_alertmanager(dir: &Path, webhook: SocketAddr) -> (Guard, SocketAddr) {
    use loadgen::alerts::alertmanager::{private_config, STACK_CONFIG, STACK_TEMPLATE};
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/slack.tmpl"), STACK_TEMPLATE).unwrap();
    let config = private_config(STACK_CONFIG, &format!("http://{webhook}"), dir)
        .unwrap()
        .text;
    let config_file = dir.join("alertmanager.yml");
    std::fs::write(&config_file, config).unwrap();
    std::fs::create_dir_all(dir.join("alertmanager-data")).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.path={}",
            dir.join("alertmanager-data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus-alertmanager");
    let mut guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_ok(addr, "/-/ready") {
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!(
                "alertmanager exited ({status}): {}",
                std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready within 20s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, addr)
}

/// The shipped scenarios whose phases expect alerts, by name, with their duration.
fn alert_scenarios() -> Vec<(String, PathBuf, Duration)> {
    let dir = repo_dir().join("scenarios");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let scenario = loadgen::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        if scenario.phases.iter().any(|p| p.expect.has_alerts()) {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            found.push((name, path, scenario.duration()));
        }
    }
    found.sort();
    found
}

/// What one run left behind.
struct RunResult {
    name: String,
    status: Option<ExitStatus>,
    report: Option<Value>,
    output: String,
}

fn run_scenario(
    name: String,
    file: PathBuf,
    duration: Duration,
    dir: PathBuf,
    alertmanager: Option<(SocketAddr, SocketAddr)>,
) -> RunResult {
    let json = dir.join(format!("{name}.json"));
    let out = dir.join(format!("{name}.out"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap());
    if let Some((am, webhook)) = alertmanager {
        cmd.arg("--alertmanager")
            .arg(am.to_string())
            .arg("--notify-listen")
            .arg(webhook.to_string());
    }
    let mut child = Guard(cmd.spawn().expect("start loadgen"));
    let status = child.wait_for(duration + RUN_SLACK);
    let report = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let output = [
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default(),
    ]
    .concat();
    RunResult {
        name,
        status,
        report,
        output,
    }
}

/// Everything wrong with one run; empty when it did what its scenario promises.
fn problems(run: &RunResult) -> Vec<String> {
    let mut problems = Vec::new();
    match run.status {
        None => problems.push("did not finish in time (killed)".to_owned()),
        Some(s) if s.code() != Some(0) => problems.push(format!("exited with {s}")),
        Some(_) => {}
    }
    let Some(report) = &run.report else {
        problems.push("wrote no readable JSON report".to_owned());
        return problems;
    };
    if report["result"] != "pass" {
        problems.push(format!("report says result = {}", report["result"]));
    }
    let alerts = &report["alerts"];
    if alerts.is_null() {
        problems.push("report has no alert section (were the alert checks skipped?)".to_owned());
        return problems;
    }
    let empty = Vec::new();
    let checks = alerts["checks"].as_array().unwrap_or(&empty);
    let transitions = alerts["transitions"].as_array().unwrap_or(&empty);
    if checks.is_empty() {
        problems.push("no alert checks were made".to_owned());
    }
    for c in checks {
        if c["verdict"] != "pass" {
            problems.push(format!(
                "check failed: phase {} expects {} {}: {}",
                c["phase"], c["alert"], c["expect"], c["detail"]
            ));
        }
    }
    let expected: Vec<&str> = checks
        .iter()
        .filter(|c| c["expect"] == "firing")
        .filter_map(|c| c["alert"].as_str())
        .collect();
    if expected.is_empty() {
        // A scenario that expects nothing to fire must raise nothing, not even a pending alert.
        for t in transitions {
            if t["to"] != "inactive" {
                problems.push(format!(
                    "{} went {} at {}s though no alert is expected",
                    t["alert"], t["to"], t["at_s"]
                ));
            }
        }
    }
    problems.extend(delivery_problems(report, &expected));
    for alert in expected {
        let fired = transitions
            .iter()
            .position(|t| t["alert"] == alert && t["to"] == "firing");
        match fired {
            None => problems.push(format!("{alert} never went firing")),
            Some(i) => {
                let resolved = transitions[i..]
                    .iter()
                    .any(|t| t["alert"] == alert && t["to"] == "inactive");
                if !resolved {
                    problems.push(format!("{alert} went firing but never back to inactive"));
                }
            }
        }
    }
    problems
}

/// The notification hops of every expected alert: all there, in order, and the `alerts_notified`
/// checks made.
fn delivery_problems(report: &Value, expected: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let delivery = &report["alerts"]["delivery"];
    if delivery.is_null() {
        if !expected.is_empty() {
            problems.push("report has no delivery section (was Alertmanager skipped?)".to_owned());
        }
        return problems;
    }
    let empty = Vec::new();
    let hops = delivery["hops"].as_array().unwrap_or(&empty);
    let run_end = report["phases"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|p| p["end_s"].as_f64())
        .fold(0.0, f64::max);
    for alert in expected {
        let Some(h) = hops.iter().find(|h| h["alert"] == *alert) else {
            problems.push(format!("no hops reported for {alert}"));
            continue;
        };
        let at = |hop: &str| h[hop].as_f64();
        let order = ["pending_s", "firing_s", "notified_firing_s"];
        if order.iter().any(|hop| at(hop).is_none()) {
            problems.push(format!(
                "{alert}: a hop up to the firing notification is missing: {h}"
            ));
        } else if order.windows(2).any(|w| at(w[0]) > at(w[1])) {
            problems.push(format!("{alert}: hops out of order: {h}"));
        }
        // A resolution is announced within the stack's group_interval (15s); one later than the run's
        // end cannot be seen.
        let resolved = at("resolved_s").map(|r| r + h["fault_start_s"].as_f64().unwrap_or(0.0));
        if resolved.is_some_and(|r| r + 20.0 <= run_end) {
            match at("notified_resolved_s") {
                None => problems.push(format!("{alert}: resolved but never notified resolved: {h}")),
                Some(n) if Some(n) < at("resolved_s").map(|r| r - 1.0) => {
                    problems.push(format!("{alert}: notified resolved before it resolved: {h}"))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

#[test]
fn shipped_alert_scenarios_fire_and_resolve_on_cue() {
    require("prometheus", "prometheus");
    require("prometheus-alertmanager", "prometheus-alertmanager");
    let scenarios = alert_scenarios();
    let names: Vec<&str> = scenarios.iter().map(|(n, _, _)| n.as_str()).collect();
    for needed in ["baseline", ALERTMANAGER_SCENARIO] {
        assert!(names.contains(&needed), "scenario `{needed}` missing: {names:?}");
    }

    let dir = TempDir::new("alerts-it");
    let webhook: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_alertmanager, am_addr) = start_alertmanager(&dir.0, webhook);

    let started = Instant::now();
    let handles: Vec<_> = scenarios
        .into_iter()
        .map(|(name, file, duration)| {
            let dir = dir.0.clone();
            let am = (name == ALERTMANAGER_SCENARIO).then_some((am_addr, webhook));
            std::thread::spawn(move || run_scenario(name, file, duration, dir, am))
        })
        .collect();
    let runs: Vec<RunResult> = handles
        .into_iter()
        .map(|h| h.join().expect("a scenario thread panicked"))
        .collect();
    eprintln!("alert scenarios ran in {:.0?}", started.elapsed());

    let mut failures = Vec::new();
    for run in &runs {
        let found = problems(run);
        if !found.is_empty() {
            failures.push(format!(
                "scenario {}:\n  - {}\n--- its output:\n{}",
                run.name,
                found.join("\n  - "),
                run.output
            ));
        }
    }
    // What loadgen says it received through this test's Alertmanager, against that Alertmanager's own
    // count of what it delivered.
    let report = runs
        .iter()
        .find(|r| r.name == ALERTMANAGER_SCENARIO)
        .and_then(|r| r.report.as_ref());
    let received = report.map_or(0, |r| {
        r["alerts"]["delivery"]["notifications"]
            .as_array()
            .map_or(0, Vec::len)
    });
    let metrics = http_get(am_addr, "/metrics").unwrap_or_default();
    let sent = metric_sum(
        &metrics,
        "alertmanager_notifications_total",
        "integration=\"webhook\"",
    );
    let failed = metric_sum(
        &metrics,
        "alertmanager_notifications_failed_total",
        "integration=\"webhook\"",
    );
    let notified_checked = report.is_some_and(|r| {
        r["alerts"]["checks"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["expect"] == "notified" && c["verdict"] == "pass")
        })
    });
    if !notified_checked {
        failures.push(format!(
            "{ALERTMANAGER_SCENARIO}: no passed `alerts_notified` check"
        ));
    }
    if report.is_some_and(|r| r["alerts"]["delivery"]["alertmanager"] != "external") {
        failures.push("error-spike's delivery does not name the external Alertmanager".to_owned());
    }
    if received < 2 || (received as f64) > sent - failed {
        failures.push(format!(
            "{ALERTMANAGER_SCENARIO}: loadgen reports {received} notifications; the Alertmanager sent \
             {sent}, {failed} of them failed; its log:\n{}",
            std::fs::read_to_string(dir.0.join("alertmanager.log")).unwrap_or_default()
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

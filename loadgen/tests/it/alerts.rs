//! Alerts end to end: every shipped scenario that expects alerts runs through the real `loadgen`
//! binary, against its embedded target, with a private Prometheus evaluating the stack's own rule
//! files. The expected alerts must go firing and then inactive, and a scenario that expects no alert
//! to fire (the baseline) must raise none, not even pending. For error-spike the Prometheus also
//! sends its alerts to a real Alertmanager, which must deliver the firing `HighErrorRate` to a webhook
//! served by this test.
//!
//! The scenarios run at the same time, one child process each, so the whole test takes about as long
//! as the longest scenario (error-spike and slow-burn, 4m30s each). Needs Debian's `prometheus` and
//! `prometheus-alertmanager` packages (`scripts/test.sh` installs them).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::repo_dir;

/// Extra time a run may take beyond its scenario's duration (start-up, drain, report).
const RUN_SLACK: Duration = Duration::from_secs(120);

/// The scenario that goes through Alertmanager, and the alert its webhook must receive.
const ALERTMANAGER_SCENARIO: &str = "error-spike";
const ALERTMANAGER_ALERT: &str = "HighErrorRate";

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

/// A tiny HTTP server that keeps the bodies of the POSTs it receives (Alertmanager's webhook calls).
struct Webhook {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("webhook address");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bodies, stop) = (bodies.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(body) = serve_one(stream) {
                                bodies.lock().unwrap().push(body);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
        };
        Webhook {
            addr,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then `Content-Length` bytes of body), answers 200 and closes.
fn serve_one(stream: TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// Whether `GET http://addr/path` answers 200.
fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = [0u8; 12];
    s.read_exact(&mut status).is_ok() && status.starts_with(b"HTTP/1.1 200")
}

/// A real Alertmanager routing every alert to `webhook`, with short waits.
fn start_alertmanager(dir: &Path, webhook: SocketAddr) -> (Guard, SocketAddr) {
    let config = format!(
        "route:\n  receiver: webhook\n  group_by: [alertname, job]\n  group_wait: 1s\n  \
         group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: webhook\n    \
         webhook_configs:\n      - url: http://{webhook}/alerts\n        send_resolved: true\n"
    );
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
    alertmanager: Option<SocketAddr>,
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
    if let Some(am) = alertmanager {
        cmd.arg("--alertmanager").arg(am.to_string());
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
    if report["passed"] != Value::Bool(true) {
        problems.push("report says passed = false".to_owned());
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
        if c["passed"] != Value::Bool(true) {
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

/// Whether a webhook body announces `alert` firing.
fn announces_firing(body: &str, alert: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    v["alerts"].as_array().is_some_and(|alerts| {
        alerts
            .iter()
            .any(|a| a["status"] == "firing" && a["labels"]["alertname"] == alert)
    })
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
    let webhook = Webhook::start();
    let (_alertmanager, am_addr) = start_alertmanager(&dir.0, webhook.addr);

    let started = Instant::now();
    let handles: Vec<_> = scenarios
        .into_iter()
        .map(|(name, file, duration)| {
            let dir = dir.0.clone();
            let am = (name == ALERTMANAGER_SCENARIO).then_some(am_addr);
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
    let bodies = webhook.bodies();
    if !bodies.iter().any(|b| announces_firing(b, ALERTMANAGER_ALERT)) {
        failures.push(format!(
            "the Alertmanager webhook received no firing {ALERTMANAGER_ALERT} notification \
             ({} notifications: {bodies:?}); alertmanager log:\n{}",
            bodies.len(),
            std::fs::read_to_string(dir.0.join("alertmanager.log")).unwrap_or_default()
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

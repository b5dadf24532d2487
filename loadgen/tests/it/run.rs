//! The `loadgen` binary end to end against real targets on loopback: counts, injected error ratios,
//! the JSON report against the printed summary, exit codes, and faults cleared after the run and after
//! an interruption.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use target_app::{Config, Role};

use crate::support::{read_report, scenario_file};

fn loadgen(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args(args).env_remove("CHAOS_TOKEN").stdin(Stdio::null());
    cmd
}

fn run(args: &[&str]) -> Output {
    loadgen(args).output().unwrap()
}

const TWO_PHASES: &str = r#"
name = "two-phases"
seed = 9

[[mix]]
path = "/"
weight = 3
[[mix]]
path = "/health"
weight = 1

[[phases]]
name = "calm"
duration = "2s"
rate = { shape = "constant", rps = 100 }
expect = { requests = "== 200", error_ratio = "== 0" }

[[phases]]
name = "errors"
duration = "2s"
rate = { shape = "ramp", from = 50, to = 150 }
chaos = [{ fault = "error", status = 503, ratio = 0.4, routes = ["/"] }]
expect = { checks = ["requests == 200", "error_ratio > 0.25"] }
"#;

#[test]
fn counts_and_error_ratios_match_the_schedule_and_the_faults() {
    let file = scenario_file("two-phases", TWO_PHASES);
    let report = file.with_extension("json");
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--json",
        report.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_report(&report);
    assert_eq!(r["result"], "pass");
    assert_eq!(r["ending"], "completed");
    let phases = r["phases"].as_array().unwrap();
    assert_eq!(phases[0]["totals"]["requests"], 200, "constant 100 rps for 2 s");
    assert_eq!(
        phases[1]["totals"]["requests"], 200,
        "ramp 50→150 rps over 2 s is 200 requests"
    );
    // Faults hit `/` only: 40% of the `/` requests of the second phase, exactly (within 1).
    let root = phases[1]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "GET /")
        .unwrap();
    let n = root["figures"]["requests"].as_u64().unwrap() as f64;
    let failed = root["figures"]["statuses"]["503"].as_u64().unwrap() as f64;
    assert!((failed - 0.4 * n).abs() <= 1.0, "{failed} of {n}");
    let health = phases[1]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "GET /health")
        .unwrap();
    assert_eq!(health["figures"]["errors"], 0, "/health is never faulted");

    // The printed summary agrees with the JSON report.
    for p in phases {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(p["name"].as_str().unwrap()))
            .expect("a row per phase");
        let count: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!(count, p["totals"]["requests"].as_u64().unwrap(), "{line}");
    }
    assert!(
        stdout.contains("PASS         errors         error_ratio > 0.25"),
        "{stdout}"
    );
}

#[test]
fn a_failed_expectation_exits_1_and_says_which() {
    let file = scenario_file(
        "fails",
        r#"
name = "fails"
[[mix]]
path = "/"
[[phases]]
name = "only"
duration = "1s"
rate = { shape = "constant", rps = 20 }
chaos = [{ fault = "error", ratio = 1.0 }]
expect = { error_ratio = "< 0.1" }
"#,
    );
    let out = run(&["run", file.to_str().unwrap(), "--quiet"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL         only")
            && stdout.contains("error_ratio < 0.1")
            && stdout.contains("observed 1"),
        "{stdout}"
    );
    assert!(stdout.contains("result: FAIL"));
}

#[test]
fn bad_files_and_usage_exit_2() {
    let file = scenario_file("bad", "name = 3\n[[phases]]\nduration = \"0s\"\n");
    let out = run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:"),
        "names the file and position: {stderr}"
    );
    assert_eq!(run(&["run"]).status.code(), Some(2), "missing argument");
    assert_eq!(run(&["run", "/no/such/file.toml"]).status.code(), Some(2));
    let ok = scenario_file("ok", TWO_PHASES);
    let out = run(&["run", ok.to_str().unwrap(), "--target", "ftp://example"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A target-app on a loopback port, in this test process, on its own runtime thread.
pub struct Target {
    pub url: String,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Target {
    fn start() -> Target {
        Target::start_with(|_| {})
    }

    /// A target whose configuration `tweak` changes first.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Target {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut config = Config::embedded(Role::App);
            config.listen = addr;
            tweak(&mut config);
            tokio::spawn(target_app::serve(listener, config, async move {
                let _ = rx.await;
            }));
            addr
        });
        Target {
            url: format!("http://{addr}"),
            rt,
            stop: Some(tx),
        }
    }

    pub fn faults(&self) -> serde_json::Value {
        let url = format!("{}/admin/chaos", self.url);
        self.rt.block_on(async move {
            use http_body_util::BodyExt;
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
            let resp = client.get(url.parse().unwrap()).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["faults"].clone()
        })
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

#[test]
fn faults_are_cleared_after_the_run() {
    let target = Target::start();
    let file = scenario_file("clears", TWO_PHASES);
    let out = run(&["run", file.to_str().unwrap(), "--quiet", "--target", &target.url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(target.faults(), serde_json::json!([]));
}

#[test]
fn interrupt_clears_faults_writes_the_report_and_exits_130() {
    let target = Target::start();
    let file = scenario_file(
        "interrupted",
        r#"
name = "interrupted"
[[mix]]
path = "/"
[[phases]]
name = "long"
duration = "60s"
rate = { shape = "constant", rps = 50 }
chaos = [{ fault = "latency", delay = "5ms" }]
"#,
    );
    let report = file.with_extension("json");
    let child = loadgen(&[
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--target",
        &target.url,
        "--json",
        report.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while target.faults().as_array().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "faults were never applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        target.faults(),
        serde_json::json!([]),
        "faults cleared on the way out"
    );
    let r = read_report(&report);
    assert_eq!(r["ending"], "interrupted");
    let done = r["phases"][0]["totals"]["requests"].as_u64().unwrap();
    assert!(
        (20..=100).contains(&done),
        "about a second of requests was recorded: {done}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));
}

#[test]
fn a_dead_target_is_reported_not_a_crash() {
    // A port with nothing listening: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let file = scenario_file(
        "dead",
        r#"
name = "dead"
[[mix]]
path = "/"
[[phases]]
name = "only"
duration = "1s"
rate = { shape = "constant", rps = 20 }
expect = { error_ratio = "== 1" }
"#,
    );
    let report = file.with_extension("json");
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--target",
        &format!("http://{addr}"),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = read_report(&report);
    assert_eq!(r["phases"][0]["totals"]["classes"]["connect"], 20);
}

#[test]
fn every_shipped_scenario_plans() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = run(&["plan", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.stdout.is_empty());
        }
    }
}

#[test]
fn on_one_core_every_loop_runs_the_same() {
    // Pinned to one core, loadgen runs on a single-threaded runtime, with the embedded target in it:
    // the same counts and faults, the precise pacer's OS timer included, and a closed-loop phase.
    let text = format!(
        "{TWO_PHASES}\n[[phases]]\nname = \"closed\"\nduration = \"1s\"\nconcurrency = 4\nexpect = {{ error_ratio = \"== 0\" }}\n"
    );
    let file = scenario_file("one-core", &text);
    let report = file.with_extension("json");
    let out = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_loadgen"), "run"])
        .arg(&file)
        .args(["--quiet", "--json"])
        .arg(&report)
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run taskset (util-linux)");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_report(&report);
    let phases = r["phases"].as_array().unwrap();
    assert_eq!(phases[0]["totals"]["requests"], 200);
    assert_eq!(phases[1]["totals"]["requests"], 200);
    assert!(phases[1]["totals"]["errors"].as_u64().unwrap() > 0);
    assert!(phases[2]["totals"]["requests"].as_u64().unwrap() > 0);
}

//! Verdicts backed by evidence, end to end with the real binary: an alert check is PASS only over time
//! for which Prometheus answered, NOT VERIFIED (exit 4) when it did not, FAIL when what was observed
//! contradicts it; `alerts_resolved` needs a firing; each peer speaks its own protocol.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen::alerts::prometheus::LocalPrometheus;
use loadgen::cmd::run::embedded::Embedded;
use serde_json::Value;

use crate::support::{get_metrics, metrics_addr, read_report, scenario_file, wait};

/// Runs `loadgen run FILE ARGS --quiet --json REPORT` to its end; its exit code, report and output.
fn run(file: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let json = file.with_extension("json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .arg(file)
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), read_report(&json), output)
}

fn checks(report: &Value) -> Vec<(String, String, String)> {
    report["alerts"]["checks"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    (
                        c["phase"].as_str().unwrap_or_default().to_owned(),
                        c["expect"].as_str().unwrap_or_default().to_owned(),
                        c["verdict"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const QUIET: &str = r#"
name = "quiet"
[[mix]]
path = "/health"
[[phases]]
name = "p"
duration = "3s"
rate = { shape = "constant", rps = 5 }
expect = { alerts_inactive = ["HighErrorRate"] }
"#;

#[test]
fn with_prometheus_unreachable_nothing_passes_and_the_run_exits_4() {
    let file = scenario_file("verdict-unreachable", QUIET);
    let (code, report, output) = run(
        &file,
        &[
            "--prometheus",
            "http://127.0.0.1:1",
            "--alert-match",
            r#"job="target-app""#,
        ],
    );
    assert_eq!(code, Some(4), "{output}");
    assert_eq!(report["result"], "not_verified", "{output}");
    assert_eq!(
        checks(&report),
        [("p".into(), "inactive".into(), "not_verified".into())]
    );
    let check = &report["alerts"]["checks"][0];
    assert_eq!(check["coverage"]["covered"], 0.0, "{check}");
    assert!(
        check["coverage"]["failed_polls"].as_u64().unwrap() >= 3,
        "{check}"
    );
    assert!(output.contains("NOT VERIFIED p"), "{output}");
    assert!(output.contains("result: NOT VERIFIED"), "{output}");
    assert!(!output.contains("PASS"), "{output}");
}

#[test]
fn alert_checks_skipped_by_request_do_not_block_a_pass() {
    let file = scenario_file("verdict-no-alerts", QUIET);
    let (code, report, output) = run(&file, &["--no-alerts"]);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(report["result"], "pass", "{output}");
    assert_eq!(
        checks(&report),
        [("p".into(), "inactive".into(), "skipped".into())]
    );
    assert!(output.contains("SKIPPED      p"), "{output}");
}

#[test]
fn alerts_resolved_without_a_firing_fails_in_the_run_and_in_the_prediction() {
    require_prometheus();
    let file = scenario_file(
        "verdict-resolved",
        r#"
name = "healthy"
[[mix]]
path = "/health"
[[phases]]
name = "healthy"
duration = "4s"
rate = { shape = "constant", rps = 5 }
expect = { alerts_resolved = ["HighErrorRate"] }
"#,
    );
    let (code, report, output) = run(&file, &[]);
    assert_eq!(code, Some(1), "{output}");
    assert_eq!(
        checks(&report),
        [("healthy".into(), "resolved".into(), "fail".into())]
    );
    assert_eq!(
        report["alerts"]["checks"][0]["detail"], "never fired during the run, so it cannot have resolved",
        "{output}"
    );

    let plan = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["plan", "--predict"])
        .arg(&file)
        .output()
        .expect("run loadgen plan");
    let stderr = String::from_utf8_lossy(&plan.stderr);
    assert!(
        stderr.contains("phase `healthy` expects HighErrorRate resolved, but the prediction disagrees"),
        "{stderr}"
    );
}

#[test]
fn prometheus_killed_in_a_phase_leaves_that_phase_not_verified() {
    require_prometheus();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt.block_on(Embedded::start(|_| {})).unwrap();
    let prometheus = rt
        .block_on(LocalPrometheus::start(&[("target-app", target.app)], None, None))
        .expect("start Prometheus");
    let file = scenario_file(
        "verdict-killed",
        r#"
name = "prometheus goes away"
[[mix]]
path = "/health"
[[phases]]
name = "before"
duration = "4s"
rate = { shape = "constant", rps = 5 }
expect = { alerts_inactive = ["HighErrorRate"] }
[[phases]]
name = "after"
duration = "8s"
rate = { shape = "constant", rps = 5 }
expect = { alerts_inactive = ["HighErrorRate"] }
"#,
    );
    let json = file.with_extension("json");
    let err = file.with_extension("err");
    let child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .arg(&file)
        .args(["--target", &target.url(), "--prometheus", &prometheus.url])
        .args([
            "--alert-match",
            r#"job="target-app""#,
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--quiet", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(file.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start loadgen");
    let deadline = Instant::now() + Duration::from_secs(90);
    let addr = metrics_addr(&err, deadline);
    // Prometheus goes away as soon as the second phase has started.
    while !get_metrics(&addr).contains(r#"phase="after"} 1"#) {
        assert!(Instant::now() < deadline, "the second phase never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(prometheus);
    let status = wait(child, deadline);
    let output = std::fs::read_to_string(file.with_extension("out")).unwrap_or_default()
        + &std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{output}");
    let report = read_report(&json);
    assert_eq!(
        checks(&report),
        [
            ("before".into(), "inactive".into(), "pass".into()),
            ("after".into(), "inactive".into(), "not_verified".into()),
        ],
        "{output}"
    );
    let after = &report["alerts"]["checks"][1]["coverage"];
    assert!(after["covered"].as_f64().unwrap() < 0.5, "{after}");
    assert!(after["failed_polls"].as_u64().unwrap() >= 3, "{after}");
    rt.block_on(target.stop());
}

#[test]
fn http2_prior_knowledge_reaches_the_embedded_target() {
    let file = scenario_file(
        "verdict-h2c",
        r#"
name = "h2c"
[[mix]]
path = "/"
[[phases]]
name = "p"
duration = "2s"
rate = { shape = "constant", rps = 20 }
expect = { error_ratio = "== 0" }
"#,
    );
    let (code, report, output) = run(&file, &["--http2-prior-knowledge", "--no-alerts"]);
    assert_eq!(code, Some(0), "{output}");
    let totals = &report["phases"][0]["totals"];
    assert_eq!(totals["protocols"]["HTTP/2"], 40, "{totals}");
    assert_eq!(totals["classes"]["ok"], 40, "{totals}");
}

fn require_prometheus() {
    assert!(
        loadgen::alerts::prometheus::installed(),
        "`prometheus` is not on the PATH (Debian package prometheus)"
    );
}

//! `loadgen run --stack DIR` end to end: a directory laid out like `stack/` whose compose file
//! publishes a target-app running in this test process (with a chaos token, as the stack's apps have),
//! whose `.env` holds that token. The run finds the target and the token from the directory alone and
//! applies its faults; with a real Prometheus published as the stack's, that one decides the alert
//! checks; a stack that is down, or has no `.env`, is refused with a reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use loadgen::alerts::prometheus::LocalPrometheus;
use loadgen::cmd::run::embedded::Embedded;

use crate::run::Target;
use crate::support::{read_report, scenario_file};

const TOKEN: &str = "stack-token-61c9";

const FAULTED: &str = r#"
name = "stack-faults"
seed = 5
[[mix]]
path = "/"
[[phases]]
name = "errors"
duration = "2s"
rate = { shape = "constant", rps = 50 }
chaos = [{ fault = "error", status = 500, ratio = 0.5 }]
expect = { checks = ["requests == 100", "error_ratio == 0.5"] }
"#;

/// `loadgen run FILE --quiet --stack DIR` and `extra` flags, without CHAOS_TOKEN in the environment.
fn run_stack(file: &Path, dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--stack",
            dir.to_str().unwrap(),
        ])
        .args(extra)
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A stack directory whose target-app is published at `target` (host:port), with `env` as `.env`
/// when given, and Prometheus at a port nothing listens on. The repository's Alertmanager routing
/// comes along unchanged.
fn stack_dir(name: &str, target: &str, env: Option<&str>) -> PathBuf {
    stack_dir_with_prometheus(name, target, "127.0.0.1:1", env)
}

/// The same, with Prometheus published at `prometheus` (host:port).
fn stack_dir_with_prometheus(name: &str, target: &str, prometheus: &str, env: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-it-stack-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("alertmanager")).unwrap();
    let compose = format!(
        "services:\n  target-app:\n    ports: [\"{target}:8080\"]\n  prometheus:\n    ports: \
         [\"{prometheus}:9090\"]\n  alertmanager:\n    ports: [\"127.0.0.1:1:9093\"]\n"
    );
    std::fs::write(dir.join("docker-compose.yml"), compose).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack/alertmanager/alertmanager.yml");
    std::fs::copy(repo, dir.join("alertmanager/alertmanager.yml")).unwrap();
    if let Some(env) = env {
        std::fs::write(dir.join(".env"), env).unwrap();
    }
    dir
}

#[test]
fn the_stack_flag_finds_the_target_and_its_chaos_token_in_the_stack_directory() {
    let target = Target::start_with(|c| c.chaos_token = Some(TOKEN.to_owned()));
    let host = target.url.trim_start_matches("http://");
    let dir = stack_dir(
        "up",
        host,
        Some(&format!("GRAFANA_ADMIN_PASSWORD=x\nCHAOS_TOKEN={TOKEN}\n")),
    );
    let file = scenario_file("stack-faults", FAULTED);
    let report = file.with_extension("json");
    // --no-alerts: no Prometheus here; the stack then gives no --prometheus and no listener.
    let out = run_stack(&file, &dir, &["--no-alerts", "--json", report.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&format!("target {}", target.url)) && stderr.contains("chaos token from"),
        "the start line says what came from the stack: {stderr}"
    );
    assert!(!stderr.contains(TOKEN), "the token was echoed: {stderr}");
    let report = read_report(&report);
    assert_eq!(report["target"], target.url.as_str(), "{report}");

    // The same directory with a wrong token: the target refuses the faults (the token is used).
    let wrong = stack_dir("wrong", host, Some("CHAOS_TOKEN=not-the-token\n"));
    let out = run_stack(&file, &wrong, &["--no-alerts"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A token given on the command line wins over the stack's.
    let out = run_stack(&file, &wrong, &["--no-alerts", "--chaos-token", TOKEN]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(wrong);
}

#[test]
fn a_stack_that_is_not_up_is_named_before_anything_is_sent() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let file = scenario_file("stack-down", FAULTED);

    let dir = stack_dir("down", &free.to_string(), Some("CHAOS_TOKEN=t\n"));
    let out = run_stack(&file, &dir, &["--no-alerts"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("target-app does not answer") && stderr.contains(&free.to_string()),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing was run: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let no_env = stack_dir("no-env", &free.to_string(), None);
    let out = run_stack(&file, &no_env, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no .env there") && stderr.contains(".env.example"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(no_env);
}

/// A healthy run that expects no `HighErrorRate`, with an error fault too small to raise it.
const WATCHED: &str = r#"
name = "stack-watched"
seed = 6
[[mix]]
path = "/"
[[phases]]
name = "calm"
duration = "6s"
rate = { shape = "constant", rps = 20 }
chaos = [{ fault = "error", status = 500, ratio = 0.05 }]
expect = { error_ratio = "< 0.1", alerts_inactive = ["HighErrorRate"] }
"#;

/// The stack's Prometheus, found from the compose file alone, is the one asked about alerts: a real
/// Prometheus (Debian's package) with the stack's rules scrapes the target as job `target-app`, and
/// the run's alert check is decided by what it answered (PASS, exit 0), not NOT VERIFIED.
#[test]
fn the_stack_flag_asks_the_stacks_prometheus_about_alerts() {
    assert!(
        loadgen::alerts::prometheus::installed(),
        "needs Prometheus (Debian package `prometheus`; scripts/test.sh installs it)"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt
        .block_on(Embedded::start(|c| c.chaos_token = Some(TOKEN.to_owned())))
        .unwrap();
    let prometheus = rt
        .block_on(LocalPrometheus::start(&[("target-app", target.app)], None, None))
        .expect("start Prometheus");
    let dir = stack_dir_with_prometheus(
        "prometheus",
        &target.app.to_string(),
        prometheus.url.trim_start_matches("http://"),
        Some(&format!("CHAOS_TOKEN={TOKEN}\n")),
    );
    let file = scenario_file("stack-watched", WATCHED);
    let report = file.with_extension("json");
    // No listener: nothing here sends notifications, and the stack's port would be a fixed one.
    let out = run_stack(
        &file,
        &dir,
        &["--no-notifications", "--json", report.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&format!("Prometheus {}", prometheus.url)),
        "{stderr}"
    );
    let report = read_report(&report);
    assert_eq!(
        report["alerts"]["prometheus"],
        prometheus.url.as_str(),
        "{report}"
    );
    drop(prometheus);
    rt.block_on(target.stop());
    let _ = std::fs::remove_dir_all(dir);
}

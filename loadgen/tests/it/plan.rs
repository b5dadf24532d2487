//! `loadgen::cmd::run` as a library: a [`RunPlan`] made from options and a scenario, carried out against
//! the embedded target, its result mapped to the exit code as the binary does.

use clap::Parser;
use loadgen::cmd::cli::{Cli, Command};
use loadgen::cmd::exit::{EXIT_INTERRUPTED, EXIT_PASS, EXIT_RUN_ERROR, EXIT_USAGE};
use loadgen::cmd::run::{exit_code, RunError, RunPlan};
use tokio::sync::watch;

use crate::support::{read_report, scenario_file};

const FAULTS: &str = r#"
name = "library"
seed = 5
[[mix]]
path = "/"
[[phases]]
name = "calm"
duration = "1s"
rate = { shape = "constant", rps = 20 }
expect = { requests = "== 20", error_ratio = "== 0" }
[[phases]]
name = "broken"
duration = "1s"
rate = { shape = "constant", rps = 20 }
chaos = [{ fault = "error", status = 503, ratio = 1.0 }]
expect = { requests = "== 20", error_ratio = "== 1" }
"#;

/// The plan of `loadgen run FILE FLAGS…` for `text`, written to a file of its own.
fn plan(name: &str, text: &str, flags: &[&str]) -> (RunPlan, std::path::PathBuf) {
    let file = scenario_file(name, text);
    let argv = ["loadgen", "run", file.to_str().unwrap()]
        .into_iter()
        .chain(flags.iter().copied());
    let args = match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(args) => args,
        other => panic!("{other:?}"),
    };
    let scenario = loadgen::scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
    (RunPlan::new(&args, scenario).expect("a valid plan"), file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_runs_against_the_embedded_target_and_its_faults() {
    let json = scenario_file("library-report", "").with_extension("json");
    let (plan, _) = plan("library", FAULTS, &["--quiet", "--json", json.to_str().unwrap()]);
    let (_cancel, cancel) = watch::channel(false);
    let result = loadgen::run(plan, cancel).await;
    assert_eq!(exit_code(&result), EXIT_PASS, "{result:?}");
    let summary = result.unwrap();
    assert!(summary.passed() && !summary.interrupted());
    let s = serde_json::to_value(&summary).unwrap();
    assert_eq!(s["phases"][0]["totals"]["requests"], 20, "20 rps for 1 s");
    assert_eq!(
        s["phases"][1]["totals"]["classes"]["http_5xx"], 20,
        "every request hit the fault"
    );
    assert_eq!(s["fault_windows"][0]["phase"], "broken");
    // The report written is the summary returned (floats aside, which JSON may round).
    let written = read_report(&json);
    for field in ["scenario", "seed", "target", "ending", "result"] {
        assert_eq!(written[field], s[field], "{field}");
    }
    let counts = |r: &serde_json::Value| -> Vec<(u64, u64)> {
        let series = r["series"].as_array().unwrap().iter();
        series
            .map(|p| (p["sent"].as_u64().unwrap(), p["errors"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(counts(&written), counts(&s));
    assert_eq!(counts(&s).iter().map(|(sent, _)| sent).sum::<u64>(), 40);
    assert_eq!(
        written["phases"][1]["totals"]["classes"],
        s["phases"][1]["totals"]["classes"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_plan_still_returns_its_summary_and_exits_130() {
    let (plan, _) = plan("library-cancelled", FAULTS, &["--quiet"]);
    let (_cancel, cancel) = watch::channel(true);
    let result = loadgen::run(plan, cancel).await;
    assert_eq!(exit_code(&result), EXIT_INTERRUPTED, "{result:?}");
    let summary = result.unwrap();
    assert!(summary.interrupted() && !summary.passed());
    assert!(summary.phases.is_empty(), "stopped before the first phase");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_that_cannot_be_applied_end_the_run_with_its_summary() {
    // A loopback port nobody listens on: the chaos API cannot be reached.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let text = FAULTS.replace(
        "name = \"calm\"",
        "name = \"calm\"\nchaos = [{ fault = \"latency\", delay = \"1ms\" }]",
    );
    let (plan, _) = plan("library-refused", &text, &["--quiet", "--target", &url]);
    let (_cancel, cancel) = watch::channel(false);
    let result = loadgen::run(plan, cancel).await;
    assert_eq!(exit_code(&result), EXIT_RUN_ERROR, "{result:?}");
    match result {
        Err(RunError::Engine { source, summary }) => {
            assert!(
                source
                    .to_string()
                    .starts_with("phase `calm`: cannot reach the chaos API"),
                "{source}"
            );
            assert!(summary.interrupted());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_metrics_address_is_a_usage_error_before_anything_starts() {
    let busy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (plan, _) = plan("library-busy", FAULTS, &["--quiet", "--metrics-addr", &addr]);
    let (_cancel, cancel) = watch::channel(false);
    let result = loadgen::run(plan, cancel).await;
    assert_eq!(exit_code(&result), EXIT_USAGE, "{result:?}");
    assert!(
        matches!(
            result,
            Err(RunError::Bind {
                flag: "--metrics-addr",
                ..
            })
        ),
        "{result:?}"
    );
}

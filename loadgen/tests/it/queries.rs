//! The query catalogs and dashboards against real output of the target.
//!
//! The target-app and its downstream run embedded in this process, their JSON logs captured; a real
//! Prometheus (Debian's) with the stack's rule files scrapes them, and the generator's own metrics,
//! every second; the `loadgen` binary drives a short mixed scenario against them: every route, a burst
//! past the concurrency limit (load shedding), then 30% of requests failing and half the downstream
//! calls failing. Then:
//!
//! - every PromQL query of `queries/metrics.md`, `docs/workshop.md` and `dashboards/*.json` that reads
//!   the target's own metrics, the recording rules, the alerts they raise or loadgen's metrics must
//!   return data (a non-NaN sample) from `/api/v1/query` at one of a few instants of the run;
//! - every LogQL query of `queries/logs.md`, `docs/workshop.md` and the dashboards that reads the app's
//!   lines must find every JSON field it relies on in the captured lines, and one line satisfying all
//!   its equality, numeric and line filters at once.
//!
//! Skipped, each for a reason given where it is decided: queries over Tempo-generated metrics (Tempo
//! cannot run here; `scripts/check-queries.sh` still parses them), over loadgen's own metrics if the
//! binary has no `--metrics-addr`, and LogQL of other services' logs (the webhook's). About a minute.

mod extract;
mod logql;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use loadgen::alerts::prometheus::LocalPrometheus;
use loadgen::cmd::run::embedded::Embedded;
use serde_json::Value;

use extract::Query;
use logql::Line;

/// Healthy traffic on every route, a burst of slow requests past the concurrency limit, then errors
/// and failing downstream calls until the end, so the faults and the alerts they raise are still in
/// force at the last instants the queries are evaluated at.
const SCENARIO: &str = r#"
name = "queries-check"
description = "Every route, a shedding burst, then 30% errors and failing downstream calls."
seed = 3

[defaults]
timeout = "5s"
max_in_flight = 500

[[mix]]
path = "/"
weight = 10

[[mix]]
path = "/external"
weight = 4

[[mix]]
name = "checkout"
method = "POST"
path = "/checkout"
body = { items = [{ sku = "A1", qty = 2 }] }
weight = 3

[[mix]]
name = "generate-load"
path = "/generate-load"
query = { ms = 5 }
weight = 2

[[mix]]
name = "slow"
path = "/slow"
query = { ms = 1200 }
weight = 1

[[mix]]
name = "not-found"
path = "/error"
query = { type = "404" }
weight = 1

[[phases]]
name = "healthy"
duration = "10s"
rate = { shape = "constant", rps = 30 }

[[phases]]
name = "surge"
duration = "4s"
rate = { shape = "constant", rps = 40 }
mix = [{ name = "slow-surge", path = "/slow", query = { ms = 1200 } }]

[[phases]]
name = "faulty"
duration = "36s"
rate = { shape = "constant", rps = 30 }
chaos = [
  { fault = "error", status = 500, ratio = 0.3 },
  { fault = "downstream", ratio = 0.5, routes = ["/external", "/checkout"] },
]
"#;

/// Seconds after loadgen starts at which queries are also evaluated: the end of the surge's shedding
/// window and late in the faulty phase, while faults (`chaos_fault_active == 1`) and alerts are on.
const INSTANTS: &[u64] = &[30, 44];

/// Concurrency limit of the embedded services: low, so the surge is shed (`http_requests_shed_total`).
const MAX_CONCURRENCY: usize = 8;

/// Services whose lines the app writes.
const APP_SERVICES: &[&str] = &["target-app", "downstream"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A buffer the log writer thread appends to.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every query of the catalogs, the workshop guide and the dashboards.
fn all_queries() -> Vec<Query> {
    let root = repo();
    let mut out = Vec::new();
    for doc in ["queries/metrics.md", "queries/logs.md", "docs/workshop.md"] {
        let path = root.join(doc);
        if path.exists() {
            out.extend(extract::markdown(&path, doc));
        }
    }
    let mut dashboards: Vec<PathBuf> = std::fs::read_dir(root.join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    dashboards.sort();
    for path in dashboards {
        let shown = format!(
            "dashboards/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        out.extend(extract::dashboard(&path, &shown));
    }
    out
}

/// Why a PromQL query is not run, if it is not.
fn skip_reason(q: &Query, loadgen_scraped: bool) -> Option<&'static str> {
    if q.tempo_marked || q.text.contains("traces_spanmetrics_") || q.text.contains("traces_service_graph_") {
        // Written by Tempo's metrics-generator from spans; Tempo cannot run here.
        return Some("tempo-generated");
    }
    if q.text.contains("loadgen_") && !loadgen_scraped {
        // The generator's own metrics need a loadgen that serves them (--metrics-addr).
        return Some("loadgen metrics: this loadgen has no --metrics-addr");
    }
    None
}

/// Whether the `loadgen` binary serves its own metrics (`--metrics-addr`), and lingers after the run.
fn loadgen_flags() -> (bool, bool) {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    (help.contains("--metrics-addr"), help.contains("--metrics-linger"))
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Evaluates `expr` at `time`; Ok(true) when the answer holds a sample that is a number.
async fn has_data(client: &HttpClient, base: &str, expr: &str, time: f64) -> Result<bool, String> {
    let body = format!("query={}&time={time:.3}", encode(expr));
    let req = http::Request::post(format!("{base}/api/v1/query"))
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if answer["status"] != "success" {
        return Err(format!("Prometheus answered {answer}"));
    }
    let number = |v: &Value| v.get(1).and_then(Value::as_str).is_some_and(|s| s != "NaN");
    let result = &answer["data"]["result"];
    Ok(if answer["data"]["resultType"] == "scalar" {
        number(result)
    } else {
        result
            .as_array()
            .is_some_and(|series| series.iter().any(|s| s.get("value").is_some_and(number)))
    })
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

async fn run_loadgen(scenario: &Path, target: &str, extra: &[String]) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", &scenario.to_string_lossy(), "--target", target, "--quiet"])
        .args(extra)
        .env_remove("CHAOS_TOKEN")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("loadgen finished within 120s")
        .expect("loadgen started");
    assert!(
        out.status.success(),
        "loadgen failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_dashboard_queries_find_data_in_real_output() {
    assert!(
        loadgen::alerts::prometheus::installed(),
        "no `prometheus` on the PATH: this test needs a real one (apt-get install -y prometheus, or run \
         scripts/test.sh, which installs it)"
    );
    // The JSON log subscriber is process-global and can be installed once per process: this is the only
    // test of the binary that captures the embedded target's lines.
    let buffer = Shared::default();
    let log_guard = target_app::telemetry::logs::init(Box::new(buffer.clone()));

    let target = Embedded::start(|c| c.max_concurrency = MAX_CONCURRENCY)
        .await
        .expect("embedded target starts");
    // loadgen's own metrics are scraped too when this loadgen serves them, as the stack does.
    let (serves_metrics, lingers) = loadgen_flags();
    let loadgen_addr = free_addr();
    let mut scraped = vec![("target-app", target.app), ("downstream", target.downstream)];
    let mut extra = Vec::new();
    if serves_metrics {
        scraped.push(("loadgen", loadgen_addr));
        extra.extend(["--metrics-addr".to_owned(), loadgen_addr.to_string()]);
        if lingers {
            extra.extend(["--metrics-linger".to_owned(), "3s".to_owned()]);
        }
    }
    let prometheus = LocalPrometheus::start(&scraped, None, None)
        .await
        .expect("prometheus starts");

    let dir = std::env::temp_dir().join(format!("loadgen-it-queries-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let scenario = dir.join("queries-check.toml");
    std::fs::write(&scenario, SCENARIO).expect("scenario written");

    let started = SystemTime::now();
    run_loadgen(&scenario, &target.url(), &extra).await;
    // One more scrape and evaluation of the end of the run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut instants: Vec<f64> = INSTANTS
        .iter()
        .map(|s| unix(started + Duration::from_secs(*s)))
        .collect();
    instants.push(unix(SystemTime::now()));

    let queries = all_queries();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut failures = Vec::new();
    let (mut ran, mut skipped) = (0, Vec::new());
    for q in queries.iter().filter(|q| q.lang == "promql") {
        if let Some(reason) = skip_reason(q, serves_metrics) {
            skipped.push(format!("{} ({reason})", q.source));
            continue;
        }
        let expr = match extract::substitute(&q.text) {
            Ok(e) => extract::shorten_offsets(&e),
            Err(e) => {
                failures.push(format!("{}: {e}", q.source));
                continue;
            }
        };
        ran += 1;
        let mut found = Ok(false);
        for t in &instants {
            found = has_data(&client, &prometheus.url, &expr, *t).await;
            if !matches!(found, Ok(false)) {
                break;
            }
        }
        match found {
            Ok(true) => {}
            Ok(false) => failures.push(format!(
                "{}: no data at any instant of the run:\n    {expr}",
                q.source
            )),
            Err(e) => failures.push(format!("{}: {e}\n    {expr}", q.source)),
        }
    }

    drop(log_guard); // flushes every queued line into the buffer
    target.stop().await;
    let captured = String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let lines: Vec<Line> = captured.lines().filter_map(Line::parse).collect();
    assert!(lines.len() > 500, "only {} JSON log lines captured", lines.len());
    let mut checked_logql = 0;
    for q in queries.iter().filter(|q| q.lang == "logql") {
        let text = match extract::substitute(&q.text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{}: {e}", q.source));
                continue;
            }
        };
        if logql::selects_other_services(&text, APP_SERVICES) {
            // Another service's lines (the stack's webhook): nothing the app writes.
            skipped.push(format!("{} (not the app's logs)", q.source));
            continue;
        }
        checked_logql += 1;
        for problem in logql::check(&text, &lines) {
            failures.push(format!("{}: {problem}\n    {text}", q.source));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    eprintln!(
        "queries: {ran} PromQL run against Prometheus, {checked_logql} LogQL checked against {} log lines; skipped: {}",
        lines.len(),
        skipped.join(", ")
    );
    assert!(ran >= 40, "only {ran} PromQL queries found to run");
    assert!(
        checked_logql >= 15,
        "only {checked_logql} LogQL queries found to check"
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

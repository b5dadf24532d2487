//! Alerts scoped to the run's target, under one shared Prometheus: two target-apps, `shop` and
//! `noisy`, are scraped by one real Prometheus with the stack's rules. A run against `noisy` fails every
//! request, so `HighErrorRate{job="noisy"}` fires, and that run sees it as its own. While it fires, a
//! baseline run against `shop` that expects `HighErrorRate` inactive still passes, with `noisy`'s alert
//! listed as not counted; the same run counting every alert (`--alert-match 'alertname=~".+"'`, what
//! loadgen did before scoping) fails. Takes about a minute; needs Debian's `prometheus` package.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use loadgen::alerts::prometheus::LocalPrometheus;
use loadgen::client::{Api, Auth, Options};
use loadgen::cmd::run::embedded::Embedded;
use serde_json::Value;

use crate::support::{read_report, scenario_file, wait};

/// Every request to `noisy` fails; `HighErrorRate` (`for: 15s`) fires about 20 s in.
const NOISY: &str = r#"
name = "noisy-neighbour"
seed = 1
[[mix]]
path = "/"
[[phases]]
name = "failing"
duration = "60s"
rate = { shape = "constant", rps = 5 }
chaos = [{ fault = "error", status = 500, ratio = 1.0 }]
expect = { alerts_firing = ["HighErrorRate"] }
"#;

/// A healthy run that expects no `HighErrorRate` of its own.
const QUIET: &str = r#"
name = "quiet"
seed = 2
[[mix]]
path = "/"
[[phases]]
name = "baseline"
duration = "8s"
rate = { shape = "constant", rps = 5 }
expect = { error_ratio = "< 0.01", alerts_inactive = ["HighErrorRate"] }
"#;

/// Two embedded target-apps, `a` and `b`, and a real Prometheus with the stack's rules scraping the
/// first of them under `jobs[0]`, the second under `jobs[1]` when given.
struct TwoTargets {
    rt: tokio::runtime::Runtime,
    a: Embedded,
    b: Embedded,
    prometheus: LocalPrometheus,
}

impl TwoTargets {
    fn start(jobs: &[&str]) -> TwoTargets {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let a = rt.block_on(Embedded::start(|_| {})).unwrap();
        let b = rt.block_on(Embedded::start(|_| {})).unwrap();
        let scraped: Vec<_> = jobs.iter().copied().zip([a.app, b.app]).collect();
        let prometheus = rt
            .block_on(LocalPrometheus::start(&scraped, None, None))
            .expect("start Prometheus");
        TwoTargets { rt, a, b, prometheus }
    }

    fn stop(self) {
        drop(self.prometheus);
        self.rt.block_on(async {
            self.a.stop().await;
            self.b.stop().await;
        });
    }
}

/// Starts `loadgen run` with `args`, its JSON report at `json`, its output beside it.
fn loadgen(args: &[&str], json: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .args(args)
        .args(["--quiet", "--json"])
        .arg(json)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(json.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(json.with_extension("err")).unwrap())
        .spawn()
        .expect("start loadgen")
}

/// Waits for the child (killing it after `limit`); its status and output.
fn finish(child: std::process::Child, json: &Path, limit: Duration) -> (Option<ExitStatus>, String) {
    let status = wait(child, Instant::now() + limit);
    let output = [
        std::fs::read_to_string(json.with_extension("out")).unwrap_or_default(),
        std::fs::read_to_string(json.with_extension("err")).unwrap_or_default(),
    ]
    .concat();
    (status, output)
}

/// Whether Prometheus has `alert` firing for `job`.
async fn firing(api: &Api, alert: &str, job: &str) -> bool {
    let Ok(body) = api.get("/api/v1/alerts", Duration::from_secs(2)).await else {
        return false;
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    v["data"]["alerts"].as_array().is_some_and(|alerts| {
        alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == alert && a["labels"]["job"] == job && a["state"] == "firing")
    })
}

fn seen(scope: &Value, side: &str, job: &str) -> Vec<String> {
    scope[side]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|a| a["labels"]["job"] == job)
                .map(|a| {
                    format!(
                        "{} {}",
                        a["alert"].as_str().unwrap_or(""),
                        a["state"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_baseline_passes_beside_another_jobs_firing_alert() {
    assert!(
        loadgen::alerts::prometheus::installed(),
        "`prometheus` is not on the PATH: install Debian's `prometheus` package (scripts/test.sh does)"
    );
    let two = TwoTargets::start(&["shop", "noisy"]);
    let (rt, shop, noisy, prometheus) = (&two.rt, &two.a, &two.b, &two.prometheus);
    let api = Api::new(&prometheus.url, &Options::default(), &Auth::None).unwrap();

    let noisy_file = scenario_file("scope-noisy", NOISY);
    let quiet_file = scenario_file("scope-quiet", QUIET);
    let dir = quiet_file.parent().unwrap().to_owned();
    let started = Instant::now();
    let noisy_json = noisy_file.with_extension("json");
    let noisy_run = loadgen(
        &[
            noisy_file.to_str().unwrap(),
            "--target",
            &noisy.url(),
            "--prometheus",
            &prometheus.url,
        ],
        &noisy_json,
    );

    // The baseline runs only once the other job's alert fires, so it is there to be counted or not.
    let deadline = Instant::now() + Duration::from_secs(90);
    while !rt.block_on(firing(&api, "HighErrorRate", "noisy")) {
        assert!(
            Instant::now() < deadline,
            "HighErrorRate{{job=\"noisy\"}} did not fire within 90s; the noisy run said:\n{}",
            finish(noisy_run, &noisy_json, Duration::ZERO).1
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "HighErrorRate of job noisy firing after {:.0?}",
        started.elapsed()
    );

    let scoped_json = dir.join("scoped.json");
    let unscoped_json = dir.join("unscoped.json");
    let quiet = quiet_file.to_str().unwrap();
    let shop_url = shop.url();
    let common = [quiet, "--target", &shop_url, "--prometheus", &prometheus.url];
    let scoped = loadgen(&common, &scoped_json);
    let unscoped = loadgen(
        &[&common[..], &["--alert-match", r#"alertname=~".+""#]].concat(),
        &unscoped_json,
    );
    let limit = Duration::from_secs(60);
    let (scoped_status, scoped_output) = finish(scoped, &scoped_json, limit);
    let (unscoped_status, unscoped_output) = finish(unscoped, &unscoped_json, limit);
    let (noisy_status, noisy_output) = finish(noisy_run, &noisy_json, Duration::from_secs(120));
    eprintln!("scoping test ran in {:.0?}", started.elapsed());

    // The baseline against shop passes: noisy's alert is seen, and not counted.
    assert_eq!(scoped_status.and_then(|s| s.code()), Some(0), "{scoped_output}");
    let report = read_report(&scoped_json);
    let scope = &report["alerts"]["scope"];
    assert_eq!(scope["source"], "targets", "{scope}");
    assert_eq!(
        scope["matchers"],
        serde_json::json!([format!(r#"{{job="shop", instance="{}"}}"#, shop.app)]),
        "{scope}"
    );
    let noisy_alerts = seen(scope, "ignored", "noisy");
    assert!(
        noisy_alerts.iter().any(|a| a == "HighErrorRate firing"),
        "{scope}"
    );
    assert!(seen(scope, "matched", "shop").is_empty(), "{scope}");
    assert!(
        scoped_output.contains("not counted (outside the scope): "),
        "{scoped_output}"
    );

    // The same run counting every alert fails on noisy's alert: the check above can fail.
    assert_eq!(
        unscoped_status.and_then(|s| s.code()),
        Some(1),
        "{unscoped_output}"
    );
    let report = read_report(&unscoped_json);
    let check = &report["alerts"]["checks"][0];
    assert_eq!(
        (&check["alert"], &check["expect"]),
        (&"HighErrorRate".into(), &"inactive".into())
    );
    assert_eq!(check["verdict"], "fail", "{check}");
    assert!(
        check["detail"].as_str().unwrap().starts_with("became firing"),
        "{check}"
    );

    // The noisy run counts its own alert.
    assert_eq!(noisy_status.and_then(|s| s.code()), Some(0), "{noisy_output}");
    let report = read_report(&noisy_json);
    let scope = &report["alerts"]["scope"];
    let noisy_alerts = seen(scope, "matched", "noisy");
    assert!(
        noisy_alerts.iter().any(|a| a == "HighErrorRate firing"),
        "{scope}"
    );
    assert!(seen(scope, "ignored", "shop").is_empty(), "{scope}");

    two.stop();
}

#[test]
fn a_target_prometheus_does_not_scrape_fails_the_alert_checks() {
    assert!(
        loadgen::alerts::prometheus::installed(),
        "`prometheus` is not on the PATH"
    );
    let two = TwoTargets::start(&["shop"]);
    let (scraped, other, prometheus) = (&two.a, &two.b, &two.prometheus);
    let file = scenario_file(
        "scope-unlisted",
        &QUIET.replace(r#"duration = "8s""#, r#"duration = "2s""#),
    );
    let json = file.with_extension("json");
    let run = loadgen(
        &[
            file.to_str().unwrap(),
            "--target",
            &other.url(),
            "--prometheus",
            &prometheus.url,
        ],
        &json,
    );
    let (status, output) = finish(run, &json, Duration::from_secs(60));
    assert_eq!(status.and_then(|s| s.code()), Some(4), "not verified: {output}");
    let wanted = format!(
        "the target {} is not among the scrape targets of {}",
        other.app, prometheus.url
    );
    assert!(output.contains(&wanted), "{output}");
    assert!(
        output.contains(&format!("{} (job \"shop\")", scraped.app)),
        "{output}"
    );
    let report = read_report(&json);
    let check = &report["alerts"]["checks"][0];
    assert_eq!(check["verdict"], "not_verified", "{check}");
    assert!(
        check["detail"].as_str().unwrap().starts_with("not checked: "),
        "{check}"
    );
    assert!(report["alerts"]["scope"]["problem"]
        .as_str()
        .unwrap()
        .contains(&wanted));
    two.stop();
}

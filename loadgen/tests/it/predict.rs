//! Alert predictions without a server, through the real `loadgen` binary and Debian's `promtool`:
//! every shipped rule is covered by a shipped scenario and every prediction agrees with its
//! scenario's expectations (`coverage --strict`, the fast CI check beside the slow live alert test),
//! a rule whose threshold no scenario reaches shows up as uncovered, the baseline predicts no alert,
//! a contradicted expectation is named at its position, and the model of the target's series matches
//! what a real target-app exposes after the same traffic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{repo_dir, scenario_file};

fn loadgen(args: &[&str]) -> Output {
    assert!(
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("promtool").is_file())),
        "`promtool` is not on the PATH: predictions need a real one (Debian's `prometheus` package; \
         scripts/test.sh installs it)"
    );
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .env_remove("LOADGEN_PREDICT_KEEP")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn shipped_scenarios() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_dir().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-predict-it-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn coverage(extra: &[&str], json: &Path) -> (Output, Value) {
    let scenarios = shipped_scenarios();
    let mut args = vec!["coverage", "--strict", "--json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend(scenarios.iter().map(String::as_str));
    let out = loadgen(&args);
    let report = std::fs::read_to_string(json)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_else(|_| panic!("no coverage JSON written\n{}", text(&out)));
    (out, report)
}

#[test]
fn every_shipped_rule_is_covered_and_every_prediction_agrees_with_its_scenario() {
    let dir = temp_dir("coverage");
    // The shipped suite's mutation score is the floor: a weakened scenario fails the build.
    let (out, report) = coverage(
        &["--mutants", "--min-score", SHIPPED_MUTATION_SCORE, "--routes"],
        &dir.join("coverage.json"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Who each scenario pages, through the stack's Alertmanager routing (amtool) and inhibitions.
    let matrix = stdout
        .split("routes: scenario × receiver")
        .nth(1)
        .unwrap_or_default();
    let row = |scenario: &str| {
        matrix
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{scenario} ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert!(
        matrix.starts_with(" (Alertmanager configuration: stack/alertmanager/alertmanager.yml)\n  scenario                 page                                         ticket\n"),
        "{stdout}"
    );
    assert_eq!(row("service-outage"), "service-outage ServiceDown -", "{stdout}");
    assert_eq!(row("slow-burn"), "slow-burn - SLOErrorBudgetBurnSlow", "{stdout}");
    assert!(
        row("traffic-surge").ends_with("(SLOErrorBudgetBurnSlow inhibited)"),
        "{stdout}"
    );
    assert_eq!(
        report["routes"]["receivers"],
        serde_json::json!(["page", "ticket"])
    );
    assert!(
        stdout.contains("; 0 fragile"),
        "no shipped expectation is fragile\n{stdout}"
    );
    let mutants = &report["mutants"];
    for rule in mutants["rules"].as_array().unwrap() {
        assert!(rule["total"].as_u64().unwrap() >= 5, "{rule}");
    }
    let rules: Vec<&str> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 7, "the stack ships seven alerting rules: {rules:?}");
    assert_eq!(report["uncovered"], serde_json::json!([]));
    for (i, rule) in rules.iter().enumerate() {
        let covered = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["cells"][i] == "covered")
            .count();
        assert!(covered > 0, "{rule} is covered by no scenario\n{}", text(&out));
    }
    for row in report["rows"].as_array().unwrap() {
        assert_eq!(
            row["contradictions"],
            serde_json::json!([]),
            "{}",
            row["scenario"]
        );
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("7 of 7 alerting rules covered"));
    let _ = std::fs::remove_dir_all(dir);
}

/// The share of mutants of the stack's rules the shipped scenarios kill (docs/alert-prediction.md).
const SHIPPED_MUTATION_SCORE: &str = "0.22";

/// A directory with the stack's recording rules and a group `name` of `alerts` (rule lines), and a
/// scenario of one 90 s phase at 20 rps with 30% errors that expects `quiet` inactive.
fn errors_inactive(name: &str, alerts: &str, quiet: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let stack = repo_dir().join("stack/prometheus/rules");
    std::fs::copy(stack.join("recording.yml"), rules.join("recording.yml")).unwrap();
    std::fs::write(
        rules.join("alerts.yml"),
        format!("groups:\n  - name: {name}\n    rules:\n{alerts}"),
    )
    .unwrap();
    let scenario = scenario_file(
        name,
        &format!(
            r#"name = "{name}"
[[mix]]
path = "/"

[[phases]]
name = "errors"
duration = "90s"
rate = {{ shape = "constant", rps = 20 }}
chaos = [{{ fault = "error", status = 500, ratio = 0.3 }}]
expect = {{ alerts_inactive = ["{quiet}"] }}
"#
        ),
    );
    (dir, rules, scenario)
}

/// `loadgen coverage --mutants FLAGS…` on the rules and scenario of [`errors_inactive`]: the
/// directory, the output (exit 0 checked) and the JSON report.
fn mutants_of(name: &str, alerts: &str, quiet: &str, flags: &[&str]) -> (PathBuf, Output, Value) {
    let (dir, rules, scenario) = errors_inactive(name, alerts, quiet);
    let json = dir.join("coverage.json");
    let mut args = vec!["coverage", "--mutants", "--rules", rules.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.extend(["--json", json.to_str().unwrap(), scenario.to_str().unwrap()]);
    let out = loadgen(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (dir, out, report)
}

/// An alert whose threshold no scenario comes near, checked only as inactive: lowering its threshold
/// goes unnoticed (a surviving mutant, with the scenario that came closest), flipping its comparison
/// makes it fire where the scenario expects it quiet (killed).
#[test]
fn mutants_of_a_rule_no_scenario_comes_near_survive_and_are_listed() {
    let (dir, out, report) = mutants_of(
        "far",
        "      - alert: FarAway\n        expr: job:http_request_errors:ratio_rate1m > 0.9\n        for: 15s\n",
        "FarAway",
        &[],
    );
    let far = &report["mutants"]["rules"][0];
    assert_eq!(far["alert"], "FarAway");
    let mutants = far["mutants"].as_array().unwrap();
    let by = |op: &str| {
        mutants
            .iter()
            .find(|m| m["operator"] == op)
            .unwrap_or_else(|| panic!("{op}: {far}"))
    };
    assert!(by("comparison flipped")["killed_by"]
        .as_str()
        .unwrap()
        .contains("phase errors expects FarAway inactive"));
    let lowered = by("threshold x0.5");
    assert_eq!(lowered["killed_by"], Value::Null);
    assert_eq!(lowered["expr"], "job:http_request_errors:ratio_rate1m > 0.45");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("surviving mutants of FarAway:")
            && stdout.contains("job:http_request_errors:ratio_rate1m > 0.45")
            && stdout.contains("closest: "),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Fewer scenarios kill fewer mutants, and `--min-score` turns that into a failure.
#[test]
fn removing_a_scenario_lowers_the_mutation_score_below_the_floor() {
    let dir = temp_dir("floor");
    let run = |files: &[&str], min: Option<&str>| {
        let json = dir.join("m.json");
        let mut args = vec!["coverage", "--mutants", "--json", json.to_str().unwrap()];
        if let Some(min) = min {
            args.extend(["--min-score", min]);
        }
        let files: Vec<String> = files
            .iter()
            .map(|f| repo_dir().join("scenarios").join(f).display().to_string())
            .collect();
        args.extend(files.iter().map(String::as_str));
        let out = loadgen(&args);
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
            .unwrap_or_else(|_| panic!("{}", text(&out)));
        (out, report["mutants"]["score"].as_f64().unwrap())
    };
    let (both, full) = run(&["baseline.toml", "slow-burn.toml"], None);
    assert_eq!(both.status.code(), Some(0), "{}", text(&both));
    let (one, fewer) = run(&["baseline.toml"], None);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));
    assert!(fewer < full, "baseline alone {fewer}, with slow-burn {full}");
    let floor = format!("{full}");
    let (failed, _) = run(&["baseline.toml"], Some(&floor));
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("is below --min-score"));
    let (passed, _) = run(&["baseline.toml", "slow-burn.toml"], Some(&floor));
    assert_eq!(passed.status.code(), Some(0), "{}", text(&passed));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_threshold_no_scenario_reaches_leaves_its_rule_uncovered() {
    let dir = temp_dir("raised");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let stack = repo_dir().join("stack/prometheus/rules");
    std::fs::copy(stack.join("recording.yml"), rules.join("recording.yml")).unwrap();
    let alerts = std::fs::read_to_string(stack.join("alerts.yml")).unwrap();
    let raised = alerts.replace(
        "expr: job:http_request_duration_seconds:p95_1m > 1\n",
        "expr: job:http_request_duration_seconds:p95_1m > 30\n",
    );
    assert_ne!(
        raised, alerts,
        "the HighLatency threshold is where this test expects it"
    );
    std::fs::write(rules.join("alerts.yml"), raised).unwrap();

    let (out, report) = coverage(&["--rules", rules.to_str().unwrap()], &dir.join("coverage.json"));
    assert_eq!(out.status.code(), Some(1), "--strict fails\n{}", text(&out));
    assert_eq!(report["uncovered"], serde_json::json!(["HighLatency"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 of 7 alerting rules covered"), "{stdout}");
    // The scenarios that expect it are told where.
    assert!(
        stdout.contains("scenarios/latency-degradation.toml:")
            && stdout.contains("expects HighLatency firing, but never pending or firing"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_baseline_predicts_no_alert() {
    let dir = temp_dir("baseline");
    let scenario = repo_dir().join("scenarios/baseline.toml");
    for interval in ["5s", "1s"] {
        let json = dir.join(format!("baseline-{interval}.json"));
        let out = loadgen(&[
            "plan",
            scenario.to_str().unwrap(),
            "--predict",
            "--interval",
            interval,
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let alerts = report["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 7);
        for a in alerts {
            assert_eq!(a["pending"], serde_json::json!([]), "{a}");
            assert_eq!(a["firing"], serde_json::json!([]), "{a}");
        }
        assert!(String::from_utf8_lossy(&out.stdout).contains("HighErrorRate           inactive throughout"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_expectation_the_prediction_contradicts_is_named_at_its_position() {
    let path = scenario_file(
        "contradicted",
        r#"name = "contradicted"
[[mix]]
path = "/"

[[phases]]
name = "calm"
duration = "60s"
rate = { shape = "constant", rps = 10 }
expect = { alerts_inactive = ["HighErrorRate"] }

[[phases]]
name = "errors"
duration = "90s"
rate = { shape = "constant", rps = 10 }
chaos = [{ fault = "error", status = 500, ratio = 0.5 }]
expect = { alerts_firing = ["HighErrorRate", "ServiceDown"] }
"#,
    );
    let out = loadgen(&["validate", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail validation\n{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:16:46", path.display());
    assert!(
        stderr.contains("phase `errors` expects ServiceDown firing") && stderr.contains(&at),
        "want a warning at {at}\n{stderr}"
    );
    assert!(stderr.contains("never pending or firing"), "{stderr}");
    assert!(
        !stderr.contains("expects HighErrorRate"),
        "HighErrorRate fires as expected\n{stderr}"
    );
}

/// `name{a="x",b="y"}` → (name, labels without `job`).
fn key(series: &str) -> (String, BTreeMap<String, String>) {
    let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
    let labels = rest
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k != "job").then(|| (k.trim().to_owned(), v.trim_matches('"').to_owned()))
        })
        .collect();
    (name.to_owned(), labels)
}

const MODELLED_TRAFFIC: &str = r#"
name = "modelled"
seed = 5

[[mix]]
path = "/"
weight = 6
[[mix]]
path = "/external"
weight = 3
[[mix]]
name = "checkout"
method = "POST"
path = "/checkout"
body = { items = [{ sku = "A1", qty = 1 }] }
weight = 2
[[mix]]
path = "/slow"
query = { ms = 300 }
weight = 1
[[mix]]
path = "/error"
query = { type = "404" }
weight = 1

[[phases]]
name = "calm"
duration = "4s"
rate = { shape = "constant", rps = 40 }

[[phases]]
name = "faults"
duration = "4s"
rate = { shape = "ramp", from = 20, to = 60 }
chaos = [
  { fault = "error", status = 500, ratio = 0.25, routes = ["/"] },
  { fault = "downstream", ratio = 0.5, routes = ["/checkout", "/external"] },
  { fault = "latency", delay = "600ms", ratio = 0.5, routes = ["/external"] },
]
"#;

#[test]
fn the_series_model_matches_a_real_targets_metrics() {
    let path = scenario_file("modelled", MODELLED_TRAFFIC);
    let scenario = loadgen::scenario::load(&path).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let target = rt
        .block_on(loadgen::cmd::run::embedded::Embedded::start(|_| {}))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--quiet",
            "--target",
            &target.url(),
        ])
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(300));
    let mut real = BTreeMap::new();
    for addr in [target.app, target.downstream] {
        let (status, body) = crate::metrics::http_get(addr, "/metrics").expect("metrics answer");
        assert!(status.contains("200"), "{status}");
        for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = key(series);
            let job = if addr == target.app {
                "target-app"
            } else {
                "downstream"
            };
            real.insert((job.to_owned(), name, labels), value.parse::<f64>().unwrap());
        }
    }
    rt.block_on(target.stop());

    // The model, sampled once after every request has completed.
    let mut long = scenario.clone();
    long.phases.push(loadgen::scenario::Phase {
        name: "after".into(),
        duration: Duration::from_secs(2),
        load: loadgen::scenario::Load::Open {
            rate: loadgen::scenario::Rate::Constant {
                rps: loadgen::scenario::Rps::new(0.0).unwrap(),
            },
            arrivals: loadgen::scenario::Arrivals::Even,
        },
        chaos: Vec::new(),
        expect: Default::default(),
        ..scenario.phases[0].clone()
    });
    let scrapes = loadgen::alerts::predict::Scrapes {
        interval: Duration::from_secs(10),
        first: Duration::ZERO,
    };
    let model = loadgen::alerts::predict::series::build(&long, scrapes);
    let mut predicted = BTreeMap::new();
    for (series, values) in &model.values {
        let (name, labels) = key(series);
        let job = if series.contains(r#"job="downstream""#) {
            "downstream"
        } else {
            "target-app"
        };
        if let Some(v) = values.last().copied().flatten() {
            predicted.insert((job.to_owned(), name, labels), v);
        }
    }

    // Every request series the model predicts exists, with its count. The mix and the fault decisions
    // are exact over whole blocks of requests; a few requests either way come from where the blocks
    // and the fault pattern start.
    let user_route = |labels: &BTreeMap<String, String>| {
        labels
            .get("route")
            .is_none_or(|r| !["/metrics", "/health", "/admin/chaos"].contains(&r.as_str()))
    };
    let mut checked = 0;
    for ((job, name, labels), want) in &predicted {
        let counted = [
            "http_requests_total",
            "downstream_requests_total",
            "http_requests_shed_total",
        ];
        if !counted.contains(&name.as_str()) && !name.ends_with("_count") {
            continue;
        }
        let got = real.get(&(job.clone(), name.clone(), labels.clone())).copied();
        let got =
            got.unwrap_or_else(|| panic!("{job} {name}{labels:?}: predicted {want}, absent from /metrics"));
        assert!(
            (got - want).abs() <= 3.0_f64.max(want * 0.05),
            "{job} {name}{labels:?}: predicted {want:.1}, real {got}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} series compared");
    // ... and no request series exists that the model does not know.
    for ((job, name, labels), got) in &real {
        if ["http_requests_total", "downstream_requests_total"].contains(&name.as_str()) && user_route(labels)
        {
            assert!(
                predicted.contains_key(&(job.clone(), name.clone(), labels.clone())),
                "{job} {name}{labels:?} = {got} is not in the model"
            );
        }
    }
    // Latency: the share of requests under bucket bounds well away from every modelled time.
    let share = |map: &BTreeMap<(String, String, BTreeMap<String, String>), f64>,
                 route: &str,
                 status: &str,
                 le: &str| {
        let find = |le: &str| {
            map.iter()
                .filter(|((job, name, l), _)| {
                    job == "target-app"
                        && name == "http_request_duration_seconds_bucket"
                        && l.get("route").map(String::as_str) == Some(route)
                        && l.get("status").map(String::as_str) == Some(status)
                        && l.get("le").map(String::as_str) == Some(le)
                })
                .map(|(_, v)| *v)
                .sum::<f64>()
        };
        find(le) / find("+Inf")
    };
    for (route, status, le) in [
        ("/external", "200", "0.25"),
        ("/external", "200", "1"),
        ("/slow", "200", "0.25"),
        ("/slow", "200", "0.5"),
        ("/", "500", "0.1"),
        ("/checkout", "200", "0.25"),
    ] {
        let (want, got) = (
            share(&predicted, route, status, le),
            share(&real, route, status, le),
        );
        assert!(
            (want - got).abs() <= 0.1,
            "{route} {status}: predicted {want:.2} of requests within {le}s, real {got:.2}"
        );
    }
}

/// A scenario whose alert fires right at its phase's end when the alert group reads the recorded
/// ratio of the same step, and one evaluation later when it reads the ratio of the step before
/// (promtool, like Prometheus, may run the groups either way): the prediction is the same every time,
/// gives both times, and the expectation does not hold, since it fails in one of the orders.
#[test]
fn one_file_gives_one_prediction_every_time_with_both_orders_of_the_rule_groups() {
    let path = scenario_file(
        "edge-of-order",
        r#"name = "edge-of-order"
seed = 1
[[mix]]
path = "/"

[[phases]]
name = "calm"
duration = "20s"
rate = { shape = "constant", rps = 40 }

[[phases]]
name = "errors"
duration = "25s"
rate = { shape = "constant", rps = 40 }
chaos = [{ fault = "error", status = 500, ratio = 0.3 }]
expect = { alerts_firing = ["HighErrorRate"] }
"#,
    );
    let dir = temp_dir("orders");
    let mut seen = Vec::new();
    for round in 0..6 {
        let json = dir.join(format!("p{round}.json"));
        let out = loadgen(&[
            "plan",
            "--predict",
            path.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        seen.push((text(&out), std::fs::read_to_string(&json).unwrap()));
    }
    assert!(seen.iter().all(|s| *s == seen[0]), "every round the same");
    let (output, json) = &seen[0];
    assert!(
        output.contains("HighErrorRate           pending at 30-35s, firing at 45s or never"),
        "{output}"
    );
    assert!(
        output.contains("phase `errors` expects HighErrorRate firing, but the prediction disagrees")
            && output.contains("with the rule groups in the other order"),
        "{output}"
    );
    let json: Value = serde_json::from_str(json).unwrap();
    let alert = json["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "HighErrorRate")
        .unwrap();
    assert_eq!(alert["firing"][0][0], 45.0);
    assert_eq!(alert["other_order"]["firing"], Value::Array(vec![]));
    assert_eq!(
        json["group_order"],
        serde_json::json!([
            "golden-signals",
            "slo-availability",
            "service-alerts",
            "slo-alerts"
        ])
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The near-miss search: the smallest change that kills a survivor while the scenario still holds,
/// and why there is none for the others.
#[test]
fn near_misses_name_the_smallest_change_that_kills_a_survivor_or_why_none_does() {
    let (dir, out, report) = mutants_of(
        "near",
        "      - alert: Near\n        expr: job:http_request_errors:ratio_rate1m > 0.8\n        for: 15s\n      - alert: Unchecked\n        expr: job:http_request_errors:ratio_rate1m > 0.5\n",
        "Near",
        &["--near-misses"],
    );
    let rule = |name: &str| {
        report["mutants"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("{name}: {report}"))
            .clone()
    };
    let near = rule("Near");
    let by = |op: &str| {
        near["mutants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["operator"] == op)
            .unwrap_or_else(|| panic!("{op}: {near}"))
            .clone()
    };
    // > 0.4 instead of > 0.8: 45% errors fire it, and the rule stays quiet.
    let halved = by("threshold x0.5");
    assert_eq!(halved["killed_by"], Value::Null);
    let change = &halved["near_miss"]["change"];
    assert_eq!(change["phase"], "errors", "{halved}");
    assert_eq!(change["what"], "error ratio 0.3 -> 0.45", "{halved}");
    assert_eq!(change["killed_by"], "phase errors expects Near inactive");
    // > 0.72: only 90% errors tell it apart, and they fire the rule too, so the scenario would no
    // longer hold: no change counts.
    let lowered = by("threshold x0.9");
    assert_eq!(lowered["near_miss"]["change"], Value::Null, "{lowered}");
    let why = lowered["near_miss"]["why"].as_str().unwrap();
    assert!(why.starts_with("of the "), "{why}");
    assert!(lowered["near_miss"]["tried"].as_u64().unwrap() > 0);
    // No scenario checks Unchecked: no change to traffic can reach its mutants.
    for m in rule("Unchecked")["mutants"].as_array().unwrap() {
        let why = m["near_miss"]["why"].as_str().unwrap_or_default();
        assert!(
            why.starts_with("no scenario has an expectation about Unchecked"),
            "{m}"
        );
        assert_eq!(m["near_miss"]["tried"], 0);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("near miss: ")
            && stdout.contains("error ratio 0.3 -> 0.45 (then phase errors expects Near inactive)"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plan_routes_follow_the_alertmanager_configuration() {
    let scenario = repo_dir().join("scenarios/service-outage.toml");
    let scenario = scenario.to_str().unwrap();
    let out = loadgen(&["plan", "--predict", "--routes", scenario]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "routes (Alertmanager configuration: stack/alertmanager/alertmanager.yml; amtool config routes test)\n  \
             ServiceDown              severity=critical  → page\n"
        ),
        "{stdout}"
    );

    // One changed matcher in the route: the page goes to the ticket queue.
    let dir = temp_dir("routes");
    let stack = std::fs::read_to_string(repo_dir().join("stack/alertmanager/alertmanager.yml")).unwrap();
    let changed = stack.replace(r#"severity=~"critical|page""#, r#"severity="page""#);
    assert_ne!(changed, stack);
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, changed).unwrap();
    let out = loadgen(&[
        "plan",
        "--predict",
        "--routes",
        "--alertmanager-config",
        config.to_str().unwrap(),
        scenario,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  ServiceDown              severity=critical  → ticket\n"),
        "{stdout}"
    );
}

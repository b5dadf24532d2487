//! Sharding: the union of the N slices of a schedule, taken phase by phase as the engine takes them, is
//! exactly the unsharded schedule (request numbers, intended offsets, request picks), and each slice
//! carries 1/N of it; two real shard runs merged with `loadgen merge` add up to the whole scenario.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use loadgen::schedule::{Arrival, PhaseStarts, Schedule, Shard};
use serde_json::Value;

use crate::support::{read_report, scenario_file};

const SHAPES: &str = r#"
name = "shapes"
seed = 11
[[mix]]
path = "/"
weight = 5
[[mix]]
path = "/health"
weight = 2
[[mix]]
path = "/external"
weight = 1

[[phases]]
name = "constant"
duration = "5s"
rate = { shape = "constant", rps = 37 }
[[phases]]
name = "ramp"
duration = "6s"
rate = { shape = "ramp", from = 5, to = 80 }
[[phases]]
name = "steps"
duration = "6s"
rate = { shape = "steps", steps = [{ rps = 10, duration = "2s" }, { rps = 60, duration = "4s" }] }
[[phases]]
name = "spike"
duration = "6s"
rate = { shape = "spike", base = 10, peak = 90, at = "2s", width = "1s" }
[[phases]]
name = "sine"
duration = "8s"
rate = { shape = "sine", mean = 40, amplitude = 30, period = "4s" }
[[phases]]
name = "poisson"
duration = "5s"
rate = { shape = "constant", rps = 50 }
arrivals = "poisson"
[[phases]]
name = "closed"
duration = "1s"
concurrency = 2
[[phases]]
name = "after-closed"
duration = "3s"
rate = { shape = "constant", rps = 21 }
"#;

#[test]
fn the_union_of_shard_schedules_is_the_unsharded_schedule() {
    let s = loadgen::scenario::parse(SHAPES, "shapes.toml").expect("valid scenario");
    let whole: Vec<Arrival> = Schedule::new(&s).collect();
    assert!(whole.len() > 1000, "{}", whole.len());
    let starts = PhaseStarts::new(&s);
    for n in [2u64, 3, 5, 8] {
        let mut union: Vec<Arrival> = Vec::new();
        for phase in 0..s.phases.len() {
            let unsharded: Vec<Arrival> = starts.phase(&s, phase, Shard::WHOLE).collect();
            let mut counts = Vec::new();
            for i in 0..n {
                let shard = Shard::new(i, n).unwrap();
                let part: Vec<Arrival> = starts.phase(&s, phase, shard).collect();
                assert!(part.iter().all(|a| a.number % n == i && a.phase == phase));
                assert!(
                    part.windows(2).all(|w| w[0].offset <= w[1].offset),
                    "in time order"
                );
                counts.push(part.len());
                union.extend(part);
            }
            // 1/N of the phase each (the request numbers run on across phases, so within one).
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "phase {phase}, {n} shards: {counts:?}");
            assert_eq!(counts.iter().sum::<usize>(), unsharded.len());
        }
        union.sort_by_key(|a| a.number);
        assert_eq!(union, whole, "{n} shards");
    }
}

const RUN: &str = r#"
name = "sharded"
seed = 21
[[mix]]
path = "/"
weight = 3
[[mix]]
path = "/health"
weight = 1

[[phases]]
name = "steady"
duration = "2s"
rate = { shape = "constant", rps = 100 }
expect = { requests = "== 200", error_ratio = "== 0" }

[[phases]]
name = "faulty"
duration = "2s"
rate = { shape = "ramp", from = 50, to = 150 }
chaos = [{ fault = "error", status = 500, ratio = 0.5, routes = ["/"] }]
expect = { checks = ["requests == 200", "error_ratio > 0.2", "p99 < 5s"] }
"#;

#[test]
fn two_shard_runs_merge_into_the_whole_scenario() {
    let file = scenario_file("sharded", RUN);
    let dir = file.parent().unwrap().to_path_buf();
    let bin = env!("CARGO_BIN_EXE_loadgen");
    let shard_reports: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("shard-{i}.json"))).collect();
    let children: Vec<_> = shard_reports
        .iter()
        .enumerate()
        .map(|(i, report)| {
            Command::new(bin)
                .args([
                    "run",
                    file.to_str().unwrap(),
                    "--quiet",
                    "--shard",
                    &format!("{i}/2"),
                ])
                .args(["--json", report.to_str().unwrap()])
                .env_remove("CHAOS_TOKEN")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        // A shard sends half the requests, so `requests == 200` fails on its own.
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shards: Vec<Value> = shard_reports.iter().map(|p| read_report(p)).collect();
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"], format!("{i}/2"));
        for phase in s["phases"].as_array().unwrap() {
            assert_eq!(phase["totals"]["requests"], 100, "half of each phase");
            assert!(phase["totals"]["histograms"]["corrected"].is_string());
        }
    }

    let (merged_json, merged_html) = (dir.join("merged.json"), dir.join("merged.html"));
    let out = Command::new(bin)
        .arg("merge")
        .args(&shard_reports)
        .args([
            "--json",
            merged_json.to_str().unwrap(),
            "--html",
            merged_html.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("merged from 0/2, 1/2"), "{stdout}");
    let merged = read_report(&merged_json);
    assert_eq!(merged["result"], "pass");
    assert_eq!(merged["merged_shards"], serde_json::json!(["0/2", "1/2"]));
    for (p, phase) in merged["phases"].as_array().unwrap().iter().enumerate() {
        let sum = |path: &dyn Fn(&Value) -> &Value| -> u64 {
            shards
                .iter()
                .map(|s| path(&s["phases"][p]).as_u64().unwrap_or(0))
                .sum()
        };
        assert_eq!(phase["totals"]["requests"], 200);
        assert_eq!(
            phase["totals"]["requests"].as_u64(),
            Some(sum(&|v| &v["totals"]["requests"]))
        );
        assert_eq!(
            phase["totals"]["errors"].as_u64(),
            Some(sum(&|v| &v["totals"]["errors"]))
        );
        for status in ["200", "500"] {
            assert_eq!(
                phase["totals"]["statuses"][status].as_u64().unwrap_or(0),
                sum(&|v| &v["totals"]["statuses"][status]),
                "status {status}"
            );
        }
        assert!(phase["expectations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["verdict"] == "pass"));
        // Percentiles come from the merged histograms: between the shards' own.
        let p99 = phase["totals"]["latency_ms"]["p99"].as_f64().unwrap();
        let shard_p99: Vec<f64> = shards
            .iter()
            .map(|s| s["phases"][p]["totals"]["latency_ms"]["p99"].as_f64().unwrap())
            .collect();
        let lo = shard_p99.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = shard_p99.iter().copied().fold(0.0, f64::max);
        assert!(lo <= p99 && p99 <= hi, "{p99} not within {shard_p99:?}");
    }
    let series_sent: u64 = merged["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(series_sent, 400);
    let html = std::fs::read_to_string(&merged_html).unwrap();
    assert!(html.contains("merged from 0/2, 1/2"));
}

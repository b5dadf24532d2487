use crate::shared::Verdict;
use std::time::Duration;

use super::*;
use crate::report::{ExpectationResult, Figures};
use crate::shared::outcome::Class;

/// A deterministic spread of latencies (µs) with a long tail, numbered like requests.
fn latency(number: u64) -> u64 {
    let x = number.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    1_000 + x % 20_000 + if number % 97 == 0 { 2_000_000 } else { 0 }
}

fn record(stats: &mut Stats, number: u64) {
    let v = latency(number);
    stats.corrected.record(v).unwrap();
    stats.uncorrected.record(v / 2 + 1).unwrap();
    stats.lag.record(number % 13 + 1).unwrap();
    let class = if number % 10 == 0 {
        Class::Http5xx
    } else {
        Class::Ok
    };
    stats.classes[class.index()] += 1;
    *stats
        .statuses
        .entry(if class == Class::Ok { 200 } else { 500 })
        .or_default() += 1;
    if number % 50 == 0 {
        stats.late += 1;
    }
}

fn report(shard: Option<&str>, stats: &Stats, expectations: &[&str]) -> Summary {
    let elapsed = Duration::from_secs(10);
    let figures = report::figures(stats, elapsed);
    Summary {
        format_version: FORMAT_VERSION,
        scenario: "merge-me".into(),
        description: String::new(),
        seed: 7,
        target: "http://t".into(),
        shard: shard.map(str::to_owned),
        merged_shards: vec![],
        ending: "completed".into(),
        result: Verdict::Pass,
        phases: vec![PhaseReport {
            name: "only".into(),
            start_s: 0.0,
            end_s: 10.0,
            faults: vec![],
            totals: figures.clone(),
            requests: vec![RequestReport {
                name: "GET /".into(),
                figures,
            }],
            expectations: expectations
                .iter()
                .map(|e| ExpectationResult {
                    expectation: (*e).to_owned(),
                    observed: String::new(),
                    verdict: Verdict::Fail,
                })
                .collect(),
        }],
        series: vec![],
        intended: vec![RatePoint { t_s: 0.0, rps: 25.0 }],
        fault_windows: vec![],
        alerts: None,
        changes: Vec::new(),
    }
}

/// Goes through JSON, as `loadgen merge` does.
fn round_trip(s: &Summary) -> Summary {
    let mut out = Vec::new();
    report::write_json(s, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn same_figures(merged: &Figures, whole: &Figures) {
    let strip = |f: &Figures| Figures {
        histograms: None,
        ..f.clone()
    };
    assert_eq!(strip(merged), strip(whole));
}

#[test]
fn merged_shards_equal_the_whole_run() {
    let requests = 20_000u64;
    let mut whole = Stats::default();
    (0..requests).for_each(|n| record(&mut whole, n));
    let expect = ["requests == 20000", "p99 < 3s", "error_ratio > 0.05"];
    let whole_report = report(None, &whole, &expect);
    for n in [2u64, 3, 4] {
        let shards: Vec<(PathBuf, Summary)> = (0..n)
            .map(|i| {
                let mut part = Stats::default();
                (0..requests)
                    .filter(|k| k % n == i)
                    .for_each(|k| record(&mut part, k));
                let r = round_trip(&report(Some(&format!("{i}/{n}")), &part, &expect));
                (PathBuf::from(format!("shard-{i}.json")), r)
            })
            .collect();
        let merged = merge(&shards).unwrap();
        assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
        let m = &merged.summary;
        // Counts add up, and percentiles are those of the whole run: the merged histograms are the
        // whole run's histograms, so they agree to the last bucket, not only within HDR precision.
        same_figures(&m.phases[0].totals, &whole_report.phases[0].totals);
        same_figures(
            &m.phases[0].requests[0].figures,
            &whole_report.phases[0].requests[0].figures,
        );
        assert_eq!(m.phases[0].totals.requests, requests);
        assert!(
            m.phases[0]
                .expectations
                .iter()
                .all(|e| e.verdict == Verdict::Pass),
            "{:?}",
            m.phases[0].expectations
        );
        assert!(m.passed());
        assert_eq!(m.intended[0].rps, 25.0 * n as f64);
        assert_eq!(m.merged_shards.len(), n as usize);
    }
}

#[test]
fn the_merged_report_survives_json() {
    let mut a = Stats::default();
    (0..100).for_each(|k| record(&mut a, k * 2));
    let mut b = Stats::default();
    (0..100).for_each(|k| record(&mut b, k * 2 + 1));
    let reports = vec![
        (
            PathBuf::from("a"),
            round_trip(&report(Some("0/2"), &a, &["requests == 200"])),
        ),
        (
            PathBuf::from("b"),
            round_trip(&report(Some("1/2"), &b, &["requests == 200"])),
        ),
    ];
    let merged = merge(&reports).unwrap().summary;
    let again = round_trip(&merged);
    assert_eq!(again.phases[0].totals, merged.phases[0].totals);
    assert!(again.passed());
}

#[test]
fn mismatched_reports_are_refused() {
    let mut s = Stats::default();
    record(&mut s, 1);
    let r = |shard: &str| report(Some(shard), &s, &[]);
    let path = PathBuf::from;
    let twice = merge(&[(path("a"), r("0/2")), (path("b"), r("0/2"))]).unwrap_err();
    assert!(twice.to_string().contains("given twice"), "{twice}");
    let counts = merge(&[(path("a"), r("0/2")), (path("b"), r("1/3"))]).unwrap_err();
    assert!(counts.to_string().contains("one of"), "{counts}");
    let mut other = r("1/2");
    other.seed = 8;
    let seed = merge(&[(path("a"), r("0/2")), (path("b"), other)]).unwrap_err();
    assert!(seed.to_string().contains("seed"), "{seed}");
    let partial = merge(&[(path("a"), r("0/3")), (path("b"), r("2/3"))]).unwrap();
    assert!(partial.warnings[0].contains("1/3"), "{:?}", partial.warnings);
    let mut old = r("0/1");
    old.phases[0].totals.histograms = None;
    assert!(merge(&[(path("a"), old)]).is_err());
}

/// Writes `report`'s JSON with the first phase's `field` set to the literal `value`, as a file would hold it.
fn file_with(dir: &Path, name: &str, field: &str, value: &str) -> PathBuf {
    let mut s = Stats::default();
    record(&mut s, 1);
    let mut json = serde_json::to_value(round_trip(&report(Some("0/1"), &s, &[]))).unwrap();
    json["phases"][0][field] = serde_json::Value::from(0.0);
    let text = serde_json::to_string(&json).unwrap().replacen(
        &format!("\"{field}\":0.0"),
        &format!("\"{field}\":{value}"),
        1,
    );
    assert!(text.contains(&format!("\"{field}\":{value}")));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn phase_times_out_of_range_are_refused_with_the_file_and_field() {
    let dir = std::env::temp_dir().join(format!("loadgen-merge-times-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("end_s", "1e300", "phases[0].end_s"),
        ("end_s", "1.7976931348623157e308", "phases[0].end_s"),
        ("start_s", "-5", "phases[0].start_s"),
        ("start_s", "-1e308", "phases[0].start_s"),
        ("start_s", "20", "phases[0].end_s"),
    ];
    for (i, (field, value, named)) in cases.iter().enumerate() {
        let path = file_with(&dir, &format!("bad-{i}.json"), field, value);
        let report = read(&path).unwrap();
        let err = merge(&[(path.clone(), report)]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&path.display().to_string()) && text.contains(named) && text.len() < 200,
            "{field} = {value}: {text}"
        );
        assert!(matches!(err, MergeError::Field { .. }), "{err:?}");
    }
    // Beyond what a double holds: the JSON reader refuses it, naming the file.
    let path = file_with(&dir, "beyond.json", "end_s", "1e400");
    let err = read(&path).unwrap_err();
    assert!(matches!(err, MergeError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("beyond.json"), "{err}");
    // The same file with sane times merges.
    let path = file_with(&dir, "fine.json", "end_s", "10.5");
    let report = read(&path).unwrap();
    assert_eq!(merge(&[(path, report)]).unwrap().summary.phases[0].end_s, 10.5);
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `loadgen merge`: combines the JSON reports of the shards of one scenario (`--shard i/N`, e.g. the pods of
//! a Kubernetes Indexed Job) into one report. Counts add up; percentiles come from the sum of the shards'
//! HDR histograms, never from averaging percentiles; expectations are judged again on the merged figures.
//!
//! Per-second points keep no histograms: a merged second's percentiles are the highest of the shards'.
//! This module reads and combines reports; it prints nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::alerts::{AlertCheck, AlertReport};
use crate::engine::stats::Stats;
use crate::report::{self, FaultWindow, PhaseReport, RatePoint, RequestReport, Summary, FORMAT_VERSION};
use crate::scenario::Condition;
use crate::schedule::Shard;
use crate::shared::snapshot::Point;
use crate::shared::{State, Transition, Verdict};

/// Why reports could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: not a loadgen JSON report: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: report format {found}, expected {FORMAT_VERSION} (write it again with this loadgen)", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{}: {what}", path.display())]
    Mismatch { path: PathBuf, what: String },
    #[error("{}: {field} is {}: {expected}", path.display(), shown(*value))]
    Field {
        path: PathBuf,
        field: String,
        value: f64,
        expected: &'static str,
    },
    #[error("phase `{phase}`: {source}")]
    Histogram {
        phase: String,
        source: crate::report::histograms::HistogramError,
    },
    #[error("phase `{phase}`: {what}")]
    Phase { phase: String, what: String },
    #[error("no reports to merge")]
    Empty,
}

/// Reads one JSON report.
pub fn read(path: &Path) -> Result<Summary, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.to_owned(),
        source,
    })?;
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version")?.as_u64());
    if let Some(found) = version.filter(|v| *v != u64::from(FORMAT_VERSION)) {
        return Err(MergeError::Version {
            path: path.to_owned(),
            found: found as u32,
        });
    }
    serde_json::from_str(&text).map_err(|source| MergeError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// A merged report and what the user should know about it.
#[derive(Debug)]
pub struct Merged {
    pub summary: Summary,
    /// E.g. shards missing from the set.
    pub warnings: Vec<String>,
}

/// Merges reports of the same scenario; `names` (e.g. file names) are used in messages.
pub fn merge(reports: &[(PathBuf, Summary)]) -> Result<Merged, MergeError> {
    let Some((_, first)) = reports.first() else {
        return Err(MergeError::Empty);
    };
    let mut warnings = Vec::new();
    let mut shards: Vec<Shard> = Vec::new();
    for (path, r) in reports {
        check_times(path, r)?;
        let mismatch = |what: String| MergeError::Mismatch {
            path: path.clone(),
            what,
        };
        if r.scenario != first.scenario || r.seed != first.seed {
            return Err(mismatch(format!(
                "scenario `{}` seed {}, but the first report is `{}` seed {}",
                r.scenario, r.seed, first.scenario, first.seed
            )));
        }
        let phase_names = |s: &Summary| s.phases.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let (mine, theirs) = (phase_names(r), phase_names(first));
        if !(mine.starts_with(&theirs) || theirs.starts_with(&mine)) {
            return Err(mismatch(format!(
                "phases {mine:?} differ from the first report's {theirs:?}"
            )));
        }
        match r.shard.as_deref().map(str::parse::<Shard>) {
            Some(Ok(s)) => {
                if shards.contains(&s) {
                    return Err(mismatch(format!("shard {s} is given twice")));
                }
                if let Some(other) = shards.first().filter(|o| o.count() != s.count()) {
                    return Err(mismatch(format!(
                        "shard {s} is one of {}, but shard {other} is one of {}",
                        s.count(),
                        other.count()
                    )));
                }
                shards.push(s);
            }
            Some(Err(e)) => return Err(mismatch(e.to_string())),
            None => warnings.push(format!(
                "{}: not a shard report: merged as if it were one more generator",
                path.display()
            )),
        }
    }
    if let Some(count) = shards.first().map(|s| s.count()) {
        let missing: Vec<String> = (0..count)
            .filter(|i| !shards.iter().any(|s| s.index() == *i))
            .map(|i| format!("{i}/{count}"))
            .collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "shards {} are missing: the merged report covers part of the schedule",
                missing.join(", ")
            ));
        }
    }

    let phase_count = reports.iter().map(|(_, r)| r.phases.len()).max().unwrap_or(0);
    let mut phases = Vec::with_capacity(phase_count);
    for i in 0..phase_count {
        phases.push(merge_phase(reports.iter().filter_map(|(_, r)| r.phases.get(i)))?);
    }
    let alerts = reports.iter().find_map(|(_, r)| r.alerts.clone());
    let completed = reports.iter().all(|(_, r)| r.ending == "completed");
    // The worst verdict of any shard's alert checks, beside the client checks of the merged figures.
    let alert_verdict = Verdict::of_all(
        reports
            .iter()
            .filter_map(|(_, r)| r.alerts.as_ref().map(AlertReport::verdict)),
    );
    let result = report::result(&phases, None, completed).max(alert_verdict);
    let mut targets: Vec<&str> = reports.iter().map(|(_, r)| r.target.as_str()).collect();
    targets.dedup();
    let mut merged_shards: Vec<String> = reports
        .iter()
        .map(|(path, r)| r.shard.clone().unwrap_or_else(|| path.display().to_string()))
        .collect();
    merged_shards.sort();
    Ok(Merged {
        summary: Summary {
            format_version: FORMAT_VERSION,
            scenario: first.scenario.clone(),
            description: first.description.clone(),
            seed: first.seed,
            target: targets.join(", "),
            shard: None,
            merged_shards,
            ending: if completed { "completed" } else { "interrupted" }.to_owned(),
            result,
            phases,
            series: merge_series(reports.iter().map(|(_, r)| r.series.as_slice())),
            intended: merge_intended(reports.iter().map(|(_, r)| r.intended.as_slice())),
            fault_windows: merge_faults(reports.iter().map(|(_, r)| r.fault_windows.as_slice())),
            alerts,
            changes: Vec::new(),
        },
        warnings,
    })
}

/// A number as short as it can be read: `1e300`, not three hundred digits.
fn shown(value: f64) -> String {
    if value.abs() < 1e15 {
        value.to_string()
    } else {
        format!("{value:e}")
    }
}

/// Phase times are read from a file: anything a `Duration` cannot hold is refused here, where the file
/// and the field can still be named, rather than panicking when the phase's length is computed.
fn check_times(path: &Path, r: &Summary) -> Result<(), MergeError> {
    for (i, p) in r.phases.iter().enumerate() {
        let field = |name: &str| format!("phases[{i}].{name} (phase `{}`)", p.name);
        for (name, value) in [("start_s", p.start_s), ("end_s", p.end_s)] {
            if !(value >= 0.0 && std::time::Duration::try_from_secs_f64(value).is_ok()) {
                return Err(MergeError::Field {
                    path: path.to_owned(),
                    field: field(name),
                    value,
                    expected: "expected seconds from the run's start, zero or more",
                });
            }
        }
        if p.end_s < p.start_s {
            return Err(MergeError::Field {
                path: path.to_owned(),
                field: field("end_s"),
                value: p.end_s,
                expected: "expected no less than the phase's start_s",
            });
        }
    }
    Ok(())
}

fn merge_phase<'a>(parts: impl Iterator<Item = &'a PhaseReport>) -> Result<PhaseReport, MergeError> {
    let parts: Vec<&PhaseReport> = parts.collect();
    let first = parts[0];
    let fail = |what: String| MergeError::Phase {
        phase: first.name.clone(),
        what,
    };
    let stats = |f: &report::Figures| {
        report::stats_of(f).map_err(|source| MergeError::Histogram {
            phase: first.name.clone(),
            source,
        })
    };
    let elapsed = parts.iter().map(|p| p.end_s - p.start_s).fold(0.0, f64::max);
    let elapsed = std::time::Duration::from_secs_f64(elapsed.max(0.0));
    let mut total = Stats::default();
    let mut requests: Vec<Stats> = vec![Stats::default(); first.requests.len()];
    for p in &parts {
        if p.totals.histograms.is_none() {
            return Err(fail(
                "a report has no histograms (written by an older loadgen)".into(),
            ));
        }
        if p.requests.len() != first.requests.len()
            || p.requests
                .iter()
                .zip(&first.requests)
                .any(|(a, b)| a.name != b.name)
        {
            return Err(fail("the reports' request mixes differ".into()));
        }
        total.merge(&stats(&p.totals)?);
        for (into, r) in requests.iter_mut().zip(&p.requests) {
            into.merge(&stats(&r.figures)?);
        }
    }
    let mut expectations = Vec::with_capacity(first.expectations.len());
    for e in &first.expectations {
        let condition: Condition = e
            .expectation
            .parse()
            .map_err(|_| fail(format!("cannot read expectation `{}`", e.expectation)))?;
        expectations.extend(report::check(&[condition], &total, elapsed));
    }
    Ok(PhaseReport {
        name: first.name.clone(),
        start_s: parts.iter().map(|p| p.start_s).fold(f64::INFINITY, f64::min),
        end_s: parts.iter().map(|p| p.end_s).fold(0.0, f64::max),
        faults: first.faults.clone(),
        totals: report::figures(&total, elapsed),
        requests: first
            .requests
            .iter()
            .zip(&requests)
            .map(|(r, s)| RequestReport {
                name: r.name.clone(),
                figures: report::figures(s, elapsed),
            })
            .collect(),
        expectations,
    })
}

fn merge_series<'a>(all: impl Iterator<Item = &'a [Point]>) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::new();
    for series in all {
        for (i, p) in series.iter().enumerate() {
            if out.len() <= i {
                out.push(Point {
                    second: i as u64,
                    ..Point::default()
                });
            }
            let m = &mut out[i];
            m.sent += p.sent;
            m.completed += p.completed;
            m.errors += p.errors;
            m.p50_ms = m.p50_ms.max(p.p50_ms);
            m.p95_ms = m.p95_ms.max(p.p95_ms);
            m.p99_ms = m.p99_ms.max(p.p99_ms);
            m.p99_uncorrected_ms = m.p99_uncorrected_ms.max(p.p99_uncorrected_ms);
        }
    }
    out
}

/// Shards share the schedule's curves: their intended points line up, and rates add.
fn merge_intended<'a>(all: impl Iterator<Item = &'a [RatePoint]>) -> Vec<RatePoint> {
    let mut out: Vec<RatePoint> = Vec::new();
    for points in all {
        for (i, p) in points.iter().enumerate() {
            match out.get_mut(i) {
                Some(m) => m.rps += p.rps,
                None => out.push(*p),
            }
        }
    }
    out
}

fn merge_faults<'a>(all: impl Iterator<Item = &'a [FaultWindow]>) -> Vec<FaultWindow> {
    let mut out: Vec<FaultWindow> = Vec::new();
    for windows in all {
        for w in windows {
            match out.iter_mut().find(|o| o.phase == w.phase) {
                Some(o) => {
                    o.start_s = o.start_s.min(w.start_s);
                    o.end_s = o.end_s.max(w.end_s);
                }
                None => out.push(w.clone()),
            }
        }
    }
    out
}

/// Reads the `alerts` object of a report (whose Rust types are written, not read, elsewhere).
pub fn alert_report<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AlertReport>, D::Error> {
    #[derive(Deserialize)]
    struct Report {
        prometheus: String,
        #[serde(default)]
        unchecked: Option<String>,
        #[serde(default)]
        scope: Option<crate::alerts::scope::ScopeReport>,
        transitions: Vec<TransitionIn>,
        checks: Vec<Check>,
        #[serde(default)]
        known: Vec<crate::alerts::judge::Span>,
        #[serde(default)]
        failed_polls: u64,
        #[serde(default)]
        delivery: Option<crate::alerts::delivery::Delivery>,
        #[serde(default)]
        notifications_skipped: Option<String>,
    }
    #[derive(Deserialize)]
    struct TransitionIn {
        at_s: f64,
        alert: String,
        to: State,
    }
    #[derive(Deserialize)]
    struct Check {
        phase: String,
        alert: String,
        expect: String,
        verdict: Verdict,
        pending_after_s: Option<f64>,
        firing_after_s: Option<f64>,
        resolved_after_s: Option<f64>,
        #[serde(default)]
        detail: String,
        #[serde(default)]
        coverage: Option<crate::alerts::judge::Coverage>,
        #[serde(default)]
        predicted: Option<crate::alerts::Predicted>,
    }
    let Some(r) = Option::<Report>::deserialize(d)? else {
        return Ok(None);
    };
    let mut checks = Vec::with_capacity(r.checks.len());
    for c in r.checks {
        let expect = match c.expect.as_str() {
            "firing" => "firing",
            "inactive" => "inactive",
            "resolved" => "resolved",
            "notified" => "notified",
            other => {
                return Err(serde::de::Error::unknown_variant(
                    other,
                    &["firing", "inactive", "resolved", "notified"],
                ))
            }
        };
        checks.push(AlertCheck {
            phase: c.phase,
            alert: c.alert,
            expect,
            verdict: c.verdict,
            pending_after_s: c.pending_after_s,
            firing_after_s: c.firing_after_s,
            resolved_after_s: c.resolved_after_s,
            detail: c.detail,
            coverage: c.coverage,
            predicted: c.predicted,
        });
    }
    Ok(Some(AlertReport {
        prometheus: r.prometheus,
        unchecked: r.unchecked,
        scope: r.scope,
        known: r.known,
        transitions: r
            .transitions
            .into_iter()
            .map(|t| Transition {
                at_s: t.at_s,
                alert: t.alert,
                to: t.to,
            })
            .collect(),
        checks,
        failed_polls: r.failed_polls,
        delivery: r.delivery,
        notifications_skipped: r.notifications_skipped,
    }))
}

#[cfg(test)]
mod tests;

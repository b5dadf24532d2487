//! The run's summary: built once from the recorder's statistics, then written as text for people and as
//! JSON for machines. Writers are pure (`fn write(&Summary, &mut impl Write)`), so tests render into a
//! `Vec<u8>`. The JSON format is documented in `docs/report-format.md`.

mod changed;
pub mod exporter;
pub mod histograms;
pub mod html;
pub mod live;
pub mod merge;
pub mod plan;
pub mod record;

use std::io::{self, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alerts::AlertReport;
use crate::client::Version;
use crate::engine::stats::{RunStats, Stats};
use crate::engine::Ending;
use crate::scenario::{Condition, Load, Metric, Scenario};
use crate::schedule::{RateCurve, Shard};
use crate::shared::control::Change;
use crate::shared::outcome::Class;
use crate::shared::snapshot::Point;
use crate::shared::{Timeline, Verdict};
pub use changed::{alerts_changed_live, changed_live, touches};

pub use crate::report::histograms::Histograms;

/// Version of the JSON report format.
pub const FORMAT_VERSION: u32 = 3;

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub format_version: u32,
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub target: String,
    /// The slice of the schedule this run sent (`i/N`), when it was one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The shards combined into this report by `loadgen merge`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_shards: Vec<String>,
    /// `completed` or `interrupted`.
    pub ending: String,
    /// `pass` when every expectation was observed to hold and the run completed; `fail` when one was
    /// observed not to; otherwise `not_verified`.
    pub result: Verdict,
    pub phases: Vec<PhaseReport>,
    pub series: Vec<Point>,
    /// The intended (scheduled) rate of this run, from the phases' rate curves, about every second.
    #[serde(default)]
    pub intended: Vec<RatePoint>,
    /// When faults were applied to the target.
    #[serde(default)]
    pub fault_windows: Vec<FaultWindow>,
    /// Alert checks, when a Prometheus was asked.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::report::merge::alert_report"
    )]
    pub alerts: Option<AlertReport>,
    /// Changes made live (`--control`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// The intended rate at one instant.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RatePoint {
    /// Seconds from the run's start.
    pub t_s: f64,
    pub rps: f64,
}

/// A span of the run during which faults were applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultWindow {
    pub phase: String,
    pub start_s: f64,
    pub end_s: f64,
    /// Fault kinds.
    pub faults: Vec<String>,
}

/// How `ending` is written in reports.
pub fn ending_name(ending: Ending) -> &'static str {
    match ending {
        Ending::Completed => "completed",
        Ending::Interrupted => "interrupted",
    }
}

impl Summary {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.result == Verdict::Pass
    }

    /// Whether the run was stopped before its end.
    pub fn interrupted(&self) -> bool {
        self.ending == ending_name(Ending::Interrupted)
    }

    /// The end of the run, in seconds from its start: the last phase's end or the series' length.
    pub fn length_s(&self) -> f64 {
        let phases = self.phases.iter().map(|p| p.end_s).fold(0.0, f64::max);
        phases.max(self.series.len() as f64)
    }
}

/// One phase of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    pub name: String,
    /// Seconds from the run's start.
    pub start_s: f64,
    pub end_s: f64,
    /// Names of the fault kinds applied during the phase.
    pub faults: Vec<String>,
    pub totals: Figures,
    pub requests: Vec<RequestReport>,
    pub expectations: Vec<ExpectationResult>,
}

/// Figures of one request of the mix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestReport {
    pub name: String,
    pub figures: Figures,
}

/// Counts and latencies (milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub rps: f64,
    pub errors: u64,
    pub error_ratio: f64,
    pub late: u64,
    pub dropped: u64,
    /// Completed requests per outcome class (only classes seen).
    pub classes: std::collections::BTreeMap<String, u64>,
    /// Completed requests per HTTP status.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    /// Latency from the intended send time.
    pub latency_ms: Latency,
    /// Latency from the actual send time.
    pub latency_uncorrected_ms: Latency,
    /// How late requests were sent (actual minus intended).
    pub schedule_lag_ms: Latency,
    /// The HDR histograms the latencies come from, so reports can be merged exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<Histograms>,
    /// Answers per HTTP version actually used (`HTTP/1.1`, `HTTP/2`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub protocols: std::collections::BTreeMap<String, u64>,
    /// Connections opened, and how long each took (TCP and TLS), apart from request latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshakes: Option<Handshakes>,
    /// Requests a closing keep-alive connection handed back unsent, sent again on a fresh one and
    /// counted once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
}

/// New connections and their set-up time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Handshakes {
    pub connections: u64,
    pub time_ms: Latency,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One expectation and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// As written, e.g. `p95 < 300ms`.
    pub expectation: String,
    /// The observed value, written like the expectation's value, or `no data` and why.
    pub observed: String,
    pub verdict: Verdict,
}

fn latency(h: &hdrhistogram::Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency {
            mean: 0.0,
            p50: 0.0,
            p90: 0.0,
            p95: 0.0,
            p99: 0.0,
            p999: 0.0,
            max: 0.0,
        };
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    Latency {
        mean: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

/// The figures of `stats` over `elapsed`.
pub fn figures(stats: &Stats, elapsed: Duration) -> Figures {
    let secs = elapsed.as_secs_f64();
    Figures {
        requests: stats.completed(),
        rps: if secs > 0.0 {
            stats.completed() as f64 / secs
        } else {
            0.0
        },
        errors: stats.errors(),
        error_ratio: stats.error_ratio(),
        late: stats.late,
        dropped: stats.dropped,
        classes: Class::ALL
            .iter()
            .filter(|c| stats.classes[c.index()] > 0)
            .map(|c| (c.name().to_owned(), stats.classes[c.index()]))
            .collect(),
        statuses: stats.statuses.clone(),
        latency_ms: latency(&stats.corrected),
        latency_uncorrected_ms: latency(&stats.uncorrected),
        schedule_lag_ms: latency(&stats.lag),
        histograms: Some(Histograms::of(stats)),
        protocols: Version::ALL
            .iter()
            .filter(|v| stats.versions[v.index()] > 0)
            .map(|v| (v.name().to_owned(), stats.versions[v.index()]))
            .collect(),
        handshakes: (!stats.handshake.is_empty()).then(|| Handshakes {
            connections: stats.handshake.len(),
            time_ms: latency(&stats.handshake),
        }),
        resent: stats.resent,
    }
}

/// The statistics behind `figures` (counts, and histograms when the report has them).
pub fn stats_of(figures: &Figures) -> Result<Stats, crate::report::histograms::HistogramError> {
    let mut stats = match &figures.histograms {
        Some(h) => h.stats()?,
        None => Stats::default(),
    };
    for c in Class::ALL {
        stats.classes[c.index()] = figures.classes.get(c.name()).copied().unwrap_or(0);
    }
    stats.statuses = figures.statuses.clone();
    stats.late = figures.late;
    stats.dropped = figures.dropped;
    for v in Version::ALL {
        stats.versions[v.index()] = figures.protocols.get(v.name()).copied().unwrap_or(0);
    }
    stats.resent = figures.resent;
    Ok(stats)
}

/// The observed value of `metric`, in base units (seconds for latencies).
pub fn observe(metric: Metric, stats: &Stats, elapsed: Duration) -> f64 {
    let secs = |micros: u64| micros as f64 / 1e6;
    let h = &stats.corrected;
    match metric {
        Metric::Requests => stats.completed() as f64,
        Metric::Rps => {
            let s = elapsed.as_secs_f64();
            if s > 0.0 {
                stats.completed() as f64 / s
            } else {
                0.0
            }
        }
        Metric::ErrorRatio => stats.error_ratio(),
        Metric::Errors => stats.errors() as f64,
        Metric::LateRatio => match stats.completed() {
            0 => 0.0,
            n => stats.late as f64 / n as f64,
        },
        Metric::Dropped => stats.dropped as f64,
        Metric::Max if !h.is_empty() => secs(h.max()),
        Metric::Mean if !h.is_empty() => h.mean() / 1e6,
        m => match m.quantile() {
            Some(q) if !h.is_empty() => secs(h.value_at_quantile(q)),
            // No completed request: latency conditions cannot be judged.
            _ => f64::NAN,
        },
    }
}

/// Checks `conditions` against a phase's statistics.
pub fn check(conditions: &[Condition], stats: &Stats, elapsed: Duration) -> Vec<ExpectationResult> {
    conditions
        .iter()
        .map(|c| {
            let observed = observe(c.metric, stats, elapsed);
            let shown = Condition {
                value: observed,
                ..*c
            };
            // A ratio, a count of errors or a latency says nothing about a phase where no request
            // completed: an error ratio of 0 there is not an observation.
            let about_answers = !matches!(c.metric, Metric::Requests | Metric::Rps | Metric::Dropped);
            if observed.is_nan() || (about_answers && stats.completed() == 0) {
                return ExpectationResult {
                    expectation: c.to_string(),
                    observed: "no data: no request completed".into(),
                    verdict: Verdict::NotVerified,
                };
            }
            ExpectationResult {
                expectation: c.to_string(),
                observed: shown.value_text(),
                verdict: Verdict::holds(c.holds(observed)),
            }
        })
        .collect()
}

/// The intended rate of every phase that ran, one point a second (and at each phase's ends), divided
/// among `shard.count()` shards.
pub fn intended_rate(scenario: &Scenario, timeline: &Timeline, shard: Shard) -> Vec<RatePoint> {
    let mut points = Vec::new();
    for (phase, (start, end)) in scenario.phases.iter().zip(&timeline.phases) {
        let Load::Open { rate, .. } = &phase.load else {
            continue;
        };
        let secs = phase.duration.as_secs_f64();
        let curve = RateCurve::new(rate, secs);
        let (start, ran) = (start.as_secs_f64(), (*end - *start).as_secs_f64().min(secs));
        let mut t: f64 = 0.0;
        loop {
            let at = t.min(ran);
            points.push(RatePoint {
                t_s: start + at,
                rps: curve.rate_at(at.min(secs - 1e-9).max(0.0)) / shard.count() as f64,
            });
            if at >= ran {
                break;
            }
            t += 1.0;
        }
    }
    points
}

/// Builds the summary of a run.
pub fn summarize(
    scenario: &Scenario,
    target: &str,
    shard: Shard,
    stats: &RunStats,
    timeline: &Timeline,
    ending: Ending,
    alerts: Option<AlertReport>,
) -> Summary {
    let phases: Vec<PhaseReport> = stats
        .phases
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < timeline.phases.len())
        .map(|(i, p)| {
            let phase = &scenario.phases[i];
            let (start, end) = timeline.phases[i];
            let elapsed = timeline.elapsed(i);
            PhaseReport {
                name: phase.name.clone(),
                start_s: start.as_secs_f64(),
                end_s: end.as_secs_f64(),
                faults: phase.chaos.iter().map(|f| f.kind().to_owned()).collect(),
                totals: figures(&p.total, elapsed),
                requests: phase
                    .mix
                    .requests()
                    .iter()
                    .zip(&p.requests)
                    .map(|(r, s)| RequestReport {
                        name: r.name.clone(),
                        figures: figures(s, elapsed),
                    })
                    .collect(),
                expectations: changed_live(
                    &phase.expect.conditions,
                    check(&phase.expect.conditions, &p.total, elapsed),
                    timeline.changes.iter().filter(|c| c.phase == i),
                ),
            }
        })
        .collect();
    let alerts = alerts.map(|mut a| {
        let names: Vec<String> = scenario.phases.iter().map(|p| p.name.clone()).collect();
        alerts_changed_live(&mut a.checks, &names, &timeline.changes);
        a
    });
    let result = result(&phases, alerts.as_ref(), ending == Ending::Completed);
    Summary {
        format_version: FORMAT_VERSION,
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        seed: scenario.seed,
        target: target.to_owned(),
        shard: (shard != Shard::WHOLE).then(|| shard.to_string()),
        merged_shards: Vec::new(),
        ending: ending_name(ending).to_owned(),
        result,
        fault_windows: timeline
            .faults
            .iter()
            .map(|(i, start, end)| FaultWindow {
                phase: scenario.phases[*i].name.clone(),
                start_s: start.as_secs_f64(),
                end_s: end.as_secs_f64(),
                faults: scenario.phases[*i]
                    .chaos
                    .iter()
                    .map(|f| f.kind().to_owned())
                    .collect(),
            })
            .zip(
                timeline
                    .fault_kinds
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .map(|(mut w, kinds)| {
                if let Some(kinds) = kinds {
                    w.faults = kinds.clone();
                }
                w
            })
            .collect(),
        intended: intended_rate(scenario, timeline, shard),
        phases,
        series: stats.series.clone(),
        alerts,
        changes: timeline.changes.clone(),
    }
}

/// The verdict of a run: the worst of its checks; a run that did not complete is at best NOT VERIFIED
/// (the phases it did not run were not checked).
pub fn result(phases: &[PhaseReport], alerts: Option<&AlertReport>, completed: bool) -> Verdict {
    let client = phases
        .iter()
        .flat_map(|p| p.expectations.iter().map(|e| e.verdict));
    let alerts = alerts.into_iter().map(AlertReport::verdict);
    let all = Verdict::of_all(client.chain(alerts));
    if completed {
        all
    } else {
        all.max(Verdict::NotVerified)
    }
}

/// Writes the JSON report.
pub fn write_json(summary: &Summary, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    out.write_all(b"\n")
}

/// Writes the human summary: a table per phase, the requests of each, and the expectations.
pub fn write_text(summary: &Summary, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "\nscenario {} (seed {}) against {}: {}",
        summary.scenario, summary.seed, summary.target, summary.ending
    )?;
    if let Some(shard) = &summary.shard {
        writeln!(out, "shard {shard}: this run sent one slice of the schedule")?;
    }
    if !summary.merged_shards.is_empty() {
        writeln!(out, "merged from {}", summary.merged_shards.join(", "))?;
    }
    writeln!(
        out,
        "\n{:<22} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6} {:>7}",
        "phase / request", "requests", "rps", "errors", "p50", "p95", "p99", "max", "late", "dropped"
    )?;
    for phase in &summary.phases {
        let faults = if phase.faults.is_empty() {
            String::new()
        } else {
            format!("  [faults: {}]", phase.faults.join(", "))
        };
        row(out, &phase.name, &phase.totals)?;
        if !faults.is_empty() {
            writeln!(out, "{faults}")?;
        }
        if phase.requests.len() > 1 {
            for r in &phase.requests {
                row(out, &format!("  {}", r.name), &r.figures)?;
            }
        }
        let failures: Vec<String> = phase
            .totals
            .classes
            .iter()
            .filter(|(c, _)| c.as_str() != "ok")
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        if !failures.is_empty() {
            writeln!(out, "  failures: {}", failures.join(", "))?;
        }
        let t = &phase.totals;
        if !t.protocols.is_empty() || t.handshakes.is_some() || t.resent > 0 {
            let mut parts: Vec<String> = t.protocols.iter().map(|(p, n)| format!("{p} {n}")).collect();
            if let Some(h) = &t.handshakes {
                parts.push(format!(
                    "{} new connections (set-up p50 {}, max {})",
                    h.connections,
                    ms(h.time_ms.p50),
                    ms(h.time_ms.max)
                ));
            }
            if t.resent > 0 {
                parts.push(format!("{} resent unsent on a fresh connection", t.resent));
            }
            writeln!(out, "  transport: {}", parts.join(", "))?;
        }
    }
    if !summary.changes.is_empty() {
        writeln!(out, "\nchanged live")?;
        for c in &summary.changes {
            let phase = summary.phases.get(c.phase).map_or("", |p| p.name.as_str());
            writeln!(out, "  {:>8.3}s {:<14} {:<8} {}", c.at_s, phase, c.source, c.text)?;
        }
    }
    let checks: Vec<(&str, &ExpectationResult)> = summary
        .phases
        .iter()
        .flat_map(|p| p.expectations.iter().map(move |e| (p.name.as_str(), e)))
        .collect();
    if !checks.is_empty() {
        writeln!(out, "\nexpectations")?;
        for (phase, e) in checks {
            writeln!(
                out,
                "  {:<12} {:<14} {:<28} observed {}",
                e.verdict.as_str(),
                phase,
                e.expectation,
                e.observed
            )?;
        }
    }
    if let Some(alerts) = &summary.alerts {
        crate::alerts::write_text(alerts, out)?;
    }
    writeln!(out, "\nresult: {}", summary.result)
}

fn row(out: &mut impl Write, name: &str, f: &Figures) -> io::Result<()> {
    let name: String = name.chars().take(22).collect();
    writeln!(
        out,
        "{:<22} {:>8} {:>8.1} {:>6.1}% {:>9} {:>9} {:>9} {:>9} {:>6} {:>7}",
        name,
        f.requests,
        f.rps,
        f.error_ratio * 100.0,
        ms(f.latency_ms.p50),
        ms(f.latency_ms.p95),
        ms(f.latency_ms.p99),
        ms(f.latency_ms.max),
        f.late,
        f.dropped
    )
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else {
        format!("{v:.1}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(expect: &str) -> Vec<Condition> {
        let text = format!(
            "name = \"n\"\n[[mix]]\npath = \"/\"\n[[phases]]\nname = \"p\"\nduration = \"1s\"\n\
             rate = {{ shape = \"constant\", rps = 1 }}\nexpect = {{ {expect} }}\n"
        );
        let s = crate::scenario::parse(&text, "n.toml").unwrap();
        s.phases[0].expect.conditions.clone()
    }

    #[test]
    fn without_a_completed_request_ratios_and_latencies_are_not_verified() {
        let c = conditions(
            r#"error_ratio = "< 0.5", p95 = "< 1s", errors = "== 0", requests = "> 100", dropped = "== 0""#,
        );
        let verdicts: Vec<(String, Verdict)> = check(&c, &Stats::default(), Duration::from_secs(1))
            .into_iter()
            .map(|e| (e.expectation, e.verdict))
            .collect();
        let names: Vec<&str> = verdicts.iter().map(|(e, _)| e.as_str()).collect();
        let of = |name: &str| verdicts[names.iter().position(|n| n.starts_with(name)).unwrap()].1;
        assert_eq!(of("error_ratio"), Verdict::NotVerified);
        assert_eq!(of("p95"), Verdict::NotVerified);
        assert_eq!(of("errors"), Verdict::NotVerified);
        assert_eq!(of("requests"), Verdict::Fail, "a count of nothing is observed");
        assert_eq!(of("dropped"), Verdict::Pass);
    }

    #[test]
    fn a_run_that_did_not_complete_is_at_best_not_verified() {
        assert_eq!(result(&[], None, true), Verdict::Pass);
        assert_eq!(result(&[], None, false), Verdict::NotVerified);
    }
}

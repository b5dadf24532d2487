//! How much room each alert expectation has, before it flakes: the seconds between the predicted
//! transition it depends on and the phase boundary that transition must beat.
//!
//! - `alerts_firing`: from the first predicted firing in the phase to the phase's end.
//! - `alerts_resolved`: from the predicted resolution to the phase's end.
//! - `alerts_inactive`: from the end of the alert's last activity before the phase to the phase's
//!   start, and from the phase's end to its next activity when the next phase keeps this phase's load
//!   and faults (a change at the boundary is what makes the alert rise, and it cannot rise earlier).
//!
//! Each margin is the smallest under every order of the rule groups. A margin under the prediction's
//! known error ([`threshold`]) is fragile: a live run may land on the other side of the boundary.

use serde::Serialize;

use super::{AlertPrediction, Prediction};
use crate::alerts::judge::SLACK_S;
use crate::scenario::Scenario;
use crate::shared::Verdict;

/// How far a predicted firing time lay from the measured one at 1s scrape and evaluation intervals,
/// at most: every shipped alert scenario, `scripts/alert-timing.sh` (docs/alert-timing.md).
pub const MEASURED_ERROR_S: f64 = 4.0;

/// The smallest margin that is not fragile for a Prometheus scraping and evaluating every
/// `interval_s`: the measured error, plus one more interval of scrape delay and one of evaluation
/// delay for every second an interval is longer than the measured 1s.
pub fn threshold(interval_s: f64) -> f64 {
    MEASURED_ERROR_S + 2.0 * (interval_s - 1.0).max(0.0)
}

/// One expectation's margin.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Margin {
    pub phase: String,
    pub alert: String,
    /// `firing`, `inactive` or `resolved`.
    pub expect: &'static str,
    /// Whether the prediction says it holds (under every order of the rule groups).
    pub holds: bool,
    /// Seconds of room; `None` when nothing bounds it (an alert never active near the phase) or,
    /// for an expectation that does not hold, nothing to measure.
    pub seconds: Option<f64>,
}

impl Margin {
    /// Whether it holds by less than `threshold(interval_s)`.
    pub fn fragile(&self, interval_s: f64) -> bool {
        self.holds && self.seconds.is_some_and(|s| s < threshold(interval_s))
    }
}

/// The margins of one scenario under one scrape and evaluation interval.
#[derive(Debug, Clone, Serialize)]
pub struct MarginSet {
    pub interval_s: f64,
    pub margins: Vec<Margin>,
}

impl MarginSet {
    /// The expectations that hold by less than the known error.
    pub fn fragile(&self) -> impl Iterator<Item = &Margin> {
        self.margins.iter().filter(|m| m.fragile(self.interval_s))
    }
}

/// Writes one line per expectation with its margin under each set (`!` marks a fragile one, `-` an
/// expectation the prediction does not hold, `inf` one nothing bounds).
pub fn write_table(sets: &[MarginSet], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let Some(first) = sets.first() else {
        return Ok(());
    };
    if first.margins.is_empty() {
        return Ok(());
    }
    let limits: Vec<String> = sets
        .iter()
        .map(|s| format!("{}s at {}s intervals", threshold(s.interval_s), s.interval_s))
        .collect();
    writeln!(
        out,
        "margins (seconds between the predicted transition and the phase boundary; fragile, marked !, under {})",
        limits.join(", ")
    )?;
    let phase_w = first
        .margins
        .iter()
        .map(|m| m.phase.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let alert_w = first
        .margins
        .iter()
        .map(|m| m.alert.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let heads: String = sets
        .iter()
        .map(|s| format!("{:>8}", format!("{}s", s.interval_s)))
        .collect();
    writeln!(
        out,
        "  {:<phase_w$}  {:<alert_w$}  {:<8}{heads}",
        "phase", "alert", "expect"
    )?;
    for (i, m) in first.margins.iter().enumerate() {
        let cells: String = sets
            .iter()
            .map(|s| {
                let cell = s
                    .margins
                    .get(i)
                    .map_or("?".to_owned(), |x| match (x.holds, x.seconds) {
                        (false, _) => "-".to_owned(),
                        (true, None) => "inf".to_owned(),
                        (true, Some(v)) if x.fragile(s.interval_s) => format!("{v:.0}!"),
                        (true, Some(v)) => format!("{v:.0}"),
                    });
                format!("{cell:>8}")
            })
            .collect();
        writeln!(
            out,
            "  {:<phase_w$}  {:<alert_w$}  {:<8}{cells}",
            m.phase, m.alert, m.expect
        )?;
    }
    Ok(())
}

/// Every alert state expectation of `scenario` with its margin under `prediction`.
pub fn margins(scenario: &Scenario, prediction: &Prediction) -> Vec<Margin> {
    let checks = super::check(scenario, prediction);
    let mut out = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate() {
        let start = scenario.phase_start(i).as_secs_f64();
        let end = start + phase.duration.as_secs_f64();
        let next_same = scenario
            .phases
            .get(i + 1)
            .is_some_and(|n| n.load == phase.load && n.chaos == phase.chaos);
        let e = &phase.expect;
        let expectations = [
            ("firing", &e.alerts_firing),
            ("inactive", &e.alerts_inactive),
            ("resolved", &e.alerts_resolved),
        ];
        for (expect, alerts) in expectations {
            for alert in alerts {
                let holds = checks
                    .iter()
                    .find(|c| c.phase == phase.name && c.alert == *alert && c.expect == expect)
                    .is_some_and(|c| c.verdict == Verdict::Pass);
                let per_order: Vec<Option<f64>> = prediction
                    .every_order()
                    .map(|(alerts, _)| {
                        let a = alerts.iter().find(|a| a.name == *alert)?;
                        match expect {
                            "firing" => firing(a, start, end),
                            "resolved" => resolved(a, start, end),
                            _ => inactive(a, start, end, next_same),
                        }
                    })
                    .collect();
                let seconds = per_order
                    .iter()
                    .flatten()
                    .copied()
                    .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.min(s))));
                out.push(Margin {
                    phase: phase.name.clone(),
                    alert: alert.clone(),
                    expect,
                    holds,
                    seconds: seconds.map(|s| (s * 10.0).round() / 10.0),
                });
            }
        }
    }
    out
}

/// Phase end minus the first firing seen in the phase (or just after it).
fn firing(a: &AlertPrediction, start: f64, end: f64) -> Option<f64> {
    let f = a
        .firing
        .iter()
        .find(|[from, to]| *from < end + SLACK_S && *to > start)?;
    Some(end - f[0].max(start))
}

/// Phase end minus the end of the last firing that began before the phase ended.
fn resolved(a: &AlertPrediction, _start: f64, end: f64) -> Option<f64> {
    let f = a.firing.iter().rev().find(|[from, _]| *from < end)?;
    Some(end - f[1])
}

/// The room between the phase and the alert's activity around it.
fn inactive(a: &AlertPrediction, start: f64, end: f64, next_same: bool) -> Option<f64> {
    let mut room: Option<f64> = None;
    let mut take = |s: f64| room = Some(room.map_or(s, |r: f64| r.min(s)));
    for [from, to] in a.pending.iter().chain(&a.firing) {
        if *to <= start {
            take(start - to);
        } else if *from >= end {
            if next_same {
                take(from - end);
            }
        } else {
            take(0.0);
        }
    }
    room
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pending: &[[f64; 2]], firing: &[[f64; 2]]) -> AlertPrediction {
        AlertPrediction {
            name: "A".into(),
            pending: pending.to_vec(),
            firing: firing.to_vec(),
            other_order: None,
        }
    }

    #[test]
    fn firing_and_resolved_margins_are_measured_to_the_phase_end() {
        let a = alert(&[[25.0, 40.0]], &[[40.0, 90.0]]);
        assert_eq!(firing(&a, 20.0, 60.0), Some(20.0));
        assert_eq!(resolved(&a, 60.0, 120.0), Some(30.0));
        // Firing since before the phase: the whole phase is room.
        assert_eq!(firing(&a, 50.0, 60.0), Some(10.0));
        assert_eq!(firing(&alert(&[], &[]), 0.0, 60.0), None);
    }

    #[test]
    fn inactive_margins_count_activity_after_the_phase_only_when_nothing_changes_there() {
        let a = alert(&[[62.0, 70.0]], &[]);
        assert_eq!(inactive(&a, 0.0, 60.0, false), None);
        assert_eq!(inactive(&a, 0.0, 60.0, true), Some(2.0));
        assert_eq!(inactive(&a, 75.0, 100.0, false), Some(5.0));
        assert_eq!(inactive(&a, 65.0, 100.0, false), Some(0.0));
    }

    #[test]
    fn the_threshold_grows_with_the_interval() {
        assert_eq!(threshold(1.0), MEASURED_ERROR_S);
        assert_eq!(threshold(5.0), MEASURED_ERROR_S + 8.0);
    }
}

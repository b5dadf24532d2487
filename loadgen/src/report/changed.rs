//! Expectations of a phase changed live: one whose measure a change touched is not judged on what the
//! scenario asked (it was not the run asked for): NOT VERIFIED, "changed live" with the time. Pure.

use super::ExpectationResult;
use crate::alerts::AlertCheck;
use crate::scenario::{Condition, Metric};
use crate::shared::control::{Change, Command};
use crate::shared::Verdict;

/// Whether a change of this kind moves what `metric` measures: a rate (or pause) moves the counts and
/// throughput, a fault moves errors and latency, an end or extension moves the counts.
pub fn touches(command: &Command, metric: Metric) -> bool {
    use Metric::*;
    match command {
        Command::Rate { .. } | Command::Pause | Command::Resume => {
            matches!(metric, Requests | Rps | Errors | Dropped | LateRatio)
        }
        Command::FaultOn { .. } | Command::FaultOff { .. } => matches!(
            metric,
            ErrorRatio | Errors | P50 | P90 | P95 | P99 | P999 | Max | Mean
        ),
        Command::EndPhase | Command::Extend { .. } | Command::Stop => {
            matches!(metric, Requests | Errors | Dropped)
        }
    }
}

/// The results of a phase's `conditions` given the `changes` made live in it: one whose metric a change
/// touched is not judged on what the scenario asked (NOT VERIFIED, changed live, with the time).
pub fn changed_live<'a>(
    conditions: &[Condition],
    results: Vec<ExpectationResult>,
    changes: impl Iterator<Item = &'a Change> + Clone,
) -> Vec<ExpectationResult> {
    conditions
        .iter()
        .zip(results)
        .map(|(c, mut r)| {
            if let Some(change) = changes.clone().find(|ch| touches(&ch.command, c.metric)) {
                r.observed = format!(
                    "changed live at {:.1}s ({}); observed {}",
                    change.at_s, change.text, r.observed
                );
                // Neither a PASS nor a FAIL of what the scenario asked: the run was not the one asked for.
                if r.verdict != Verdict::Skipped {
                    r.verdict = Verdict::NotVerified;
                }
            }
            r
        })
        .collect()
}

/// Alert checks given the `changes` made live: an alert reads windows of the past, so a change moves
/// every alert state from its time on, whatever it changed. The checks of the phase of the first
/// change and of every later phase are not judged on what the scenario asked (NOT VERIFIED, changed
/// live, with the time); earlier phases keep their verdicts. `phases` names the scenario's phases.
pub fn alerts_changed_live(checks: &mut [AlertCheck], phases: &[String], changes: &[Change]) {
    let Some(first) = changes.iter().min_by_key(|c| c.phase) else {
        return;
    };
    for check in checks {
        let index = phases.iter().position(|p| *p == check.phase);
        if index.is_some_and(|i| i >= first.phase) {
            check.detail = format!(
                "changed live at {:.1}s ({}); observed: {}",
                first.at_s, first.text, check.detail
            );
            if check.verdict != Verdict::Skipped {
                check.verdict = Verdict::NotVerified;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::control::RateSet;

    fn change(at_s: f64, command: Command) -> Change {
        Change {
            at_s,
            phase: 0,
            source: "api".into(),
            text: command.describe(),
            command,
        }
    }

    fn results(conditions: &[Condition]) -> Vec<ExpectationResult> {
        conditions
            .iter()
            .map(|c| ExpectationResult {
                expectation: c.to_string(),
                observed: "x".into(),
                verdict: Verdict::Pass,
            })
            .collect()
    }

    #[test]
    fn only_what_a_change_touched_is_reported_changed_live() {
        let conditions: Vec<Condition> = ["rps >= 10", "error_ratio < 0.1", "p95 < 300ms"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        let rate = [change(
            12.25,
            Command::Rate {
                set: RateSet::Rps(40.0),
            },
        )];
        let out = changed_live(&conditions, results(&conditions), rate.iter());
        let verdicts: Vec<Verdict> = out.iter().map(|r| r.verdict).collect();
        assert_eq!(verdicts, [Verdict::NotVerified, Verdict::Pass, Verdict::Pass]);
        assert_eq!(out[0].observed, "changed live at 12.2s (rate 40 rps); observed x");

        let fault = [change(3.0, Command::FaultOff { kind: "error".into() })];
        let out = changed_live(&conditions, results(&conditions), fault.iter());
        let verdicts: Vec<Verdict> = out.iter().map(|r| r.verdict).collect();
        assert_eq!(
            verdicts,
            [Verdict::Pass, Verdict::NotVerified, Verdict::NotVerified]
        );

        let none: [Change; 0] = [];
        let out = changed_live(&conditions, results(&conditions), none.iter());
        assert!(out.iter().all(|r| r.verdict == Verdict::Pass));
    }

    #[test]
    fn alert_checks_from_the_first_changed_phase_on_are_changed_live() {
        let phases: Vec<String> = ["calm", "spike", "after"].map(String::from).to_vec();
        let mut checks: Vec<AlertCheck> = phases
            .iter()
            .map(|p| AlertCheck::unmade(p, "HighErrorRate", "inactive", Verdict::Pass, "stayed inactive"))
            .collect();
        checks.push(AlertCheck::unmade(
            "after",
            "HighErrorRate",
            "resolved",
            Verdict::Fail,
            "still firing",
        ));
        let mut off = change(70.5, Command::FaultOff { kind: "error".into() });
        off.phase = 1;
        alerts_changed_live(&mut checks, &phases, &[off]);
        let verdicts: Vec<Verdict> = checks.iter().map(|c| c.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Pass,
                Verdict::NotVerified,
                Verdict::NotVerified,
                Verdict::NotVerified
            ]
        );
        assert!(
            checks[1].detail.starts_with("changed live at 70.5s ("),
            "{}",
            checks[1].detail
        );
        assert_eq!(checks[0].detail, "stayed inactive");
        let mut untouched = checks[..1].to_vec();
        alerts_changed_live(&mut untouched, &phases, &[]);
        assert_eq!(untouched[0].verdict, Verdict::Pass);
    }
}

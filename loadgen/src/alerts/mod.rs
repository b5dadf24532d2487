//! The evidence about alerts. Before the run: the prediction ([`predict`], promtool on the real rule
//! files), the private Prometheus and Alertmanager ([`prometheus`], [`alertmanager`]) and the run's
//! scope ([`scope`]: which alerts count). During it: the poller ([`watch`]) and loadgen's webhook
//! receiver ([`notify`]). After it: the judge ([`judge`], a pure function of what was observed) and
//! the notifications' hops ([`delivery`]).
//!
//! Every alert expectation ends PASS, FAIL or NOT VERIFIED with the reason, and shows how much of its
//! phase Prometheus' answers covered. This wing starts Prometheus and Alertmanager and asks them; it
//! prints nothing but the text it is asked to write.

pub mod alertmanager;
pub mod amstate;
pub mod child;
pub mod delivery;
pub mod judge;
pub mod notify;
pub mod predict;
pub mod prometheus;
pub mod routed;
pub mod routes;
pub mod routing;
pub mod scope;
pub mod snapshot;
pub mod watch;

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::alerts::judge::{Coverage, Expect, Observations, Span};
use crate::scenario::Scenario;
use crate::shared::{Timeline, Transition, Verdict};

/// The alert timeline and the checks made on it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    /// The Prometheus asked; empty when none was.
    pub prometheus: String,
    /// Why no Prometheus was asked, when none was: every alert check is then NOT VERIFIED (or
    /// SKIPPED when `--no-alerts` asked for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
    /// Which alerts counted for the run, and which were seen but did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::alerts::scope::ScopeReport>,
    pub transitions: Vec<Transition>,
    /// The spans of the run (seconds from its start) for which Prometheus' answer is known.
    pub known: Vec<Span>,
    pub checks: Vec<AlertCheck>,
    /// Polls that failed (Prometheus unreachable or answering badly).
    pub failed_polls: u64,
    /// Notifications received from Alertmanager and the hops of each expected alert, when loadgen's
    /// webhook listened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<crate::alerts::delivery::Delivery>,
    /// Why notifications were not received, when they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications_skipped: Option<String>,
}

impl AlertReport {
    /// The verdict of every alert check together.
    pub fn verdict(&self) -> Verdict {
        Verdict::of_all(self.checks.iter().map(|c| c.verdict))
    }
}

/// One alert expectation and its result.
#[derive(Debug, Clone, Serialize)]
pub struct AlertCheck {
    pub phase: String,
    pub alert: String,
    /// `firing`, `inactive`, `resolved` or `notified`.
    pub expect: &'static str,
    pub verdict: Verdict,
    /// Seconds from the phase's start to the first pending / firing state seen in the phase.
    pub pending_after_s: Option<f64>,
    pub firing_after_s: Option<f64>,
    /// Seconds from the phase's start to the alert becoming inactive.
    pub resolved_after_s: Option<f64>,
    pub detail: String,
    /// How much of the phase Prometheus' answers covered (alert state checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// The same times as predicted before the run (`loadgen plan --predict`), when a prediction
    /// was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Predicted>,
}

impl AlertCheck {
    /// A check that was not made, with the verdict and the reason.
    pub fn unmade(phase: &str, alert: &str, expect: &'static str, verdict: Verdict, why: &str) -> AlertCheck {
        AlertCheck {
            phase: phase.to_owned(),
            alert: alert.to_owned(),
            expect,
            verdict,
            pending_after_s: None,
            firing_after_s: None,
            resolved_after_s: None,
            detail: why.to_owned(),
            coverage: None,
            predicted: None,
        }
    }
}

/// Predicted times of one alert check, in seconds from its phase's start, and how far the observed
/// time of the expected state lies from the predicted one.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Predicted {
    pub pending_after_s: Option<f64>,
    pub firing_after_s: Option<f64>,
    pub resolved_after_s: Option<f64>,
    /// Observed minus predicted, in seconds, for the time the check is about (firing for
    /// `firing`, resolved for `resolved`); absent when either is missing.
    pub drift_s: Option<f64>,
    /// Seconds of room the prediction gave the expectation before its phase boundary
    /// ([`predict::margin`]); absent when nothing bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_s: Option<f64>,
    /// Whether that room is under the prediction's known error: a run may land either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fragile: bool,
}

/// The phases that ran, as seconds from the run's start, with their scenario phases.
fn phases<'a>(
    scenario: &'a Scenario,
    timeline: &'a Timeline,
) -> impl Iterator<Item = (&'a crate::scenario::Phase, f64, f64)> + 'a {
    scenario
        .phases
        .iter()
        .zip(&timeline.phases)
        .map(|(phase, (start, end))| (phase, start.as_secs_f64(), end.as_secs_f64()))
}

/// Judges every phase's alert state expectations (`alerts_firing`, `alerts_inactive`,
/// `alerts_resolved`) on what was observed.
pub fn check(scenario: &Scenario, timeline: &Timeline, observed: &Observations) -> Vec<AlertCheck> {
    let mut checks = Vec::new();
    for (phase, from, to) in phases(scenario, timeline) {
        let expectations = [
            (Expect::Firing, &phase.expect.alerts_firing),
            (Expect::Inactive, &phase.expect.alerts_inactive),
            (Expect::Resolved, &phase.expect.alerts_resolved),
        ];
        for (expect, alerts) in expectations {
            for alert in alerts {
                let j = judge::judge(observed, alert, expect, from, to);
                checks.push(AlertCheck {
                    phase: phase.name.clone(),
                    alert: alert.clone(),
                    expect: expect.name(),
                    verdict: j.verdict,
                    pending_after_s: j.pending_after_s,
                    firing_after_s: j.firing_after_s,
                    resolved_after_s: j.resolved_after_s,
                    detail: j.detail,
                    coverage: Some(j.coverage),
                    predicted: None,
                });
            }
        }
    }
    checks
}

/// Every alert state expectation of the scenario, unmade, with `verdict` and the reason (the
/// `alerts_notified` ones: [`delivery::unmade`]).
pub fn unmade(scenario: &Scenario, verdict: Verdict, why: &str) -> Vec<AlertCheck> {
    let mut checks = Vec::new();
    for phase in &scenario.phases {
        let e = &phase.expect;
        let lists = [
            (Expect::Firing, &e.alerts_firing),
            (Expect::Inactive, &e.alerts_inactive),
            (Expect::Resolved, &e.alerts_resolved),
        ];
        for (expect, alerts) in lists {
            for alert in alerts {
                checks.push(AlertCheck::unmade(
                    &phase.name,
                    alert,
                    expect.name(),
                    verdict,
                    why,
                ));
            }
        }
    }
    checks
}

/// `covered 34% of the phase, 21 failed polls, longest gap 19.0s`.
pub fn coverage_text(c: &Coverage) -> String {
    let mut text = format!("covered {:.0}% of the phase", c.covered * 100.0);
    if c.failed_polls > 0 {
        text += &format!(", {} failed polls", c.failed_polls);
    }
    if c.longest_gap_s > 0.0 {
        text += &format!(", longest gap {:.1}s", c.longest_gap_s);
    }
    text
}

/// Writes the alert section of the text summary.
pub fn write_text(report: &AlertReport, out: &mut impl Write) -> io::Result<()> {
    match &report.unchecked {
        Some(why) => writeln!(out, "\nalerts (not checked: {why})")?,
        None => writeln!(out, "\nalerts (Prometheus {})", report.prometheus)?,
    }
    if let Some(scope) = &report.scope {
        crate::alerts::scope::write_text(scope, out)?;
    }
    for c in &report.checks {
        writeln!(
            out,
            "  {:<12} {:<14} {:<22} {:<9} {}",
            c.verdict.as_str(),
            c.phase,
            c.alert,
            c.expect,
            c.detail
        )?;
        let pad = format!("  {:<12} {:<14} {:<22} {:<9}", "", "", "", "");
        if let Some(cov) = c.coverage.filter(|cov| !cov.whole() || cov.failed_polls > 0) {
            writeln!(out, "{pad} {}", coverage_text(&cov))?;
        }
        if let Some(p) = &c.predicted {
            writeln!(out, "{pad} {}", predicted_text(c.expect, p))?;
        }
    }
    if !report.transitions.is_empty() {
        writeln!(out, "  timeline:")?;
        for t in &report.transitions {
            writeln!(out, "    {:>7.1}s  {:<22} {:?}", t.at_s, t.alert, t.to)?;
        }
    }
    if report.failed_polls > 0 {
        writeln!(out, "  {} polls of Prometheus failed", report.failed_polls)?;
    }
    if let Some(d) = &report.delivery {
        crate::alerts::delivery::write_text(d, out)?;
    }
    if let Some(note) = &report.notifications_skipped {
        writeln!(out, "\n{note}")?;
    }
    Ok(())
}

/// `predicted firing after 36s (observed +1.0s)`.
pub fn predicted_text(expect: &str, p: &Predicted) -> String {
    let secs = |v: Option<f64>| v.map_or("never".to_owned(), |s| format!("after {s:.0}s"));
    let main = match expect {
        "firing" => format!("predicted firing {}", secs(p.firing_after_s)),
        "resolved" => format!("predicted resolved {}", secs(p.resolved_after_s)),
        _ => match p.pending_after_s {
            None => "predicted inactive".to_owned(),
            Some(t) => format!("predicted pending after {t:.0}s"),
        },
    };
    let main = match p.drift_s {
        Some(d) => format!("{main} (observed {d:+.1}s)"),
        None => main,
    };
    match (p.margin_s, p.fragile) {
        (Some(m), true) => format!("{main}; margin {m:.0}s, fragile: under the prediction's known error"),
        (Some(m), false) => format!("{main}; margin {m:.0}s"),
        (None, _) => main,
    }
}

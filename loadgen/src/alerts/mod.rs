//! Alert expectations, checked against a real Prometheus: a watcher polls `/api/v1/alerts` every
//! second during the run and keeps each alert's state changes; after the run each phase's
//! `alerts_firing`, `alerts_inactive` and `alerts_resolved` are judged from that timeline.
//!
//! Only alerts in the run's scope ([`crate::alerts::scope`]) count; the label sets seen on either side of it
//! are kept for the report. Only state changes are kept, so memory grows with the number of
//! transitions, not with the run's length. This module asks Prometheus; it does not start one (see [`crate::alerts::prometheus`]).

pub mod alertmanager;
pub mod delivery;
pub mod notify;
pub mod predict;
pub mod prometheus;
pub mod scope;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::alerts::scope::{Scope, Seen};
use crate::client::Api;
use crate::scenario::Scenario;
use crate::shared::Timeline;
use crate::shared::{Snapshot, State, Transition};

/// How often Prometheus is asked.
pub const POLL: Duration = Duration::from_secs(1);

/// The alert timeline and the checks made on it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    pub prometheus: String,
    /// Which alerts counted for the run, and which were seen but did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::alerts::scope::ScopeReport>,
    pub transitions: Vec<Transition>,
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
    /// Whether every alert check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// One alert expectation and its result.
#[derive(Debug, Clone, Serialize)]
pub struct AlertCheck {
    pub phase: String,
    pub alert: String,
    /// `firing`, `inactive`, `resolved` or `notified`.
    pub expect: &'static str,
    pub passed: bool,
    /// Seconds from the phase's start to the first pending / firing state seen in the phase.
    pub pending_after_s: Option<f64>,
    pub firing_after_s: Option<f64>,
    /// Seconds from the phase's start to the alert becoming inactive.
    pub resolved_after_s: Option<f64>,
    pub detail: String,
    /// The same times as predicted before the run (`loadgen plan --predict`), when a prediction
    /// was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Predicted>,
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
}

#[derive(Deserialize)]
struct AlertsAnswer {
    data: AlertsData,
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<PromAlert>,
}

#[derive(Deserialize)]
struct PromAlert {
    labels: BTreeMap<String, String>,
    state: String,
}

/// Polls Prometheus until the run's snapshot is finished, returning the state changes of the alerts
/// in `scope`. The alerts active at each answered poll go into the snapshot, for the live displays.
pub async fn watch(
    prometheus: std::sync::Arc<Api>,
    scope: std::sync::Arc<Scope>,
    start: Instant,
    snapshot: watch::Sender<Snapshot>,
) -> Watched {
    let mut finished = snapshot.subscribe();
    let mut seen = Seen::default();
    let mut current: BTreeMap<String, State> = BTreeMap::new();
    let mut transitions = Vec::new();
    let mut failed = 0;
    let mut first_failure = None;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = finished.wait_for(|s| s.finished) => break,
        }
        let now = Instant::now();
        match poll(&prometheus, &scope, &mut seen).await {
            Ok(states) => {
                let at_s = now.saturating_duration_since(start).as_secs_f64();
                for (alert, state) in &states {
                    if current.get(alert) != Some(state) {
                        transitions.push(Transition {
                            at_s,
                            alert: alert.clone(),
                            to: *state,
                        });
                    }
                }
                for (alert, state) in &current {
                    if *state != State::Inactive && !states.contains_key(alert) {
                        transitions.push(Transition {
                            at_s,
                            alert: alert.clone(),
                            to: State::Inactive,
                        });
                    }
                }
                let now_active = states.iter().map(|(a, s)| (a.clone(), *s)).collect();
                snapshot.send_modify(|s| s.alerts = Some(now_active));
                current = states;
            }
            Err(why) => {
                failed += 1;
                first_failure.get_or_insert(why);
            }
        }
    }
    Watched {
        transitions,
        failed_polls: failed,
        first_failure,
        scope: seen.report(&scope),
    }
}

/// What the watcher saw.
#[derive(Debug, Default)]
pub struct Watched {
    pub transitions: Vec<Transition>,
    /// Polls that got no usable answer.
    pub failed_polls: u64,
    /// Why the first of them failed.
    pub first_failure: Option<String>,
    /// The scope and the alert label sets seen on either side of it.
    pub scope: crate::alerts::scope::ScopeReport,
}

/// The alerts in `scope` that are pending or firing now (the most severe state per alert name).
async fn poll(prometheus: &Api, scope: &Scope, seen: &mut Seen) -> Result<BTreeMap<String, State>, String> {
    let body = prometheus.get("/api/v1/alerts", Duration::from_secs(2)).await?;
    let answer: AlertsAnswer = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "{}/api/v1/alerts: not a Prometheus alerts answer: {e}",
            prometheus.url
        )
    })?;
    let mut states = BTreeMap::new();
    for a in answer.data.alerts {
        let Some(name) = a.labels.get("alertname") else {
            continue;
        };
        let state = match a.state.as_str() {
            "firing" => State::Firing,
            "pending" => State::Pending,
            _ => continue,
        };
        let counted = scope.matches(&a.labels);
        seen.note(counted, name, scope.relevant(&a.labels), state);
        if !counted {
            continue;
        }
        let entry = states.entry(name.clone()).or_insert(state);
        *entry = (*entry).max(state);
    }
    Ok(states)
}

/// The state of `alert` at `t` seconds.
fn state_at(transitions: &[Transition], alert: &str, t: f64) -> State {
    transitions
        .iter()
        .rev()
        .find(|x| x.alert == alert && x.at_s <= t)
        .map_or(State::Inactive, |x| x.to)
}

/// First time in `[from, to]` the alert reached at least `state`.
fn first_reaching(transitions: &[Transition], alert: &str, state: State, from: f64, to: f64) -> Option<f64> {
    if state_at(transitions, alert, from) >= state {
        return Some(from);
    }
    transitions
        .iter()
        .find(|x| x.alert == alert && x.at_s >= from && x.at_s <= to && x.to >= state)
        .map(|x| x.at_s)
}

/// Judges every phase's alert expectations against the timeline. A phase's window ends one poll after
/// its end, since a state is only seen at the next poll.
pub fn check(scenario: &Scenario, timeline: &Timeline, transitions: &[Transition]) -> Vec<AlertCheck> {
    let slack = POLL.as_secs_f64() + 0.5;
    let mut checks = Vec::new();
    for (i, (start, end)) in timeline.phases.iter().enumerate() {
        let phase = &scenario.phases[i];
        let (from, to) = (start.as_secs_f64(), end.as_secs_f64());
        let rel = |t: Option<f64>| t.map(|t| ((t - from) * 10.0).round() / 10.0);
        for alert in &phase.expect.alerts_firing {
            let pending = first_reaching(transitions, alert, State::Pending, from, to + slack);
            let firing = first_reaching(transitions, alert, State::Firing, from, to + slack);
            checks.push(AlertCheck {
                phase: phase.name.clone(),
                alert: alert.clone(),
                expect: "firing",
                passed: firing.is_some(),
                pending_after_s: rel(pending),
                firing_after_s: rel(firing),
                resolved_after_s: None,
                predicted: None,
                detail: match (pending, firing) {
                    (_, Some(t)) => format!("firing {:.1}s after the phase started", t - from),
                    (Some(t), None) => {
                        format!("pending {:.1}s after the phase started, never firing", t - from)
                    }
                    (None, None) => "never pending or firing during the phase".into(),
                },
            });
        }
        for alert in &phase.expect.alerts_inactive {
            let seen = first_reaching(transitions, alert, State::Pending, from, to);
            checks.push(AlertCheck {
                phase: phase.name.clone(),
                alert: alert.clone(),
                expect: "inactive",
                passed: seen.is_none(),
                pending_after_s: rel(seen),
                firing_after_s: rel(first_reaching(transitions, alert, State::Firing, from, to)),
                resolved_after_s: None,
                predicted: None,
                detail: match seen {
                    None => "stayed inactive".into(),
                    Some(t) => format!(
                        "became {:?} {:.1}s after the phase started",
                        state_at(transitions, alert, t),
                        t - from
                    )
                    .to_lowercase(),
                },
            });
        }
        for alert in &phase.expect.alerts_resolved {
            let at_end = state_at(transitions, alert, to + slack);
            let resolved = transitions
                .iter()
                .find(|x| {
                    x.alert == *alert && x.at_s >= from && x.at_s <= to + slack && x.to == State::Inactive
                })
                .map(|x| x.at_s)
                .or_else(|| (state_at(transitions, alert, from) == State::Inactive).then_some(from));
            checks.push(AlertCheck {
                phase: phase.name.clone(),
                alert: alert.clone(),
                expect: "resolved",
                passed: at_end == State::Inactive,
                pending_after_s: None,
                firing_after_s: None,
                resolved_after_s: rel(resolved),
                predicted: None,
                detail: match (at_end, resolved) {
                    (State::Inactive, Some(t)) => {
                        format!("resolved {:.1}s after the phase started", t - from)
                    }
                    (State::Inactive, None) => "inactive at the end of the phase".into(),
                    (state, _) => format!("still {state:?} at the end of the phase").to_lowercase(),
                },
            });
        }
    }
    checks
}

/// Writes the alert section of the text summary.
pub fn write_text(report: &AlertReport, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "\nalerts (Prometheus {})", report.prometheus)?;
    if let Some(scope) = &report.scope {
        crate::alerts::scope::write_text(scope, out)?;
    }
    for c in &report.checks {
        writeln!(
            out,
            "  {} {:<14} {:<22} {:<9} {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.phase,
            c.alert,
            c.expect,
            c.detail
        )?;
        if let Some(p) = &c.predicted {
            writeln!(
                out,
                "       {:<14} {:<22} {:<9} {}",
                "",
                "",
                "",
                predicted_text(c.expect, p)
            )?;
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
    match p.drift_s {
        Some(d) => format!("{main} (observed {d:+.1}s)"),
        None => main,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(at_s: f64, alert: &str, to: State) -> Transition {
        Transition {
            at_s,
            alert: alert.into(),
            to,
        }
    }

    #[test]
    fn states_follow_transitions() {
        let tl = vec![
            t(10.0, "A", State::Pending),
            t(25.0, "A", State::Firing),
            t(80.0, "A", State::Inactive),
        ];
        assert_eq!(state_at(&tl, "A", 5.0), State::Inactive);
        assert_eq!(state_at(&tl, "A", 30.0), State::Firing);
        assert_eq!(state_at(&tl, "A", 90.0), State::Inactive);
        assert_eq!(first_reaching(&tl, "A", State::Firing, 0.0, 60.0), Some(25.0));
        assert_eq!(
            first_reaching(&tl, "A", State::Firing, 30.0, 60.0),
            Some(30.0),
            "already firing at the start"
        );
        assert_eq!(first_reaching(&tl, "A", State::Pending, 81.0, 100.0), None);
        assert_eq!(first_reaching(&tl, "B", State::Pending, 0.0, 100.0), None);
    }
}

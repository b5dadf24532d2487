//! The judge of alert expectations: a pure function from what the watcher observed to a verdict. No
//! I/O and no clock, so it is tested case by case and against a brute-force reference on random
//! timelines (`judge/tests.rs`).
//!
//! What counts as observed: Prometheus' answer is *known* over the spans of time that its answered polls
//! cover ([`Observations::known`]). An answered poll vouches for the time until the next answered poll
//! when that comes within two poll intervals; otherwise for one poll interval only, and the rest of the
//! gap is unknown. Within a known span the state of an alert is the one of the last answer.
//!
//! - `alerts_firing`: PASS on a firing state seen in the phase (or within [`SLACK_S`] after it, since
//!   a state is seen at the next poll); FAIL when the whole phase is known and none was seen;
//!   otherwise NOT VERIFIED.
//! - `alerts_inactive`: FAIL on a pending or firing state seen in the phase; PASS only when the whole
//!   phase is known; otherwise NOT VERIFIED.
//! - `alerts_resolved`: PASS when a firing state was seen (in this phase or before it) and the last
//!   known state by the end of the phase is inactive, seen after it; FAIL when the state at the end is
//!   pending or firing, or when the whole run up to the phase's end is known and the alert never fired
//!   (an alert that never fired has not resolved); otherwise NOT VERIFIED.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::shared::{State, Transition, Verdict};

/// How often Prometheus is asked, in seconds.
pub const POLL_S: f64 = 1.0;

/// An answered poll vouches for the time until the next one only when that comes within this.
pub const MAX_GAP_S: f64 = 2.0 * POLL_S;

/// How long after a phase's end a state still counts for it: a state is seen at the next poll.
pub const SLACK_S: f64 = POLL_S + 0.5;

/// A span of time, in seconds from the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub from_s: f64,
    pub to_s: f64,
}

/// What the alert watcher observed over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// Every change of an alert's state, in order. Changes happen only at answered polls.
    pub transitions: Vec<Transition>,
    /// The spans for which Prometheus' answer is known: in order and disjoint.
    pub known: Vec<Span>,
    /// When polls failed (no answer, or not a usable one).
    pub failed: Vec<f64>,
}

/// The watcher's book: it notes each poll, answered or not, and closes the last span when the watch ends.
#[derive(Debug, Default)]
pub struct Book {
    observed: Observations,
    current: BTreeMap<String, State>,
    last_answer: Option<f64>,
}

impl Book {
    /// A poll at `at_s` answered that the alerts in `states` are pending or firing (and no other).
    pub fn answered(&mut self, at_s: f64, states: &BTreeMap<String, State>) {
        for (alert, state) in states {
            if self.current.get(alert) != Some(state) {
                self.observed.transitions.push(Transition {
                    at_s,
                    alert: alert.clone(),
                    to: *state,
                });
            }
        }
        for (alert, state) in &self.current {
            if *state != State::Inactive && !states.contains_key(alert) {
                self.observed.transitions.push(Transition {
                    at_s,
                    alert: alert.clone(),
                    to: State::Inactive,
                });
            }
        }
        self.current.clone_from(states);
        let known = &mut self.observed.known;
        match (self.last_answer, known.last_mut()) {
            (Some(last), Some(span)) if at_s - last <= MAX_GAP_S => span.to_s = at_s,
            (Some(last), Some(span)) => {
                span.to_s = last + POLL_S;
                known.push(Span {
                    from_s: at_s,
                    to_s: at_s,
                });
            }
            _ => known.push(Span {
                from_s: at_s,
                to_s: at_s,
            }),
        }
        self.last_answer = Some(at_s);
    }

    /// A poll at `at_s` got no usable answer.
    pub fn failed(&mut self, at_s: f64) {
        self.observed.failed.push(at_s);
    }

    /// The alerts pending or firing at the last answer.
    pub fn current(&self) -> &BTreeMap<String, State> {
        &self.current
    }

    /// The watch ended at `at_s`: the last answer vouches until then, or for one poll interval if the
    /// end came more than two intervals after it.
    pub fn finish(mut self, at_s: f64) -> Observations {
        if let (Some(last), Some(span)) = (self.last_answer, self.observed.known.last_mut()) {
            span.to_s = if at_s - last <= MAX_GAP_S {
                at_s.max(last)
            } else {
                last + POLL_S
            };
        }
        self.observed
    }
}

/// How much of a phase Prometheus' answer covers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// The share of the phase (0 to 1) for which the answer is known.
    pub covered: f64,
    /// Polls that failed during the phase.
    pub failed_polls: u64,
    /// The longest stretch of the phase for which the answer is unknown, in seconds.
    pub longest_gap_s: f64,
}

impl Coverage {
    /// Whether the whole phase is known.
    pub fn whole(&self) -> bool {
        self.covered >= 1.0
    }
}

/// Which alert expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Firing,
    Inactive,
    Resolved,
}

impl Expect {
    /// As reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Firing => "firing",
            Expect::Inactive => "inactive",
            Expect::Resolved => "resolved",
        }
    }
}

/// A verdict with what it rests on. Times are seconds from the phase's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub verdict: Verdict,
    pub pending_after_s: Option<f64>,
    pub firing_after_s: Option<f64>,
    pub resolved_after_s: Option<f64>,
    pub detail: String,
    pub coverage: Coverage,
}

/// Judges `expect` of `alert` for the phase that ran from `from` to `to` (seconds from the run's start).
pub fn judge(observed: &Observations, alert: &str, expect: Expect, from: f64, to: f64) -> Judged {
    let coverage = coverage_of(observed, from, to);
    let rel = |t: Option<f64>| t.map(|t| round(t - from));
    let unknown = || {
        format!(
            "Prometheus' answer is unknown for {:.1}s of the phase ({} failed polls)",
            (1.0 - coverage.covered) * (to - from),
            coverage.failed_polls
        )
    };
    let end = to + SLACK_S;
    match expect {
        Expect::Firing => {
            let pending = first_reaching(observed, alert, State::Pending, from, end);
            let firing = first_reaching(observed, alert, State::Firing, from, end);
            let (verdict, detail) = match (pending, firing) {
                (_, Some(t)) => (
                    Verdict::Pass,
                    format!("firing {:.1}s after the phase started", t - from),
                ),
                (pending, None) => {
                    let seen = match pending {
                        Some(t) => format!("pending {:.1}s after the phase started, never firing", t - from),
                        None => "never pending or firing during the phase".to_owned(),
                    };
                    if coverage.whole() {
                        (Verdict::Fail, seen)
                    } else {
                        (
                            Verdict::NotVerified,
                            format!("not seen firing, but {}", unknown()),
                        )
                    }
                }
            };
            Judged {
                verdict,
                pending_after_s: rel(pending),
                firing_after_s: rel(firing),
                resolved_after_s: None,
                detail,
                coverage,
            }
        }
        Expect::Inactive => {
            let seen = first_reaching(observed, alert, State::Pending, from, to);
            let (verdict, detail) = match seen {
                Some(t) => (
                    Verdict::Fail,
                    format!(
                        "became {} {:.1}s after the phase started",
                        state_at(&observed.transitions, alert, t).as_str(),
                        t - from
                    ),
                ),
                None if coverage.whole() => (Verdict::Pass, "stayed inactive".to_owned()),
                None => (
                    Verdict::NotVerified,
                    format!("not seen pending or firing, but {}", unknown()),
                ),
            };
            Judged {
                verdict,
                pending_after_s: rel(seen),
                firing_after_s: rel(first_reaching(observed, alert, State::Firing, from, to)),
                resolved_after_s: None,
                detail,
                coverage,
            }
        }
        Expect::Resolved => {
            let fired = first_reaching(observed, alert, State::Firing, f64::NEG_INFINITY, end);
            let last = last_known(observed, to, end);
            let mut resolved_after_s = None;
            let (verdict, detail) = match (last, fired) {
                (None, _) => (
                    Verdict::NotVerified,
                    "Prometheus' answer at the end of the phase is unknown".to_owned(),
                ),
                (Some(e), _) if state_at(&observed.transitions, alert, e) != State::Inactive => (
                    Verdict::Fail,
                    format!(
                        "still {} at the end of the phase",
                        state_at(&observed.transitions, alert, e).as_str()
                    ),
                ),
                (Some(e), Some(f)) if f < e => {
                    let resolved = observed
                        .transitions
                        .iter()
                        .find(|x| x.alert == alert && x.at_s > f && x.at_s <= e && x.to == State::Inactive)
                        .map_or(e, |x| x.at_s);
                    if resolved >= from {
                        resolved_after_s = rel(Some(resolved));
                        (
                            Verdict::Pass,
                            format!("resolved {:.1}s after the phase started", resolved - from),
                        )
                    } else {
                        (
                            Verdict::Pass,
                            format!(
                                "resolved {:.1}s before the phase started, after firing",
                                from - resolved
                            ),
                        )
                    }
                }
                (Some(_), _) => {
                    let run = coverage_of(observed, 0.0, to);
                    if run.whole() {
                        (
                            Verdict::Fail,
                            "never fired during the run, so it cannot have resolved".to_owned(),
                        )
                    } else {
                        (
                            Verdict::NotVerified,
                            format!(
                                "never seen firing, but Prometheus' answer is unknown for {:.1}s of the run \
                                 before the phase ended",
                                (1.0 - run.covered) * to.max(0.0)
                            ),
                        )
                    }
                }
            };
            Judged {
                verdict,
                pending_after_s: None,
                firing_after_s: None,
                resolved_after_s,
                detail,
                coverage,
            }
        }
    }
}

/// How much of the span from `from` to `to` is known.
pub fn coverage_of(observed: &Observations, from: f64, to: f64) -> Coverage {
    let failed_polls = observed
        .failed
        .iter()
        .filter(|t| **t >= from && **t <= to)
        .count() as u64;
    if to <= from {
        let known = observed.known.iter().any(|s| s.from_s <= from && from <= s.to_s);
        return Coverage {
            covered: if known { 1.0 } else { 0.0 },
            failed_polls,
            longest_gap_s: 0.0,
        };
    }
    let (mut covered, mut longest, mut cursor) = (0.0, 0.0_f64, from);
    for (a, b) in segments(observed, from, to) {
        longest = longest.max(a - cursor);
        covered += b - a;
        cursor = b;
    }
    longest = longest.max(to - cursor);
    Coverage {
        // A phase whose every instant is known is covered, whatever the rounding of its parts.
        covered: if longest <= 0.0 {
            1.0
        } else {
            (covered / (to - from)).clamp(0.0, 1.0)
        },
        failed_polls,
        longest_gap_s: round(longest),
    }
}

/// The parts of `[a, b]` that are known, in order.
fn segments(observed: &Observations, a: f64, b: f64) -> impl Iterator<Item = (f64, f64)> + '_ {
    observed
        .known
        .iter()
        .filter(move |s| s.to_s >= a && s.from_s <= b)
        .map(move |s| (s.from_s.max(a), s.to_s.min(b)))
}

/// The state of `alert` at `t`, as of the last change at or before it.
pub fn state_at(transitions: &[Transition], alert: &str, t: f64) -> State {
    transitions
        .iter()
        .rev()
        .find(|x| x.alert == alert && x.at_s <= t)
        .map_or(State::Inactive, |x| x.to)
}

/// The first known instant in `[a, b]` at which `alert` was at least `state`.
fn first_reaching(observed: &Observations, alert: &str, state: State, a: f64, b: f64) -> Option<f64> {
    segments(observed, a, b).find_map(|(from, to)| {
        if state_at(&observed.transitions, alert, from) >= state {
            return Some(from);
        }
        observed
            .transitions
            .iter()
            .find(|x| x.alert == alert && x.at_s > from && x.at_s <= to && x.to >= state)
            .map(|x| x.at_s)
    })
}

/// The last known instant in `[a, b]`.
fn last_known(observed: &Observations, a: f64, b: f64) -> Option<f64> {
    segments(observed, a, b).last().map(|(_, to)| to)
}

fn round(t: f64) -> f64 {
    (t * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests;

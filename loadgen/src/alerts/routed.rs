//! The routing checks of a phase: `notified` (which receiver got which alert, and how soon),
//! `inhibited`, `not_notified` and `grouped`, judged from the notifications loadgen's own webhook on
//! every receiver received ([`crate::alerts::notify`]) and from what Alertmanager's API said while the
//! run went on ([`crate::alerts::amstate`]).
//!
//! Pure functions of those observations: no I/O, no clock. A check that nothing observed is NOT
//! VERIFIED with the reason; an inhibited alert is reported inhibited, not missing.

use crate::alerts::amstate::AmStates;
use crate::alerts::judge::POLL_S;
use crate::alerts::notify::{Notification, Status};
use crate::alerts::AlertCheck;
use crate::scenario::Scenario;
use crate::shared::{Timeline, Verdict};

/// The `expect` column of each check.
pub const NOTIFIED_TO: &str = "routed";
pub const INHIBITED: &str = "inhibited";
pub const NOT_NOTIFIED: &str = "unrouted";
pub const GROUPED: &str = "grouped";
pub const SNAPSHOT: &str = "snapshot";

/// `ServiceDown → pager`, the `alert` column of a `notified` check.
pub fn arrow(alert: &str, receiver: &str) -> String {
    format!("{alert} → {receiver}")
}

/// Firing notifications of `alert` within `[from, to]`, with their receiver and arrival.
fn firing<'a>(
    notifications: &'a [Notification],
    alert: &'a str,
    from: f64,
    to: f64,
) -> impl Iterator<Item = &'a Notification> + 'a {
    notifications.iter().filter(move |n| {
        n.at_s >= from
            && n.at_s <= to
            && n.alerts
                .iter()
                .any(|a| a.alert == alert && a.status == Status::Firing)
    })
}

/// `inhibited by ServiceDown from 31.0s`, when Alertmanager said so within `[from, to]`.
fn inhibition(am: Option<&AmStates>, alert: &str, from: f64, to: f64) -> Option<String> {
    let span = am?.of(alert, from, to).find(|s| !s.inhibited_by.is_empty())?;
    Some(format!(
        "inhibited by {} from {:.1}s (Alertmanager's API)",
        span.inhibited_by.join(", "),
        span.from_s
    ))
}

fn seconds(d: std::time::Duration) -> String {
    target_app::duration::format(d)
}

/// The first firing notification of `alert` to `receiver` in phase `i` of `timeline`.
pub fn first_to<'a>(
    notifications: &'a [Notification],
    timeline: &Timeline,
    i: usize,
    alert: &'a str,
    receiver: &str,
) -> Option<&'a Notification> {
    let (from, to) = timeline.phases.get(i)?;
    firing(
        notifications,
        alert,
        from.as_secs_f64(),
        to.as_secs_f64() + POLL_S,
    )
    .find(|m| m.receiver == receiver)
}

/// Judges every phase's routing expectations. `am` is what Alertmanager's API said (none: it was not
/// asked).
pub fn check(
    scenario: &Scenario,
    timeline: &Timeline,
    notifications: &[Notification],
    am: Option<&AmStates>,
) -> Vec<AlertCheck> {
    let mut checks = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate().take(timeline.phases.len()) {
        let from = timeline.phases[i].0.as_secs_f64();
        let to = timeline.phases[i].1.as_secs_f64() + POLL_S;
        let e = &phase.expect;
        let mut push = |alert: String, expect: &'static str, verdict: Verdict, detail: String| {
            checks.push(AlertCheck::unmade(&phase.name, &alert, expect, verdict, &detail));
        };
        for n in &e.notified {
            let mine = first_to(notifications, timeline, i, &n.alert, &n.receiver);
            let (verdict, detail) = match (mine, n.within) {
                (Some(m), Some(w)) if m.at_s - from > w.as_secs_f64() => (
                    Verdict::Fail,
                    format!(
                        "notified to `{}` {:.1}s after the phase started, later than notify_within {}",
                        n.receiver,
                        m.at_s - from,
                        seconds(w)
                    ),
                ),
                (Some(m), _) => (
                    Verdict::Pass,
                    format!(
                        "notified to `{}` {:.1}s after the phase started",
                        n.receiver,
                        m.at_s - from
                    ),
                ),
                (None, _) => {
                    let mut elsewhere: Vec<String> = Vec::new();
                    for m in firing(notifications, &n.alert, from, to) {
                        if !elsewhere.contains(&m.receiver) {
                            elsewhere.push(m.receiver.clone());
                        }
                    }
                    let detail = if !elsewhere.is_empty() {
                        format!(
                            "not notified to `{}`: it reached {} instead",
                            n.receiver,
                            elsewhere
                                .iter()
                                .map(|r| format!("`{r}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else if let Some(why) = inhibition(am, &n.alert, from, to) {
                        format!("not notified to `{}`: {why}", n.receiver)
                    } else {
                        format!(
                            "no firing notification of it reached `{}` during the phase",
                            n.receiver
                        )
                    };
                    (Verdict::Fail, detail)
                }
            };
            push(arrow(&n.alert, &n.receiver), NOTIFIED_TO, verdict, detail);
        }
        for alert in &e.inhibited {
            let reached: Vec<&Notification> = firing(notifications, alert, from, to).collect();
            let (verdict, detail) = if let Some(m) = reached.first() {
                (
                    Verdict::Fail,
                    format!(
                        "notified to `{}` {:.1}s after the phase started: not inhibited",
                        m.receiver,
                        m.at_s - from
                    ),
                )
            } else if let Some(why) = inhibition(am, alert, from, to) {
                (Verdict::Pass, format!("{why}; no receiver notified"))
            } else {
                match am {
                    None => (
                        Verdict::NotVerified,
                        "Alertmanager's API was not asked, so an inhibition could not be seen".to_owned(),
                    ),
                    Some(am) => match am.of(alert, from, to).next() {
                        Some(s) => (
                            Verdict::Fail,
                            format!("active in Alertmanager from {:.1}s and not inhibited", s.from_s),
                        ),
                        None if !am.answered_within(from, to) => (
                            Verdict::NotVerified,
                            "Alertmanager's API did not answer during the phase".to_owned(),
                        ),
                        None => (
                            Verdict::NotVerified,
                            "never reached Alertmanager during the phase (not firing), so its \
                             inhibition was not observed"
                                .to_owned(),
                        ),
                    },
                }
            };
            push(alert.clone(), INHIBITED, verdict, detail);
        }
        for n in &e.not_notified {
            let receiver = n.receiver.as_deref();
            let reached =
                firing(notifications, &n.alert, from, to).find(|m| receiver.is_none_or(|r| r == m.receiver));
            let whom = receiver.map_or("any receiver".to_owned(), |r| format!("`{r}`"));
            let (verdict, detail) = match (reached, am) {
                (Some(m), _) => (
                    Verdict::Fail,
                    format!(
                        "reached `{}` {:.1}s after the phase started",
                        m.receiver,
                        m.at_s - from
                    ),
                ),
                (None, Some(am)) if am.answered_within(from, to) => {
                    let why =
                        inhibition(Some(am), &n.alert, from, to).map_or(String::new(), |w| format!(" ({w})"));
                    (
                        Verdict::Pass,
                        format!("no notification of it reached {whom} during the phase{why}"),
                    )
                }
                (None, Some(_)) => (
                    Verdict::NotVerified,
                    "Alertmanager's API did not answer during the phase".to_owned(),
                ),
                (None, None) => (
                    Verdict::NotVerified,
                    "Alertmanager was not observed, so an absence proves nothing".to_owned(),
                ),
            };
            let label = match receiver {
                Some(r) => arrow(&n.alert, r),
                None => n.alert.clone(),
            };
            push(label, NOT_NOTIFIED, verdict, detail);
        }
        for group in &e.grouped {
            let together = notifications.iter().find(|m| {
                m.at_s >= from
                    && m.at_s <= to
                    && group.iter().all(|g| {
                        m.alerts
                            .iter()
                            .any(|a| &a.alert == g && a.status == Status::Firing)
                    })
            });
            let (verdict, detail) = match together {
                Some(m) => (
                    Verdict::Pass,
                    format!(
                        "together in one notification to `{}` {:.1}s after the phase started",
                        m.receiver,
                        m.at_s - from
                    ),
                ),
                None => {
                    let each: Vec<String> = group
                        .iter()
                        .map(|g| match firing(notifications, g, from, to).next() {
                            Some(m) => format!("{g} at {:.1}s to `{}`", m.at_s - from, m.receiver),
                            None => format!("{g} never"),
                        })
                        .collect();
                    (
                        Verdict::Fail,
                        format!("never in one notification: {}", each.join(", ")),
                    )
                }
            };
            push(group.join(" + "), GROUPED, verdict, detail);
        }
    }
    checks
}

/// Every routing expectation of the scenario, unmade, with `verdict` and the reason.
pub fn unmade(scenario: &Scenario, verdict: Verdict, why: &str) -> Vec<AlertCheck> {
    let mut checks = Vec::new();
    for phase in &scenario.phases {
        let e = &phase.expect;
        let mut push = |alert: String, expect| {
            checks.push(AlertCheck::unmade(&phase.name, &alert, expect, verdict, why));
        };
        for n in &e.notified {
            push(arrow(&n.alert, &n.receiver), NOTIFIED_TO);
            if n.snapshot.is_some() {
                push(arrow(&n.alert, &n.receiver), SNAPSHOT);
            }
        }
        for a in &e.inhibited {
            push(a.clone(), INHIBITED);
        }
        for n in &e.not_notified {
            push(
                n.receiver
                    .as_deref()
                    .map_or(n.alert.clone(), |r| arrow(&n.alert, r)),
                NOT_NOTIFIED,
            );
        }
        for g in &e.grouped {
            push(g.join(" + "), GROUPED);
        }
    }
    checks
}

#[cfg(test)]
mod tests;

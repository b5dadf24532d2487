//! From "firing in Prometheus" to "delivered": the notifications loadgen's webhook received
//! ([`crate::alerts::notify`]), each expected alert's hops timed from its fault's start (pending → firing →
//! notified firing → fault end → resolved → notified resolved), and the `alerts_notified` checks.
//!
//! Pure functions of the run's timeline, the watcher's transitions and the received notifications, so
//! tests feed them made-up times. Notifications are matched to alerts by `alertname`, among the
//! alerts of the run's scope (the labels that decide which alert states count).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::alerts::judge::POLL_S;
use crate::alerts::notify::{Notification, Received, Status};
use crate::alerts::scope::Scope;
use crate::alerts::AlertCheck;
use crate::scenario::Scenario;
use crate::shared::Timeline;
use crate::shared::Verdict;
use crate::shared::{State, Transition};

/// What reached loadgen's webhook, and the hops of each expected alert.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    /// The Alertmanager that sent them: the private one's URL, or `external` (`--notify-listen`).
    pub alertmanager: String,
    /// Where the receiver listened.
    pub webhook: String,
    /// One entry per alert a phase expects to fire (`alerts_firing`) or to be notified
    /// (`alerts_notified`).
    pub hops: Vec<Hops>,
    /// Every notification kept, in arrival order.
    pub notifications: Vec<Notification>,
    /// Bodies refused with 400 (not Alertmanager's payload, or too large).
    #[serde(default)]
    pub rejected: u64,
    /// Notifications received but not kept (past the receiver's limit).
    #[serde(default)]
    pub dropped: u64,
    /// With `--alertmanager-config`: each receiver, what of it was captured and what was not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<crate::alerts::routing::ReceiverPlan>,
    /// With `--alertmanager-config`: the messages its receivers rendered, in arrival order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rendered: Vec<crate::alerts::notify::Rendered>,
}

/// The hops of one expected alert, in seconds from its fault's start (`None`: not seen).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hops {
    pub phase: String,
    pub alert: String,
    /// The fault's start, in seconds from the run's start: when the phase's faults were applied (its
    /// start when it has none).
    pub fault_start_s: f64,
    /// Prometheus saw the expression true (first poll that saw the alert pending or firing).
    pub pending_s: Option<f64>,
    /// First poll that saw it firing.
    pub firing_s: Option<f64>,
    /// Arrival of the first firing notification.
    pub notified_firing_s: Option<f64>,
    /// Faults cleared (the phase's end when it has none).
    pub fault_end_s: f64,
    /// First poll after firing that saw it inactive again.
    pub resolved_s: Option<f64>,
    /// Arrival of the first resolved notification after the firing one.
    pub notified_resolved_s: Option<f64>,
}

impl Hops {
    /// The hops in order, named, with their times.
    pub fn marks(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("pending", self.pending_s),
            ("firing", self.firing_s),
            ("notified", self.notified_firing_s),
            ("fault end", Some(self.fault_end_s)),
            ("resolved", self.resolved_s),
            ("notified resolved", self.notified_resolved_s),
        ]
    }
}

/// Start and end (seconds from the run's start) of phase `i`'s fault: its fault window, or the phase.
fn fault_window(timeline: &Timeline, i: usize) -> (f64, f64) {
    match timeline.faults.iter().find(|(p, _, _)| *p == i) {
        Some((_, start, end)) => (start.as_secs_f64(), end.as_secs_f64()),
        None => {
            let (start, end) = timeline.phases[i];
            (start.as_secs_f64(), end.as_secs_f64())
        }
    }
}

/// The notifications as far as they concern the run: each keeps only the alerts `scope` counts (the
/// same labels that decide which alert states count), and one left with none is dropped.
pub fn in_scope(notifications: &[Notification], scope: &Scope) -> Vec<Notification> {
    notifications
        .iter()
        .filter_map(|n| {
            let alerts: Vec<_> = n
                .alerts
                .iter()
                .filter(|a| scope.matches(&a.labels))
                .cloned()
                .collect();
            (!alerts.is_empty()).then(|| Notification { alerts, ..n.clone() })
        })
        .collect()
}

/// First arrival at or after `from` of a notification saying `alert` is `status`.
fn first_notified(notifications: &[Notification], alert: &str, status: Status, from: f64) -> Option<f64> {
    notifications
        .iter()
        .filter(|n| n.at_s >= from)
        .find(|n| n.alerts.iter().any(|a| a.alert == alert && a.status == status))
        .map(|n| n.at_s)
}

fn round(t: f64) -> f64 {
    (t * 10.0).round() / 10.0
}

/// The hops of every alert a phase expects to fire or to be notified.
pub fn hops(
    scenario: &Scenario,
    timeline: &Timeline,
    transitions: &[Transition],
    notifications: &[Notification],
) -> Vec<Hops> {
    let mut out = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate().take(timeline.phases.len()) {
        let (start, end) = fault_window(timeline, i);
        let mut alerts: Vec<&String> = phase.expect.alerts_firing.iter().collect();
        alerts.extend(
            phase
                .expect
                .alerts_notified
                .iter()
                .filter(|a| !phase.expect.alerts_firing.contains(a)),
        );
        for alert in alerts {
            let mine = || {
                transitions
                    .iter()
                    .filter(|t| t.alert == *alert && t.at_s >= start)
            };
            let pending = mine().find(|t| t.to >= State::Pending).map(|t| t.at_s);
            let firing = mine().find(|t| t.to == State::Firing).map(|t| t.at_s);
            let resolved = firing.and_then(|f| {
                mine()
                    .find(|t| t.at_s > f && t.to == State::Inactive)
                    .map(|t| t.at_s)
            });
            let notified_firing = first_notified(notifications, alert, Status::Firing, start);
            let notified_resolved =
                notified_firing.and_then(|f| first_notified(notifications, alert, Status::Resolved, f));
            let rel = |t: Option<f64>| t.map(|t| round(t - start));
            out.push(Hops {
                phase: phase.name.clone(),
                alert: alert.clone(),
                fault_start_s: round(start),
                pending_s: rel(pending),
                firing_s: rel(firing),
                notified_firing_s: rel(notified_firing),
                fault_end_s: round(end - start),
                resolved_s: rel(resolved),
                notified_resolved_s: rel(notified_resolved),
            });
        }
    }
    out
}

/// Judges every phase's `alerts_notified`: a firing notification must arrive between the phase's start
/// and one poll after its end, and within `notify_within` of its start when that is set.
pub fn check(scenario: &Scenario, timeline: &Timeline, notifications: &[Notification]) -> Vec<AlertCheck> {
    let slack = POLL_S;
    let mut checks = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate().take(timeline.phases.len()) {
        let (from, to) = (
            timeline.phases[i].0.as_secs_f64(),
            timeline.phases[i].1.as_secs_f64(),
        );
        let within = phase.expect.notify_within.map(|d| d.as_secs_f64());
        for alert in &phase.expect.alerts_notified {
            let at = first_notified(notifications, alert, Status::Firing, from).filter(|t| *t <= to + slack);
            let (passed, detail) = match (at, within) {
                (None, _) => (false, "no firing notification during the phase".to_owned()),
                (Some(t), Some(w)) if t - from > w => (
                    false,
                    format!(
                        "firing notification {:.1}s after the phase started, later than notify_within {}",
                        t - from,
                        target_app::duration::format(std::time::Duration::from_secs_f64(w))
                    ),
                ),
                (Some(t), _) => (
                    true,
                    format!("firing notification {:.1}s after the phase started", t - from),
                ),
            };
            checks.push(AlertCheck::unmade(
                &phase.name,
                alert,
                "notified",
                Verdict::holds(passed),
                &detail,
            ));
        }
    }
    checks
}

/// Every phase's `alerts_notified`, unmade, with `verdict` and the reason.
pub fn unmade(scenario: &Scenario, verdict: Verdict, why: &str) -> Vec<AlertCheck> {
    scenario
        .phases
        .iter()
        .flat_map(|p| p.expect.alerts_notified.iter().map(move |a| (p, a)))
        .map(|(phase, alert)| AlertCheck::unmade(&phase.name, alert, "notified", verdict, why))
        .collect()
}

/// The delivery section of a run: hops from `scoped` (the received notifications [`in_scope`]), every
/// received notification listed.
pub fn delivery(
    scenario: &Scenario,
    timeline: &Timeline,
    transitions: &[Transition],
    received: Received,
    scoped: &[Notification],
    alertmanager: String,
    webhook: String,
) -> Delivery {
    Delivery {
        alertmanager,
        webhook,
        hops: hops(scenario, timeline, transitions, scoped),
        notifications: received.notifications,
        rejected: received.rejected,
        dropped: received.dropped,
        receivers: Vec::new(),
        rendered: received.rendered,
    }
}

fn secs(t: Option<f64>) -> String {
    t.map_or("–".to_owned(), |t| format!("{t:.1}s"))
}

/// Writes the delivery section of the text summary: one line of hops per expected alert, then the
/// notifications.
pub fn write_text(d: &Delivery, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "\nnotifications (Alertmanager {} → webhook {})",
        d.alertmanager, d.webhook
    )?;
    if !d.hops.is_empty() {
        writeln!(
            out,
            "  {:<14} {:<22} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}   seconds from the fault's start",
            "phase", "alert", "pending", "firing", "notified", "fault end", "resolved", "notified"
        )?;
        for h in &d.hops {
            writeln!(
                out,
                "  {:<14} {:<22} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
                h.phase,
                h.alert,
                secs(h.pending_s),
                secs(h.firing_s),
                secs(h.notified_firing_s),
                secs(Some(h.fault_end_s)),
                secs(h.resolved_s),
                secs(h.notified_resolved_s)
            )?;
        }
    }
    for n in &d.notifications {
        let mut names: Vec<&str> = n.alerts.iter().map(|a| a.alert.as_str()).collect();
        names.dedup();
        writeln!(
            out,
            "    {:>7.1}s  {:<8} {} ({} alert{}, receiver {})",
            n.at_s,
            n.status.as_str(),
            names.join(", "),
            n.alerts.len(),
            if n.alerts.len() == 1 { "" } else { "s" },
            n.receiver
        )?;
    }
    if d.notifications.is_empty() {
        writeln!(out, "  none received")?;
    }
    for r in &d.receivers {
        let kinds: Vec<&str> = r.captured.iter().map(|(k, _)| k.as_str()).collect();
        let got = d.rendered.iter().filter(|m| m.receiver == r.name).count();
        write!(
            out,
            "  receiver {:<16} captured: {:<24} {got} message{}",
            r.name,
            if kinds.is_empty() {
                "loadgen's webhook only".to_owned()
            } else {
                kinds.join(", ")
            },
            if got == 1 { "" } else { "s" }
        )?;
        if !r.not_captured.is_empty() {
            write!(out, "; not captured: {}", r.not_captured.join(", "))?;
        }
        writeln!(out)?;
    }
    if d.rejected > 0 {
        writeln!(
            out,
            "  {} bodies refused (not Alertmanager's webhook payload)",
            d.rejected
        )?;
    }
    if d.dropped > 0 {
        writeln!(out, "  {} notifications not kept (limit reached)", d.dropped)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alerts::notify::NotifiedAlert;

    const SCENARIO: &str = r#"
name = "spike"
[[mix]]
path = "/"
[[phases]]
name = "baseline"
duration = "60s"
rate = { shape = "constant", rps = 10 }
[[phases]]
name = "spike"
duration = "120s"
rate = { shape = "constant", rps = 10 }
chaos = [{ fault = "error", status = 500, ratio = 0.3 }]
expect = { alerts_firing = ["HighErrorRate"], alerts_notified = ["HighErrorRate"], notify_within = "45s" }
[[phases]]
name = "recovery"
duration = "90s"
rate = { shape = "constant", rps = 10 }
"#;

    fn scenario() -> Scenario {
        crate::scenario::parse(SCENARIO, "spike.toml").unwrap()
    }

    fn timeline() -> Timeline {
        let s = Duration::from_secs;
        Timeline {
            phases: vec![(s(0), s(60)), (s(60), s(180)), (s(180), s(270))],
            faults: vec![(1, Duration::from_millis(60_200), s(180))],
            ..Timeline::default()
        }
    }

    fn t(at_s: f64, to: State) -> Transition {
        Transition {
            at_s,
            alert: "HighErrorRate".into(),
            to,
        }
    }

    fn n(at_s: f64, alert: &str, status: Status) -> Notification {
        Notification {
            at_s,
            receiver: "webhook".into(),
            group_key: "{}:{alertname=\"HighErrorRate\"}".into(),
            status,
            alerts: vec![NotifiedAlert {
                alert: alert.into(),
                status,
                labels: [
                    ("alertname".to_owned(), alert.to_owned()),
                    ("job".to_owned(), "target-app".to_owned()),
                ]
                .into(),
                starts_at: String::new(),
                ends_at: String::new(),
            }],
            truncated_alerts: 0,
        }
    }

    #[test]
    fn every_hop_is_timed_from_the_fault_start() {
        let transitions = [
            // An earlier episode, before the fault: not counted.
            t(10.0, State::Pending),
            t(12.0, State::Inactive),
            t(81.2, State::Pending),
            t(96.2, State::Firing),
            t(221.2, State::Inactive),
        ];
        let notifications = [
            n(11.0, "HighErrorRate", Status::Firing),
            n(95.0, "Other", Status::Firing),
            n(101.4, "HighErrorRate", Status::Firing),
            n(230.0, "HighErrorRate", Status::Resolved),
        ];
        let hops = hops(&scenario(), &timeline(), &transitions, &notifications);
        assert_eq!(
            hops,
            [Hops {
                phase: "spike".into(),
                alert: "HighErrorRate".into(),
                fault_start_s: 60.2,
                pending_s: Some(21.0),
                firing_s: Some(36.0),
                notified_firing_s: Some(41.2),
                fault_end_s: 119.8,
                resolved_s: Some(161.0),
                notified_resolved_s: Some(169.8),
            }]
        );
    }

    #[test]
    fn notifications_about_another_target_do_not_count() {
        let scope = Scope::private("target-app", "127.0.0.1:8080");
        let about = |at: f64, job: &str| {
            let mut n = n(at, "HighErrorRate", Status::Firing);
            n.alerts[0].labels.insert("job".into(), job.into());
            n
        };
        let (mine, other) = (about(101.0, "target-app"), about(95.0, "noisy"));
        assert_eq!(in_scope(&[other.clone(), mine.clone()], &scope), [mine]);
        let c = check(&scenario(), &timeline(), &in_scope(&[other], &scope));
        assert_eq!(c[0].verdict, Verdict::Fail, "{}", c[0].detail);
    }

    #[test]
    fn notified_checks_hold_only_within_the_bound() {
        let check_at = |at: f64| {
            let c = check(
                &scenario(),
                &timeline(),
                &[n(at, "HighErrorRate", Status::Firing)],
            );
            assert_eq!(c.len(), 1);
            (c[0].verdict == Verdict::Pass, c[0].detail.clone())
        };
        assert_eq!(
            check_at(101.0),
            (true, "firing notification 41.0s after the phase started".into())
        );
        let (passed, detail) = check_at(106.0);
        assert!(
            !passed && detail.contains("later than notify_within 45s"),
            "{detail}"
        );
        let (passed, detail) = check_at(30.0);
        assert!(!passed && detail.contains("no firing notification"), "{detail}");
        let resolved_only = check(
            &scenario(),
            &timeline(),
            &[n(100.0, "HighErrorRate", Status::Resolved)],
        );
        assert_eq!(resolved_only[0].verdict, Verdict::Fail);
    }

    #[test]
    fn the_summary_lists_hops_and_notifications() {
        let received = Received {
            notifications: vec![n(101.4, "HighErrorRate", Status::Firing)],
            ..Received::default()
        };
        let scoped = in_scope(
            &received.notifications,
            &Scope::private("target-app", "127.0.0.1:8080"),
        );
        let d = delivery(
            &scenario(),
            &timeline(),
            &[t(96.2, State::Firing)],
            received,
            &scoped,
            "http://127.0.0.1:9093".into(),
            "127.0.0.1:9097".into(),
        );
        let mut out = Vec::new();
        write_text(&d, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("spike          HighErrorRate"), "{text}");
        assert!(text.contains("36.0s     41.2s    119.8s"), "{text}");
        assert!(
            text.contains("101.4s  firing   HighErrorRate (1 alert, receiver webhook)"),
            "{text}"
        );
    }
}

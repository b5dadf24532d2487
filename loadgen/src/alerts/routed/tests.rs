use std::time::Duration;

use super::*;
use crate::alerts::amstate::AmSpan;
use crate::alerts::notify::NotifiedAlert;

const SCENARIO: &str = r#"
name = "outage"
[[mix]]
path = "/"
[[phases]]
name = "baseline"
duration = "60s"
rate = { shape = "constant", rps = 10 }
[[phases]]
name = "outage"
duration = "120s"
rate = { shape = "constant", rps = 10 }
chaos = [{ fault = "outage", duration = "100s" }]
[phases.expect]
notified = [{ alert = "ServiceDown", receiver = "pager", notify_within = "60s" }]
inhibited = ["HighErrorRate"]
not_notified = [{ alert = "HighLatency" }, { alert = "ServiceDown", receiver = "ticket" }]
grouped = [["ServiceDown", "Saturated"]]
"#;

fn scenario() -> Scenario {
    crate::scenario::parse(SCENARIO, "outage.toml").unwrap()
}

fn timeline() -> Timeline {
    let s = Duration::from_secs;
    Timeline {
        phases: vec![(s(0), s(60)), (s(60), s(180))],
        faults: vec![(1, s(60), s(160))],
        ..Timeline::default()
    }
}

fn n(at_s: f64, receiver: &str, alerts: &[&str]) -> Notification {
    Notification {
        at_s,
        receiver: receiver.into(),
        group_key: "{}:{}".into(),
        status: Status::Firing,
        alerts: alerts
            .iter()
            .map(|a| NotifiedAlert {
                alert: (*a).into(),
                status: Status::Firing,
                labels: [("alertname".to_owned(), (*a).to_owned())].into(),
                starts_at: String::new(),
                ends_at: String::new(),
            })
            .collect(),
        truncated_alerts: 0,
    }
}

fn am(inhibited: bool) -> AmStates {
    AmStates {
        spans: vec![
            AmSpan {
                alert: "ServiceDown".into(),
                from_s: 70.0,
                to_s: 170.0,
                inhibited_by: vec![],
            },
            AmSpan {
                alert: "HighErrorRate".into(),
                from_s: 90.0,
                to_s: 160.0,
                inhibited_by: if inhibited {
                    vec!["ServiceDown".into()]
                } else {
                    vec![]
                },
            },
        ],
        answered: vec![(1.0, 180.0)],
        ..AmStates::default()
    }
}

/// (alert column, expect, verdict, detail) of every check.
fn judged(
    notifications: &[Notification],
    am: Option<&AmStates>,
) -> Vec<(String, &'static str, Verdict, String)> {
    check(&scenario(), &timeline(), notifications, am)
        .into_iter()
        .map(|c| (c.alert, c.expect, c.verdict, c.detail))
        .collect()
}

fn find<'a>(
    checks: &'a [(String, &'static str, Verdict, String)],
    alert: &str,
    expect: &str,
) -> &'a (String, &'static str, Verdict, String) {
    checks
        .iter()
        .find(|c| c.0 == alert && c.1 == expect)
        .unwrap_or_else(|| panic!("no {expect} check of {alert}: {checks:#?}"))
}

#[test]
fn everything_as_expected_passes() {
    let got = judged(
        &[n(75.0, "pager", &["ServiceDown", "Saturated"])],
        Some(&am(true)),
    );
    assert_eq!(got.len(), 5, "{got:#?}");
    for c in &got {
        assert_eq!(c.2, Verdict::Pass, "{c:?}");
    }
    assert_eq!(
        find(&got, "ServiceDown → pager", "routed").3,
        "notified to `pager` 15.0s after the phase started"
    );
    assert!(find(&got, "HighErrorRate", "inhibited")
        .3
        .contains("inhibited by ServiceDown from 90.0s"));
}

#[test]
fn a_notification_to_another_receiver_fails_naming_both() {
    let got = judged(
        &[n(75.0, "ticket", &["ServiceDown", "Saturated"])],
        Some(&am(true)),
    );
    let routed = find(&got, "ServiceDown → pager", "routed");
    assert_eq!(routed.2, Verdict::Fail);
    assert_eq!(routed.3, "not notified to `pager`: it reached `ticket` instead");
    let unrouted = find(&got, "ServiceDown → ticket", "unrouted");
    assert_eq!(
        (unrouted.2, unrouted.3.as_str()),
        (Verdict::Fail, "reached `ticket` 15.0s after the phase started")
    );
}

#[test]
fn too_late_or_outside_the_phase_fails() {
    let late = judged(&[n(121.0, "pager", &["ServiceDown"])], Some(&am(true)));
    let r = find(&late, "ServiceDown → pager", "routed");
    assert_eq!(r.2, Verdict::Fail);
    assert!(r.3.contains("later than notify_within 1m"), "{}", r.3);
    let before = judged(&[n(59.0, "pager", &["ServiceDown"])], Some(&am(true)));
    assert_eq!(find(&before, "ServiceDown → pager", "routed").2, Verdict::Fail);
}

#[test]
fn an_inhibited_alert_is_reported_inhibited_not_missing() {
    // The scenario expected HighErrorRate at a receiver; Alertmanager inhibited it.
    let mut s = scenario();
    s.phases[1].expect.notified.push(crate::scenario::Notified {
        alert: "HighErrorRate".into(),
        receiver: "pager".into(),
        within: None,
        snapshot: None,
    });
    let c: Vec<_> = check(&s, &timeline(), &[], Some(&am(true)))
        .into_iter()
        .filter(|c| c.alert == "HighErrorRate → pager")
        .collect();
    assert_eq!(c[0].verdict, Verdict::Fail);
    assert_eq!(
        c[0].detail,
        "not notified to `pager`: inhibited by ServiceDown from 90.0s (Alertmanager's API)"
    );
}

#[test]
fn inhibition_needs_an_observation() {
    let not_inhibited = judged(&[], Some(&am(false)));
    let i = find(&not_inhibited, "HighErrorRate", "inhibited");
    assert_eq!(
        (i.2, i.3.as_str()),
        (
            Verdict::Fail,
            "active in Alertmanager from 90.0s and not inhibited"
        )
    );

    let notified = judged(&[n(100.0, "pager", &["HighErrorRate"])], Some(&am(true)));
    assert_eq!(find(&notified, "HighErrorRate", "inhibited").2, Verdict::Fail);

    let unasked = judged(&[], None);
    assert_eq!(
        find(&unasked, "HighErrorRate", "inhibited").2,
        Verdict::NotVerified
    );
    assert_eq!(find(&unasked, "HighLatency", "unrouted").2, Verdict::NotVerified);

    let silent = AmStates {
        answered: vec![(1.0, 50.0)],
        ..AmStates::default()
    };
    let got = judged(&[], Some(&silent));
    let i = find(&got, "HighErrorRate", "inhibited");
    assert_eq!(
        (i.2, i.3.as_str()),
        (
            Verdict::NotVerified,
            "Alertmanager's API did not answer during the phase"
        )
    );
    assert_eq!(find(&got, "HighLatency", "unrouted").2, Verdict::NotVerified);

    let never = AmStates {
        answered: vec![(1.0, 180.0)],
        ..AmStates::default()
    };
    let i = find(&judged(&[], Some(&never)), "HighErrorRate", "inhibited").clone();
    assert_eq!(i.2, Verdict::NotVerified);
    assert!(i.3.contains("never reached Alertmanager"), "{}", i.3);
}

#[test]
fn alerts_apart_are_not_grouped() {
    let got = judged(
        &[
            n(75.0, "pager", &["ServiceDown"]),
            n(90.0, "pager", &["Saturated"]),
        ],
        Some(&am(true)),
    );
    let g = find(&got, "ServiceDown + Saturated", "grouped");
    assert_eq!(g.2, Verdict::Fail);
    assert_eq!(
        g.3,
        "never in one notification: ServiceDown at 15.0s to `pager`, Saturated at 30.0s to `pager`"
    );
}

#[test]
fn unmade_checks_cover_every_routing_expectation() {
    let c = unmade(&scenario(), Verdict::NotVerified, "no Alertmanager");
    assert_eq!(c.len(), 5);
    assert!(c
        .iter()
        .all(|c| c.verdict == Verdict::NotVerified && c.detail == "no Alertmanager"));
}

use super::*;
use crate::alerts::{AlertCheck, AlertReport};
use crate::engine::stats::Stats;
use crate::report::{ExpectationResult, FaultWindow, PhaseReport, RatePoint, RequestReport};
use crate::shared::snapshot::Point;
use crate::shared::Transition;
use crate::shared::Verdict;

fn summary() -> Summary {
    let mut stats = Stats::default();
    for v in [900u64, 1_200, 5_000, 40_000] {
        stats.corrected.record(v).unwrap();
        stats.uncorrected.record(v).unwrap();
        stats.lag.record(10).unwrap();
    }
    stats.classes[0] = 3;
    stats.classes[2] = 1;
    let figures = crate::report::figures(&stats, std::time::Duration::from_secs(2));
    let phase = |name: &str, start: f64| PhaseReport {
        name: name.to_owned(),
        start_s: start,
        end_s: start + 2.0,
        faults: if start > 0.0 { vec!["error".into()] } else { vec![] },
        totals: figures.clone(),
        requests: vec![
            RequestReport {
                name: "GET /".into(),
                figures: figures.clone(),
            },
            RequestReport {
                name: "GET /<x>".into(),
                figures: figures.clone(),
            },
        ],
        expectations: vec![ExpectationResult {
            expectation: "p95 < 300ms".into(),
            observed: "40ms".into(),
            verdict: Verdict::Pass,
        }],
    };
    Summary {
        format_version: crate::report::FORMAT_VERSION,
        scenario: "demo <&>".into(),
        description: "a test".into(),
        seed: 1,
        target: "http://127.0.0.1:1".into(),
        shard: None,
        merged_shards: vec![],
        ending: "completed".into(),
        result: Verdict::Fail,
        phases: vec![phase("calm", 0.0), phase("spike", 2.0)],
        series: (0..4)
            .map(|s| Point {
                second: s,
                sent: 10 + s,
                completed: 10 + s,
                errors: s % 2,
                p50_ms: 1.0,
                p95_ms: 5.0,
                p99_ms: 9.0 + s as f64,
                p99_uncorrected_ms: 8.0,
            })
            .collect(),
        intended: (0..=4)
            .map(|t| RatePoint {
                t_s: f64::from(t),
                rps: 10.0,
            })
            .collect(),
        fault_windows: vec![FaultWindow {
            phase: "spike".into(),
            start_s: 2.0,
            end_s: 4.0,
            faults: vec!["error".into()],
        }],
        alerts: Some(AlertReport {
            prometheus: "http://127.0.0.1:2".into(),
            unchecked: None,
            scope: None,
            known: vec![crate::alerts::judge::Span {
                from_s: 0.0,
                to_s: 4.0,
            }],
            transitions: vec![
                Transition {
                    at_s: 2.5,
                    alert: "HighErrorRate".into(),
                    to: State::Pending,
                },
                Transition {
                    at_s: 3.0,
                    alert: "HighErrorRate".into(),
                    to: State::Firing,
                },
                Transition {
                    at_s: 3.5,
                    alert: "HighErrorRate".into(),
                    to: State::Inactive,
                },
            ],
            checks: vec![AlertCheck {
                phase: "spike".into(),
                alert: "HighErrorRate".into(),
                expect: "firing",
                verdict: Verdict::Pass,
                pending_after_s: Some(0.5),
                firing_after_s: Some(1.0),
                resolved_after_s: None,
                detail: "fired".into(),
                coverage: None,
                predicted: Some(crate::alerts::Predicted {
                    pending_after_s: Some(0.0),
                    firing_after_s: Some(2.0),
                    resolved_after_s: None,
                    drift_s: Some(-1.0),
                    ..Default::default()
                }),
            }],
            failed_polls: 0,
            delivery: None,
            notifications_skipped: None,
        }),
        changes: Vec::new(),
    }
}

fn render(s: &Summary) -> String {
    let mut out = Vec::new();
    write_html(s, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn the_page_is_self_contained_and_holds_every_part() {
    let html = render(&summary());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for external in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "external resource `{external}`");
    }
    for id in [
        "rate-chart",
        "latency-chart",
        "errors-chart",
        "classes-chart",
        "alerts-chart",
        "phases",
        "expectations",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    // Escaped text, never raw markup from the report.
    assert!(html.contains("demo &lt;&amp;&gt;"));
    assert!(html.contains("GET /&lt;x&gt;"));
    assert!(!html.contains("demo <&>"));
    // One marker per second of the series, with its value.
    assert_eq!(
        html.matches("<circle data-second=").count(),
        4 + 4,
        "sent and p99"
    );
    assert!(html.contains("<circle data-second=\"3\" data-value=\"13\""));
    // Phase bands, the fault window, the alert states, the error bars.
    assert_eq!(
        html.matches("data-phase=").count(),
        3 * 2,
        "two phases in three time charts"
    );
    assert!(html.contains("class=\"fault\""));
    assert!(html.contains("data-state=\"pending\"") && html.contains("data-state=\"firing\""));
    assert_eq!(
        html.matches("<rect data-second=").count(),
        2,
        "seconds 1 and 3 had errors"
    );
    assert!(html.contains("data-class=\"http_5xx\""));
    assert!(html.contains("id=\"verdict\">FAIL<"));
    assert!(html.contains("p95 &lt; 300ms"));
}

#[test]
fn notifications_are_marked_on_the_alert_timeline_with_every_hop_in_a_table() {
    use crate::alerts::delivery::{Delivery, Hops};
    use crate::alerts::notify::{Notification, NotifiedAlert, Status};
    let notification = |at_s: f64, status: Status| Notification {
        at_s,
        receiver: "webhook".into(),
        group_key: "{}:{alertname=\"HighErrorRate\"}".into(),
        status,
        alerts: vec![NotifiedAlert {
            alert: "HighErrorRate".into(),
            status,
            labels: [("alertname".to_owned(), "HighErrorRate".to_owned())].into(),
            starts_at: String::new(),
            ends_at: String::new(),
        }],
        truncated_alerts: 0,
    };
    let mut s = summary();
    let without = render(&s);
    assert!(!without.contains("data-notified") && !without.contains("id=\"hops\""));
    s.alerts.as_mut().unwrap().delivery = Some(Delivery {
        alertmanager: "http://127.0.0.1:9093".into(),
        webhook: "http://127.0.0.1:9097/alerts".into(),
        hops: vec![Hops {
            phase: "spike".into(),
            alert: "HighErrorRate".into(),
            fault_start_s: 2.0,
            pending_s: Some(0.5),
            firing_s: Some(1.0),
            notified_firing_s: Some(1.2),
            fault_end_s: 2.0,
            resolved_s: Some(1.5),
            notified_resolved_s: None,
        }],
        notifications: vec![
            notification(3.2, Status::Firing),
            notification(3.9, Status::Resolved),
        ],
        rejected: 1,
        dropped: 0,
        receivers: Vec::new(),
        rendered: Vec::new(),
    });
    let html = render(&s);
    assert_eq!(html.matches("data-notified=\"firing\"").count(), 1);
    assert_eq!(html.matches("data-notified=\"resolved\"").count(), 1);
    assert!(html.contains("id=\"hops\""));
    for (hop, shown) in [
        ("pending", "0.5s"),
        ("firing", "1.0s"),
        ("notified", "1.2s"),
        ("fault end", "2.0s"),
        ("resolved", "1.5s"),
        ("notified resolved", "–"),
    ] {
        assert!(
            html.contains(&format!("<td data-hop=\"{hop}\">{shown}</td>")),
            "{hop}"
        );
    }
    assert!(html.contains("2 notifications received, 1 bodies refused"));
}

#[test]
fn long_runs_drop_the_markers_but_keep_the_lines() {
    let mut s = summary();
    s.series = (0..(MAX_MARKERS as u64 + 10))
        .map(|second| Point {
            second,
            sent: 5,
            completed: 5,
            ..Point::default()
        })
        .collect();
    let html = render(&s);
    assert_eq!(html.matches("<circle").count(), 0);
    assert!(html.contains("data-series=\"sent\""));
    assert!(html.len() < 400_000, "{} bytes", html.len());
}

#[test]
fn nice_ceilings() {
    assert_eq!(nice_ceiling(0.0), 1.0);
    assert_eq!(nice_ceiling(7.0), 10.0);
    assert_eq!(nice_ceiling(101.0), 200.0);
    assert_eq!(nice_ceiling(2.2), 2.5);
}

#[test]
fn changes_made_live_are_marked_on_every_chart_and_listed() {
    use crate::shared::control::{Change, Command, RateSet};
    let mut s = summary();
    let html = render(&s);
    assert!(!html.contains("class=\"change\"") && !html.contains("id=\"changes\""));
    s.changes = vec![
        Change {
            at_s: 1.5,
            phase: 0,
            source: "console".into(),
            command: Command::Rate {
                set: RateSet::Rps(40.0),
            },
            text: "rate 40 rps <fast>".into(),
        },
        Change {
            at_s: 3.0,
            phase: 1,
            source: "api".into(),
            command: Command::Pause,
            text: "pause".into(),
        },
    ];
    let html = render(&s);
    // Every chart over time: rate, latency, errors, alerts (the classes chart is per phase).
    let charts = html.matches("<svg ").count() - 1;
    assert_eq!(charts, 4);
    assert_eq!(html.matches("class=\"change\" data-change=\"0\"").count(), charts);
    assert_eq!(html.matches("class=\"change\" data-change=\"1\"").count(), charts);
    assert!(html.contains("id=\"changes\""));
    assert!(html.contains("rate 40 rps &lt;fast&gt;") && !html.contains("<fast>"));
}

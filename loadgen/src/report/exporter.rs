//! The generator's own metrics: `--metrics-addr` serves `/metrics` in the Prometheus text format while
//! a run goes on, so the stack's Prometheus scrapes the load next to what the target saw.
//!
//! Nothing is counted here: the counts are those the recorder keeps for the reports and the position is
//! the engine's, both read from the run's [`Snapshot`]. [`render`] is pure, so a test reads its text;
//! [`serve`] takes an already bound listener.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::scenario::{Load, Scenario};
use crate::schedule::{RateCurve, Shard};
use crate::shared::control::Steering;
use crate::shared::outcome::Class;
use crate::shared::snapshot::Live;
use crate::shared::Position;
use crate::shared::Snapshot;

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoint reads on each scrape.
#[derive(Clone)]
pub struct Sources {
    pub scenario: Arc<Scenario>,
    pub shard: Shard,
    pub snapshot: watch::Receiver<Snapshot>,
    /// Live control's state, when the run is steered (`--control`).
    pub steering: Option<watch::Receiver<Steering>>,
}

impl Sources {
    /// The metrics text as of now.
    pub fn render(&self) -> String {
        let Snapshot { position, live, .. } = self.snapshot.borrow().clone();
        let steering = self.steering.as_ref().map(|s| s.borrow().clone());
        // Once the run was changed live, the rate asked for is the engine's, not the curve's.
        let target = steering.as_ref().and_then(|st| match st {
            st if st.paused => Some(0.0),
            st if !st.changes.is_empty() => st.target_rps.map(|r| r / self.shard.count() as f64),
            _ => None,
        });
        let mut out = render_with(
            &self.scenario,
            self.shard,
            &position,
            &live,
            Instant::now(),
            target,
        );
        if let Some(steering) = &steering {
            out.push_str(&render_control(steering));
        }
        out
    }
}

/// Live control's metrics: every change counted by action (each action's series exists from the
/// start, so `changes()` and `increase()` see the first one: a dashboard annotates them), and whether
/// the run is paused.
pub fn render_control(steering: &Steering) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "loadgen_control_changes_total",
        "counter",
        "Changes made live through --control or the panel's keys, by action.",
    );
    for action in crate::shared::control::ACTIONS {
        let n = steering
            .changes
            .iter()
            .filter(|c| c.command.action() == *action)
            .count();
        let _ = writeln!(out, "loadgen_control_changes_total{{action=\"{action}\"}} {n}");
    }
    family(
        &mut out,
        "loadgen_control_paused",
        "gauge",
        "1 while the run is paused live, else 0.",
    );
    let _ = writeln!(out, "loadgen_control_paused {}", u8::from(steering.paused));
    out
}

/// The metrics text of a run at `now`.
pub fn render(scenario: &Scenario, shard: Shard, position: &Position, live: &Live, now: Instant) -> String {
    render_with(scenario, shard, position, live, now, None)
}

/// [`render`], with the intended rate `target` instead of the curve's when given.
pub fn render_with(
    scenario: &Scenario,
    shard: Shard,
    position: &Position,
    live: &Live,
    now: Instant,
    target: Option<f64>,
) -> String {
    let mut out = String::with_capacity(4096);
    let current = position.phase.zip(position.phase_started);

    family(
        &mut out,
        "loadgen_requests_total",
        "counter",
        "Requests completed, by phase, request of the mix and outcome class.",
    );
    for (i, counts) in live.phases.iter().enumerate() {
        let Some(phase) = scenario.phases.get(i) else {
            continue;
        };
        let begun = current.is_none_or(|(p, _)| i <= p) || counts.requests.iter().flatten().any(|n| *n > 0);
        if !begun {
            continue;
        }
        for (request, classes) in phase.mix.requests().iter().zip(&counts.requests) {
            for class in Class::ALL {
                let _ = writeln!(
                    out,
                    "loadgen_requests_total{{phase=\"{}\",request=\"{}\",outcome=\"{}\"}} {}",
                    escape(&phase.name),
                    escape(&request.name),
                    class.name(),
                    classes[class.index()]
                );
            }
        }
    }

    family(
        &mut out,
        "loadgen_late_total",
        "counter",
        "Requests sent more than 10ms after their intended time, by phase.",
    );
    for (phase, counts) in scenario.phases.iter().zip(&live.phases) {
        let _ = writeln!(
            out,
            "loadgen_late_total{{phase=\"{}\"}} {}",
            escape(&phase.name),
            counts.late
        );
    }
    family(
        &mut out,
        "loadgen_dropped_total",
        "counter",
        "Requests never sent (no free slot before the phase ended, or the run was stopped), by phase.",
    );
    for (phase, counts) in scenario.phases.iter().zip(&live.phases) {
        let _ = writeln!(
            out,
            "loadgen_dropped_total{{phase=\"{}\"}} {}",
            escape(&phase.name),
            counts.dropped
        );
    }

    family(
        &mut out,
        "loadgen_schedule_lag_seconds",
        "summary",
        "How late requests were sent (actual minus intended send time); quantiles over the latest phase.",
    );
    for (q, v) in &live.lag.quantiles {
        let _ = writeln!(
            out,
            "loadgen_schedule_lag_seconds{{quantile=\"{q}\"}} {}",
            float(*v)
        );
    }
    let _ = writeln!(out, "loadgen_schedule_lag_seconds_sum {}", float(live.lag.sum));
    let _ = writeln!(out, "loadgen_schedule_lag_seconds_count {}", live.lag.count);

    family(&mut out, "loadgen_in_flight", "gauge", "Requests in flight.");
    let _ = writeln!(out, "loadgen_in_flight {}", position.in_flight);

    family(
        &mut out,
        "loadgen_target_rps",
        "gauge",
        "Intended request rate of this generator now (the phase's rate curve divided by the shard count).",
    );
    let curve = current.map_or(0.0, |(i, started)| {
        target_rps(
            scenario,
            shard,
            i,
            now.saturating_duration_since(started).as_secs_f64(),
        )
    });
    let target = match current {
        Some(_) => target.unwrap_or(curve),
        None => curve,
    };
    let _ = writeln!(out, "loadgen_target_rps {}", float(target));

    family(
        &mut out,
        "loadgen_phase_info",
        "gauge",
        "1 for the phase running now (none between phases and after the last).",
    );
    if let Some((i, _)) = current {
        let _ = writeln!(
            out,
            "loadgen_phase_info{{scenario=\"{}\",phase=\"{}\"}} 1",
            escape(&scenario.name),
            escape(&scenario.phases[i].name)
        );
    }
    out
}

/// The intended rate of phase `index` at `t` seconds from its start, for one shard; 0 for a closed-loop
/// phase, which has no rate.
pub fn target_rps(scenario: &Scenario, shard: Shard, index: usize, t: f64) -> f64 {
    let phase = &scenario.phases[index];
    match &phase.load {
        Load::Open { rate, .. } => {
            let secs = phase.duration.as_secs_f64();
            RateCurve::new(rate, secs).rate_at(t.min(secs)) / shard.count() as f64
        }
        Load::Closed { .. } => 0.0,
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".to_owned()
    }
}

/// Serves `GET /metrics` (and `/`) on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, sources: Sources, shutdown: watch::Receiver<bool>) {
    let sources = Arc::new(sources);
    crate::http_server::serve(listener, shutdown, move |req| {
        let reply = answer(&sources, &req);
        async move { reply }
    })
    .await;
}

fn answer<B>(sources: &Sources, req: &Request<B>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => reply(StatusCode::OK, CONTENT_TYPE, sources.render()),
        (&Method::GET, "/") => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "loadgen: metrics at /metrics\n".to_owned(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::snapshot::{LagSummary, LivePhase};

    const SCENARIO: &str = r#"
name = "two"
[[mix]]
path = "/"
[[mix]]
path = "/health"
[[phases]]
name = "calm"
duration = "10s"
rate = { shape = "ramp", from = 10, to = 30 }
[[phases]]
name = "busy \"x\""
duration = "5s"
concurrency = 2
"#;

    fn scenario() -> Scenario {
        crate::scenario::parse(SCENARIO, "two.toml").expect("valid scenario")
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let s = scenario();
        let now = Instant::now();
        let position = Position {
            phase: Some(0),
            phase_started: Some(now - std::time::Duration::from_secs(5)),
            in_flight: 3,
            sent: 10,
        };
        let mut classes = [0; Class::ALL.len()];
        classes[Class::Ok.index()] = 7;
        classes[Class::Http5xx.index()] = 2;
        let live = Live {
            phases: vec![
                LivePhase {
                    requests: vec![classes, [0; Class::ALL.len()]],
                    late: 1,
                    dropped: 0,
                },
                LivePhase {
                    requests: vec![[0; Class::ALL.len()]; 2],
                    late: 0,
                    dropped: 0,
                },
            ],
            lag: LagSummary {
                count: 9,
                sum: 0.018,
                quantiles: vec![(0.5, 0.001), (0.9, 0.002), (0.99, 0.005)],
            },
            ..Live::default()
        };
        let text = render(&s, Shard::new(1, 2).unwrap(), &position, &live, now);
        // Changed live, the rate asked for is the engine's.
        let steered = render_with(&s, Shard::new(1, 2).unwrap(), &position, &live, now, Some(42.5));
        assert!(steered.contains("\nloadgen_target_rps 42.5\n"), "{steered}");
        assert!(!text.contains("\nloadgen_target_rps 42.5\n"), "{text}");
        for name in [
            "loadgen_requests_total",
            "loadgen_late_total",
            "loadgen_dropped_total",
            "loadgen_schedule_lag_seconds",
            "loadgen_in_flight",
            "loadgen_target_rps",
            "loadgen_phase_info",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
        }
        assert!(text.contains("loadgen_requests_total{phase=\"calm\",request=\"GET /\",outcome=\"ok\"} 7\n"));
        assert!(text
            .contains("loadgen_requests_total{phase=\"calm\",request=\"GET /\",outcome=\"http_5xx\"} 2\n"));
        // The second phase has not begun: no request series for it yet.
        assert!(!text.contains("loadgen_requests_total{phase=\"busy"), "{text}");
        assert!(text.contains("loadgen_in_flight 3\n"));
        // Ramp 10 → 30 over 10 s is 20 rps at 5 s, halved for shard 1/2.
        assert!(text.contains("loadgen_target_rps 10\n"), "{text}");
        assert!(text.contains("loadgen_phase_info{scenario=\"two\",phase=\"calm\"} 1\n"));
        assert!(text.contains("loadgen_schedule_lag_seconds{quantile=\"0.99\"} 0.005\n"));
        assert!(text.contains("loadgen_schedule_lag_seconds_count 9\n"));

        let later = Position {
            phase: Some(1),
            phase_started: Some(now),
            ..position
        };
        let text = render(&s, Shard::WHOLE, &later, &live, now);
        assert!(
            text.contains("loadgen_phase_info{scenario=\"two\",phase=\"busy \\\"x\\\"\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("loadgen_target_rps 0\n"), "closed loop has no rate");
    }

    #[test]
    fn changes_made_live_are_counted_by_action() {
        use crate::shared::control::{Change, Command, RateSet};
        let change = |command: Command| Change {
            at_s: 1.0,
            phase: 0,
            source: "api".into(),
            text: command.describe(),
            command,
        };
        let steering = Steering {
            paused: true,
            changes: vec![
                change(Command::Rate {
                    set: RateSet::Factor(2.0),
                }),
                change(Command::Rate {
                    set: RateSet::Rps(5.0),
                }),
                change(Command::Pause),
            ],
            ..Steering::default()
        };
        let text = render_control(&steering);
        assert!(
            text.contains("loadgen_control_changes_total{action=\"rate\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("loadgen_control_changes_total{action=\"pause\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("loadgen_control_changes_total{action=\"fault_on\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("loadgen_control_paused 1\n"), "{text}");
        assert!(text.contains("# TYPE loadgen_control_changes_total counter"));
    }
}

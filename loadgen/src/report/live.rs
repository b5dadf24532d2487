//! Progress while a run goes on. On a terminal: a panel of a few lines redrawn in place every second
//! (scenario, phase timeline with the current position, target versus achieved rate with a sparkline,
//! error ratio, recent latency percentiles, active faults, alert states). Otherwise, or with `--quiet`:
//! one plain line every five seconds.
//!
//! Reads the run's [`Snapshot`](crate::shared::Snapshot); writes to stderr so stdout keeps only the
//! summary. The panel itself uses no terminal mode (no alternate screen, cursor left visible); the keys
//! that steer the run (`crate::control::keys`) put stdin in cbreak mode and restore it on every way out. At the end of a run
//! the panel is erased; on Ctrl-C its last frame stays, above the message about stopping. [`panel`] and [`line`] are pure, so tests render them into strings.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::scenario::Scenario;
use crate::schedule::Shard;
use crate::shared::control::{Steering, KEYS_HELP};
use crate::shared::snapshot::Live;
use crate::shared::Position;
use crate::shared::Snapshot;
use crate::shared::State;

/// Width of the panel, in characters.
pub const WIDTH: usize = 78;

/// How the progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The panel, redrawn in place every second.
    Panel,
    /// A plain line every five seconds.
    Lines,
}

impl Style {
    /// The panel on a terminal unless `quiet`; plain lines otherwise.
    pub fn detect(quiet: bool) -> Style {
        if !quiet && std::io::stderr().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
        {
            Style::Panel
        } else {
            Style::Lines
        }
    }
}

/// What the display reads.
pub struct Sources {
    pub scenario: Arc<Scenario>,
    pub shard: Shard,
    /// Where the run is, what was counted, which alerts are active.
    pub snapshot: watch::Receiver<Snapshot>,
    /// Alert state changes predicted (seconds from the run's start): before the run, then again after
    /// each live change.
    pub predicted: watch::Receiver<Vec<crate::shared::Transition>>,
    /// The notifications loadgen's webhook received, when it listens.
    pub notified: Option<crate::alerts::notify::Inbox>,
    pub start: Instant,
    /// Turns true on Ctrl-C (or SIGTERM).
    pub stop: watch::Receiver<bool>,
    /// Live control's state, when the run can be steered.
    pub steering: Option<watch::Receiver<Steering>>,
    /// Keys steer the run (the panel ends with their help).
    pub keys: bool,
}

/// Shows progress until the snapshot is finished.
pub async fn show(sources: Sources, style: Style) {
    let every = match style {
        Style::Panel => Duration::from_secs(1),
        Style::Lines => Duration::from_secs(5),
    };
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    let mut drawn = 0;
    let mut stop = sources.stop.clone();
    let mut finished = sources.snapshot.clone();
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = finished.wait_for(|s| s.finished) => break,
            _ = stop.wait_for(|s| *s), if !interrupted => {
                // A message about stopping was just printed below the panel: leave the last frame
                // as it is, since redrawing or erasing now would count lines that moved.
                interrupted = true;
                if style == Style::Panel {
                    break;
                }
                continue;
            }
        }
        let Snapshot {
            position,
            live,
            alerts,
            alert_polls_failing,
            ..
        } = sources.snapshot.borrow().clone();
        let notified = sources
            .notified
            .as_ref()
            .map(|inbox| inbox.snapshot().notifications);
        let steering = sources.steering.as_ref().map(|s| s.borrow().clone());
        let predicted = sources.predicted.borrow().clone();
        let mut err = std::io::stderr().lock();
        match style {
            Style::Panel => {
                let view = View {
                    scenario: &sources.scenario,
                    shard: sources.shard,
                    position: &position,
                    live: &live,
                    alerts: alerts.as_deref(),
                    alert_polls_failing,
                    predicted: &predicted,
                    notified: notified.as_deref(),
                    elapsed: sources.start.elapsed(),
                    now: Instant::now(),
                    steering: steering.as_ref(),
                    keys: sources.keys,
                };
                let lines = panel(&view);
                let _ = write!(err, "{}", redraw(drawn, &lines));
                drawn = lines.len();
            }
            Style::Lines => {
                let _ = writeln!(
                    err,
                    "{}",
                    line(
                        &sources.scenario,
                        &position,
                        &live,
                        alerts.as_deref(),
                        alert_polls_failing
                    )
                );
            }
        }
        let _ = err.flush();
    }
    if drawn > 0 && !interrupted {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", erase(drawn));
        let _ = err.flush();
    }
}

/// Escape codes that replace a panel of `previous` lines with `lines`: up to the panel's first line,
/// then each line cleared and written.
pub fn redraw(previous: usize, lines: &[String]) -> String {
    let mut out = String::new();
    if previous > 0 {
        out.push_str(&format!("\r\x1b[{previous}A"));
    }
    for l in lines {
        out.push_str("\r\x1b[2K");
        out.push_str(l);
        out.push('\n');
    }
    // A panel shorter than the last leaves old lines below: clear them.
    out.push_str("\x1b[J");
    out
}

/// Escape codes that erase a panel of `lines` lines, leaving the cursor where it began.
pub fn erase(lines: usize) -> String {
    format!("\r\x1b[{lines}A\x1b[J")
}

/// Everything one frame of the panel shows.
pub struct View<'a> {
    pub scenario: &'a Scenario,
    pub shard: Shard,
    pub position: &'a Position,
    pub live: &'a Live,
    /// `None`: no answer from Prometheus yet, or alerts are not checked.
    pub alerts: Option<&'a [(String, State)]>,
    /// Polls of Prometheus failed since its last answer.
    pub alert_polls_failing: u64,
    /// Predicted alert state changes, seconds from the run's start.
    pub predicted: &'a [crate::shared::Transition],
    /// Notifications received so far; `None` when loadgen's webhook does not listen.
    pub notified: Option<&'a [crate::alerts::notify::Notification]>,
    /// Since the run's start.
    pub elapsed: Duration,
    pub now: Instant,
    /// Live control's state, when the run can be steered.
    pub steering: Option<&'a Steering>,
    /// Keys steer the run: their help is the last line.
    pub keys: bool,
}

/// The panel's lines, each at most [`WIDTH`] characters.
pub fn panel(v: &View<'_>) -> Vec<String> {
    let s = v.scenario;
    let total = s.duration();
    let mut lines = Vec::with_capacity(8);
    let shard = if v.shard == Shard::WHOLE {
        String::new()
    } else {
        format!("  shard {}", v.shard)
    };
    lines.push(two_sided(
        &format!("loadgen  {}  seed {}{shard}", s.name, s.seed),
        &format!("{} / {}", clock(v.elapsed), clock(total)),
    ));

    // The timeline: one segment per phase, proportional to its length, and a marker under it.
    let (bar, marker) = timeline(s, v.position, v.now);
    lines.push(bar);
    lines.push(marker);

    let current = v.position.phase.zip(v.position.phase_started);
    lines.push(match current {
        Some((i, started)) => {
            let p = &s.phases[i];
            let faults: Vec<&str> = match v.steering {
                Some(steering) => steering.faults.iter().map(|f| f.kind()).collect(),
                None => p.chaos.iter().map(|f| f.kind()).collect(),
            };
            format!(
                "phase {}/{} {}  {} / {}   faults: {}",
                i + 1,
                s.phases.len(),
                p.name,
                clock(v.now.saturating_duration_since(started).min(p.duration)),
                clock(p.duration),
                if faults.is_empty() {
                    "none".to_owned()
                } else {
                    faults.join(", ")
                }
            )
        }
        None if v.position.sent == 0 => "starting".to_owned(),
        None => "finishing: waiting for requests in flight".to_owned(),
    });

    let target = current.map(|(i, started)| {
        crate::report::exporter::target_rps(
            s,
            v.shard,
            i,
            v.now.saturating_duration_since(started).as_secs_f64(),
        )
    });
    // Once the run is steered, the rate asked for is the engine's.
    let target = match v.steering {
        Some(st) if st.paused => Some(0.0),
        Some(st) if !st.changes.is_empty() => st.target_rps.or(target),
        _ => target,
    };
    let achieved = v.live.last.map_or(0.0, |p| p.completed as f64);
    let rates: Vec<f64> = v.live.recent.iter().map(|p| p.completed as f64).collect();
    lines.push(format!(
        "rate    target {:>7}  achieved {:>7.1}/s  {}",
        target.map_or("-".to_owned(), |t| format!("{t:.1}/s")),
        achieved,
        sparkline(&rates, 30)
    ));

    let (errors, completed) = v.live.last.map_or((0, 0), |p| (p.errors, p.completed));
    lines.push(format!(
        "errors  {:>5.1}% last second ({} of {})   run: {} of {}   in flight {}",
        ratio(errors, completed) * 100.0,
        errors,
        completed,
        v.live.errors,
        v.live.completed,
        v.position.in_flight
    ));
    lines.push(match v.live.window {
        Some(w) => format!(
            "latency last {}s  p50 {}  p95 {}  p99 {}  ({} requests)",
            crate::shared::snapshot::WINDOW_SECONDS,
            ms(w.p50_ms),
            ms(w.p95_ms),
            ms(w.p99_ms),
            w.count
        ),
        None => "latency -".to_owned(),
    });
    if let Some(alerts) = v.alerts {
        lines.push(alert_line(alerts));
    }
    if v.alert_polls_failing > 0 {
        lines.push(format!(
            "alerts  NOT VERIFIED now: Prometheus has not answered {} polls in a row",
            v.alert_polls_failing
        ));
    }
    if !v.predicted.is_empty() {
        lines.push(predicted_line(v.predicted, v.elapsed.as_secs_f64()));
    }
    if let Some(notified) = v.notified {
        lines.push(notified_line(notified));
    }
    if let Some(steering) = v.steering {
        if let Some(last) = steering.changes.last() {
            lines.push(format!(
                "changed {}{} at {} ({}), {} change{} so far",
                if steering.paused { "PAUSED  " } else { "" },
                last.text,
                clock(Duration::from_secs_f64(last.at_s.max(0.0))),
                last.source,
                steering.changes.len(),
                if steering.changes.len() == 1 { "" } else { "s" }
            ));
        }
    }
    if v.keys {
        lines.push(KEYS_HELP.to_owned());
    }
    lines.into_iter().map(|l| fit(&l, WIDTH)).collect()
}

fn timeline(s: &Scenario, pos: &Position, now: Instant) -> (String, String) {
    let width = WIDTH - 2;
    let total = s.duration().as_secs_f64().max(1e-9);
    let mut bar = String::from("[");
    let mut used = 0;
    let mut starts = Vec::with_capacity(s.phases.len());
    for (i, p) in s.phases.iter().enumerate() {
        let end = if i + 1 == s.phases.len() {
            width
        } else {
            ((s.phase_start(i) + p.duration).as_secs_f64() / total * width as f64).round() as usize
        };
        let cells = end.saturating_sub(used).max(1);
        starts.push(used);
        let mut segment: String = String::from("|");
        segment.extend(p.name.chars().take(cells.saturating_sub(1)));
        let fill = if p.chaos.is_empty() { '-' } else { '~' };
        while segment.chars().count() < cells {
            segment.push(fill);
        }
        bar.push_str(&segment);
        used += cells;
    }
    bar.push(']');
    let at = match pos.phase.zip(pos.phase_started) {
        Some((i, started)) => {
            let into = now.saturating_duration_since(started).min(s.phases[i].duration);
            let t = (s.phase_start(i) + into).as_secs_f64();
            Some(((t / total) * width as f64).floor() as usize)
        }
        None if pos.sent > 0 => Some(width - 1),
        None => None,
    };
    let marker = match at {
        Some(x) => format!(" {}^", " ".repeat(x.min(width - 1))),
        None => String::new(),
    };
    (bar, marker)
}

/// `alerts  A FIRING · B pending`: firing alerts stand out.
fn alert_line(alerts: &[(String, State)]) -> String {
    if alerts.is_empty() {
        return "alerts  none".to_owned();
    }
    let items: Vec<String> = alerts
        .iter()
        .map(|(name, state)| match state {
            State::Firing => format!("{name} FIRING"),
            other => format!("{name} {}", other.as_str()),
        })
        .collect();
    format!("alerts  {}", items.join(" · "))
}

/// The latest three notifications, newest first: `notified  HighErrorRate firing at 01:41 · …`.
fn notified_line(notifications: &[crate::alerts::notify::Notification]) -> String {
    let latest: Vec<String> = notifications
        .iter()
        .rev()
        .take(3)
        .map(|n| {
            let mut names: Vec<&str> = n.alerts.iter().map(|a| a.alert.as_str()).collect();
            names.dedup();
            format!(
                "{} {} at {}",
                names.join(", "),
                n.status.as_str(),
                clock(Duration::from_secs_f64(n.at_s.max(0.0)))
            )
        })
        .collect();
    if latest.is_empty() {
        "notified  none yet".to_owned()
    } else {
        format!("notified  {}", latest.join(" · "))
    }
}

/// The next two predicted alert changes: `predicted  HighErrorRate firing in 12s · …`.
fn predicted_line(transitions: &[crate::shared::Transition], elapsed: f64) -> String {
    let next: Vec<String> = transitions
        .iter()
        .filter(|t| t.at_s > elapsed)
        .take(2)
        .map(|t| {
            let state = match t.to {
                crate::shared::State::Inactive => "resolved",
                crate::shared::State::Pending => "pending",
                crate::shared::State::Firing => "firing",
            };
            format!("{} {state} in {:.0}s", t.alert, (t.at_s - elapsed).ceil())
        })
        .collect();
    if next.is_empty() {
        "predicted  no further alert changes".to_owned()
    } else {
        format!("predicted  {}", next.join(" · "))
    }
}

/// Bars of `values` (the last `width` of them), scaled to their maximum.
pub fn sparkline(values: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let shown = &values[values.len().saturating_sub(width)..];
    let max = shown.iter().copied().fold(0.0, f64::max);
    shown
        .iter()
        .map(|v| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// The left text, padded so the right text ends at [`WIDTH`].
fn two_sided(left: &str, right: &str) -> String {
    let gap = WIDTH
        .saturating_sub(left.chars().count() + right.chars().count())
        .max(1);
    format!("{left}{}{right}", " ".repeat(gap))
}

fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        line.to_owned()
    } else {
        line.chars().take(width - 1).chain(['…']).collect()
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One plain progress line.
pub fn line(
    scenario: &Scenario,
    pos: &Position,
    live: &Live,
    alerts: Option<&[(String, State)]>,
    alert_polls_failing: u64,
) -> String {
    let phase = match (pos.phase, pos.phase_started) {
        (Some(i), Some(started)) => {
            let p = &scenario.phases[i];
            let faults: Vec<&str> = p.chaos.iter().map(|f| f.kind()).collect();
            format!(
                "phase {}/{} {} {}/{}{}",
                i + 1,
                scenario.phases.len(),
                p.name,
                clock(started.elapsed().min(p.duration)),
                clock(p.duration),
                if faults.is_empty() {
                    String::new()
                } else {
                    format!(" faults:{}", faults.join(","))
                }
            )
        }
        _ => "finishing".to_owned(),
    };
    let (rps, err, p95) = match &live.last {
        Some(p) => (p.completed as f64, ratio(p.errors, p.completed) * 100.0, p.p95_ms),
        None => (0.0, 0.0, 0.0),
    };
    let mut line = format!(
        "{phase} | sent {} done {} | {rps:.0} rps err {err:.1}% p95 {p95:.1}ms | in flight {}",
        pos.sent, live.completed, pos.in_flight
    );
    if let Some(alerts) = alerts {
        let items: Vec<String> = alerts
            .iter()
            .map(|(name, state)| format!("{name} {}", state.as_str()))
            .collect();
        let items = if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        };
        line.push_str(&format!(" | alerts: {items}"));
    }
    if alert_polls_failing > 0 {
        line.push_str(&format!(
            " | alerts NOT VERIFIED now: {alert_polls_failing} polls failed in a row"
        ));
    }
    line
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else {
        format!("{v:.1}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::snapshot::{Point, WindowPercentiles};

    const SCENARIO: &str = r#"
name = "panel"
seed = 4
[[mix]]
path = "/"
[[phases]]
name = "baseline"
duration = "60s"
rate = { shape = "constant", rps = 20 }
[[phases]]
name = "spike"
duration = "60s"
rate = { shape = "ramp", from = 20, to = 100 }
chaos = [{ fault = "error", status = 500, ratio = 0.3 }]
"#;

    #[test]
    fn the_panel_shows_phase_rates_latency_and_alerts() {
        let s = crate::scenario::parse(SCENARIO, "panel.toml").unwrap();
        let now = Instant::now();
        let position = Position {
            phase: Some(1),
            phase_started: Some(now - Duration::from_secs(30)),
            in_flight: 4,
            sent: 2000,
        };
        let last = Point {
            second: 89,
            sent: 58,
            completed: 60,
            errors: 18,
            ..Point::default()
        };
        let live = Live {
            completed: 1990,
            errors: 300,
            last: Some(last),
            recent: (0..60)
                .map(|s| Point {
                    second: s,
                    completed: s,
                    ..Point::default()
                })
                .collect(),
            window: Some(WindowPercentiles {
                p50_ms: 2.0,
                p95_ms: 25.5,
                p99_ms: 1250.0,
                count: 290,
            }),
            ..Live::default()
        };
        // A name is any label value, commas and spaces included.
        let alerts = [
            ("HighErrorRate".to_owned(), State::Firing),
            ("Disk, full soon".to_owned(), State::Pending),
        ];
        let view = View {
            scenario: &s,
            shard: Shard::new(1, 2).unwrap(),
            position: &position,
            live: &live,
            alerts: Some(&alerts),
            alert_polls_failing: 0,
            predicted: &[
                crate::shared::Transition {
                    at_s: 80.0,
                    alert: "HighErrorRate".into(),
                    to: crate::shared::State::Firing,
                },
                crate::shared::Transition {
                    at_s: 96.0,
                    alert: "HighLatency".into(),
                    to: crate::shared::State::Firing,
                },
                crate::shared::Transition {
                    at_s: 110.4,
                    alert: "HighErrorRate".into(),
                    to: crate::shared::State::Inactive,
                },
                crate::shared::Transition {
                    at_s: 115.0,
                    alert: "HighLatency".into(),
                    to: crate::shared::State::Inactive,
                },
            ],
            notified: None,
            elapsed: Duration::from_secs(90),
            now,
            steering: None,
            keys: false,
        };
        let lines = panel(&view);
        let text = lines.join("\n");
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(
            lines[0].starts_with("loadgen  panel  seed 4  shard 1/2"),
            "{text}"
        );
        assert!(lines[0].ends_with("01:30 / 02:00"), "{text}");
        // Two phases of equal length: the spike starts half way, with faults drawn as `~`.
        assert!(lines[1].starts_with("[|baseline---"), "{text}");
        assert_eq!(lines[1].find("|spike"), Some(1 + (WIDTH - 2) / 2), "{text}");
        assert!(lines[1].contains("|spike~~~"), "{text}");
        // Three quarters of the way through.
        assert_eq!(lines[2].find('^'), Some(1 + (WIDTH - 2) * 3 / 4), "{text}");
        assert!(
            text.contains("phase 2/2 spike  00:30 / 01:00   faults: error"),
            "{text}"
        );
        // The ramp 20 → 100 is at 60 rps half way, halved for the shard.
        assert!(text.contains("target  30.0/s  achieved    60.0/s"), "{text}");
        let rates: Vec<f64> = (30..60).map(f64::from).collect();
        assert!(
            lines[4].ends_with(&format!("/s  {}", sparkline(&rates, 30))),
            "{text}"
        );
        assert!(lines[4].ends_with('█'), "{text}");
        assert!(
            text.contains("errors   30.0% last second (18 of 60)   run: 300 of 1990   in flight 4"),
            "{text}"
        );
        assert!(
            text.contains("latency last 5s  p50 2.0ms  p95 25.5ms  p99 1.25s  (290 requests)"),
            "{text}"
        );
        assert!(
            text.contains("alerts  HighErrorRate FIRING · Disk, full soon pending"),
            "{text}"
        );
        assert!(
            text.contains("predicted  HighLatency firing in 6s · HighErrorRate resolved in 21s"),
            "{text}"
        );
        let quiet = line(&s, &position, &live, Some(&alerts), 0);
        assert!(
            quiet.ends_with(" | alerts: HighErrorRate firing, Disk, full soon pending"),
            "{quiet}"
        );

        // Prometheus answered with nothing active; then, no answer yet (or no alert checks).
        let none = panel(&View {
            alerts: Some(&[]),
            ..view
        });
        assert!(none.iter().any(|l| l == "alerts  none"), "{none:?}");
        assert!(line(&s, &position, &live, Some(&[]), 0).ends_with(" | alerts: none"));

        // Prometheus stopped answering: what the alerts do is not observed, and the panel says so.
        let failing = panel(&View {
            alert_polls_failing: 3,
            ..view
        });
        assert!(
            failing
                .iter()
                .any(|l| l == "alerts  NOT VERIFIED now: Prometheus has not answered 3 polls in a row"),
            "{failing:?}"
        );
        assert!(line(&s, &position, &live, Some(&alerts), 3)
            .ends_with(" | alerts NOT VERIFIED now: 3 polls failed in a row"));
        let unknown = panel(&View { alerts: None, ..view });
        assert!(!unknown.join("\n").contains("alerts"), "{unknown:?}");
        assert!(!unknown.join("\n").contains("notified"), "{unknown:?}");

        // Notifications, newest first.
        let parsed = |status: &str, at_s: f64| {
            let body = format!(
                "{{\"version\":\"4\",\"groupKey\":\"g\",\"status\":\"{status}\",\"receiver\":\"r\",\
                 \"alerts\":[{{\"status\":\"{status}\",\"labels\":{{\"alertname\":\"HighErrorRate\"}}}}]}}"
            );
            crate::alerts::notify::parse(body.as_bytes(), at_s).unwrap()
        };
        let waiting = panel(&View {
            notified: Some(&[]),
            ..view
        });
        assert!(waiting.iter().any(|l| l == "notified  none yet"), "{waiting:?}");
        let two = [parsed("firing", 101.4), parsed("resolved", 230.0)];
        let shown = panel(&View {
            notified: Some(&two),
            ..view
        });
        assert!(
            shown
                .iter()
                .any(|l| l == "notified  HighErrorRate resolved at 03:50 · HighErrorRate firing at 01:41"),
            "{shown:?}"
        );
        assert!(!line(&s, &position, &live, None, 0).contains("alerts"));
    }

    #[test]
    fn a_redraw_goes_back_over_the_previous_frame() {
        let lines = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(redraw(0, &lines), "\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[J");
        assert!(redraw(7, &lines).starts_with("\r\x1b[7A"));
        assert_eq!(erase(2), "\r\x1b[2A\x1b[J");
    }

    #[test]
    fn sparklines_scale_to_their_maximum() {
        assert_eq!(sparkline(&[0.0, 5.0, 10.0], 10), "▁▅█");
        assert_eq!(sparkline(&[1.0, 2.0, 3.0], 2), "▆█");
        assert_eq!(sparkline(&[0.0, 0.0], 5), "▁▁");
    }
}

//! Progress while a run goes on: on a terminal, one line redrawn in place every second; otherwise a
//! plain line every five seconds. Reads the engine's position and the recorder's live view; writes to
//! stderr so stdout keeps only the summary.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::engine::Position;
use crate::scenario::Scenario;
use crate::stats::Live;

/// Prints progress until `done` turns true.
pub async fn show(
    scenario: Arc<Scenario>,
    position: Arc<Mutex<Position>>,
    live: Arc<Mutex<Live>>,
    alerts: Arc<Mutex<String>>,
    mut done: watch::Receiver<bool>,
) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.changed() => break,
        }
        let line = line(
            &scenario,
            &position.lock().unwrap_or_else(|e| e.into_inner()),
            &live.lock().unwrap_or_else(|e| e.into_inner()),
            &alerts.lock().unwrap_or_else(|e| e.into_inner()),
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
    if tty {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

/// One progress line.
pub fn line(scenario: &Scenario, pos: &Position, live: &Live, alerts: &str) -> String {
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
        Some(p) => {
            let ratio = if p.completed > 0 {
                p.errors as f64 / p.completed as f64 * 100.0
            } else {
                0.0
            };
            (p.completed as f64, ratio, p.p95_ms)
        }
        None => (0.0, 0.0, 0.0),
    };
    let mut line = format!(
        "{phase} | sent {} done {} | {rps:.0} rps err {err:.1}% p95 {p95:.1}ms | in flight {}",
        pos.sent, live.completed, pos.in_flight
    );
    if !alerts.is_empty() {
        line.push_str(" | ");
        line.push_str(alerts);
    }
    line
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

//! The answer of `GET /api/state`: the run as it stands, from the snapshot the panel reads, the
//! engine's steering state and the predicted alert timeline. [`state`] is a pure read.

use serde::Serialize;
use target_app::chaos::Fault;
use tokio::time::Instant;

use super::Sources;
use crate::shared::control::{Change, RateSet};
use crate::shared::{State as AlertState, Transition};

/// The predicted alert transitions (seconds from the run's start), as the schedule now stands.
pub type Predicted = Vec<Transition>;

/// The running phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseState {
    pub index: usize,
    pub name: String,
    /// Seconds since it started.
    pub elapsed_s: f64,
}

/// One alert as Prometheus reports it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertNow {
    pub alert: String,
    pub state: AlertState,
}

/// The run as it stands.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub scenario: String,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// The run is over: nothing more can change.
    pub finished: bool,
    pub phase: Option<PhaseState>,
    /// Every phase's name, in order.
    pub phases: Vec<String>,
    /// Requests per second asked for now (`None` in a closed-loop phase).
    pub target_rps: Option<f64>,
    /// Requests sent in the last complete second.
    pub achieved_rps: Option<f64>,
    /// Share of the last second's answers that failed.
    pub error_ratio: Option<f64>,
    /// p95 latency over the last few seconds, in milliseconds.
    pub p95_ms: Option<f64>,
    /// The rate set live, if any.
    pub rate: Option<RateSet>,
    pub paused: bool,
    /// Faults in force on the target.
    pub faults: Vec<Fault>,
    /// Pending and firing alerts at the last poll (`None` when alerts are not checked).
    pub alerts: Option<Vec<AlertNow>>,
    /// The next predicted alert change.
    pub next_alert: Option<Transition>,
    /// Every change so far, oldest first.
    pub changes: Vec<Change>,
}

/// The state at `now`.
pub fn state(sources: &Sources, now: Instant) -> State {
    let snapshot = sources.snapshot.borrow().clone();
    let steering = sources.steer.state.borrow().clone();
    let elapsed_s = now.saturating_duration_since(sources.start).as_secs_f64();
    let phase = snapshot
        .position
        .phase
        .zip(snapshot.position.phase_started)
        .and_then(|(index, started)| {
            let name = sources.scenario.phases.get(index)?.name.clone();
            Some(PhaseState {
                index,
                name,
                elapsed_s: now.saturating_duration_since(started).as_secs_f64(),
            })
        });
    let last = snapshot.live.last;
    let next_alert = sources
        .predicted
        .borrow()
        .iter()
        .find(|t| t.at_s > elapsed_s)
        .cloned();
    State {
        scenario: sources.scenario.name.clone(),
        elapsed_s,
        finished: snapshot.finished,
        phase,
        phases: sources.scenario.phases.iter().map(|p| p.name.clone()).collect(),
        target_rps: steering.target_rps,
        achieved_rps: last.map(|p| p.sent as f64),
        error_ratio: last
            .filter(|p| p.completed > 0)
            .map(|p| p.errors as f64 / p.completed as f64),
        p95_ms: snapshot.live.window.filter(|w| w.count > 0).map(|w| w.p95_ms),
        rate: steering.rate,
        paused: steering.paused,
        faults: steering.faults,
        alerts: snapshot.alerts.map(|list| {
            list.into_iter()
                .map(|(alert, state)| AlertNow { alert, state })
                .collect()
        }),
        next_alert,
        changes: steering.changes,
    }
}

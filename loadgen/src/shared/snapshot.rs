//! The one view of a run in progress, published on one `watch` channel: where the engine is
//! ([`Position`]), what the recorder has counted ([`Live`]), and which alerts Prometheus reports active.
//!
//! The recorder publishes it on its tick, merging the engine's latest [`Position`] with its own
//! counts; the alert watcher adds the alerts of each answered poll. The live panel, the metrics
//! endpoint and the alert watcher read it. Nothing here counts, polls or prints.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::shared::alert::Active;
use crate::shared::outcome::Class;

/// What the display needs to know about where the run is.
#[derive(Debug, Clone, Default)]
pub struct Position {
    /// Index of the running phase (`None` before the first and after the last).
    pub phase: Option<usize>,
    /// When the running phase started.
    pub phase_started: Option<Instant>,
    /// Requests in flight.
    pub in_flight: usize,
    /// Requests sent so far.
    pub sent: u64,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Point {
    /// Seconds since the start of the run.
    pub second: u64,
    /// Requests sent in this second.
    pub sent: u64,
    /// Requests completed in this second.
    pub completed: u64,
    /// Completed requests that failed.
    pub errors: u64,
    /// Corrected latency percentiles of the requests completed in this second, in milliseconds.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Uncorrected p99 of the same requests, in milliseconds.
    pub p99_uncorrected_ms: f64,
}

/// The recorder's part of the run's [`Snapshot`](crate::shared::Snapshot): what the progress display,
/// the metrics endpoint and the alert watcher read while the run goes on.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Requests completed so far.
    pub completed: u64,
    /// Of which failed.
    pub errors: u64,
    /// The last complete second.
    pub last: Option<Point>,
    /// The last [`RECENT_SECONDS`] complete seconds, oldest first.
    pub recent: VecDeque<Point>,
    /// Corrected latency percentiles over the last [`WINDOW_SECONDS`] complete seconds.
    pub window: Option<WindowPercentiles>,
    /// Counts per phase, copied from the recorder's statistics on each publication and at the end.
    pub phases: Vec<LivePhase>,
    /// Schedule lag of the run so far (count and sum) and of the latest phase (quantiles).
    pub lag: LagSummary,
}

/// The counts of one phase, as last published by the recorder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LivePhase {
    /// Completed requests per outcome class, per request of the mix.
    pub requests: Vec<[u64; Class::ALL.len()]>,
    pub late: u64,
    pub dropped: u64,
}

/// Schedule lag in seconds, in the shape of a Prometheus summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagSummary {
    /// Requests sent so far.
    pub count: u64,
    /// Sum of their lag.
    pub sum: f64,
    /// `(quantile, value)` over the latest phase that sent requests.
    pub quantiles: Vec<(f64, f64)>,
}

/// How many complete seconds the live view keeps.
pub const RECENT_SECONDS: usize = 60;

/// The span of the live view's latency percentiles, in seconds.
pub const WINDOW_SECONDS: usize = 5;

/// Latency percentiles (milliseconds) of the requests completed in the last few seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowPercentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Requests they are computed from.
    pub count: u64,
}

/// How a run stands, as last published.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The engine's position, as of the recorder's last tick.
    pub position: Position,
    /// The recorder's counts.
    pub live: Live,
    /// The alerts active at the watcher's last answered poll.
    pub alerts: Active,
    /// Polls of Prometheus that failed since its last answer: while it is not zero, what the alerts do
    /// is not observed.
    pub alert_polls_failing: u64,
    /// The engine has returned and the recorder has published its last counts: nothing will change.
    pub finished: bool,
}

/// A channel for one run's snapshots, starting empty.
pub fn channel() -> (watch::Sender<Snapshot>, watch::Receiver<Snapshot>) {
    watch::channel(Snapshot::default())
}

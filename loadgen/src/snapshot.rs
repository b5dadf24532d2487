//! The one view of a run in progress, published on one `watch` channel: where the engine is, what the
//! recorder has counted, and which alerts Prometheus reports active.
//!
//! The recorder publishes it on its tick, merging the engine's latest [`Position`] with its own
//! counts; the alert watcher adds the alerts of each answered poll. The live panel, the metrics
//! endpoint and the alert watcher read it. Nothing here counts, polls or prints.

use tokio::sync::watch;

use crate::alerts::Active;
use crate::engine::Position;
use crate::stats::Live;

/// How a run stands, as last published.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The engine's position, as of the recorder's last tick.
    pub position: Position,
    /// The recorder's counts.
    pub live: Live,
    /// The alerts active at the watcher's last answered poll.
    pub alerts: Active,
    /// The engine has returned and the recorder has published its last counts: nothing will change.
    pub finished: bool,
}

/// A channel for one run's snapshots, starting empty.
pub fn channel() -> (watch::Sender<Snapshot>, watch::Receiver<Snapshot>) {
    watch::channel(Snapshot::default())
}

//! The one view of a run in progress, published on one `watch` channel: where the engine is, what the
//! recorder has counted, and which alerts Prometheus reports active.
//!
//! The recorder publishes it on its tick, merging the engine's latest [`Position`] with its own
//! counts; the alert watcher adds the alerts of each answered poll. The live panel, the metrics
//! endpoint and the alert watcher read it. Nothing here counts, polls or prints.

use tokio::sync::watch;

use crate::alerts::Active;
use crate::engine::stats::Live;
use crate::engine::Position;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::watch;
    use tokio::time::Instant;

    use super::channel;
    use crate::alerts::State;
    use crate::engine::stats::{Record, Recorder, Sample, Sink};
    use crate::engine::Position;
    use crate::shared::outcome::Class;

    #[tokio::test(start_paused = true)]
    async fn the_recorder_publishes_its_counts_with_the_engines_position_until_the_engine_is_gone() {
        let start = Instant::now();
        let sink = Sink::new();
        let (position, position_rx) = watch::channel(Position::default());
        let (snapshot, snapshot_rx) = channel();
        let recorder = Recorder::new(&[1], start, Duration::from_secs(10));
        let recorder = tokio::spawn(recorder.run(sink.clone(), position_rx, snapshot.clone()));

        position.send_replace(Position {
            phase: Some(0),
            phase_started: Some(start),
            in_flight: 1,
            sent: 2,
        });
        sink.record(Sample::unanswered(0, 0, start, Some(start), Class::Timeout));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = snapshot_rx.borrow().clone();
        assert_eq!((now.position.phase, now.position.sent), (Some(0), 2));
        assert_eq!((now.live.completed, now.live.errors), (1, 1));
        assert_eq!(now.live.phases[0].requests[0][Class::Timeout.index()], 1);
        assert!(!now.finished);

        // The alert watcher's part is kept across the recorder's publications.
        snapshot.send_modify(|s| s.alerts = Some(vec![("HighLatency".into(), State::Pending)]));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(snapshot_rx.borrow().alerts.is_some());

        // The engine's last word, then it is gone: the recorder publishes once more and ends.
        sink.record(Sample::unanswered(0, 0, start, None, Class::Other));
        position.send_replace(Position {
            phase: None,
            phase_started: None,
            in_flight: 0,
            sent: 2,
        });
        drop(position);
        let stats = recorder.await.unwrap();
        let last = snapshot_rx.borrow().clone();
        assert!(last.finished);
        assert_eq!((last.position.phase, last.position.in_flight), (None, 0));
        assert_eq!(
            last.live.phases[0].dropped, 1,
            "the last sample is in the last snapshot"
        );
        assert_eq!(
            last.alerts,
            Some(vec![("HighLatency".to_owned(), State::Pending)])
        );
        assert_eq!(
            (stats.phases[0].total.errors(), stats.phases[0].total.dropped),
            (1, 1)
        );
    }
}

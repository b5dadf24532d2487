//! The one owner of the run's statistics. Workers hand it a [`Sample`] per request; it keeps HDR
//! histograms per phase and per request of the mix, corrected (from the intended send time) and
//! uncorrected (from the actual send), counts per outcome class and status, and a per-second series.
//!
//! Memory does not grow with the number of requests: histograms have a fixed size, and the series holds
//! one small point per second of the scenario.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{Response, Version};
use crate::shared::outcome::Class;
use crate::shared::snapshot::{
    LagSummary, Live, LivePhase, Point, WindowPercentiles, RECENT_SECONDS, WINDOW_SECONDS,
};
use crate::shared::Position;
use crate::shared::Snapshot;

/// Highest latency tracked, in microseconds (1 hour); larger values are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// A request started later than this after its intended time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);

/// One finished (or dropped) request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub phase: usize,
    /// Index of the request in the phase's mix.
    pub request: usize,
    /// When it should have been sent.
    pub intended: Instant,
    /// When it was sent; `None` if it never was (dropped).
    pub started: Option<Instant>,
    /// When the answer (or failure) came.
    pub finished: Instant,
    pub class: Class,
    pub status: Option<u16>,
    /// The HTTP version the answer came in.
    pub version: Option<Version>,
    /// Time spent opening a connection for this request, when it needed one.
    pub handshake: Option<Duration>,
    /// Whether it was handed back unsent once and sent again on a fresh connection.
    pub resent: bool,
}

impl Sample {
    /// The sample of a request of the mix that was sent at `started` and answered `response`,
    /// complete at `finished`.
    pub fn answered(
        phase: usize,
        request: usize,
        intended: Instant,
        started: Instant,
        finished: Instant,
        response: &Response,
    ) -> Sample {
        Sample {
            phase,
            request,
            intended,
            started: Some(started),
            finished,
            class: response.class,
            status: response.status,
            version: response.version,
            handshake: response.handshake,
            resent: response.resent,
        }
    }

    /// A request that was never sent (`started` is `None`) or was cancelled in flight.
    pub fn unanswered(
        phase: usize,
        request: usize,
        intended: Instant,
        started: Option<Instant>,
        class: Class,
    ) -> Sample {
        Sample {
            phase,
            request,
            intended,
            started,
            finished: Instant::now(),
            class,
            status: None,
            version: None,
            handshake: None,
            resent: false,
        }
    }
}

/// Latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Counts and latencies of a set of requests.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency from the intended send time (coordinated omission corrected).
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time.
    pub uncorrected: Histogram<u64>,
    /// Schedule lag: actual minus intended send time.
    pub lag: Histogram<u64>,
    /// Completed requests per outcome class, indexed by [`Class::index`].
    pub classes: [u64; Class::ALL.len()],
    /// Completed requests per HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests started more than [`LATE_AFTER`] after their intended time.
    pub late: u64,
    /// Requests that never started (no free slot before the phase ended, or the run was stopped).
    pub dropped: u64,
    /// Time to open each new connection (TCP and TLS), in microseconds; apart from request latency.
    pub handshake: Histogram<u64>,
    /// Answers per HTTP version, indexed by [`Version::index`].
    pub versions: [u64; Version::ALL.len()],
    /// Requests handed back unsent by a closing connection and sent again (counted once).
    pub resent: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            corrected: histogram(),
            uncorrected: histogram(),
            lag: histogram(),
            classes: [0; Class::ALL.len()],
            statuses: BTreeMap::new(),
            late: 0,
            dropped: 0,
            handshake: histogram(),
            versions: [0; Version::ALL.len()],
            resent: 0,
        }
    }
}

impl Stats {
    fn add(&mut self, s: &Sample) {
        let Some(started) = s.started else {
            self.dropped += 1;
            return;
        };
        let micros = |d: Duration| (d.as_micros() as u64).clamp(1, MAX_MICROS);
        if let Some(h) = s.handshake {
            self.handshake.saturating_record(micros(h));
        }
        if matches!(s.class, Class::Cancelled | Class::Panicked) {
            // Never finished: no latency to record.
            self.classes[s.class.index()] += 1;
            return;
        }
        if let Some(v) = s.version {
            self.versions[v.index()] += 1;
        }
        self.resent += u64::from(s.resent);
        self.corrected.saturating_record(micros(s.finished - s.intended));
        self.uncorrected.saturating_record(micros(s.finished - started));
        let lag = started.saturating_duration_since(s.intended);
        self.lag.saturating_record(micros(lag));
        if lag > LATE_AFTER {
            self.late += 1;
        }
        self.classes[s.class.index()] += 1;
        if let Some(status) = s.status {
            *self.statuses.entry(status).or_default() += 1;
        }
    }

    /// Requests that completed (with an answer or a failure; cancelled and panicked ones did not).
    pub fn completed(&self) -> u64 {
        self.classes.iter().sum::<u64>()
            - self.classes[Class::Cancelled.index()]
            - self.classes[Class::Panicked.index()]
    }

    /// Completed requests that failed.
    pub fn errors(&self) -> u64 {
        Class::ALL
            .iter()
            .filter(|c| c.is_error())
            .map(|c| self.classes[c.index()])
            .sum()
    }

    /// Failed / completed, or 0 with none completed.
    pub fn error_ratio(&self) -> f64 {
        match self.completed() {
            0 => 0.0,
            n => self.errors() as f64 / n as f64,
        }
    }

    /// Merges `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.lag.add(&other.lag);
        for (a, b) in self.classes.iter_mut().zip(other.classes.iter()) {
            *a += b;
        }
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.late += other.late;
        self.dropped += other.dropped;
        let _ = self.handshake.add(&other.handshake);
        for (a, b) in self.versions.iter_mut().zip(other.versions.iter()) {
            *a += b;
        }
        self.resent += other.resent;
    }
}

/// Everything recorded for one phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseStats {
    pub total: Stats,
    /// Per request of the phase's mix.
    pub requests: Vec<Stats>,
}

/// What the recorder hands back at the end.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub phases: Vec<PhaseStats>,
    pub series: Vec<Point>,
}

/// Quantiles published for the schedule lag.
pub const LAG_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// Where the workers leave their results: a few buffers, each behind its own lock, taken by the
/// worker thread's index so that two threads rarely meet on one. The recorder empties them every
/// few milliseconds; nothing wakes it per request.
pub struct Sink {
    shards: Box<[Mutex<Vec<Sample>>]>,
}

/// Something results can be handed to: the [`Sink`] in a run, a channel in tests.
pub trait Record: Send + Sync + 'static {
    fn record(&self, sample: Sample);
}

impl Record for Sink {
    fn record(&self, sample: Sample) {
        let i = SHARD.with(|s| *s) % self.shards.len();
        self.shards[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sample);
    }
}

impl Record for mpsc::UnboundedSender<Sample> {
    fn record(&self, sample: Sample) {
        let _ = self.send(sample);
    }
}

static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    /// This thread's buffer index, given out in turn as threads first record.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

impl Sink {
    /// One buffer per core the process may run on, at least one.
    pub fn new() -> Arc<Sink> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Sink {
            shards: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        })
    }

    /// Moves every buffered sample into `into`, leaving the buffers' capacity for the workers.
    fn take(&self, into: &mut Vec<Sample>) {
        for shard in self.shards.iter() {
            let mut buffer = shard.lock().unwrap_or_else(|e| e.into_inner());
            into.extend(buffer.drain(..));
        }
    }
}

/// How often the recorder empties the [`Sink`].
const COLLECT_EVERY: Duration = Duration::from_millis(20);

/// How often the recorder publishes a [`Snapshot`].
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Keeps the statistics of the samples it collects from the [`Sink`].
pub struct Recorder {
    phases: Vec<PhaseStats>,
    /// One point per second, indexed by second; never longer than `max_seconds`.
    series: Vec<Point>,
    max_seconds: usize,
    /// Latencies of the requests completed in `current_second`, for its percentiles.
    second_hist: (Histogram<u64>, Histogram<u64>),
    /// Corrected latencies of the last few complete seconds, for the live view; newest last.
    window: VecDeque<Histogram<u64>>,
    current_second: u64,
    start: Instant,
    /// What the next [`Snapshot`] carries of the recorder's counts.
    live: Live,
}

impl Recorder {
    /// A recorder for phases with `mix_sizes[i]` requests each, for a run starting at `start` and
    /// lasting about `duration` (the series is sized from it, plus a margin for draining).
    pub fn new(mix_sizes: &[usize], start: Instant, duration: Duration) -> Recorder {
        let coarse = || Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("valid histogram bounds");
        Recorder {
            phases: mix_sizes
                .iter()
                .map(|n| PhaseStats {
                    requests: vec![Stats::default(); *n],
                    ..PhaseStats::default()
                })
                .collect(),
            series: Vec::new(),
            max_seconds: duration.as_secs() as usize + 120,
            second_hist: (coarse(), coarse()),
            window: VecDeque::with_capacity(WINDOW_SECONDS + 1),
            current_second: 0,
            start,
            live: Live::default(),
        }
    }

    /// Collects from `sink` and publishes a [`Snapshot`] (its counts and the engine's latest
    /// `position`) every [`PUBLISH_EVERY`], until the engine drops its end of `position` (it has
    /// returned, so nothing more will be recorded). Then publishes the last counts, marks the
    /// snapshot finished and returns the statistics.
    pub async fn run(
        mut self,
        sink: Arc<Sink>,
        mut position: watch::Receiver<Position>,
        snapshot: watch::Sender<Snapshot>,
    ) -> RunStats {
        let mut collect = tokio::time::interval(COLLECT_EVERY);
        collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_publish = Instant::now();
        let mut batch = Vec::new();
        loop {
            let finished = tokio::select! {
                _ = collect.tick() => false,
                changed = position.changed() => changed.is_err(),
            };
            sink.take(&mut batch);
            for sample in batch.drain(..) {
                self.add(&sample);
            }
            if finished {
                break;
            }
            if Instant::now() >= next_publish {
                self.roll_to(self.second_of(Instant::now()));
                self.publish(&position, &snapshot, false);
                next_publish = Instant::now() + PUBLISH_EVERY;
            }
        }
        self.close_second();
        self.publish(&position, &snapshot, true);
        RunStats {
            phases: self.phases,
            series: self.series,
        }
    }

    /// Copies the counts kept for the reports to the live view, so the metrics endpoint shows the same
    /// numbers as the final report without counting them a second time, and publishes it with the
    /// engine's `position`.
    fn publish(
        &mut self,
        position: &watch::Receiver<Position>,
        snapshot: &watch::Sender<Snapshot>,
        finished: bool,
    ) {
        let phases: Vec<LivePhase> = self
            .phases
            .iter()
            .map(|p| LivePhase {
                requests: p.requests.iter().map(|r| r.classes).collect(),
                late: p.total.late,
                dropped: p.total.dropped,
            })
            .collect();
        let sent = |p: &PhaseStats| p.total.lag.len();
        let count = self.phases.iter().map(sent).sum();
        let sum = self
            .phases
            .iter()
            .filter(|p| sent(p) > 0)
            .map(|p| p.total.lag.mean() * p.total.lag.len() as f64 / 1e6)
            .sum();
        let quantiles = match self.phases.iter().rev().find(|p| sent(p) > 0) {
            Some(p) => LAG_QUANTILES
                .iter()
                .map(|q| (*q, p.total.lag.value_at_quantile(*q) as f64 / 1e6))
                .collect(),
            None => Vec::new(),
        };
        self.live.phases = phases;
        self.live.lag = LagSummary {
            count,
            sum,
            quantiles,
        };
        let position = position.borrow().clone();
        snapshot.send_modify(|s| {
            s.live.clone_from(&self.live);
            s.position = position;
            s.finished = finished;
        });
    }

    fn second_of(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_secs()
    }

    fn point(&mut self, second: u64) -> &mut Point {
        let i = (second as usize).min(self.max_seconds - 1);
        if self.series.len() <= i {
            let from = self.series.len();
            self.series.extend((from..=i).map(|s| Point {
                second: s as u64,
                ..Point::default()
            }));
        }
        &mut self.series[i]
    }

    /// Closes every second before `second`, publishing the last closed one to the live view.
    fn roll_to(&mut self, second: u64) {
        while self.current_second < second {
            self.close_second();
            self.current_second += 1;
        }
        let last = self.current_second.checked_sub(1).map(|s| *self.point(s));
        let window = self.window_percentiles();
        let live = &mut self.live;
        if let Some(p) = last.filter(|p| live.recent.back().is_none_or(|b| b.second < p.second)) {
            if live.recent.len() == RECENT_SECONDS {
                live.recent.pop_front();
            }
            live.recent.push_back(p);
        }
        live.last = last;
        live.window = window;
    }

    fn window_percentiles(&self) -> Option<WindowPercentiles> {
        let mut sum = self.window.front()?.clone();
        for h in self.window.iter().skip(1) {
            let _ = sum.add(h);
        }
        if sum.is_empty() {
            return None;
        }
        let ms = |q: f64| sum.value_at_quantile(q) as f64 / 1000.0;
        Some(WindowPercentiles {
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            count: sum.len(),
        })
    }

    fn close_second(&mut self) {
        let (corrected, uncorrected) = &mut self.second_hist;
        let q = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let (p50, p95, p99, p99u) = (
            q(corrected, 0.5),
            q(corrected, 0.95),
            q(corrected, 0.99),
            q(uncorrected, 0.99),
        );
        if self.window.len() == WINDOW_SECONDS {
            if let Some(mut oldest) = self.window.pop_front() {
                oldest.reset();
                let _ = oldest.add(&*corrected);
                self.window.push_back(oldest);
            }
        } else {
            self.window.push_back(corrected.clone());
        }
        corrected.reset();
        uncorrected.reset();
        let p = self.point(self.current_second);
        p.p50_ms = p50;
        p.p95_ms = p95;
        p.p99_ms = p99;
        p.p99_uncorrected_ms = p99u;
    }

    fn add(&mut self, s: &Sample) {
        if let Some(phase) = self.phases.get_mut(s.phase) {
            phase.total.add(s);
            if let Some(r) = phase.requests.get_mut(s.request) {
                r.add(s);
            }
        }
        let Some(started) = s.started else {
            return;
        };
        if matches!(s.class, Class::Cancelled | Class::Panicked) {
            // Sent, never completed.
            let sent_second = self.second_of(started);
            self.point(sent_second).sent += 1;
            return;
        }
        self.live.completed += 1;
        if s.class.is_error() {
            self.live.errors += 1;
        }
        let second = self.second_of(s.finished);
        if second > self.current_second {
            self.roll_to(second);
        }
        let sent_second = self.second_of(started);
        self.point(sent_second).sent += 1;
        let p = self.point(second);
        p.completed += 1;
        if s.class.is_error() {
            p.errors += 1;
        }
        let micros = |d: Duration| (d.as_micros() as u64).clamp(1, MAX_MICROS);
        self.second_hist
            .0
            .saturating_record(micros(s.finished - s.intended));
        self.second_hist.1.saturating_record(micros(s.finished - started));
    }
}

#[cfg(test)]
mod snapshot_tests {
    use std::time::Duration;

    use tokio::sync::watch;
    use tokio::time::Instant;

    use crate::engine::stats::{Record, Recorder, Sample, Sink};
    use crate::shared::outcome::Class;
    use crate::shared::snapshot::channel;
    use crate::shared::Position;
    use crate::shared::State;

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

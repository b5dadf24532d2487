//! The engine: runs the phases in order, applying each phase's faults at its start, pacing requests
//! open-loop at absolute deadlines (`phase start + Λ⁻¹(k)`) or closed-loop with N workers, and handing
//! every result to the recorder.
//!
//! Latency is measured from the intended send time. When every in-flight slot is taken, the pacer waits
//! for one and the request goes out late (counted); if the phase ends first, it is dropped (counted).
//! Nothing is skipped silently. The engine does not compute statistics or print anything.
//!
//! Stopping is bounded: after a stop (or the last phase), requests in flight get at most the drain
//! time; those still running then are cancelled and counted as `cancelled`, so the run always ends
//! within the drain time of the stop. A second stop (the stop channel sent again) cancels them at once.

#[cfg(target_os = "linux")]
mod clock;
mod pieces;

pub use pieces::Driven;
pub mod stats;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use std::future::Future;

use target_app::chaos::Fault;

use crate::client::chaos::{ChaosClient, ChaosError};
#[cfg(target_os = "linux")]
pub use crate::client::Lease;
use crate::client::{Client, Own, Response};
use crate::engine::stats::{Record, Sample};
use crate::scenario::{Load, Request, Scenario};
use crate::schedule::{PhaseStarts, Shard};
use crate::shared::control::Control;
use crate::shared::outcome::Class;
use crate::shared::{Position, Timeline};

/// Closed-loop request numbers start here, above any open-loop schedule, so they never collide.
const CLOSED_LOOP_NUMBERS: u64 = 1 << 48;

/// Far enough ahead to mean "never" (tokio's timers take thirty years the same way).
const NEVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + by`, with `by` cut to [`NEVER`]: a timeout or drain too large for an `Instant` waits as long as
/// the timers can, instead of panicking (validation keeps a scenario's durations within a year).
fn later(at: Instant, by: Duration) -> Instant {
    // Thirty years past a monotonic clock reading fits on every platform tokio runs on; the fallback
    // only keeps this free of a panic path.
    at.checked_add(by.min(NEVER)).unwrap_or(at)
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every phase ran to its end.
    Completed,
    /// Stopped early by a signal.
    Interrupted,
}

/// Why the run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("phase `{phase}`: {source}")]
    Chaos { phase: String, source: ChaosError },
}

/// How the engine sends one request: the HTTP client in production, a scripted fake in tests.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request`, giving up at `deadline`; never fails, a failure is a [`Response`] class.
    fn send(&self, request: &Request, deadline: Instant) -> impl Future<Output = Response> + Send;

    /// Sends `request` for a closed-loop worker, which keeps `own` (its connection) between its
    /// requests. By default, the same as [`Transport::send`].
    fn send_own(
        &self,
        own: &mut Own,
        request: &Request,
        deadline: Instant,
    ) -> impl Future<Output = Response> + Send {
        let _ = own;
        self.send(request, deadline)
    }

    /// Opens up to `n` connections before the first request needs one. By default, nothing.
    fn warm(&self, n: usize) -> impl Future<Output = ()> + Send {
        let _ = n;
        std::future::ready(())
    }

    /// A lease for a pacer that reads the open loop's answers at its own wake-ups; `None` (the
    /// default) when they wake the runtime as they arrive.
    #[cfg(target_os = "linux")]
    fn lease(&self) -> Option<Lease> {
        None
    }
}

impl Transport for Client {
    fn send(&self, request: &Request, deadline: Instant) -> impl Future<Output = Response> + Send {
        Client::send(self, request, deadline)
    }

    fn send_own(
        &self,
        own: &mut Own,
        request: &Request,
        deadline: Instant,
    ) -> impl Future<Output = Response> + Send {
        Client::send_own(self, own, request, deadline)
    }

    async fn warm(&self, n: usize) {
        Client::warm(self, n).await;
    }

    #[cfg(target_os = "linux")]
    fn lease(&self) -> Option<Lease> {
        Client::lease(self)
    }
}

/// How the engine applies and clears a phase's faults: the target's chaos API in production.
pub trait Faults: Send + Sync {
    /// Replaces the target's faults with `faults`, decided from `seed`.
    fn apply(&self, seed: u64, faults: &[Fault]) -> impl Future<Output = Result<(), ChaosError>> + Send;
    /// Clears every fault.
    fn clear(&self) -> impl Future<Output = Result<(), ChaosError>> + Send;
}

impl Faults for ChaosClient {
    fn apply(&self, seed: u64, faults: &[Fault]) -> impl Future<Output = Result<(), ChaosError>> + Send {
        ChaosClient::apply(self, seed, faults)
    }

    fn clear(&self) -> impl Future<Output = Result<(), ChaosError>> + Send {
        ChaosClient::clear(self)
    }
}

/// Everything the engine needs.
pub struct Engine<T: Transport = Client, F: Faults = ChaosClient> {
    pub scenario: Arc<Scenario>,
    pub client: Arc<T>,
    pub chaos: Option<F>,
    pub shard: Shard,
    /// Counted once before the run, from `scenario`.
    pub starts: PhaseStarts,
    /// Where each request's result goes.
    pub samples: Arc<dyn Record>,
    pub stop: watch::Receiver<bool>,
    /// Where the run is, published on phase changes and, in open-loop phases, every 100 ms.
    pub position: watch::Sender<Position>,
    pub start: Instant,
    /// How long to wait for in-flight requests after the last phase or a stop.
    pub drain: Duration,
    /// How the open-loop pacer waits for each deadline.
    pub pacing: Pacing,
    /// Live control: orders to obey during the run, and where to publish their effect.
    pub control: Option<Control>,
    /// Where the schedule as it now stands is published after each change (the pieces run so far,
    /// then the rest of the scenario with the changes in force), for the predictions to follow.
    pub planned: Option<watch::Sender<Arc<Scenario>>>,
}

/// How the open-loop pacer waits for each request's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Pacing {
    /// As a task woken by the OS clock at each deadline (tens of microseconds late), at most once
    /// every 500 µs, sending every request due by then. On systems without timer descriptors
    /// (other than Linux), as [`Pacing::Timer`].
    #[default]
    Precise,
    /// As a task on tokio's timer, which wakes on millisecond ticks (up to one tick late). Needed
    /// under a paused clock, which only tasks on the runtime see.
    Timer,
}

struct Shared {
    in_flight: AtomicUsize,
    sent: AtomicU64,
    /// Turns true when the requests still in flight are to be cancelled.
    cancel: watch::Receiver<bool>,
}

/// The request a task has in flight, owned by that task: counted in `in_flight` from [`InFlight::start`]
/// to [`InFlight::done`], and given back when dropped, however the task ends. A request dropped before
/// its result was recorded is recorded then: `panicked` when its task panicked, `cancelled` when its
/// task was dropped. So no count is ever left for the drain to wait on. A closed-loop worker keeps one
/// for all its requests; an open-loop request has one of its own.
struct InFlight {
    shared: Arc<Shared>,
    samples: Arc<dyn Record>,
    /// Phase, request of the mix, intended and actual send time, while one is in flight.
    request: Option<(usize, usize, Instant, Option<Instant>)>,
}

impl InFlight {
    fn new(shared: Arc<Shared>, samples: Arc<dyn Record>) -> Self {
        InFlight {
            shared,
            samples,
            request: None,
        }
    }

    /// A request goes out.
    fn start(&mut self, request: (usize, usize, Instant, Option<Instant>)) {
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
        self.request = Some(request);
    }

    /// Records what became of the request in flight; it is no longer in flight.
    fn done(&mut self, sample: Sample) {
        self.samples.record(sample);
        if self.request.take().is_some() {
            self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((index, which, intended, sent)) = self.request.take() {
            let class = if std::thread::panicking() {
                Class::Panicked
            } else {
                Class::Cancelled
            };
            self.samples
                .record(Sample::unanswered(index, which, intended, sent, class));
            self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How long requests still in flight after the cancellation may take to record themselves.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

impl<T: Transport, F: Faults> Engine<T, F> {
    /// Runs every phase. Faults applied to the target are cleared before returning, whatever happens.
    pub async fn run(self) -> (Result<Ending, EngineError>, Timeline) {
        let (result, timeline, _) = self.run_driven().await;
        (result, timeline)
    }

    /// [`Engine::run`], also giving the run as driven: the pieces it ran, split at every change.
    pub async fn run_driven(mut self) -> (Result<Ending, EngineError>, Timeline, Driven) {
        let mut timeline = Timeline::default();
        let mut driven = Driven::default();
        let mut control = self.control.take();
        let (cancel_tx, cancel) = watch::channel(false);
        let shared = Arc::new(Shared {
            in_flight: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            cancel,
        });
        // A stop in the middle of a phase starts the drain clock at once, even while a closed-loop
        // phase is still waiting for its workers.
        let watchdog = {
            let mut stop = self.stop.clone();
            let cancel_tx = cancel_tx.clone();
            let drain = self.drain;
            tokio::spawn(async move {
                if stop.wait_for(|s| *s).await.is_ok() {
                    // A second stop (a second Ctrl-C) cuts the drain short; a stop channel whose sender
                    // is gone sends nothing more.
                    tokio::select! {
                        () = tokio::time::sleep(drain) => {}
                        Ok(()) = stop.changed() => {}
                    }
                    let _ = cancel_tx.send(true);
                }
            })
        };
        let max_in_flight = self.scenario.defaults.max_in_flight.get() as usize;
        let slots = Arc::new(Semaphore::new(max_in_flight));
        // An open loop's first requests find connections open, and are as punctual as the rest.
        if let Some(Load::Open { .. }) = self.scenario.phases.first().map(|p| &p.load) {
            self.client.warm(WARM.min(max_in_flight)).await;
        }
        let result = self
            .phases(&mut control, &shared, &slots, &mut timeline, &mut driven)
            .await;

        // Let in-flight requests finish within the drain time, then cancel the rest; each records
        // itself as cancelled at once.
        let drained = later(Instant::now(), self.drain);
        while shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = cancel_tx.send(true);
        let given_up = Instant::now() + CANCEL_GRACE;
        while shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < given_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stuck = shared.in_flight.load(Ordering::Relaxed);
        if stuck > 0 {
            eprintln!(
                "loadgen: {stuck} requests did not end when cancelled; they are left out of the report"
            );
        }
        watchdog.abort();
        self.set_position(&shared, None, None);
        if let Some(chaos) = &self.chaos {
            if !timeline.faults.is_empty() {
                if let Err(e) = chaos.clear().await {
                    eprintln!("loadgen: could not clear the faults on the target: {e}");
                }
            }
        }
        if let Some(control) = &control {
            control.state.send_modify(|s| {
                s.faults.clear();
                s.target_rps = None;
            });
        }
        (result, timeline, driven)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn set_position(&self, shared: &Shared, phase: Option<usize>, started: Option<Instant>) {
        set_position(&self.position, shared, phase, started);
    }

    /// Starts `concurrency` workers of phase `index` (numbered as piece `piece`), which send until
    /// `end` or until `halt` turns true.
    fn closed_loop(
        &self,
        index: usize,
        piece: usize,
        concurrency: u32,
        end: Instant,
        shared: &Arc<Shared>,
        halt: &Halt,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let numbers = Arc::new(AtomicU64::new(CLOSED_LOOP_NUMBERS + ((piece as u64) << 32)));
        let mut workers = Vec::with_capacity(concurrency as usize);
        for _ in 0..concurrency {
            let scenario = self.scenario.clone();
            let client = self.client.clone();
            let numbers = numbers.clone();
            let stop = halt.clone();
            let mut cancel = shared.cancel.clone();
            // The worker's request in flight, if any, when the drain cancels it (or a panic ends the
            // task) is recorded as the guard drops.
            let mut in_flight = InFlight::new(shared.clone(), self.samples.clone());
            workers.push(tokio::spawn(async move {
                let phase = &scenario.phases[index];
                let timeout = scenario.defaults.timeout;
                let work = async {
                    let mut own = Own::default();
                    // One clock reading per request: when an answer ends, the next request starts.
                    let mut now = Instant::now();
                    while now < end && !stop.is_set() {
                        let number = numbers.fetch_add(1, Ordering::Relaxed);
                        let which = crate::schedule::pick(&phase.mix, scenario.seed, number);
                        let request = &phase.mix.requests()[which];
                        let sent = now;
                        in_flight.start((index, which, sent, Some(sent)));
                        let r = client
                            .send_own(&mut own, request, later(sent, timeout).min(later(end, timeout)))
                            .await;
                        now = Instant::now();
                        in_flight.done(Sample::answered(index, which, sent, sent, now, &r));
                    }
                };
                tokio::select! {
                    biased;
                    () = work => {}
                    _ = cancel.wait_for(|c| *c) => {}
                }
            }));
        }
        workers
    }
}

/// Connections opened before an open loop's first phase.
const WARM: usize = 8;

/// The precise pacer wakes at most once in this long, sending every arrival due by then: at high
/// rates a wake-up (and the runtime's) per request cost more than the request; this bounds what
/// batching adds to a request's lag.
const BATCH: Duration = Duration::from_micros(500);

#[cfg(target_os = "linux")]
/// The longest wait of the precise pacer during which answers wait for its next wake-up (when the
/// transport supports it): over it, they wake the runtime as they arrive.
const READ_AT_WAKE_WITHIN: Duration = Duration::from_millis(2);

/// When the precise pacer wakes: at an arrival's deadline, but at most once every [`BATCH`]; an
/// arrival already due when its turn comes is sent without a wait.
#[cfg(target_os = "linux")]
struct Batch {
    woke: Instant,
    /// Held while answers are read at the pacer's wake-ups (see [`READ_AT_WAKE_WITHIN`]).
    lease: Option<Lease>,
    /// When answers were last read.
    polled: Instant,
}

#[cfg(target_os = "linux")]
impl Batch {
    fn new(now: Instant, lease: Option<Lease>) -> Batch {
        Batch {
            woke: now,
            lease,
            polled: now,
        }
    }

    /// Before a wait until `wake`: wakes the requests answered since the last wake-up, and keeps
    /// reading answers at wake-ups only if the wait is short.
    fn before_wait(&mut self, wake: Instant, now: Instant) {
        if let Some(lease) = &mut self.lease {
            lease.poll();
            self.polled = now;
            lease.hold(wake.saturating_duration_since(now) <= READ_AT_WAKE_WITHIN);
        }
    }

    /// After a send: a pacer behind its schedule sends without waiting, and reads the answers
    /// between its sends at least once a window.
    fn sent(&mut self, now: Instant) {
        if let Some(lease) = &self.lease {
            if now >= later(self.polled, BATCH) {
                lease.poll();
                self.polled = now;
            }
        }
    }

    /// Before a wait for something other than the clock (an in-flight slot): answers must then
    /// wake the runtime, or the slot they free would never come.
    fn let_go(&mut self) {
        if let Some(lease) = &mut self.lease {
            lease.poll();
            lease.hold(false);
        }
    }

    /// When to wake for an arrival due at `intended`, seen at `now`; `None` to send it at once.
    fn wake(&self, intended: Instant, now: Instant) -> Option<Instant> {
        (now < intended).then(|| intended.max(later(self.woke, BATCH)))
    }

    fn woke(&mut self, at: Instant) {
        self.woke = at;
    }
}

/// How a pacer waits for a deadline.
enum Wait {
    /// On tokio's timer, to each arrival's deadline.
    Timer,
    /// On the OS clock, in batches.
    #[cfg(target_os = "linux")]
    Clock(clock::OsClock, Batch),
}

impl Wait {
    /// The wait for `pacing`, reading answers at its wake-ups with `lease`, if any. Without timer
    /// descriptors, the precise pacer waits on tokio's timer.
    fn new(pacing: Pacing, lease: impl FnOnce() -> Option<Lease>) -> Wait {
        match pacing {
            Pacing::Timer => Wait::Timer,
            #[cfg(target_os = "linux")]
            Pacing::Precise => match clock::OsClock::new() {
                Ok(clock) => Wait::Clock(clock, Batch::new(Instant::now(), lease())),
                Err(_) => Wait::Timer,
            },
            #[cfg(not(target_os = "linux"))]
            Pacing::Precise => {
                let _ = lease;
                Wait::Timer
            }
        }
    }

    fn before_wait(&mut self, wake: Instant, now: Instant) {
        match self {
            Wait::Timer => {}
            #[cfg(target_os = "linux")]
            Wait::Clock(_, batch) => batch.before_wait(wake, now),
        }
    }

    fn let_go(&mut self) {
        match self {
            Wait::Timer => {}
            #[cfg(target_os = "linux")]
            Wait::Clock(_, batch) => batch.let_go(),
        }
    }

    fn sent(&mut self, now: Instant) {
        match self {
            Wait::Timer => {}
            #[cfg(target_os = "linux")]
            Wait::Clock(_, batch) => batch.sent(now),
        }
    }

    /// When to wake for an arrival due at `intended`, seen at `now`; `None` to send it at once.
    fn wake(&self, intended: Instant, now: Instant) -> Option<Instant> {
        match self {
            Wait::Timer => (now < intended).then_some(intended),
            #[cfg(target_os = "linux")]
            Wait::Clock(_, batch) => batch.wake(intended, now),
        }
    }

    async fn sleep_until(&mut self, at: Instant) {
        match self {
            Wait::Timer => tokio::time::sleep_until(at).await,
            #[cfg(target_os = "linux")]
            Wait::Clock(clock, _) => clock.sleep_until(at).await,
        }
    }

    fn woke(&mut self, at: Instant) {
        match self {
            Wait::Timer => {}
            #[cfg(target_os = "linux")]
            Wait::Clock(_, batch) => batch.woke(at),
        }
    }
}

/// What halts a piece: the run's stop, or the piece's own halt (a live change, or the engine passing
/// the run's stop on). The run's stop is read directly, so that a busy runtime, late to pass it on,
/// lets nothing due after it go out.
#[derive(Clone)]
struct Halt {
    run: watch::Receiver<bool>,
    piece: watch::Receiver<bool>,
}

impl Halt {
    fn is_set(&self) -> bool {
        *self.run.borrow() || *self.piece.borrow()
    }

    /// Waits until either turns true; a channel whose sender is gone never halts.
    async fn wait(&mut self) {
        tokio::select! {
            () = stopped(&mut self.run) => {}
            () = stopped(&mut self.piece) => {}
        }
    }
}

/// Waits until `stop` turns true; never, once its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Hands one phase's open-loop arrivals to the runtime at their deadlines.
struct Pacer<T: Transport> {
    launch: Launch<T>,
    slots: Arc<Semaphore>,
    /// Turns true on a stop, or when live control cuts the piece short.
    halt: Halt,
    position: watch::Sender<Position>,
    /// The pieces run so far, the one being paced last: its arrivals are paced.
    pieces: Arc<Scenario>,
    /// Global number of the piece's first request.
    first_number: u64,
    shard: Shard,
    /// When the piece started, and when its phase did (for the position).
    started: Instant,
    phase_started: Instant,
    end: Instant,
}

impl<T: Transport> Pacer<T> {
    /// Paces the piece on its own task (see [`Pacing`]); the handle tells whether it was stopped.
    fn spawn(self, pacing: Pacing) -> tokio::task::JoinHandle<bool> {
        #[cfg(target_os = "linux")]
        let wait = Wait::new(pacing, || self.launch.client.lease());
        #[cfg(not(target_os = "linux"))]
        let wait = Wait::new(pacing, || None);
        tokio::spawn(self.pace(wait))
    }

    fn arrivals<'a>(&self, pieces: &'a Scenario) -> crate::schedule::PhaseArrivals<'a> {
        let last = pieces.phases.len() - 1;
        crate::schedule::PhaseArrivals::new(pieces, last, self.first_number, self.shard)
    }

    /// Paces as a task, waiting for each deadline as `wait` does. Returns whether it was stopped.
    async fn pace(mut self, mut wait: Wait) -> bool {
        let pieces = self.pieces.clone();
        let mut next_position = Instant::now();
        for arrival in self.arrivals(&pieces) {
            let intended = later(self.started, arrival.offset);
            // `None`: due already (with the precise pacer, sent with the others of this wake-up).
            if let Some(wake) = wait.wake(intended, Instant::now()) {
                wait.before_wait(wake, Instant::now());
                tokio::select! {
                    biased;
                    () = self.halt.wait() => return true,
                    () = wait.sleep_until(wake) => {}
                }
                wait.woke(Instant::now());
            }
            if self.halt.is_set() {
                return true;
            }
            let Some(permit) = self.slot(&mut wait).await else {
                return true;
            };
            self.launch.send(arrival.request, intended, permit);
            wait.sent(Instant::now());
            self.publish(&mut next_position);
            // A late runtime has many arrivals due at once: the answers in the meantime are read
            // (and timed) between them, not after the whole backlog.
            tokio::task::consume_budget().await;
        }
        false
    }

    /// Takes an in-flight slot, waiting for one until the phase ends (then `Some(None)`: the request
    /// is dropped). `None` when stopped.
    async fn slot(&mut self, wait: &mut Wait) -> Option<Option<OwnedSemaphorePermit>> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(Some(permit));
        }
        wait.let_go();
        tokio::select! {
            p = self.slots.clone().acquire_owned() => Some(if Instant::now() >= self.end { None } else { p.ok() }),
            () = tokio::time::sleep_until(self.end) => Some(None),
            () = self.halt.wait() => None,
        }
    }

    /// Publishes the position at most every 100 ms.
    fn publish(&self, next: &mut Instant) {
        let now = Instant::now();
        if now >= *next {
            set_position(
                &self.position,
                &self.launch.shared,
                Some(self.launch.index),
                Some(self.phase_started),
            );
            *next = now + Duration::from_millis(100);
        }
    }
}

/// What a phase's request tasks share.
struct Launch<T: Transport> {
    scenario: Arc<Scenario>,
    client: Arc<T>,
    samples: Arc<dyn Record>,
    shared: Arc<Shared>,
    index: usize,
}

impl<T: Transport> Launch<T> {
    /// Sends request `which` of the phase's mix on its own task, or counts it dropped without a slot.
    fn send(&self, which: usize, intended: Instant, permit: Option<OwnedSemaphorePermit>) {
        let index = self.index;
        let Some(permit) = permit else {
            self.samples
                .record(Sample::unanswered(index, which, intended, None, Class::Other));
            return;
        };
        let scenario = self.scenario.clone();
        let client = self.client.clone();
        let mut cancel = self.shared.cancel.clone();
        let mut in_flight = InFlight::new(self.shared.clone(), self.samples.clone());
        in_flight.start((index, which, intended, None));
        tokio::spawn(async move {
            let request = &scenario.phases[index].mix.requests()[which];
            let sent = Instant::now();
            in_flight.request = Some((index, which, intended, Some(sent)));
            // The request's own end first: when its timeout falls on the same tick as the
            // cancellation, it ended by itself and is recorded so.
            let sample = tokio::select! {
                biased;
                resp = client.send(request, later(intended, scenario.defaults.timeout)) => {
                    // Read at the pacer's next wake-up, an answer is timed from its arrival.
                    let ended = resp.received.map_or_else(Instant::now, |at| at.max(sent));
                    Sample::answered(index, which, intended, sent, ended, &resp)
                }
                _ = cancel.wait_for(|c| *c) => {
                    Sample::unanswered(index, which, intended, Some(sent), Class::Cancelled)
                }
            };
            in_flight.done(sample);
            drop(permit);
        });
    }
}

fn set_position(
    position: &watch::Sender<Position>,
    shared: &Shared,
    phase: Option<usize>,
    started: Option<Instant>,
) {
    position.send_replace(Position {
        phase,
        phase_started: started,
        in_flight: shared.in_flight.load(Ordering::Relaxed),
        sent: shared.sent.load(Ordering::Relaxed),
    });
}

#[cfg(test)]
mod tests;

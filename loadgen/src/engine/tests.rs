//! The engine under paused time: a scripted transport answers after a set service time, and a fake
//! fault control records what was applied when. Every time below is tokio's, so the assertions are
//! exact and no test depends on how busy the machine is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use target_app::chaos::Fault;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Ending, Engine, EngineError, Faults, Pacing, Transport};
use crate::client::chaos::ChaosError;
use crate::client::{Response, Version};
use crate::engine::stats::Sample;
use crate::scenario::{self, Request, Scenario};
use crate::schedule::{PhaseStarts, Shard};
use crate::shared::outcome::Class;

/// Answers every request after `service` (`slow` for `/slow`), recording when each was sent and how
/// many were in flight at most.
struct Scripted {
    start: Instant,
    service: Duration,
    slow: Duration,
    sends: Mutex<Vec<Duration>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Each `warm(n)`, with the number of sends before it.
    warmed: Mutex<Vec<(usize, usize)>>,
}

impl Scripted {
    fn new(service: Duration) -> Arc<Scripted> {
        Arc::new(Scripted {
            start: Instant::now(),
            service,
            slow: service,
            sends: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            warmed: Mutex::new(Vec::new()),
        })
    }

    fn sends(&self) -> Vec<Duration> {
        self.sends.lock().unwrap().clone()
    }
}

impl Transport for Scripted {
    async fn warm(&self, n: usize) {
        let sent = self.sends.lock().unwrap().len();
        self.warmed.lock().unwrap().push((n, sent));
    }

    async fn send(&self, request: &Request, deadline: Instant) -> Response {
        self.sends.lock().unwrap().push(self.start.elapsed());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let service = if request.path_and_query.path() == "/slow" {
            self.slow
        } else {
            self.service
        };
        let answered = tokio::time::timeout_at(deadline, tokio::time::sleep(service)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Response {
            class: if answered.is_ok() {
                Class::Ok
            } else {
                Class::Timeout
            },
            status: answered.is_ok().then_some(200),
            bytes: 0,
            version: answered.is_ok().then_some(Version::Http1),
            handshake: None,
            resent: false,
            received: None,
        }
    }
}

/// Records `apply N` / `clear` with the time, failing applies when asked to.
#[derive(Default)]
struct Recorded {
    calls: Mutex<Vec<(Duration, String)>>,
    refuse: bool,
    start: Option<Instant>,
}

impl Recorded {
    fn log(&self, what: String) {
        let at = self.start.expect("start set").elapsed();
        self.calls.lock().unwrap().push((at, what));
    }
}

impl Faults for &Recorded {
    async fn apply(&self, _seed: u64, faults: &[Fault]) -> Result<(), ChaosError> {
        self.log(format!("apply {}", faults.len()));
        if self.refuse {
            return Err(ChaosError::Refused {
                url: "fake".into(),
                status: 400,
                body: "no".into(),
            });
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), ChaosError> {
        self.log("clear".into());
        Ok(())
    }
}

fn scenario(text: &str) -> Arc<Scenario> {
    Arc::new(scenario::parse(text, "t.toml").unwrap_or_else(|d| panic!("{d}")))
}

struct Outcome {
    result: Result<Ending, EngineError>,
    samples: Vec<Sample>,
    took: Duration,
    /// For each stop, an instant by which it had been sent.
    stopped: Vec<Instant>,
}

/// Runs `scenario` on `transport` and `faults`, with a stop at `stop_at` when given, paced on
/// tokio's timer (which the paused clock drives).
async fn run<F: Faults>(
    scenario: Arc<Scenario>,
    transport: Arc<Scripted>,
    faults: Option<F>,
    stop_at: Option<Duration>,
    drain: Duration,
) -> Outcome {
    run_with(scenario, transport, faults, stop_at, drain, Pacing::Timer).await
}

async fn run_with<F: Faults, T: Transport>(
    scenario: Arc<Scenario>,
    transport: Arc<T>,
    faults: Option<F>,
    stop_at: Option<Duration>,
    drain: Duration,
    pacing: Pacing,
) -> Outcome {
    run_stopped(scenario, transport, faults, stop_at.as_slice(), drain, pacing).await
}

/// [`run_with`], stopped at each of `stops` (times from the start, in order).
async fn run_stopped<F: Faults, T: Transport>(
    scenario: Arc<Scenario>,
    transport: Arc<T>,
    faults: Option<F>,
    stops: &[Duration],
    drain: Duration,
    pacing: Pacing,
) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let stopped = if stops.is_empty() {
        std::mem::forget(stop_tx);
        None
    } else {
        let (begun, stops) = (Instant::now(), stops.to_vec());
        Some(tokio::spawn(async move {
            let mut sent = Vec::new();
            for at in stops {
                tokio::time::sleep_until(begun + at).await;
                let _ = stop_tx.send(true);
                sent.push(Instant::now());
            }
            sent
        }))
    };
    let start = Instant::now();
    let engine = Engine {
        starts: PhaseStarts::new(&scenario),
        scenario,
        client: transport,
        chaos: faults,
        shard: Shard::WHOLE,
        samples: Arc::new(tx),
        stop,
        position: watch::channel(Default::default()).0,
        start,
        drain,
        pacing,
        control: None,
        planned: None,
    };
    let (result, _timeline) = engine.run().await;
    let took = start.elapsed();
    let mut samples = Vec::new();
    while let Ok(s) = rx.try_recv() {
        samples.push(s);
    }
    let stopped = match stopped {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    Outcome {
        result,
        samples,
        took,
        stopped,
    }
}

const NO_FAULTS: Option<&Recorded> = None;

#[tokio::test(start_paused = true)]
async fn requests_go_out_exactly_at_the_deadlines_of_every_shape() {
    let text = r#"name = "shapes"
seed = 7
[[mix]]
path = "/"
[[phases]]
name = "constant"
duration = "2s"
rate = { shape = "constant", rps = 20 }
[[phases]]
name = "ramp"
duration = "3s"
rate = { shape = "ramp", from = 5, to = 40 }
[[phases]]
name = "steps"
duration = "2s"
rate = { shape = "steps", steps = [{ rps = 10, duration = "1s" }, { rps = 30, duration = "1s" }] }
[[phases]]
name = "sine"
duration = "4s"
rate = { shape = "sine", mean = 20, amplitude = 10, period = "2s" }
[[phases]]
name = "poisson"
duration = "2s"
rate = { shape = "constant", rps = 50 }
arrivals = "poisson"
"#;
    let s = scenario(text);
    let transport = Scripted::new(Duration::from_millis(3));
    let out = run(
        s.clone(),
        transport.clone(),
        NO_FAULTS,
        None,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(out.result.unwrap(), Ending::Completed);
    let mut expected = Vec::new();
    let mut phase_start = Duration::ZERO;
    let starts = PhaseStarts::new(&s);
    for (i, phase) in s.phases.iter().enumerate() {
        expected.extend(starts.phase(&s, i, Shard::WHOLE).map(|a| phase_start + a.offset));
        phase_start += phase.duration;
    }
    assert!(expected.len() > 200, "{}", expected.len());
    let sends = transport.sends();
    assert_eq!(sends.len(), expected.len(), "one request per arrival");
    // tokio's timer has millisecond ticks: a request goes out at the first tick at or after its
    // deadline, never before it and never a whole tick late.
    for (i, (sent, due)) in sends.iter().zip(&expected).enumerate() {
        assert!(
            *sent >= *due && *sent - *due < Duration::from_millis(1),
            "request {i}: due {due:?}, sent {sent:?}"
        );
    }
    assert!(out.samples.iter().all(|s| s.class == Class::Ok));
    let lags = out.samples.iter().map(|s| s.started.unwrap() - s.intended);
    assert!(lags.clone().all(|l| l < Duration::from_millis(1)));
    assert!(
        out.took >= phase_start && out.took < phase_start + Duration::from_millis(5),
        "{:?}",
        out.took
    );
}

/// Deadlines past what an `Instant` can hold (validation refuses such durations; a scenario built by
/// hand need not) wait as long as the timers can: every request is answered and the run ends. The
/// outer timeout turns a hang (a request task that panicked and never gave its slot back) into a failure.
#[tokio::test(start_paused = true)]
async fn timeouts_and_drains_too_large_for_an_instant_do_not_panic() {
    let text = r#"[[mix]]
path = "/"
[[phases]]
duration = "1s"
rate = { shape = "constant", rps = 10 }
[[phases]]
duration = "1s"
concurrency = 2
"#;
    let mut s = scenario::parse(text, "t.toml").unwrap_or_else(|d| panic!("{d}"));
    s.defaults.timeout = Duration::MAX;
    let s = Arc::new(s);
    for drain in [Duration::from_secs(1), Duration::MAX] {
        let transport = Scripted::new(Duration::from_millis(100));
        let out = tokio::time::timeout(
            Duration::from_secs(3600),
            run(s.clone(), transport, NO_FAULTS, None, drain),
        )
        .await
        .expect("the run ends");
        assert!(matches!(out.result, Ok(Ending::Completed)));
        let open = out.samples.iter().filter(|x| x.phase == 0).count();
        let closed = out.samples.iter().filter(|x| x.phase == 1).count();
        assert_eq!((open, closed), (10, 20), "drain {drain:?}");
        assert!(out.samples.iter().all(|x| x.class == Class::Ok));
        assert!(out.took < Duration::from_millis(2200), "{:?}", out.took);
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_in_flight_bound_makes_requests_late_then_drops_them() {
    let text = r#"name = "bound"
[defaults]
max_in_flight = 2
[[mix]]
path = "/"
[[phases]]
duration = "1s"
rate = { shape = "constant", rps = 10 }
"#;
    // Each answer takes 350 ms: two slots serve 0-350, 100-450, then the rest wait for a slot.
    let transport = Scripted::new(Duration::from_millis(350));
    let out = run(
        scenario(text),
        transport.clone(),
        NO_FAULTS,
        None,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(transport.most_in_flight.load(Ordering::SeqCst), 2);
    let sent: Vec<&Sample> = out.samples.iter().filter(|s| s.started.is_some()).collect();
    let dropped = out.samples.len() - sent.len();
    assert_eq!(out.samples.len(), 10, "every arrival is accounted for");
    // Slots free at 350, 450, 700, 800, 1050: arrivals 200 and 300 go out at 350 and 450, 400 and
    // 500 at 700 and 800; the rest find no slot before the phase ends at 1000.
    let lags: Vec<u128> = sent
        .iter()
        .map(|s| (s.started.unwrap() - s.intended).as_millis())
        .collect();
    assert_eq!(lags, [0, 0, 150, 150, 300, 300], "{lags:?}");
    assert_eq!(dropped, 4);
}

#[tokio::test(start_paused = true)]
async fn a_stop_gives_in_flight_requests_the_drain_time_then_cancels_them() {
    let text = r#"name = "drain"
[defaults]
timeout = "60s"
[[mix]]
path = "/"
[[phases]]
duration = "10s"
rate = { shape = "constant", rps = 10 }
chaos = [{ fault = "latency", delay = "100s" }]
"#;
    let faults = Recorded {
        start: Some(Instant::now()),
        ..Recorded::default()
    };
    let transport = Scripted::new(Duration::from_secs(100));
    let out = run(
        scenario(text),
        transport,
        Some(&faults),
        Some(Duration::from_millis(550)),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(out.result.unwrap(), Ending::Interrupted);
    assert_eq!(out.samples.len(), 6, "arrivals at 0, 100, ... 500 ms");
    assert!(out.samples.iter().all(|s| s.class == Class::Cancelled));
    // Stop at 550 ms, drain of 2 s, checked every 20 ms.
    assert!(
        out.took >= Duration::from_millis(2550) && out.took <= Duration::from_millis(2580),
        "{:?}",
        out.took
    );
    let calls = faults.calls.lock().unwrap().clone();
    let names: Vec<&str> = calls.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(names, ["apply 1", "clear"], "faults cleared on the way out");
}

/// Gives up on every request at `at`, through a timer set after a first wait, so that a timer set in the
/// meantime for the same instant fires before it.
struct GivesUpAt {
    at: Instant,
}

impl Transport for GivesUpAt {
    async fn send(&self, _request: &Request, _deadline: Instant) -> Response {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::time::sleep_until(self.at).await;
        Response {
            class: Class::Timeout,
            status: None,
            bytes: 0,
            version: None,
            handshake: None,
            resent: false,
            received: None,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_ends_as_it_is_cancelled_keeps_its_own_outcome() {
    // One arrival at 0 ms; a stop at 50 ms starts the 2-s drain, whose cancellation timer is set
    // before the request's last one. Both fire at 2.05 s: the cancellation first, then the request
    // finds its answer ready and the cancellation sent.
    let text = r#"name = "tie"
[defaults]
timeout = "10s"
[[mix]]
path = "/"
[[phases]]
duration = "10s"
rate = { shape = "constant", rps = 1 }
"#;
    // With both ready, an unbiased choice would pick either; twenty runs make a wrong pick show.
    for round in 0..20 {
        let transport = Arc::new(GivesUpAt {
            at: Instant::now() + Duration::from_millis(2050),
        });
        let out = run_with(
            scenario(text),
            transport,
            NO_FAULTS,
            Some(Duration::from_millis(50)),
            Duration::from_secs(2),
            Pacing::Timer,
        )
        .await;
        assert_eq!(out.result.unwrap(), Ending::Interrupted);
        let classes: Vec<Class> = out.samples.iter().map(|s| s.class).collect();
        assert_eq!(classes, [Class::Timeout], "round {round}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_in_a_closed_loop_phase_is_bounded_by_the_drain_time_too() {
    let text = r#"name = "closed-drain"
[defaults]
timeout = "60s"
[[mix]]
path = "/"
[[phases]]
duration = "10s"
concurrency = 3
"#;
    let transport = Scripted::new(Duration::from_secs(30));
    let out = run(
        scenario(text),
        transport,
        NO_FAULTS,
        Some(Duration::from_secs(1)),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(out.result.unwrap(), Ending::Interrupted);
    assert_eq!(out.samples.len(), 3);
    assert!(out.samples.iter().all(|s| s.class == Class::Cancelled));
    assert!(out.took <= Duration::from_millis(3030), "{:?}", out.took);
}

#[tokio::test(start_paused = true)]
async fn faults_are_applied_at_each_phase_start_and_cleared_after() {
    let text = r#"name = "order"
[[mix]]
path = "/"
[[phases]]
name = "calm"
duration = "1s"
rate = { shape = "constant", rps = 5 }
[[phases]]
name = "errors"
duration = "1s"
rate = { shape = "constant", rps = 5 }
chaos = [{ fault = "error", status = 500, ratio = 0.5 }]
[[phases]]
name = "both"
duration = "1s"
rate = { shape = "constant", rps = 5 }
chaos = [{ fault = "error", status = 503 }, { fault = "latency", delay = "10ms" }]
[[phases]]
name = "recovery"
duration = "1s"
rate = { shape = "constant", rps = 5 }
"#;
    let faults = Recorded {
        start: Some(Instant::now()),
        ..Recorded::default()
    };
    let out = run(
        scenario(text),
        Scripted::new(Duration::from_millis(1)),
        Some(&faults),
        None,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(out.result.unwrap(), Ending::Completed);
    let calls = faults.calls.lock().unwrap().clone();
    let s = Duration::from_secs;
    assert_eq!(
        calls,
        [
            (s(1), "apply 1".to_owned()),
            (s(2), "apply 2".to_owned()),
            (s(3), "clear".to_owned()),
            (s(4), "clear".to_owned()),
        ]
    );

    // A refused apply ends the run with an error, and the faults are still cleared.
    let refusing = Recorded {
        start: Some(Instant::now()),
        refuse: true,
        ..Recorded::default()
    };
    let out = run(
        scenario(text),
        Scripted::new(Duration::from_millis(1)),
        Some(&refusing),
        None,
        Duration::from_secs(1),
    )
    .await;
    assert!(matches!(out.result, Err(EngineError::Chaos { ref phase, .. }) if phase == "errors"));
    let names: Vec<String> = refusing
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(names, ["apply 1"], "nothing was applied, so nothing to clear");
}

#[tokio::test(start_paused = true)]
async fn closed_loop_workers_send_back_to_back() {
    let text = r#"name = "closed"
[[mix]]
path = "/"
[[mix]]
path = "/slow"
[[phases]]
duration = "1s"
concurrency = 3
"#;
    let transport = Arc::new(Scripted {
        slow: Duration::from_millis(250),
        ..Arc::into_inner(Scripted::new(Duration::from_millis(50))).unwrap()
    });
    let out = run(
        scenario(text),
        transport.clone(),
        NO_FAULTS,
        None,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(transport.most_in_flight.load(Ordering::SeqCst), 3);
    let completed = out.samples.len();
    // Three workers, 50 ms or 250 ms each, in a 1 s phase: between 12 and 60 requests, all answered,
    // each sent the moment the worker's previous one ended (no lag in a closed loop).
    assert!((12..=60).contains(&completed), "{completed}");
    assert!(out
        .samples
        .iter()
        .all(|s| s.class == Class::Ok && s.started == Some(s.intended)));
}

/// The precise pacer runs on the real clock (it sleeps on the OS's), so this test checks what holds
/// whatever the machine's load: every arrival is sent, in order, and never before its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_precise_pacer_sends_every_arrival_never_before_its_deadline() {
    let text = r#"name = "precise"
[[mix]]
path = "/"
[[phases]]
name = "constant"
duration = "300ms"
rate = { shape = "constant", rps = 1000 }
"#;
    let transport = Scripted::new(Duration::from_millis(1));
    let out = run_with(
        scenario(text),
        transport,
        NO_FAULTS,
        None,
        Duration::from_secs(1),
        Pacing::Precise,
    )
    .await;
    assert_eq!(out.samples.len(), 300);
    let mut intended: Vec<_> = out.samples.iter().map(|s| s.intended).collect();
    intended.sort();
    intended.dedup();
    assert_eq!(intended.len(), 300, "one request per deadline");
    for s in &out.samples {
        let sent = s.started.expect("every request was sent");
        assert!(
            sent >= s.intended,
            "sent {:?} before its deadline",
            s.intended - sent
        );
    }
}

/// A stop that lands while the precise pacer waits on the OS clock for the next deadline sends
/// nothing more: a request sent after the stop would have its deadline after the drain's end (the
/// drain here is the timeout) and end cancelled instead of timed out. Whenever the stop lands, no
/// request is due after it and every request sent ends by its own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_stop_during_the_precise_wait_sends_nothing_due_after_it() {
    let text = r#"name = "stop-in-fine-wait"
[defaults]
timeout = "200ms"
[[mix]]
path = "/"
[[phases]]
duration = "5s"
rate = { shape = "constant", rps = 1000 }
"#;
    let out = run_with(
        scenario(text),
        Scripted::new(Duration::from_secs(3600)),
        NO_FAULTS,
        Some(Duration::from_millis(150)),
        Duration::from_millis(200),
        Pacing::Precise,
    )
    .await;
    assert_eq!(out.result.unwrap(), Ending::Interrupted);
    let stopped = out.stopped[0];
    assert!(!out.samples.is_empty());
    let late = out.samples.iter().filter(|s| s.intended > stopped).count();
    assert_eq!(late, 0, "requests due after the stop, of {}", out.samples.len());
    assert!(out.samples.iter().all(|s| s.class == Class::Timeout));
}

/// Panics on `/boom`, answers everything else at once.
struct Panicky;

impl Transport for Panicky {
    async fn send(&self, request: &Request, _deadline: Instant) -> Response {
        tokio::task::yield_now().await;
        assert!(
            request.path_and_query.path() != "/boom",
            "a request that panics (a test of the engine)"
        );
        Response {
            class: Class::Ok,
            status: Some(200),
            bytes: 0,
            version: Some(Version::Http1),
            handshake: None,
            resent: false,
            received: None,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_panics_is_counted_and_the_run_still_ends() {
    let text = r#"name = "panics"
[[mix]]
path = "/"
[[mix]]
path = "/boom"
[[phases]]
name = "open"
duration = "1s"
rate = { shape = "constant", rps = 10 }
[[phases]]
name = "closed"
duration = "1s"
concurrency = 2
"#;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let run = run_with(
        scenario(text),
        Arc::new(Panicky),
        NO_FAULTS,
        None,
        Duration::from_secs(5),
        Pacing::Timer,
    );
    let out = tokio::time::timeout(Duration::from_secs(3600), run).await;
    std::panic::set_hook(hook);
    let out = out.expect("the run ends");
    assert_eq!(out.result.unwrap(), Ending::Completed);
    let of = |phase: usize, class: Class| {
        out.samples
            .iter()
            .filter(|s| s.phase == phase && s.class == class)
            .count()
    };
    // Open loop: half of the ten requests go to /boom, each panics and is counted so.
    assert_eq!((of(0, Class::Ok), of(0, Class::Panicked)), (5, 5));
    // Closed loop: a worker whose request panics is gone with it; its request is counted, and the
    // phase ends on time with the other worker's.
    assert!(of(1, Class::Panicked) >= 1, "{:?}", out.samples.len());
    assert!(out.took <= Duration::from_secs(2), "{:?}", out.took);
}

#[tokio::test(start_paused = true)]
async fn a_second_stop_cancels_the_requests_in_flight_at_once() {
    let text = r#"name = "stops"
[[mix]]
path = "/"
[[phases]]
duration = "10s"
rate = { shape = "constant", rps = 10 }
"#;
    let transport = Scripted::new(Duration::from_secs(100));
    let out = run_stopped(
        scenario(text),
        transport,
        NO_FAULTS,
        &[Duration::from_millis(550), Duration::from_millis(1500)],
        Duration::from_secs(10),
        Pacing::Timer,
    )
    .await;
    assert_eq!(out.result.unwrap(), Ending::Interrupted);
    assert_eq!(out.samples.len(), 6, "arrivals at 0, 100, ... 500 ms");
    assert!(out.samples.iter().all(|s| s.class == Class::Cancelled));
    // Cancelled at the second stop (1.5 s), not at the end of the first one's drain (10.55 s).
    assert!(out.took < Duration::from_millis(1600), "{:?}", out.took);
}

/// The precise pacer's wake-ups, simulated: every wait ends when it was asked to (the OS clock's
/// own lateness aside), so the schedule of wake-ups and sends is exact.
fn simulate(every: Duration, count: u32) -> (usize, Vec<Duration>) {
    let start = Instant::now();
    let mut batch = super::Batch::new(start, None);
    let mut now = start;
    let mut wakes = 0;
    let mut lags = Vec::new();
    for k in 1..=count {
        let intended = start + every * k;
        if let Some(wake) = batch.wake(intended, now) {
            assert!(wake >= intended, "never before its deadline");
            now = now.max(wake);
            batch.woke(now);
            wakes += 1;
        }
        lags.push(now - intended);
    }
    (wakes, lags)
}

#[test]
fn the_precise_pacer_wakes_once_per_arrival_at_low_rates_and_batches_at_high_ones() {
    // 100 per second: one wake-up per arrival, each exactly at its deadline.
    let (wakes, lags) = simulate(Duration::from_millis(10), 100);
    assert_eq!(wakes, 100);
    assert!(lags.iter().all(|l| l.is_zero()), "{lags:?}");
    // 20 000 per second for one second: one wake-up per 500 µs, none late by more than that.
    let (wakes, lags) = simulate(Duration::from_micros(50), 20_000);
    assert_eq!(wakes, 2_000);
    let worst = lags.iter().max().unwrap();
    assert!(*worst < super::BATCH, "{worst:?}");
}

mod control;

#[tokio::test(start_paused = true)]
async fn an_open_loop_opens_its_first_connections_before_its_first_request() {
    let open = "name = \"o\"\n[defaults]\nmax_in_flight = 5\n[[mix]]\npath = \"/\"\n[[phases]]\nduration = \"1s\"\nrate = { shape = \"constant\", rps = 10 }\n";
    let transport = Scripted::new(Duration::from_millis(5));
    run(
        scenario(open),
        transport.clone(),
        NO_FAULTS,
        None,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(
        *transport.warmed.lock().unwrap(),
        [(5, 0)],
        "at most max_in_flight, before any send"
    );
    let closed = "name = \"c\"\n[[mix]]\npath = \"/\"\n[[phases]]\nduration = \"1s\"\nconcurrency = 2\n";
    let transport = Scripted::new(Duration::from_millis(5));
    run(
        scenario(closed),
        transport.clone(),
        NO_FAULTS,
        None,
        Duration::from_secs(1),
    )
    .await;
    assert!(
        transport.warmed.lock().unwrap().is_empty(),
        "closed-loop workers open their own"
    );
}

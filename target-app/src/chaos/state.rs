//! The faults in force and the per-request decisions they make.
//!
//! A fault hits request `n` of a route when `floor((n+1)·r + o) > floor(n·r + o)` in integer parts per
//! million, with `o` derived from the seed: over any `N` consecutive requests the number hit is within 1 of
//! `N·r`, and the same seed gives the same hits. Background effects (CPU burn, memory growth) run on
//! their own threads and stop when the faults change. The outage is announced on a watch channel that
//! the server's accept loop follows; this module never touches sockets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::spec::{ChaosSpec, CpuFault, Fault, FieldError, MemoryFault, RateLimitFault, FAULT_KINDS};
use crate::route::Route;

const PPM: u64 = 1_000_000;

/// Where the state reports which fault kinds are in force, as the `chaos_fault_active` gauge. The
/// instance's [`Metrics`](crate::metrics::Metrics) implement it; they import the fault kinds from here, so
/// this module knows them only through this trait.
pub trait FaultGauge: Send + Sync {
    /// Marks a fault kind as active or not.
    fn fault_active(&self, kind: &'static str, active: bool);
}

/// What chaos decided for one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decision {
    /// Extra delay before the request is served (or before the terminal fault acts).
    pub delay: Option<Duration>,
    /// A fault that replaces the normal answer.
    pub terminal: Option<Terminal>,
    /// Kinds of the faults that hit this request, for spans and logs.
    pub hits: Vec<&'static str>,
}

/// A fault that ends the request instead of the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// Answer with this status.
    Error(u16),
    /// Hold this long, then drop the connection.
    Timeout(Duration),
    /// Reset the connection.
    Reset,
    /// Answer 429: past the rate limit; the next request would be admitted after this long.
    RateLimited(Duration),
}

struct ActiveFault {
    fault: Fault,
    /// Which routes the fault applies to, indexed by [`Route::index`].
    applies: Vec<bool>,
    /// Request counter per route.
    counters: Vec<AtomicU64>,
    ratio_ppm: u64,
    offset_ppm: u64,
    salt: u64,
    /// The GCRA limiter of a rate-limit fault.
    limiter: Option<Limiter>,
}

type Limiter = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<TokioInstant>,
>;

/// Governor's clock over `tokio::time`, so rate limits follow a paused clock in tests exactly.
#[derive(Debug, Clone)]
struct TokioClock {
    origin: tokio::time::Instant,
}

/// Nanoseconds since the clock's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TokioInstant(governor::nanos::Nanos);

impl std::ops::Add<governor::nanos::Nanos> for TokioInstant {
    type Output = Self;
    fn add(self, other: governor::nanos::Nanos) -> Self {
        TokioInstant(self.0 + other)
    }
}

impl governor::clock::Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> governor::nanos::Nanos {
        self.0.saturating_sub(earlier.0)
    }
    fn saturating_sub(&self, duration: governor::nanos::Nanos) -> Self {
        TokioInstant(self.0.saturating_sub(duration))
    }
}

impl governor::clock::Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(self.origin.elapsed().into())
    }
}

fn limiter(f: &RateLimitFault) -> Option<Limiter> {
    let rps = std::num::NonZeroU32::new(f.rps)?;
    let burst = std::num::NonZeroU32::new(f.burst())?;
    let quota = governor::Quota::per_second(rps).allow_burst(burst);
    let clock = TokioClock {
        origin: tokio::time::Instant::now(),
    };
    Some(governor::RateLimiter::direct_with_clock(quota, clock))
}

impl ActiveFault {
    fn new(fault: Fault, seed: u64, index: usize) -> Self {
        let routes = fault.routes();
        let applies = Route::ALL
            .iter()
            .map(|r| r.faultable() && (routes.is_empty() || routes.iter().any(|t| t == r.template())))
            .collect();
        let salt = mix(seed ^ mix(index as u64 + 1));
        let limiter = match &fault {
            Fault::RateLimit(f) => limiter(f),
            _ => None,
        };
        ActiveFault {
            limiter,
            ratio_ppm: (fault.ratio() * PPM as f64).round() as u64,
            offset_ppm: salt % PPM,
            salt,
            fault,
            applies,
            counters: Route::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Takes the next request number on `route` and says whether it is hit, with that number.
    fn next(&self, route: Route) -> Option<u64> {
        if !self.applies[route.index()] {
            return None;
        }
        let n = self.counters[route.index()].fetch_add(1, Ordering::Relaxed);
        hits(n, self.ratio_ppm, self.offset_ppm).then_some(n)
    }

    /// Takes a cell of the rate limit for a request on `route`: `Some(wait)` when it is refused.
    fn limit(&self, route: Route) -> Option<Duration> {
        use governor::clock::Clock as _;
        if !self.applies[route.index()] {
            return None;
        }
        let limiter = self.limiter.as_ref()?;
        limiter
            .check()
            .err()
            .map(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// Whether request `n` is hit for a ratio in parts per million and an offset in `[0, PPM)`.
pub fn hits(n: u64, ratio_ppm: u64, offset_ppm: u64) -> bool {
    let before = (n as u128 * ratio_ppm as u128 + offset_ppm as u128) / PPM as u128;
    let after = ((n as u128 + 1) * ratio_ppm as u128 + offset_ppm as u128) / PPM as u128;
    after > before
}

/// splitmix64: a fast, well-spread hash of a 64-bit value.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Active {
    spec: ChaosSpec,
    faults: Vec<ActiveFault>,
}

impl Active {
    fn new(spec: ChaosSpec) -> Self {
        let faults = spec
            .faults
            .iter()
            .enumerate()
            .map(|(i, f)| ActiveFault::new(f.clone(), spec.seed, i))
            .collect();
        Active { spec, faults }
    }
}

/// A running background effect (CPU burn or memory growth) and how to stop it.
struct Effect {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Effect {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The live chaos state of one service instance.
pub struct Chaos {
    active: RwLock<Arc<Active>>,
    effects: Mutex<Vec<Effect>>,
    outage: watch::Sender<Option<Duration>>,
    gauge: Arc<dyn FaultGauge>,
}

impl Chaos {
    /// No faults; `gauge` receives `chaos_fault_active`.
    pub fn new(gauge: Arc<dyn FaultGauge>) -> Self {
        Chaos {
            active: RwLock::new(Arc::new(Active::new(ChaosSpec::default()))),
            effects: Mutex::new(Vec::new()),
            outage: watch::channel(None).0,
            gauge,
        }
    }

    /// The faults in force.
    pub fn spec(&self) -> ChaosSpec {
        self.current().spec.clone()
    }

    fn current(&self) -> Arc<Active> {
        self.active.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the faults after validating them; on error nothing changes. Request counters restart
    /// from zero, so the same spec applied twice makes the same decisions. Updates are applied one at a
    /// time, whole: of two at once, one wins with its effects, gauges and decisions together.
    pub fn apply(&self, spec: ChaosSpec) -> Result<ChaosSpec, Vec<FieldError>> {
        let errors = spec.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        let outage = spec.faults.iter().find_map(|f| match f {
            Fault::Outage(o) => Some(o.duration),
            _ => None,
        });
        let mut effects = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        for effect in effects.drain(..) {
            effect.stop();
        }
        for fault in &spec.faults {
            match fault {
                Fault::Cpu(f) => effects.push(start_cpu_burn(f)),
                Fault::Memory(f) => effects.push(start_memory_growth(f)),
                _ => {}
            }
        }
        for kind in FAULT_KINDS {
            self.gauge
                .fault_active(kind, spec.faults.iter().any(|f| f.kind() == *kind));
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Active::new(spec.clone()));
        if outage.is_some() {
            self.outage.send_replace(outage);
        }
        drop(effects);
        Ok(spec)
    }

    /// Clears every fault.
    pub fn clear(&self) {
        let _ = self.apply(ChaosSpec {
            seed: self.current().spec.seed,
            faults: Vec::new(),
        });
    }

    /// Called by the server when an outage has run its course: removes the outage fault, keeps the rest.
    pub fn outage_over(&self) {
        // Taken like an update, so that an update at the same moment is not overwritten.
        let _update = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        if current.spec.faults.iter().any(|f| matches!(f, Fault::Outage(_))) {
            let mut spec = current.spec.clone();
            spec.faults.retain(|f| !matches!(f, Fault::Outage(_)));
            self.gauge.fault_active("outage", false);
            *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Active::new(spec));
        }
        self.outage.send_replace(None);
    }

    /// Announces outages: `Some(duration)` when one starts.
    pub fn outages(&self) -> watch::Receiver<Option<Duration>> {
        self.outage.subscribe()
    }

    /// Decides the faults for the next request on `route`.
    pub fn decide(&self, route: Route) -> Decision {
        let mut decision = Decision::default();
        if !route.faultable() {
            return decision;
        }
        let active = self.current();
        for af in &active.faults {
            let terminal = match &af.fault {
                Fault::Error(f) => Terminal::Error(f.status),
                Fault::Timeout(f) => Terminal::Timeout(f.hold),
                Fault::Reset(_) => Terminal::Reset,
                Fault::Latency(f) => {
                    if let Some(n) = af.next(route) {
                        let jitter_ms = f.jitter.as_millis() as u64;
                        let extra = if jitter_ms == 0 {
                            0
                        } else {
                            mix(af.salt ^ n) % jitter_ms.saturating_add(1)
                        };
                        let delay = f.delay.saturating_add(Duration::from_millis(extra));
                        decision.delay = Some(decision.delay.unwrap_or_default().saturating_add(delay));
                        decision.hits.push("latency");
                    }
                    continue;
                }
                Fault::RateLimit(_) => {
                    if decision.terminal.is_none() {
                        if let Some(wait) = af.limit(route) {
                            decision.terminal = Some(Terminal::RateLimited(wait));
                            decision.hits.push("rate_limit");
                        }
                    }
                    continue;
                }
                Fault::Downstream(_) | Fault::Cpu(_) | Fault::Memory(_) | Fault::Outage(_) => continue,
            };
            // A request already ended by an earlier fault does not consume numbers of later ones.
            if decision.terminal.is_none() && af.next(route).is_some() {
                decision.terminal = Some(terminal);
                decision.hits.push(af.fault.kind());
            }
        }
        decision
    }

    /// Whether the next downstream call made while serving `route` must fail.
    pub fn fail_downstream(&self, route: Route) -> bool {
        let active = self.current();
        active
            .faults
            .iter()
            .any(|af| matches!(af.fault, Fault::Downstream(_)) && af.next(route).is_some())
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        for effect in self
            .effects
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            effect.stop();
        }
    }
}

fn start_cpu_burn(f: &CpuFault) -> Effect {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..f.threads)
        .filter_map(|i| {
            let stop = stop.clone();
            let utilization = f.utilization;
            std::thread::Builder::new()
                .name(format!("chaos-cpu-{i}"))
                .spawn(move || burn_cpu(&stop, utilization))
                .ok()
        })
        .collect();
    Effect { stop, threads }
}

/// Spins for `utilization` of every 20 ms slice, doing hashing work a profiler can name.
#[inline(never)]
fn burn_cpu(stop: &AtomicBool, utilization: f64) {
    let slice = Duration::from_millis(20);
    let busy = slice.mul_f64(utilization);
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let start = std::time::Instant::now();
        while start.elapsed() < busy {
            for _ in 0..1000 {
                x = std::hint::black_box(mix(x));
            }
        }
        if let Some(rest) = slice.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

fn start_memory_growth(f: &MemoryFault) -> Effect {
    let stop = Arc::new(AtomicBool::new(false));
    let (rate, limit) = (f.mb_per_second, f.limit_mb);
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("chaos-memory".into())
        .spawn(move || grow_memory(&flag, rate, limit));
    Effect {
        stop,
        threads: thread.into_iter().collect(),
    }
}

/// Maps and touches 1 MiB blocks at `rate` per second up to `limit`; unmaps them all when stopped.
/// Each block is an anonymous mapping of its own, not the allocator's, so clearing the fault returns
/// the memory to the OS whatever the allocator would keep: glibc's malloc, for one, serves blocks of
/// this size from its heap once the process has freed a larger one, and keeps them after they are
/// freed.
#[inline(never)]
fn grow_memory(stop: &AtomicBool, rate: u32, limit: u32) {
    let mut held: Vec<memmap2::MmapMut> = Vec::with_capacity(limit as usize);
    let step = Duration::from_secs(1) / rate.max(1);
    let mut refused = false;
    while !stop.load(Ordering::Relaxed) {
        if held.len() < limit as usize && !refused {
            match memmap2::MmapMut::map_anon(1 << 20) {
                Ok(mut block) => {
                    // Filled, not just reserved, so the pages are resident and show in RSS.
                    block.fill(0xA5);
                    held.push(block);
                }
                Err(e) => {
                    tracing::warn!(held_mb = held.len(), error = %e, "chaos memory: no more memory mapped");
                    refused = true;
                }
            }
        }
        std::thread::sleep(step.min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoGauge;

    impl FaultGauge for NoGauge {
        fn fault_active(&self, _: &'static str, _: bool) {}
    }

    #[test]
    fn ratio_is_exact_over_any_window() {
        for ratio_ppm in [0, 1, 100_000, 300_000, 333_333, 500_000, 999_999, 1_000_000] {
            for offset in [0, 123_456, 999_999] {
                let hits: Vec<bool> = (0..2000).map(|n| hits(n, ratio_ppm, offset)).collect();
                for window in [1usize, 7, 10, 100, 1000] {
                    for start in (0..(2000 - window)).step_by(37) {
                        let got = hits[start..start + window].iter().filter(|h| **h).count() as f64;
                        let want = window as f64 * ratio_ppm as f64 / PPM as f64;
                        assert!(
                            (got - want).abs() <= 1.0,
                            "ratio {ratio_ppm} window {window}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    fn decisions(chaos: &Chaos, route: Route, n: usize) -> Vec<bool> {
        (0..n).map(|_| chaos.decide(route).terminal.is_some()).collect()
    }

    fn spec(json: &str) -> ChaosSpec {
        serde_json::from_str(json).unwrap()
    }

    /// Keeps the last value set for each fault kind, slowly (as a real registry may be), which leaves
    /// room for another update to come between two of its calls.
    #[derive(Default)]
    struct LastGauge(Mutex<std::collections::BTreeMap<&'static str, bool>>);

    impl FaultGauge for LastGauge {
        fn fault_active(&self, kind: &'static str, active: bool) {
            std::thread::sleep(std::time::Duration::from_micros(20));
            self.0.lock().unwrap().insert(kind, active);
        }
    }

    #[test]
    fn of_two_updates_at_once_one_wins_whole() {
        let gauge = Arc::new(LastGauge::default());
        let chaos = Arc::new(Chaos::new(gauge.clone()));
        let specs = [
            spec(r#"{"faults":[{"fault":"error","ratio":0.5}]}"#),
            spec(r#"{"faults":[{"fault":"latency","delay":"5ms"}]}"#),
        ];
        const THREADS: usize = 4;
        const ROUNDS: usize = 30;
        // Each round every thread applies one update at the same moment; between rounds the state
        // is looked at.
        let (go, done) = (
            Arc::new(std::sync::Barrier::new(THREADS + 1)),
            Arc::new(std::sync::Barrier::new(THREADS + 1)),
        );
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (chaos, specs, go, done) = (chaos.clone(), specs.clone(), go.clone(), done.clone());
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        go.wait();
                        chaos.apply(specs[t % 2].clone()).unwrap();
                        done.wait();
                    }
                })
            })
            .collect();
        for round in 0..ROUNDS {
            go.wait();
            done.wait();
            let kinds: Vec<&str> = chaos.spec().faults.iter().map(|f| f.kind()).collect();
            let gauge = gauge.0.lock().unwrap();
            for kind in ["error", "latency"] {
                assert_eq!(
                    gauge[kind],
                    kinds.contains(&kind),
                    "round {round}, {kind}: gauge {gauge:?}, faults {kinds:?}"
                );
            }
        }
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn same_seed_same_decisions_and_routes_are_scoped() {
        let chaos = Chaos::new(Arc::new(NoGauge));
        let s = spec(r#"{"seed":7,"faults":[{"fault":"error","ratio":0.3,"routes":["/slow"]}]}"#);
        chaos.apply(s.clone()).unwrap();
        let first = decisions(&chaos, Route::Slow, 50);
        assert_eq!(first.iter().filter(|h| **h).count(), 15);
        assert!(
            decisions(&chaos, Route::Index, 50).iter().all(|h| !h),
            "other routes untouched"
        );
        assert!(
            decisions(&chaos, Route::Health, 50).iter().all(|h| !h),
            "probes never faulted"
        );
        chaos.apply(s).unwrap();
        assert_eq!(decisions(&chaos, Route::Slow, 50), first);
        chaos
            .apply(spec(
                r#"{"seed":8,"faults":[{"fault":"error","ratio":0.3,"routes":["/slow"]}]}"#,
            ))
            .unwrap();
        assert_ne!(
            decisions(&chaos, Route::Slow, 50),
            first,
            "another seed, other requests"
        );
    }

    #[test]
    fn invalid_spec_leaves_faults_unchanged() {
        let chaos = Chaos::new(Arc::new(NoGauge));
        let good = spec(r#"{"faults":[{"fault":"reset","ratio":0.5}]}"#);
        chaos.apply(good.clone()).unwrap();
        assert!(chaos
            .apply(spec(r#"{"faults":[{"fault":"error","ratio":2.0}]}"#))
            .is_err());
        assert_eq!(chaos.spec(), good);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_admits_burst_then_rps_and_says_when_to_retry() {
        let chaos = Chaos::new(Arc::new(NoGauge));
        chaos
            .apply(spec(
                r#"{"faults":[{"fault":"rate_limit","rps":10,"burst":5,"routes":["/"]}]}"#,
            ))
            .unwrap();
        // A burst of 8 at once: 5 pass, 3 are refused and told to wait one emission interval.
        let burst: Vec<Decision> = (0..8).map(|_| chaos.decide(Route::Index)).collect();
        assert_eq!(burst.iter().filter(|d| d.terminal.is_none()).count(), 5);
        assert_eq!(
            burst[7].terminal,
            Some(Terminal::RateLimited(Duration::from_millis(100)))
        );
        assert!(
            chaos.decide(Route::Slow).terminal.is_none(),
            "other routes untouched"
        );
        // Then 100 requests a second for 10 s: exactly 10 a second pass.
        let mut admitted = 0;
        for _ in 0..1000 {
            tokio::time::advance(Duration::from_millis(10)).await;
            if chaos.decide(Route::Index).terminal.is_none() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 100);
    }

    #[test]
    fn latency_jitter_stays_in_range() {
        let chaos = Chaos::new(Arc::new(NoGauge));
        chaos
            .apply(spec(
                r#"{"faults":[{"fault":"latency","delay":"100ms","jitter":"50ms"}]}"#,
            ))
            .unwrap();
        for _ in 0..100 {
            let d = chaos.decide(Route::Index).delay.unwrap();
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(150),
                "{d:?}"
            );
        }
    }
}

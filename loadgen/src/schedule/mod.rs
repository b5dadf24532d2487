//! The request schedule: when each request of a scenario is due and which request of the mix it sends.
//!
//! Open-loop phases place arrivals by inverting the cumulative rate `Λ` ([`RateCurve`]): request k of
//! an even phase is due at `Λ⁻¹(k)`; a Poisson phase draws unit-rate exponential gaps in `Λ`-time and maps
//! them through `Λ⁻¹`. Offsets are absolute (from the phase start), so pacing never accumulates drift.
//! Request numbers run across the whole scenario; the mix choice and sharding depend only on the number,
//! so `--shard i/N` slices are disjoint and together are exactly the unsharded schedule. Where each
//! phase's numbers start is counted once, before the run ([`PhaseStarts`]). Everything else is
//! an iterator: memory does not grow with the number of requests. Closed-loop phases have no schedule
//! (the engine's workers send as answers come back) and use [`crate::scenario::Mix::pick`] directly.
//! Nothing here sleeps or sends.

mod curve;
mod random;
mod segment;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use curve::RateCurve;
use random::{hash2, SplitMix};
pub use segment::{piece, remainder, Steered};

use crate::scenario::{Arrivals, Load, Mix, Phase, Scenario};

/// One request of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Global request number, from 0 across the scenario's open-loop phases.
    pub number: u64,
    /// Index of the phase in the scenario.
    pub phase: usize,
    /// Intended send time, from the start of the phase.
    pub offset: Duration,
    /// Index of the request in the phase's mix.
    pub request: usize,
}

/// A deterministic slice of a scenario: the requests whose number is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// The whole scenario (`0/1`).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count` (`index < count`).
    pub fn new(index: u64, count: u64) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// Which slice, from 0.
    pub fn index(self) -> u64 {
        self.index
    }

    /// How many slices.
    pub fn count(self) -> u64 {
        self.count
    }

    /// Whether request `number` belongs to this slice.
    pub fn contains(self, number: u64) -> bool {
        number % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a `--shard` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid shard `{0}`: expected `i/N` with 0 <= i < N, e.g. `0/4` (the Indexed Job's completion index)"
)]
pub struct ShardError(String);

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let fail = || ShardError(s.to_owned());
        let (i, n) = s.split_once('/').ok_or_else(fail)?;
        let (i, n) = (
            i.trim().parse().map_err(|_| fail())?,
            n.trim().parse().map_err(|_| fail())?,
        );
        Shard::new(i, n).ok_or_else(fail)
    }
}

/// The expected number of requests of a phase (`Λ` at its end); `None` for a closed-loop phase.
pub fn expected_requests(phase: &Phase) -> Option<f64> {
    match &phase.load {
        Load::Open { rate, .. } => Some(RateCurve::new(rate, phase.duration.as_secs_f64()).total()),
        Load::Closed { .. } => None,
    }
}

/// Most requests a scenario may schedule in all. Its Poisson phases are counted by drawing every
/// arrival before the run (and by `loadgen plan`), which takes seconds per billion.
pub const MAX_SCHEDULED: f64 = 1e9;

/// Whether `scenario` schedules at most [`MAX_SCHEDULED`] requests; if not, what to say.
pub fn check_size(scenario: &Scenario) -> Result<(), String> {
    let total: f64 = scenario.phases.iter().filter_map(expected_requests).sum();
    if total <= MAX_SCHEDULED {
        return Ok(());
    }
    Err(format!(
        "the scenario schedules about {total:.3e} requests; at most {MAX_SCHEDULED:.0e} may be scheduled \
         (lower a rate or a duration, or split it into several runs)"
    ))
}

/// The exact number of scheduled requests of phase `index` (unsharded). Closed-loop phases have 0;
/// a Poisson phase's gaps are drawn through to count them (nothing else: no times, no mix picks).
pub fn arrival_count(scenario: &Scenario, index: usize) -> u64 {
    let arrivals = PhaseArrivals::new(scenario, index, 0, Shard::WHOLE);
    match (arrivals.mode, &arrivals.curve) {
        (Mode::Even { count }, _) => count,
        (Mode::Poisson { mut rng, mut u }, Some(curve)) => {
            // The same draws, in the same order, as `PhaseArrivals::next`.
            let mut count = 0;
            loop {
                u += rng.next_exp();
                if u >= curve.total() {
                    return count;
                }
                count += 1;
            }
        }
        _ => 0,
    }
}

/// The global number of each phase's first request. Poisson phases are counted by drawing them, so
/// this is built once, before the run; starting a phase then costs nothing however long the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseStarts {
    /// One entry a phase, then the total.
    firsts: Vec<u64>,
}

impl PhaseStarts {
    /// Counts every phase of `scenario` (unsharded: numbering does not depend on the shard).
    pub fn new(scenario: &Scenario) -> Self {
        let mut firsts = Vec::with_capacity(scenario.phases.len() + 1);
        let mut next = 0;
        firsts.push(next);
        for index in 0..scenario.phases.len() {
            next += arrival_count(scenario, index);
            firsts.push(next);
        }
        PhaseStarts { firsts }
    }

    /// The number of phase `index`'s first request; for the index past the last phase, the total.
    ///
    /// # Panics
    /// If `index` is more than the number of phases counted.
    pub fn first_number(&self, index: usize) -> u64 {
        self.firsts[index]
    }

    /// Scheduled requests of the whole scenario (unsharded).
    pub fn total(&self) -> u64 {
        self.firsts.last().copied().unwrap_or(0)
    }

    /// Only phase `index`'s arrivals in `shard`, numbered as in the whole scenario. `scenario` must
    /// be the one these starts were counted from.
    pub fn phase<'a>(&self, scenario: &'a Scenario, index: usize, shard: Shard) -> PhaseArrivals<'a> {
        PhaseArrivals::new(scenario, index, self.first_number(index), shard)
    }
}

#[derive(Debug, Clone)]
enum Mode {
    /// Indices `0..count`, at `Λ⁻¹(k)`.
    Even {
        count: u64,
    },
    /// Operational time `u` so far.
    Poisson {
        rng: SplitMix,
        u: f64,
    },
    Closed,
}

/// The arrivals of one phase, in time order.
#[derive(Debug, Clone)]
pub struct PhaseArrivals<'a> {
    scenario: &'a Scenario,
    phase: usize,
    curve: Option<RateCurve>,
    first_number: u64,
    /// Index within the phase of the next candidate arrival.
    next_index: u64,
    mode: Mode,
    shard: Shard,
}

impl<'a> PhaseArrivals<'a> {
    /// The arrivals of phase `index`, whose first request has global number `first_number`.
    pub fn new(scenario: &'a Scenario, index: usize, first_number: u64, shard: Shard) -> Self {
        let phase = &scenario.phases[index];
        let (curve, mode) = match &phase.load {
            Load::Open { rate, arrivals } => {
                let curve = RateCurve::new(rate, phase.duration.as_secs_f64());
                let mode = match arrivals {
                    // Λ(D) is often a whole number computed with rounding error: don't add a request for it.
                    Arrivals::Even => Mode::Even {
                        count: (curve.total() - 1e-9).ceil().max(0.0) as u64,
                    },
                    Arrivals::Poisson => Mode::Poisson {
                        rng: SplitMix::new(hash2(scenario.seed, index as u64)),
                        u: 0.0,
                    },
                };
                (Some(curve), mode)
            }
            Load::Closed { .. } => (None, Mode::Closed),
        };
        let mut arrivals = PhaseArrivals {
            scenario,
            phase: index,
            curve,
            first_number,
            next_index: 0,
            mode,
            shard,
        };
        if let Mode::Even { .. } = arrivals.mode {
            arrivals.next_index = arrivals.skip_to_shard(0);
        }
        arrivals
    }

    /// The phase's rate curve (`None` for a closed-loop phase).
    pub fn curve(&self) -> Option<&RateCurve> {
        self.curve.as_ref()
    }

    /// The first index `>= from` whose number is in the shard.
    fn skip_to_shard(&self, from: u64) -> u64 {
        let n = self.shard.count;
        let number = self.first_number + from;
        from + (self.shard.index + n - number % n) % n
    }

    fn arrival(&self, index: u64, t: f64) -> Arrival {
        let number = self.first_number + index;
        let phase = &self.scenario.phases[self.phase];
        Arrival {
            number,
            phase: self.phase,
            offset: Duration::from_secs_f64(t.clamp(0.0, phase.duration.as_secs_f64())),
            request: crate::schedule::pick(&phase.mix, self.scenario.seed, number),
        }
    }
}

impl Iterator for PhaseArrivals<'_> {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        let curve = self.curve.as_ref()?;
        match &mut self.mode {
            Mode::Closed => None,
            Mode::Even { count } => {
                let index = self.next_index;
                if index >= *count {
                    return None;
                }
                let t = curve.inverse(index as f64);
                self.next_index = index + self.shard.count;
                Some(self.arrival(index, t))
            }
            Mode::Poisson { rng, u } => loop {
                *u += rng.next_exp();
                if *u >= curve.total() {
                    return None;
                }
                let (index, t) = (self.next_index, curve.inverse(*u));
                self.next_index += 1;
                if self.shard.contains(self.first_number + index) {
                    return Some(self.arrival(index, t));
                }
            },
        }
    }
}

/// Every arrival of a scenario, phase after phase, in time order.
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    scenario: &'a Scenario,
    shard: Shard,
    current: Option<PhaseArrivals<'a>>,
    /// Number of the first request of the current phase.
    first_number: u64,
}

impl<'a> Schedule<'a> {
    /// The whole scenario's schedule.
    pub fn new(scenario: &'a Scenario) -> Self {
        Schedule::starting_at(scenario, 0, Shard::WHOLE)
    }

    /// Keeps only the arrivals of `shard`, from the start of the current phase on.
    pub fn shard(self, shard: Shard) -> Self {
        let current = self
            .current
            .as_ref()
            .map(|c| PhaseArrivals::new(self.scenario, c.phase, self.first_number, shard));
        Schedule {
            shard,
            current,
            ..self
        }
    }

    /// The schedule from phase `index` on, with request numbers as in the whole scenario.
    pub fn starting_at(scenario: &'a Scenario, index: usize, shard: Shard) -> Self {
        let first_number = (0..index.min(scenario.phases.len()))
            .map(|p| arrival_count(scenario, p))
            .sum();
        let current =
            (index < scenario.phases.len()).then(|| PhaseArrivals::new(scenario, index, first_number, shard));
        Schedule {
            scenario,
            shard,
            current,
            first_number,
        }
    }
}

impl Iterator for Schedule<'_> {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            let current = self.current.as_mut()?;
            if let Some(arrival) = current.next() {
                return Some(arrival);
            }
            let used = match current.mode {
                Mode::Even { count } => count,
                Mode::Poisson { .. } => current.next_index,
                Mode::Closed => 0,
            };
            let next_phase = current.phase + 1;
            self.first_number += used;
            self.current = (next_phase < self.scenario.phases.len())
                .then(|| PhaseArrivals::new(self.scenario, next_phase, self.first_number, self.shard));
        }
    }
}

/// Which request global request `number` sends: a weighted choice that depends only on
/// (`seed`, `number`), so shards and closed-loop workers agree with the schedule. Out of each run of
/// `total_weight` consecutive numbers (starting at a multiple of it), every request is picked exactly
/// `weight` times.
pub fn pick(mix: &Mix, seed: u64, number: u64) -> usize {
    let slot = random::mix_slot(seed, number, mix.total_weight());
    let mut acc = 0;
    for (i, r) in mix.requests().iter().enumerate() {
        acc += u64::from(r.weight.get());
        if slot < acc {
            return i;
        }
    }
    mix.requests().len() - 1
}

#[cfg(test)]
mod tests;

//! The validated scenario: what the planner and the engine work from.
//!
//! Values here are already checked and converted: durations are `Duration`, counts are non-zero where
//! zero makes no sense, rates are [`Rps`] (finite, not negative), methods and headers are `http` types,
//! and every phase carries the mix it sends. Nothing here reads files or reports errors.

use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method};
use target_app::chaos::Fault;

use super::condition::Condition;

/// A checked scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name (the file name without `.toml` when the file gives none).
    pub name: String,
    /// One sentence on what it shows; may be empty.
    pub description: String,
    /// Seed of the request mix, Poisson arrivals and the target's fault decisions.
    pub seed: u64,
    /// Settings shared by every request.
    pub defaults: Defaults,
    /// The scenario-wide mix, when the file has one (phases carry their resolved mix anyway).
    pub mix: Option<Mix>,
    /// The phases, in order; at least one.
    pub phases: Vec<Phase>,
}

impl Scenario {
    /// Length of the whole scenario. Validation keeps it within a year; a scenario built by hand that
    /// would overflow saturates at `Duration::MAX`.
    pub fn duration(&self) -> Duration {
        total(&self.phases)
    }

    /// When phase `index` starts, from the start of the scenario (saturating like [`Scenario::duration`]).
    pub fn phase_start(&self, index: usize) -> Duration {
        total(&self.phases[..index.min(self.phases.len())])
    }
}

fn total(phases: &[Phase]) -> Duration {
    phases
        .iter()
        .fold(Duration::ZERO, |sum, p| sum.saturating_add(p.duration))
}

/// Settings shared by every request.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Time allowed for a request, from its intended send time. Default 10 s.
    pub timeout: Duration,
    /// Most requests in flight at once. Default 1000.
    pub max_in_flight: NonZeroU32,
    /// Headers of every request (already merged into each [`Request::headers`]).
    pub headers: HeaderMap,
}

/// A non-empty weighted list of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    requests: Vec<Request>,
    total_weight: u64,
}

impl Mix {
    /// A mix of `requests`; `None` when there are none.
    pub fn new(requests: Vec<Request>) -> Option<Mix> {
        let total_weight = requests
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(u64::from(r.weight.get())));
        (!requests.is_empty()).then_some(Mix {
            requests,
            total_weight,
        })
    }

    /// The requests, in file order; `Arrival::request` indexes this.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// Sum of the weights.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }
}

/// One request of a mix.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Unique within its mix; default `"METHOD path"`.
    pub name: String,
    /// HTTP method.
    pub method: Method,
    /// Path and encoded query, to append to the target's base URL.
    pub path_and_query: PathAndQuery,
    /// Every header to send: defaults, then the request's own, then `content-type` for a JSON body.
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Bytes>,
    /// Relative weight in the mix.
    pub weight: NonZeroU32,
}

/// A checked phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Unique within the scenario.
    pub name: String,
    /// More than zero.
    pub duration: Duration,
    /// How requests are paced.
    pub load: Load,
    /// The requests it sends: its own mix, or the scenario's.
    pub mix: Mix,
    /// Whether `mix` is the phase's own rather than the scenario's.
    pub own_mix: bool,
    /// Faults applied to the target for the length of the phase.
    pub chaos: Vec<Fault>,
    /// What must hold at its end.
    pub expect: Expectations,
}

/// How a phase paces requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Open loop: arrivals follow `rate` whatever the answers.
    Open {
        /// Target arrivals per second over the phase.
        rate: Rate,
        /// How arrivals are spaced.
        arrivals: Arrivals,
    },
    /// Closed loop: `concurrency` workers each send a request when their previous one answers.
    Closed {
        /// Number of workers.
        concurrency: NonZeroU32,
    },
}

/// How open-loop arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// Request k at the time the cumulative rate reaches k.
    Even,
    /// Unit-rate exponential gaps in cumulative-rate time (a non-homogeneous Poisson process).
    Poisson,
}

/// Requests per second: finite and not negative.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rps(f64);

impl Rps {
    /// The most a scenario may ask for, so counts stay exact in `f64`.
    pub const MAX: f64 = 10_000_000.0;

    /// `None` unless `0 <= rps <= Rps::MAX`.
    pub fn new(rps: f64) -> Option<Rps> {
        (0.0..=Rps::MAX).contains(&rps).then_some(Rps(rps))
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A rate shape over one phase; times are from the phase start.
#[derive(Debug, Clone, PartialEq)]
pub enum Rate {
    /// `rps` throughout.
    Constant {
        /// Requests per second.
        rps: Rps,
    },
    /// From `from` at the start to `to` at the end, linearly.
    Ramp {
        /// At the start.
        from: Rps,
        /// At the end.
        to: Rps,
    },
    /// Constant rates one after the other; their durations add up to the phase duration.
    Steps(Vec<Step>),
    /// `base`, except `peak` during `[at, at + width)`, which lies within the phase.
    Spike {
        /// Outside the spike.
        base: Rps,
        /// During the spike.
        peak: Rps,
        /// Start of the spike.
        at: Duration,
        /// Length of the spike, more than zero.
        width: Duration,
    },
    /// `mean + amplitude * sin(2π(t + shift) / period)`, with `amplitude <= mean`.
    Sine {
        /// Mean rate.
        mean: Rps,
        /// Swing, at most `mean`.
        amplitude: Rps,
        /// Length of a wave, more than zero.
        period: Duration,
        /// Where in the wave the phase starts (zero: at the mean, rising); a recording of a run split
        /// mid-wave continues the wave with it.
        shift: Duration,
    },
}

/// One step of [`Rate::Steps`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Requests per second.
    pub rps: Rps,
    /// More than zero.
    pub duration: Duration,
}

/// What must hold at the end of a phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    /// Client-side conditions: keyed ones first (in [`super::Metric::ALL`] order), then `checks` in
    /// file order.
    pub conditions: Vec<Condition>,
    /// Alerts that must reach firing during the phase.
    pub alerts_firing: Vec<String>,
    /// Alerts that must stay inactive (neither pending nor firing) throughout the phase.
    pub alerts_inactive: Vec<String>,
    /// Alerts that must have fired before the end of the phase and not be firing at its end.
    pub alerts_resolved: Vec<String>,
    /// Alerts whose firing notification must arrive during the phase.
    pub alerts_notified: Vec<String>,
    /// How soon after the phase's start those notifications must arrive.
    pub notify_within: Option<Duration>,
    /// Which receiver must be notified of which alert.
    pub notified: Vec<Notified>,
    /// Alerts that must be firing but inhibited by Alertmanager.
    pub inhibited: Vec<String>,
    /// Alerts that must reach no receiver (or not the one named).
    pub not_notified: Vec<NotNotified>,
    /// Sets of alerts that must arrive in one notification.
    pub grouped: Vec<Vec<String>>,
    /// Byte range in the file of each alert name above, for messages that point at it.
    pub alert_spans: Vec<(String, std::ops::Range<usize>)>,
}

/// One `notified` entry: `alert` must reach `receiver` during the phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Notified {
    pub alert: String,
    pub receiver: String,
    /// How soon after the phase's start.
    pub within: Option<Duration>,
    /// The snapshot file of the receiver's rendered message, as written in the scenario.
    pub snapshot: Option<String>,
}

/// One `not_notified` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NotNotified {
    pub alert: String,
    /// `None`: no receiver at all.
    pub receiver: Option<String>,
}

impl Expectations {
    /// Whether nothing is expected.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
            && self.alerts_firing.is_empty()
            && self.alerts_inactive.is_empty()
            && self.alerts_resolved.is_empty()
            && self.alerts_notified.is_empty()
            && !self.has_routing()
    }

    /// Whether any Prometheus alert is checked (the engine then needs a Prometheus to ask).
    pub fn has_alerts(&self) -> bool {
        !(self.alerts_firing.is_empty()
            && self.alerts_inactive.is_empty()
            && self.alerts_resolved.is_empty()
            && self.alerts_notified.is_empty()
            && !self.has_routing())
    }

    /// Whether any routing expectation (`notified`, `inhibited`, `not_notified`, `grouped`) is set.
    pub fn has_routing(&self) -> bool {
        !(self.notified.is_empty()
            && self.inhibited.is_empty()
            && self.not_notified.is_empty()
            && self.grouped.is_empty())
    }
}

//! The chaos request format: what faults exist, their parameters, and the checks on them.
//!
//! These types are shared with `loadgen`, whose scenario files embed them (`chaos = [...]`), so the
//! spelling a user writes in TOML is the spelling the API takes as JSON. This module only describes and
//! validates faults; applying them lives in [`super::state`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::serde_text;
use crate::route::Route;

/// The body of `PUT /admin/chaos` and the answer of `GET /admin/chaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosSpec {
    /// Seed of the fault decisions: the same seed gives the same faulted request numbers.
    #[serde(default)]
    pub seed: u64,
    /// The faults to apply; an empty list clears them.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// One fault. `fault = "..."` selects the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with an HTTP error status instead of serving the request.
    Error(ErrorFault),
    /// Delay the response.
    Latency(LatencyFault),
    /// Hold the request, then drop the connection without an answer.
    Timeout(TimeoutFault),
    /// Reset the connection (TCP RST) instead of answering.
    Reset(ResetFault),
    /// Make calls to the downstream service fail as if it were unreachable.
    Downstream(DownstreamFault),
    /// Burn CPU on background threads while active.
    Cpu(CpuFault),
    /// Grow memory at a steady pace up to a cap, released when the fault is cleared.
    Memory(MemoryFault),
    /// Close the listener and every connection for a while, so scrapes fail and `up == 0`.
    Outage(OutageFault),
    /// Answer 429 with `Retry-After` to requests past a rate (GCRA: `rps` per second, `burst` at once).
    RateLimit(RateLimitFault),
}

fn one() -> f64 {
    1.0
}

fn status_500() -> u16 {
    500
}

fn hold_30s() -> Duration {
    Duration::from_secs(30)
}

/// Answer with `status` for a `ratio` of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorFault {
    /// HTTP status to answer with (400-599). Default 500.
    #[serde(default = "status_500")]
    pub status: u16,
    /// Share of requests faulted, 0.0-1.0. Default 1.0.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Route templates to fault (e.g. `["/checkout"]`); empty means every faultable route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// Add `delay` plus a uniform share of `jitter` to a `ratio` of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyFault {
    /// Fixed extra delay, e.g. `"800ms"`.
    #[schemars(with = "String")]
    #[serde(with = "serde_text")]
    pub delay: Duration,
    /// Extra delay drawn uniformly from 0 to this, e.g. `"400ms"`. Default none.
    #[schemars(with = "String")]
    #[serde(with = "serde_text", default)]
    pub jitter: Duration,
    /// Share of requests delayed, 0.0-1.0. Default 1.0.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Route templates to fault; empty means every faultable route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// Hold a `ratio` of requests for `hold`, then drop the connection unanswered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutFault {
    /// How long to hold before dropping the connection. Default `30s`.
    #[schemars(with = "String")]
    #[serde(with = "serde_text", default = "hold_30s")]
    pub hold: Duration,
    /// Share of requests held, 0.0-1.0. Default 1.0.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Route templates to fault; empty means every faultable route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// Reset the connection for a `ratio` of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetFault {
    /// Share of requests reset, 0.0-1.0. Default 1.0.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Route templates to fault; empty means every faultable route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// Fail a `ratio` of the calls the service makes to its downstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownstreamFault {
    /// Share of downstream calls failed, 0.0-1.0. Default 1.0.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Routes whose downstream calls fail (`/external`, `/checkout`); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// Keep `threads` threads busy at `utilization` each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpuFault {
    /// Number of busy threads, 1-64. Default 1.
    #[serde(default = "one_thread")]
    pub threads: u32,
    /// Busy share of each thread, 0.0-1.0. Default 1.0.
    #[serde(default = "one")]
    pub utilization: f64,
}

fn one_thread() -> u32 {
    1
}

/// Allocate `mb_per_second` until `limit_mb` is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryFault {
    /// Growth per second in MiB, 1-1024.
    pub mb_per_second: u32,
    /// Cap in MiB, 1-4096; growth stops there.
    pub limit_mb: u32,
}

/// Stop serving entirely for `duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutageFault {
    /// How long the listener stays closed, e.g. `"90s"` (at most 1h).
    #[schemars(with = "String")]
    #[serde(with = "serde_text")]
    pub duration: Duration,
}

/// Admit at most `rps` requests per second with bursts of up to `burst`; answer the rest 429.
///
/// The limit is a generic cell rate algorithm (GCRA): one request is admitted every `1/rps` seconds on
/// average, and up to `burst` may arrive back to back after a quiet spell. Over any window of `T`
/// seconds at most `burst + rps·T` requests pass, so a steady offered rate above `rps` sees exactly `rps`
/// admitted per second once the burst is spent. The routes listed share one limit; give each route a
/// fault of its own for separate limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFault {
    /// Steady rate admitted, in requests per second, 1-1000000.
    pub rps: u32,
    /// Requests admitted back to back after a quiet spell, 1-1000000. Default: `rps` (one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Route templates that share this limit; empty means every faultable route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

impl RateLimitFault {
    /// Largest `rps` and `burst` accepted.
    pub const MAX: u32 = 1_000_000;

    /// The burst in force: the one given, or `rps`.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.rps)
    }
}

/// A problem with one field of a chaos request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field, e.g. `faults[1].ratio`.
    pub field: String,
    /// What is wrong and what is expected.
    pub problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// The fault kinds, as spelled in `fault = "..."` and in the `fault` label of `chaos_fault_active`.
pub const FAULT_KINDS: &[&str] = &[
    "error",
    "latency",
    "timeout",
    "reset",
    "downstream",
    "cpu",
    "memory",
    "outage",
    "rate_limit",
];

/// Longest latency or timeout hold accepted, so a fault cannot pin a connection forever.
pub const MAX_HOLD: Duration = Duration::from_secs(600);

impl Fault {
    /// The kind name (`"error"`, `"latency"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Error(_) => "error",
            Fault::Latency(_) => "latency",
            Fault::Timeout(_) => "timeout",
            Fault::Reset(_) => "reset",
            Fault::Downstream(_) => "downstream",
            Fault::Cpu(_) => "cpu",
            Fault::Memory(_) => "memory",
            Fault::Outage(_) => "outage",
            Fault::RateLimit(_) => "rate_limit",
        }
    }

    /// The share of requests this fault applies to (1.0 for faults that are not per request).
    pub fn ratio(&self) -> f64 {
        match self {
            Fault::Error(f) => f.ratio,
            Fault::Latency(f) => f.ratio,
            Fault::Timeout(f) => f.ratio,
            Fault::Reset(f) => f.ratio,
            Fault::Downstream(f) => f.ratio,
            Fault::Cpu(_) | Fault::Memory(_) | Fault::Outage(_) | Fault::RateLimit(_) => 1.0,
        }
    }

    /// The route templates this fault is limited to (empty: all faultable routes).
    pub fn routes(&self) -> &[String] {
        match self {
            Fault::Error(f) => &f.routes,
            Fault::Latency(f) => &f.routes,
            Fault::Timeout(f) => &f.routes,
            Fault::Reset(f) => &f.routes,
            Fault::Downstream(f) => &f.routes,
            Fault::RateLimit(f) => &f.routes,
            Fault::Cpu(_) | Fault::Memory(_) | Fault::Outage(_) => &[],
        }
    }

    /// Checks the values serde cannot: ranges and route names. `path` prefixes field names.
    pub fn validate(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, problem: String| {
            errors.push(FieldError {
                field: format!("{path}.{field}"),
                problem,
            })
        };
        let ratio = self.ratio();
        if !(0.0..=1.0).contains(&ratio) {
            bad("ratio", format!("must be between 0.0 and 1.0, got {ratio}"));
        }
        for (i, template) in self.routes().iter().enumerate() {
            match Route::from_template(template) {
                Some(route) if route.faultable() => {}
                Some(_) => bad(
                    &format!("routes[{i}]"),
                    format!("`{template}` is never faulted (probes, metrics and the admin API are exempt)"),
                ),
                None => bad(
                    &format!("routes[{i}]"),
                    format!(
                        "unknown route `{template}`; known routes: {}",
                        faultable_templates().join(", ")
                    ),
                ),
            }
        }
        // Each field is checked on its own, so a request with several bad fields hears of all of them.
        match self {
            Fault::Error(f) => {
                if !(400..=599).contains(&f.status) {
                    bad(
                        "status",
                        format!("must be an HTTP error status 400-599, got {}", f.status),
                    );
                }
            }
            Fault::Latency(f) => {
                if f.delay.checked_add(f.jitter).is_none_or(|total| total > MAX_HOLD) {
                    bad(
                        "delay",
                        format!(
                            "delay + jitter must be at most {}",
                            crate::duration::format(MAX_HOLD)
                        ),
                    );
                } else if f.delay.is_zero() && f.jitter.is_zero() {
                    bad("delay", "must be more than 0 (e.g. \"500ms\")".to_owned());
                }
            }
            Fault::Timeout(f) => {
                if f.hold > MAX_HOLD || f.hold.is_zero() {
                    bad(
                        "hold",
                        format!(
                            "must be more than 0 and at most {}",
                            crate::duration::format(MAX_HOLD)
                        ),
                    );
                }
            }
            Fault::Cpu(f) => {
                if !(1..=64).contains(&f.threads) {
                    bad("threads", format!("must be 1-64, got {}", f.threads));
                }
                if !(f.utilization > 0.0 && f.utilization <= 1.0) {
                    bad(
                        "utilization",
                        format!("must be above 0.0 and at most 1.0, got {}", f.utilization),
                    );
                }
            }
            Fault::Memory(f) => {
                if !(1..=1024).contains(&f.mb_per_second) {
                    bad(
                        "mb_per_second",
                        format!("must be 1-1024, got {}", f.mb_per_second),
                    );
                }
                if !(1..=4096).contains(&f.limit_mb) {
                    bad("limit_mb", format!("must be 1-4096, got {}", f.limit_mb));
                }
            }
            Fault::Outage(f) => {
                if f.duration.is_zero() || f.duration > Duration::from_secs(3600) {
                    bad("duration", "must be more than 0 and at most 1h".to_owned());
                }
            }
            Fault::RateLimit(f) => {
                let max = RateLimitFault::MAX;
                if !(1..=max).contains(&f.rps) {
                    bad(
                        "rps",
                        format!(
                            "must be a whole number of requests per second, 1-{max}, got {}",
                            f.rps
                        ),
                    );
                }
                if let Some(burst) = f.burst {
                    if !(1..=max).contains(&burst) {
                        bad(
                            "burst",
                            format!("must be 1-{max} requests (or left out to mean `rps`), got {burst}"),
                        );
                    }
                }
            }
            Fault::Reset(_) | Fault::Downstream(_) => {}
        }
        errors
    }
}

impl ChaosSpec {
    /// Checks every fault; an empty list means the spec can be applied.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = self
            .faults
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.validate(&format!("faults[{i}]")))
            .collect();
        let outages = self
            .faults
            .iter()
            .filter(|f| matches!(f, Fault::Outage(_)))
            .count();
        if outages > 1 {
            errors.push(FieldError {
                field: "faults".to_owned(),
                problem: "at most one outage fault at a time".to_owned(),
            });
        }
        errors
    }
}

/// Templates of every route that can be faulted.
pub fn faultable_templates() -> Vec<&'static str> {
    Route::ALL
        .iter()
        .filter(|r| r.faultable())
        .map(|r| r.template())
        .collect()
}

#[cfg(test)]
mod tests;

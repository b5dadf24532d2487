//! The scenario file as written: a serde mirror of the TOML, field for field.
//!
//! Every struct refuses unknown keys, and nearly every field is optional here, so that a missing key is
//! reported by validation with a position and a hint rather than by serde. Values are kept as the user
//! wrote them (durations and conditions as text, numbers as `i64`/`f64`); validation turns them
//! into the model. The doc comments are the user reference: they become the JSON schema's descriptions.
//! Nothing here checks a value.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use target_app::chaos::Fault;
use toml::Spanned;

/// A load scenario: what to send, how fast, which faults to inject and what to expect, phase by phase.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "loadgen scenario")]
pub struct RawScenario {
    /// Short name, used in reports and in the `loadgen_phase_info{scenario}` label.
    /// Default: the file name without `.toml`.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// One sentence on what the scenario shows, printed by `loadgen plan` and in reports.
    pub description: Option<String>,
    /// Seed of every random choice: request mix, Poisson arrivals and the target's fault decisions.
    /// The same seed replays the same run. Default 1.
    #[schemars(with = "Option<u64>")]
    pub seed: Option<Spanned<i64>>,
    /// Settings shared by every request.
    pub defaults: Option<RawDefaults>,
    /// The weighted request mix used by every phase that has no `mix` of its own.
    #[schemars(with = "Option<Vec<RawRequest>>")]
    pub mix: Option<Spanned<Vec<Spanned<RawRequest>>>>,
    /// The phases, run one after the other. At least one.
    #[schemars(with = "Vec<RawPhase>")]
    pub phases: Option<Spanned<Vec<Spanned<RawPhase>>>>,
}

/// Settings shared by every request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Time allowed for one request, from its intended send time to the end of the response body,
    /// e.g. `"2s"`. Default `"10s"`.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Most requests in flight at once. An arrival that would exceed it waits; one that cannot start
    /// in time is counted as late or dropped, never skipped silently. Default 1000.
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub max_in_flight: Option<Spanned<i64>>,
    /// Headers sent with every request, e.g. `{ "user-agent" = "loadgen" }`; a request's own headers win.
    /// Framing headers (`content-length`, `connection`, ...) are the client's and refused.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

/// One request of a mix, picked in proportion to its `weight`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    /// Name in reports and per-request statistics; unique within a mix. Default `"METHOD path"`,
    /// e.g. `"GET /external"`.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// HTTP method: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS. Default GET.
    #[schemars(with = "Option<String>")]
    pub method: Option<Spanned<String>>,
    /// Path on the target, starting with `/`, without the query (put that in `query`). Required.
    #[schemars(with = "String")]
    pub path: Option<Spanned<String>>,
    /// Query string: either text sent as written (`"type=500&x=1"`) or a table of values that are
    /// percent-encoded (`{ type = "500", ms = 200 }`).
    #[schemars(with = "Option<RawQuery>")]
    pub query: Option<Spanned<RawQuery>>,
    /// Headers of this request, added to (and overriding) `defaults.headers`. The client sets the
    /// framing headers (`content-length`, `transfer-encoding`, `connection`, `keep-alive`,
    /// `proxy-connection`, `te`, `upgrade`): they are refused here. `host` replaces the target's.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Request body: a string sent as is, or a table sent as JSON with
    /// `content-type: application/json` (unless `headers` sets a content type).
    pub body: Option<RawBody>,
    /// Relative weight in the mix, a whole number from 1 to 1000000. Out of every `sum of weights`
    /// consecutive requests, exactly `weight` are this one. Default 1.
    #[schemars(with = "Option<u32>", range(min = 1, max = 1_000_000))]
    pub weight: Option<Spanned<i64>>,
}

/// A query string, as text or as a table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a query string like \"a=1&b=2\" or a table like { a = 1, b = \"x\" }"
)]
pub enum RawQuery {
    /// Sent as written after `?`.
    Text(String),
    /// Each key and value percent-encoded, joined with `&`, in key order.
    Table(BTreeMap<String, QueryValue>),
}

/// One value of a query table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a string, number or boolean")]
pub enum QueryValue {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// A request body, as text or as JSON.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a string, or a table to send as JSON")]
pub enum RawBody {
    /// Sent as written.
    Text(String),
    /// Sent as JSON.
    Json(serde_json::Map<String, serde_json::Value>),
}

/// A phase: for `duration`, send requests at `rate` (open loop) or keep `concurrency` requests in flight
/// (closed loop), with `chaos` faults applied to the target, then check `expect`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    /// Name in the timeline, reports and the `loadgen_phase_info{phase}` label; unique within the
    /// scenario. Default `phase-N` (N counts from 1).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// How long the phase lasts, more than 0: `"90s"`, `"2m"`, `"1m30s"`, `"500ms"`. Required, except
    /// with `shape = "steps"`, where it defaults to the sum of the steps (and must equal it if given).
    #[schemars(with = "Option<String>")]
    pub duration: Option<Spanned<String>>,
    /// Open loop: the target arrival rate over the phase, e.g. `{ shape = "constant", rps = 50 }`.
    /// Requests are sent on schedule whether or not earlier ones have answered. Give `rate` or
    /// `concurrency`, not both.
    #[schemars(with = "Option<RawRate>")]
    pub rate: Option<Spanned<Checked<RawRate>>>,
    /// How arrivals are spaced under `rate`: `"even"` (evenly, following the rate) or `"poisson"`
    /// (random gaps with the same mean rate, like independent users). Default `"even"`.
    #[schemars(with = "Option<RawArrivals>")]
    pub arrivals: Option<Spanned<RawArrivals>>,
    /// Closed loop: keep this many requests in flight, each worker sending its next request when the
    /// previous one answers. A whole number from 1. Give `rate` or `concurrency`, not both.
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub concurrency: Option<Spanned<i64>>,
    /// This phase's own request mix, replacing the scenario's `[[mix]]`, e.g.
    /// `mix = [{ path = "/slow" }]`.
    #[schemars(with = "Option<Vec<RawRequest>>")]
    pub mix: Option<Spanned<Vec<Spanned<RawRequest>>>>,
    /// Faults applied to the target through its chaos API when the phase starts, and cleared when it
    /// ends, e.g. `[{ fault = "error", status = 500, ratio = 0.3 }]`.
    #[schemars(with = "Option<Vec<Fault>>")]
    pub chaos: Option<Spanned<Vec<Spanned<Checked<Fault>>>>>,
    /// What must hold at the end of the phase; the run fails (exit code 1) otherwise.
    #[schemars(with = "Option<RawExpect>")]
    pub expect: Option<Spanned<RawExpect>>,
}

/// How arrivals are spaced in time.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawArrivals {
    /// Request k is sent when the cumulative rate reaches k: perfectly regular.
    Even,
    /// Exponential gaps with the same mean rate, seeded from the scenario seed and the phase number.
    Poisson,
}

/// A rate shape. `shape = "..."` selects the kind; rates are requests per second, 0 or more
/// (fractions allowed) and at most 10000000.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum RawRate {
    /// The same rate throughout: `{ shape = "constant", rps = 50 }`.
    Constant(RawConstant),
    /// A straight line from `from` at the start to `to` at the end: `{ shape = "ramp", from = 10, to = 100 }`.
    Ramp(RawRamp),
    /// Constant rates one after the other:
    /// `{ shape = "steps", steps = [{ rps = 10, duration = "30s" }, { rps = 50, duration = "1m" }] }`.
    Steps(RawSteps),
    /// `base`, except `peak` from `at` for `width`:
    /// `{ shape = "spike", base = 20, peak = 200, at = "30s", width = "10s" }`.
    Spike(RawSpike),
    /// A wave around `mean`: `mean + amplitude * sin(2πt / period)`, with `amplitude <= mean`:
    /// `{ shape = "sine", mean = 50, amplitude = 20, period = "60s" }`.
    Sine(RawSine),
}

/// Parameters of `shape = "constant"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConstant {
    /// Requests per second.
    pub rps: f64,
}

/// Parameters of `shape = "ramp"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRamp {
    /// Requests per second at the start of the phase.
    pub from: f64,
    /// Requests per second at the end of the phase.
    pub to: f64,
}

/// Parameters of `shape = "steps"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSteps {
    /// The steps, in order; at least one.
    pub steps: Vec<RawStep>,
}

/// One step of `shape = "steps"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Requests per second during this step.
    pub rps: f64,
    /// How long this step lasts, more than 0, e.g. `"30s"`.
    pub duration: String,
}

/// Parameters of `shape = "spike"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSpike {
    /// Requests per second outside the spike.
    pub base: f64,
    /// Requests per second during the spike.
    pub peak: f64,
    /// When the spike starts, from the start of the phase, e.g. `"30s"`.
    pub at: String,
    /// How long the spike lasts, more than 0; it must end within the phase.
    pub width: String,
}

/// Parameters of `shape = "sine"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSine {
    /// Mean requests per second.
    pub mean: f64,
    /// Swing above and below the mean, at most `mean`.
    pub amplitude: f64,
    /// Length of one full wave, more than 0, e.g. `"60s"`.
    pub period: String,
    /// Where in the wave the phase starts, e.g. `"15s"` (a quarter of a 60 s wave: at the peak).
    /// Default `"0s"`: at the mean, rising. Recordings of runs split mid-wave use it.
    pub shift: Option<String>,
}

/// Expectations checked at the end of a phase. Conditions compare a metric of the phase with a value:
/// `p95 = "< 300ms"` or, in the list form, `checks = ["p95 < 300ms"]`. Operators: `<` `<=` `>` `>=`
/// `==` `!=`. Latencies take a unit (`us`, `ms`, `s`, `m`); ratios are 0 to 1 or a percentage (`"25%"`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// Requests completed in the phase, e.g. `">= 1000"`.
    #[schemars(with = "Option<String>")]
    pub requests: Option<Spanned<String>>,
    /// Completed requests per second over the phase, e.g. `">= 45"`.
    #[schemars(with = "Option<String>")]
    pub rps: Option<Spanned<String>>,
    /// Share of requests that failed (connect, timeout, reset, HTTP 4xx or 5xx), e.g. `"> 0.25"`.
    #[schemars(with = "Option<String>")]
    pub error_ratio: Option<Spanned<String>>,
    /// Number of failed requests, e.g. `"== 0"`.
    #[schemars(with = "Option<String>")]
    pub errors: Option<Spanned<String>>,
    /// Median latency, measured from the intended send time, e.g. `"< 100ms"`.
    #[schemars(with = "Option<String>")]
    pub p50: Option<Spanned<String>>,
    /// 90th percentile latency, e.g. `"< 200ms"`.
    #[schemars(with = "Option<String>")]
    pub p90: Option<Spanned<String>>,
    /// 95th percentile latency, e.g. `"< 300ms"`.
    #[schemars(with = "Option<String>")]
    pub p95: Option<Spanned<String>>,
    /// 99th percentile latency, e.g. `"< 1s"`.
    #[schemars(with = "Option<String>")]
    pub p99: Option<Spanned<String>>,
    /// 99.9th percentile latency, e.g. `"< 2s"`.
    #[schemars(with = "Option<String>")]
    pub p999: Option<Spanned<String>>,
    /// Slowest request, e.g. `"< 5s"`.
    #[schemars(with = "Option<String>")]
    pub max: Option<Spanned<String>>,
    /// Mean latency, e.g. `"< 150ms"`.
    #[schemars(with = "Option<String>")]
    pub mean: Option<Spanned<String>>,
    /// Share of requests that started later than scheduled (the generator or `max_in_flight` fell
    /// behind), e.g. `"< 0.01"`.
    #[schemars(with = "Option<String>")]
    pub late_ratio: Option<Spanned<String>>,
    /// Requests that could not start at all before the phase ended, e.g. `"== 0"`.
    #[schemars(with = "Option<String>")]
    pub dropped: Option<Spanned<String>>,
    /// Conditions in one line each, k6 style: `["error_ratio > 0.25", "p95 < 300ms", "rps >= 45"]`.
    /// `p(95)` is accepted for `p95`.
    #[schemars(with = "Option<Vec<String>>")]
    pub checks: Option<Vec<Spanned<String>>>,
    /// Prometheus alerts that must reach the firing state during the phase, e.g. `["HighErrorRate"]`
    /// (the time it took is reported).
    #[schemars(with = "Option<Vec<String>>")]
    pub alerts_firing: Option<Vec<Spanned<String>>>,
    /// Alerts that must be neither pending nor firing at any time during the phase.
    #[schemars(with = "Option<Vec<String>>")]
    pub alerts_inactive: Option<Vec<Spanned<String>>>,
    /// Alerts that must be firing at some point before the end of the phase (in an earlier phase or
    /// this one) and no longer firing when it ends.
    #[schemars(with = "Option<Vec<String>>")]
    pub alerts_resolved: Option<Vec<Spanned<String>>>,
    /// Alerts whose firing notification must reach loadgen's webhook receiver (from the private
    /// Alertmanager, or one sending to `--notify-listen`) between the phase's start and a second after
    /// its end, e.g. `["HighErrorRate"]`. Usually listed in `alerts_firing` too.
    #[schemars(with = "Option<Vec<String>>")]
    pub alerts_notified: Option<Vec<Spanned<String>>>,
    /// How soon after the phase's start each `alerts_notified` notification must arrive, e.g. `"90s"`.
    #[schemars(with = "Option<String>")]
    pub notify_within: Option<Spanned<String>>,
    /// Which receiver of the Alertmanager configuration (`--alertmanager-config`, or the stack's) must
    /// be notified of which alert during the phase:
    /// `[{ alert = "ServiceDown", receiver = "pager", notify_within = "60s", snapshot = "snapshots/outage/pager.txt" }]`.
    #[schemars(with = "Option<Vec<RawNotified>>")]
    pub notified: Option<Vec<RawNotified>>,
    /// Alerts that fire during the phase but that Alertmanager inhibits (seen in its API with
    /// `inhibitedBy`), so no receiver is notified of them, e.g. `["HighErrorRate"]`.
    #[schemars(with = "Option<Vec<String>>")]
    pub inhibited: Option<Vec<Spanned<String>>>,
    /// Alerts that must reach no receiver (or not the one named) during the phase:
    /// `[{ alert = "HighLatency" }, { alert = "DiskFilling", receiver = "pager" }]`.
    #[schemars(with = "Option<Vec<RawNotNotified>>")]
    pub not_notified: Option<Vec<RawNotNotified>>,
    /// Alerts that must arrive together, in one notification, e.g. `[["ServiceDown", "HighLatency"]]`.
    #[schemars(with = "Option<Vec<Vec<String>>>")]
    pub grouped: Option<Vec<Vec<Spanned<String>>>>,
}

/// One entry of `notified`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotified {
    /// The alert, e.g. `"ServiceDown"`.
    #[schemars(with = "String")]
    pub alert: Spanned<String>,
    /// The receiver's name in the Alertmanager configuration, e.g. `"pager"`.
    #[schemars(with = "Option<String>")]
    pub receiver: Option<Spanned<String>>,
    /// How soon after the phase's start the notification must reach that receiver, e.g. `"60s"`.
    #[schemars(with = "Option<String>")]
    pub notify_within: Option<Spanned<String>>,
    /// A file with the message this receiver rendered, normalised (times, ports, ids), relative to the
    /// scenario file; a difference fails the check, `--update-snapshots` writes it.
    #[schemars(with = "Option<String>")]
    pub snapshot: Option<Spanned<String>>,
}

/// One entry of `not_notified`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotNotified {
    /// The alert, e.g. `"HighLatency"`.
    #[schemars(with = "String")]
    pub alert: Spanned<String>,
    /// The receiver it must not reach; every receiver when absent.
    #[schemars(with = "Option<String>")]
    pub receiver: Option<Spanned<String>>,
}

/// A value whose type errors are kept for validation instead of failing the whole file.
///
/// Used for values with an internally tagged type (rate shapes, faults), where serde loses positions:
/// validation reports the message at the value's position, narrowed to the offending key when it can.
#[derive(Debug)]
pub enum Checked<T> {
    /// The value deserialized.
    Valid(T),
    /// It did not; serde's message.
    Invalid(String),
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        Ok(match T::deserialize(value) {
            Ok(t) => Checked::Valid(t),
            Err(e) => Checked::Invalid(e.message().to_owned()),
        })
    }
}

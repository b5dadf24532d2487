//! The service's Prometheus metrics: names defined once, help text on each, and a per-instance registry.
//!
//! Each service instance owns its own recorder (no process-global one), so the app and its downstream can
//! run embedded in one process and still expose separate `/metrics`. Process metrics (`process_*`) are read
//! from `/proc` at scrape time ([`process`]). This module records numbers; it never decides what a request's
//! outcome is.

pub mod model;
pub mod process;
mod requests;

use std::fmt::Write as _;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, with_local_recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::chaos::FaultGauge;
use crate::route::Route;

pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
pub const HTTP_REQUESTS_SHED_TOTAL: &str = "http_requests_shed_total";
pub const DOWNSTREAM_REQUESTS_TOTAL: &str = "downstream_requests_total";
pub const DOWNSTREAM_REQUEST_DURATION_SECONDS: &str = "downstream_request_duration_seconds";
pub const CHAOS_FAULT_ACTIVE: &str = "chaos_fault_active";
pub const BUSINESS_OPERATIONS_TOTAL: &str = "business_operations_total";
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";

/// Every metric name the target exposes; rules, dashboards and query catalogs are checked against it.
pub const CATALOG: &[&str] = &[
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_DURATION_SECONDS,
    HTTP_REQUESTS_IN_FLIGHT,
    HTTP_REQUESTS_SHED_TOTAL,
    DOWNSTREAM_REQUESTS_TOTAL,
    DOWNSTREAM_REQUEST_DURATION_SECONDS,
    CHAOS_FAULT_ACTIVE,
    BUSINESS_OPERATIONS_TOTAL,
    PROCESS_CPU_SECONDS_TOTAL,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_VIRTUAL_MEMORY_BYTES,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START_TIME_SECONDS,
];

/// The histograms of [`CATALOG`]: each is exposed as `_bucket`, `_sum` and `_count` series.
pub const HISTOGRAMS: &[&str] = &[HTTP_REQUEST_DURATION_SECONDS, DOWNSTREAM_REQUEST_DURATION_SECONDS];

/// Latency buckets: fine below 100 ms, and boundaries at 1 s and around it so `HighLatency`
/// (p95 > 1 s) is computed from real bucket edges rather than interpolated across a wide one.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0,
];

/// Methods kept as label values; any other is counted as `OTHER`, so clients cannot grow the label set.
pub const METHOD_LABELS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "OTHER",
];

/// The label value of a request method.
pub fn method_label(method: &str) -> &'static str {
    METHOD_LABELS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// Metrics of one service instance.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    enabled: bool,
    requests: requests::Requests,
}

impl Metrics {
    /// Creates the registry and describes every metric. With `enabled` false nothing is recorded.
    pub fn new(enabled: bool) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
            .expect("latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            describe_counter!(
                HTTP_REQUESTS_SHED_TOTAL,
                "Requests refused with 503 because the concurrency limit was reached."
            );
            describe_counter!(
                DOWNSTREAM_REQUESTS_TOTAL,
                "Calls to the downstream service, by peer and status (`error` when no answer came)."
            );
            describe_histogram!(
                DOWNSTREAM_REQUEST_DURATION_SECONDS,
                Unit::Seconds,
                "Duration of calls to the downstream service, by peer and status."
            );
            describe_gauge!(
                CHAOS_FAULT_ACTIVE,
                "1 while a chaos fault of this kind is active, else 0."
            );
            describe_counter!(
                BUSINESS_OPERATIONS_TOTAL,
                "Business operations, by operation and outcome."
            );
        });
        let metrics = Metrics {
            recorder,
            handle,
            enabled,
            requests: Default::default(),
        };
        for kind in crate::chaos::spec::FAULT_KINDS {
            metrics.fault_active(kind, false);
        }
        metrics
    }

    /// Counts one served request and its duration. `status` is a label value such as `"200"`.
    pub fn request(&self, method: &'static str, route: Route, status: &'static str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        self.requests.record(method, route, status, elapsed);
    }

    /// One more request in flight.
    pub fn request_started(&self) {
        if self.enabled {
            self.requests.started();
        }
    }

    /// One request fewer in flight.
    pub fn request_ended(&self) {
        if self.enabled {
            self.requests.ended();
        }
    }

    /// Counts one request refused by load shedding.
    pub fn shed(&self, route: Route) {
        if self.enabled {
            with_local_recorder(&self.recorder, || {
                metrics::counter!(HTTP_REQUESTS_SHED_TOTAL, "route" => route.template()).increment(1)
            });
        }
    }

    /// Counts one call to the downstream service.
    pub fn downstream(&self, peer: &str, status: &str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let labels = [("peer", peer.to_owned()), ("status", status.to_owned())];
        with_local_recorder(&self.recorder, || {
            metrics::counter!(DOWNSTREAM_REQUESTS_TOTAL, &labels).increment(1);
            metrics::histogram!(DOWNSTREAM_REQUEST_DURATION_SECONDS, &labels).record(elapsed.as_secs_f64());
        });
    }

    /// Counts one business operation.
    pub fn business(&self, operation: &'static str, outcome: &'static str) {
        if self.enabled {
            with_local_recorder(&self.recorder, || {
                metrics::counter!(BUSINESS_OPERATIONS_TOTAL, "operation" => operation, "outcome" => outcome)
                    .increment(1)
            });
        }
    }

    /// Drains recorded histogram samples into their buckets.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Renders the Prometheus text exposition, process metrics included.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        let mut out = String::new();
        if self.enabled {
            self.requests.render(&mut out);
        }
        out.push_str(&self.handle.render());
        process::render(&mut out);
        out
    }
}

impl FaultGauge for Metrics {
    fn fault_active(&self, kind: &'static str, active: bool) {
        with_local_recorder(&self.recorder, || {
            metrics::gauge!(CHAOS_FAULT_ACTIVE, "fault" => kind).set(if active { 1.0 } else { 0.0 })
        });
    }
}

/// Appends one metric family with its help and type lines.
pub(crate) fn write_family(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    write_header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Appends a metric family's help and type lines.
pub(crate) fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histograms_listed_are_the_ones_exposed_as_histograms() {
        let metrics = Metrics::new(true);
        metrics.request("GET", Route::Index, "200", Duration::from_millis(3));
        metrics.downstream("downstream", "200", Duration::from_millis(3));
        let text = metrics.render();
        for name in CATALOG {
            let histogram = text.contains(&format!("# TYPE {name} histogram\n"));
            assert_eq!(histogram, HISTOGRAMS.contains(name), "{name} in\n{text}");
            if histogram {
                assert!(
                    text.contains(&format!("\n{name}_bucket{{")),
                    "{name} has no buckets in\n{text}"
                );
            }
        }
    }
}

//! The request series (`http_requests_total`, `http_request_duration_seconds`) and the in-flight gauge,
//! kept as plain atomics and written into the exposition at scrape time.
//!
//! Every served request updates them, so they are the service's hottest metrics. Through the `metrics`
//! crate each request cost a series look-up under SipHash, a reference count, and a histogram sample
//! queued until the next upkeep; here it costs a look-up under a cheap hash and three atomic adds.
//! The text written is the same as the Prometheus exporter's: one `_bucket` line per bound (cumulative),
//! `+Inf`, `_sum` and `_count`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use super::{
    write_family, write_header, HTTP_REQUESTS_IN_FLIGHT, HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS,
    LATENCY_BUCKETS,
};
use crate::route::Route;

const REQUESTS_HELP: &str = "HTTP requests served, by method, route template and status.";
const DURATION_HELP: &str = "Time to serve an HTTP request, by method, route template and status.";
const IN_FLIGHT_HELP: &str = "HTTP requests being served right now.";

/// The request metrics of one service instance.
#[derive(Default)]
pub struct Requests {
    series: RwLock<HashMap<SeriesKey, Box<Series>, BuildHasherDefault<Fnv>>>,
    in_flight: AtomicI64,
}

/// Method, route and status labels.
type SeriesKey = (&'static str, Route, &'static str);

/// The counters of one `(method, route, status)` series; its labels are its key.
#[derive(Default)]
struct Series {
    /// Requests counted; also the histogram's `+Inf` bucket and `_count`.
    count: AtomicU64,
    /// Requests per bucket, not cumulative: `buckets[i]` counts durations in `(bound[i-1], bound[i]]`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    sum_nanos: AtomicU64,
}

impl Requests {
    /// Counts one request and its duration.
    pub fn record(&self, method: &'static str, route: Route, status: &'static str, elapsed: Duration) {
        let key = (method, route, status);
        {
            let series = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = series.get(&key) {
                s.add(elapsed);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        series.entry(key).or_default().add(elapsed);
    }

    /// One more request in flight.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// One request fewer in flight.
    pub fn ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Appends the three families to `out`, series in label order.
    pub fn render(&self, out: &mut String) {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut sorted: Vec<(&SeriesKey, &Series)> = series.iter().map(|(k, s)| (k, &**s)).collect();
        sorted.sort_by_key(|((method, route, status), _)| (*method, route.template(), *status));
        // Buckets are read before the count: a request adds to its count first, so the count read
        // afterwards covers every bucket read (`+Inf` is never below a finite bucket).
        let snapshots: Vec<([u64; LATENCY_BUCKETS.len()], u64, u64)> = sorted
            .iter()
            .map(|(_, s)| {
                let buckets = std::array::from_fn(|i| s.buckets[i].load(Ordering::Acquire));
                (
                    buckets,
                    s.count.load(Ordering::Relaxed),
                    s.sum_nanos.load(Ordering::Relaxed),
                )
            })
            .collect();

        write_header(out, HTTP_REQUESTS_TOTAL, "counter", REQUESTS_HELP);
        for ((key, _), (_, count, _)) in sorted.iter().zip(&snapshots) {
            let _ = writeln!(out, "{HTTP_REQUESTS_TOTAL}{{{}}} {count}", labels(key));
        }
        out.push('\n');

        write_header(out, HTTP_REQUEST_DURATION_SECONDS, "histogram", DURATION_HELP);
        for ((key, _), (buckets, count, sum_nanos)) in sorted.iter().zip(&snapshots) {
            let labels = labels(key);
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "{HTTP_REQUEST_DURATION_SECONDS}_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = *sum_nanos as f64 / 1e9;
            let _ = writeln!(
                out,
                "{HTTP_REQUEST_DURATION_SECONDS}_bucket{{{labels},le=\"+Inf\"}} {count}\n\
{HTTP_REQUEST_DURATION_SECONDS}_sum{{{labels}}} {sum}\n\
{HTTP_REQUEST_DURATION_SECONDS}_count{{{labels}}} {count}"
            );
        }
        out.push('\n');

        let in_flight = self.in_flight.load(Ordering::Relaxed).max(0);
        write_family(
            out,
            HTTP_REQUESTS_IN_FLIGHT,
            "gauge",
            IN_FLIGHT_HELP,
            in_flight as f64,
        );
        out.push('\n');
    }
}

fn labels((method, route, status): &SeriesKey) -> String {
    format!(
        "method=\"{method}\",route=\"{}\",status=\"{status}\"",
        route.template()
    )
}

impl Series {
    fn add(&self, elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Release);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// FNV-1a: the keys are a few short label strings, for which SipHash was a visible share of a request.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(requests: &Requests) -> String {
        let mut out = String::new();
        requests.render(&mut out);
        out
    }

    fn value(text: &str, series: &str) -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no line `{series}` in\n{text}"))
            .to_owned()
    }

    #[test]
    fn buckets_are_cumulative_and_inf_is_the_count() {
        let r = Requests::default();
        for ms in [1, 7, 7, 300, 20_000] {
            r.record("GET", Route::Index, "200", Duration::from_millis(ms));
        }
        let text = rendered(&r);
        let l = r#"method="GET",route="/",status="200""#;
        let bucket = |le: &str| {
            value(
                &text,
                &format!("http_request_duration_seconds_bucket{{{l},le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.005"), "1");
        assert_eq!(bucket("0.01"), "3");
        assert_eq!(bucket("0.25"), "3");
        assert_eq!(bucket("0.5"), "4");
        assert_eq!(bucket("10"), "4");
        assert_eq!(bucket("+Inf"), "5");
        assert_eq!(
            value(&text, &format!("http_request_duration_seconds_count{{{l}}}")),
            "5"
        );
        assert_eq!(value(&text, &format!("http_requests_total{{{l}}}")), "5");
        assert_eq!(
            value(&text, &format!("http_request_duration_seconds_sum{{{l}}}")),
            "20.315"
        );
    }

    #[test]
    fn a_bound_itself_falls_in_its_bucket() {
        let r = Requests::default();
        r.record("GET", Route::Index, "200", Duration::from_millis(5));
        let text = rendered(&r);
        assert!(text.contains(r#"status="200",le="0.005"} 1"#), "{text}");
    }

    #[test]
    fn series_are_separate_and_sorted_by_labels() {
        let r = Requests::default();
        r.record("POST", Route::Index, "500", Duration::ZERO);
        r.record("GET", Route::Index, "aborted", Duration::ZERO);
        r.record("GET", Route::Index, "200", Duration::ZERO);
        r.record("GET", Route::Index, "200", Duration::ZERO);
        let text = rendered(&r);
        let totals: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("http_requests_total{"))
            .collect();
        assert_eq!(
            totals,
            [
                r#"http_requests_total{method="GET",route="/",status="200"} 2"#,
                r#"http_requests_total{method="GET",route="/",status="aborted"} 1"#,
                r#"http_requests_total{method="POST",route="/",status="500"} 1"#,
            ]
        );
    }

    #[test]
    fn in_flight_follows_starts_and_ends() {
        let r = Requests::default();
        r.started();
        r.started();
        r.ended();
        assert_eq!(value(&rendered(&r), HTTP_REQUESTS_IN_FLIGHT), "1");
        r.ended();
        assert_eq!(value(&rendered(&r), HTTP_REQUESTS_IN_FLIGHT), "0");
    }
}

//! From a scenario to the series Prometheus would scrape from the target-app and its downstream: the
//! schedule's arrivals per moment, split by the mix's weights, turned into counter and histogram
//! increments by the target's own model ([`target_app::metrics::model`]), shifted to when each request
//! completes (that is when the target counts it), and sampled at every scrape.
//!
//! Pure arithmetic on expected values: no request is drawn, nothing is sent. Load shedding is
//! estimated from Little's law (requests wanted in flight = rate x mean time in the app).

use std::collections::BTreeMap;

use target_app::chaos::Fault;
use target_app::metrics::model::{self, Dist, Effects};
use target_app::metrics::{
    DOWNSTREAM_REQUESTS_TOTAL, DOWNSTREAM_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_SHED_TOTAL,
    HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS, LATENCY_BUCKETS,
};
use target_app::route::Route;
use target_app::Role;

use super::Scrapes;
use crate::scenario::{Load, Scenario};
use crate::schedule::RateCurve;

/// Resolution of the arrival and completion bookkeeping, in seconds.
const TICK: f64 = 0.25;

/// A scrape at the very moment a phase starts sees the target as it was just before: faults are
/// applied through the chaos API a moment after the phase starts.
const SEEN_BEFORE: f64 = 1e-3;

/// The target's concurrency limit (target-app's `--max-concurrency` default), past which it sheds.
pub const CONCURRENCY_LIMIT: usize = 512;

/// The `job` label of each role, as the stack's and loadgen's Prometheus name them.
pub fn job(role: Role) -> &'static str {
    role.service_name()
}

/// Sampled series: for each series (in Prometheus' `name{labels}` notation), its value at each scrape,
/// `None` where Prometheus would have no sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Seconds between scrapes.
    pub interval: f64,
    /// Values at `0, interval, 2·interval, …`.
    pub values: BTreeMap<String, Vec<Option<f64>>>,
}

impl Series {
    /// Number of scrapes.
    pub fn scrapes(&self) -> usize {
        self.values.values().next().map_or(0, Vec::len)
    }
}

/// Increments per tick of one series.
#[derive(Default)]
struct Book {
    increments: BTreeMap<String, Vec<f64>>,
    ticks: usize,
}

impl Book {
    fn add(&mut self, series: &str, tick: usize, amount: f64) {
        if amount <= 0.0 || tick >= self.ticks {
            return;
        }
        match self.increments.get_mut(series) {
            Some(v) => v[tick] += amount,
            None => {
                let mut v = vec![0.0; self.ticks];
                v[tick] = amount;
                self.increments.insert(series.to_owned(), v);
            }
        }
    }

    /// Adds `n` requests arriving in `tick` with this footprint.
    fn apply(&mut self, footprint: &Footprint, tick: usize, n: f64) {
        if n > 0.0 {
            for (series, amount, delay) in footprint {
                self.add(series, tick + delay, n * amount);
            }
        }
    }
}

fn selector(name: &str, labels: &[(&str, &str)]) -> String {
    let mut sorted = labels.to_vec();
    sorted.sort();
    let inner: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// What one request adds: to which series, how much, and how many ticks after it arrives.
type Footprint = Vec<(String, f64, usize)>;

/// Adds to `fp` what a share `count` of a request taking `duration` adds to a histogram and its
/// counter.
fn observe(
    fp: &mut Footprint,
    counter: &str,
    histogram: &str,
    labels: &[(&str, &str)],
    count: f64,
    duration: &Dist,
) {
    if count <= 0.0 {
        return;
    }
    let mean = duration.mean();
    let done = (mean / TICK).round() as usize;
    fp.push((selector(counter, labels), count, done));
    for le in LATENCY_BUCKETS {
        let text = format_le(*le);
        let mut with_le = labels.to_vec();
        with_le.push(("le", &text));
        let bucket = selector(&format!("{histogram}_bucket"), &with_le);
        fp.push((bucket, count * duration.cdf(*le), done));
    }
    let mut with_le = labels.to_vec();
    with_le.push(("le", "+Inf"));
    fp.push((selector(&format!("{histogram}_bucket"), &with_le), count, done));
    fp.push((selector(&format!("{histogram}_count"), labels), count, done));
    fp.push((selector(&format!("{histogram}_sum"), labels), count * mean, done));
}

/// `le` as the exporter writes it (`0.005`, `1`, `2.5`).
fn format_le(le: f64) -> String {
    format!("{le}")
}

/// One request of a phase's mix: its share of the phase's arrivals and what it does to the series.
struct Kind {
    share: f64,
    /// Mean time one request holds a concurrency slot of the app.
    app_time: f64,
    faultable: bool,
    /// What one served request adds.
    served: Footprint,
    /// What one request refused by load shedding adds.
    shed: Footprint,
}

/// The series the scenario makes the target expose, as a Prometheus scraping the way `scrapes` says
/// would sample them.
pub fn build(s: &Scenario, scrapes: Scrapes) -> Series {
    let interval = scrapes.interval.as_secs_f64();
    let first = scrapes.first.as_secs_f64();
    let duration = s.duration().as_secs_f64();
    let ticks = (duration / TICK).ceil() as usize + 1;
    let mut book = Book {
        ticks,
        ..Book::default()
    };
    // When the app is down (outage faults): its scrapes fail and requests never reach it.
    let mut down: Vec<(f64, f64)> = Vec::new();
    for (i, p) in s.phases.iter().enumerate() {
        let start = s.phase_start(i).as_secs_f64();
        for f in &p.chaos {
            if let Fault::Outage(o) = f {
                down.push((
                    start,
                    start + o.duration.as_secs_f64().min(p.duration.as_secs_f64()),
                ));
            }
        }
    }
    let is_down = |t: f64| down.iter().any(|(a, b)| (*a..*b).contains(&t));

    for (i, p) in s.phases.iter().enumerate() {
        let start = s.phase_start(i).as_secs_f64();
        let total = p.mix.total_weight() as f64;
        let kinds: Vec<Kind> = p
            .mix
            .requests()
            .iter()
            .map(|r| {
                let path = r.path_and_query.path();
                let effects = model::request(
                    r.method.as_str(),
                    r.path_and_query.as_str(),
                    r.body.as_deref(),
                    &p.chaos,
                );
                Kind {
                    share: f64::from(r.weight.get()) / total,
                    app_time: effects.mean_app_time(),
                    faultable: Route::resolve(path, Role::App).faultable(),
                    served: footprint(&effects),
                    shed: shed_footprint(&effects),
                }
            })
            .collect();
        let mean_time: f64 = kinds.iter().map(|k| k.share * k.app_time).sum();
        let curve = match &p.load {
            Load::Open { rate, .. } => Some(RateCurve::new(rate, p.duration.as_secs_f64())),
            Load::Closed { .. } => None,
        };
        let first = (start / TICK).floor() as usize;
        let last = ((start + p.duration.as_secs_f64()) / TICK).ceil() as usize;
        for tick in first..last.min(ticks) {
            let (a, b) = (tick as f64 * TICK, (tick + 1) as f64 * TICK);
            let (a, b) = (
                a.max(start) - start,
                b.min(start + p.duration.as_secs_f64()) - start,
            );
            if b <= a || is_down(start + a) {
                continue;
            }
            let arrivals = match (&curve, &p.load) {
                (Some(c), _) => c.cumulative(b) - c.cumulative(a),
                (None, Load::Closed { concurrency }) => {
                    f64::from(concurrency.get()) / mean_time.max(0.001) * (b - a)
                }
                (None, Load::Open { .. }) => 0.0,
            };
            if arrivals <= 0.0 {
                continue;
            }
            let rate = arrivals / (b - a);
            let wanted: f64 = kinds
                .iter()
                .filter(|k| k.faultable)
                .map(|k| rate * k.share * k.app_time)
                .sum();
            let shed = model::shed_share(wanted, CONCURRENCY_LIMIT);
            for k in &kinds {
                let n = arrivals * k.share;
                let (served, refused) = if k.faultable {
                    (n * (1.0 - shed), n * shed)
                } else {
                    (n, 0.0)
                };
                book.apply(&k.served, tick, served);
                book.apply(&k.shed, tick, refused);
            }
        }
    }

    let scrapes = (duration / interval).floor() as usize + 1;
    let mut values = BTreeMap::new();
    for (name, increments) in &book.increments {
        let mut sampled = Vec::with_capacity(scrapes);
        let app = name.contains(&format!("job=\"{}\"", job(Role::App)));
        let (mut sum, mut next) = (0.0, 0);
        for k in 0..scrapes {
            let t = k as f64 * interval;
            while next < increments.len() && (next as f64 + 1.0) * TICK <= t + 1e-9 {
                sum += increments[next];
                next += 1;
            }
            sampled.push((t >= first && sum > 0.0 && !(app && is_down(t - SEEN_BEFORE))).then_some(sum));
        }
        values.insert(name.clone(), sampled);
    }
    for role in [Role::App, Role::Downstream] {
        let up = (0..scrapes)
            .map(|k| {
                let t = k as f64 * interval;
                let down = role == Role::App && is_down(t - SEEN_BEFORE);
                (t >= first).then_some(if down { 0.0 } else { 1.0 })
            })
            .collect();
        values.insert(selector("up", &[("job", job(role))]), up);
    }
    Series { interval, values }
}

/// What one request with these effects adds to the series.
fn footprint(effects: &Effects) -> Footprint {
    let mut fp = Footprint::new();
    for s in &effects.served {
        let labels = [
            ("job", job(s.role)),
            ("method", s.method),
            ("route", s.route.template()),
            ("status", s.status),
        ];
        observe(
            &mut fp,
            HTTP_REQUESTS_TOTAL,
            HTTP_REQUEST_DURATION_SECONDS,
            &labels,
            s.share,
            &s.duration,
        );
    }
    for c in &effects.calls {
        let labels = [
            ("job", job(Role::App)),
            ("peer", target_app::downstream::PEER),
            ("status", c.status),
        ];
        observe(
            &mut fp,
            DOWNSTREAM_REQUESTS_TOTAL,
            DOWNSTREAM_REQUEST_DURATION_SECONDS,
            &labels,
            c.share,
            &c.duration,
        );
    }
    fp
}

/// What one request refused by load shedding adds: a 503 at once, and the shed counter.
fn shed_footprint(effects: &Effects) -> Footprint {
    let mut fp = Footprint::new();
    if let Some(first) = effects.served.iter().find(|x| x.role == Role::App) {
        let job = job(Role::App);
        let route = first.route.template();
        fp.push((
            selector(HTTP_REQUESTS_SHED_TOTAL, &[("job", job), ("route", route)]),
            1.0,
            0,
        ));
        let labels = [
            ("job", job),
            ("method", first.method),
            ("route", route),
            ("status", "503"),
        ];
        observe(
            &mut fp,
            HTTP_REQUESTS_TOTAL,
            HTTP_REQUEST_DURATION_SECONDS,
            &labels,
            1.0,
            &Dist::fixed(0.0005),
        );
    }
    fp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        crate::scenario::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn counters_follow_rate_mix_and_faults() {
        let s = scenario(
            r#"
            [[mix]]
            path = "/"
            weight = 3
            [[mix]]
            path = "/external"
            [[phases]]
            duration = "20s"
            rate = { shape = "constant", rps = 40 }
            chaos = [{ fault = "error", status = 500, ratio = 0.5 }]
        "#,
        );
        let series = build(&s, Scrapes::STACK);
        assert_eq!(series.scrapes(), 5);
        let at = |name: &str, k: usize| series.values[name][k].unwrap_or(0.0);
        let ok = r#"http_requests_total{job="target-app",method="GET",route="/",status="200"}"#;
        let failed = r#"http_requests_total{job="target-app",method="GET",route="/",status="500"}"#;
        // 10 s of 40 rps, three quarters to `/`, half of those failed.
        assert!((at(ok, 2) - 150.0).abs() < 1.0, "{}", at(ok, 2));
        assert!((at(failed, 2) - 150.0).abs() < 1.0);
        let data = r#"http_requests_total{job="downstream",method="GET",route="/api/data",status="200"}"#;
        assert!((at(data, 2) - 50.0).abs() < 1.5, "{}", at(data, 2));
        assert_eq!(series.values[r#"up{job="target-app"}"#][3], Some(1.0));
    }

    #[test]
    fn an_outage_turns_up_to_zero_and_hides_the_apps_series() {
        let s = scenario(
            r#"
            [[mix]]
            path = "/"
            [[phases]]
            duration = "10s"
            rate = { shape = "constant", rps = 10 }
            [[phases]]
            duration = "20s"
            rate = { shape = "constant", rps = 10 }
            chaos = [{ fault = "outage", duration = "10s" }]
        "#,
        );
        let series = build(&s, Scrapes::STACK);
        let up = &series.values[r#"up{job="target-app"}"#];
        // A scrape sees the target as it was just before: down at 15s and 20s, up again at 25s.
        assert_eq!(up, &[1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0].map(Some));
        let ok =
            &series.values[r#"http_requests_total{job="target-app",method="GET",route="/",status="200"}"#];
        assert_eq!(ok[3], None);
        // 100 before the outage, 50 after it, none of the 100 sent while down.
        assert!((ok[5].unwrap() - 150.0).abs() < 1.0, "{:?}", ok[5]);
    }

    #[test]
    fn a_surge_past_the_limit_is_shed() {
        let s = scenario(
            r#"
            [[mix]]
            path = "/slow"
            query = { ms = 2000 }
            [[phases]]
            duration = "30s"
            rate = { shape = "constant", rps = 512 }
        "#,
        );
        let series = build(&s, Scrapes::STACK);
        let shed = &series.values[r#"http_requests_shed_total{job="target-app",route="/slow"}"#];
        // 1024 wanted in flight, 512 allowed: half of 512 rps is shed.
        assert!((shed[2].unwrap() - 256.0 * 10.0).abs() < 5.0, "{:?}", shed[2]);
    }
}

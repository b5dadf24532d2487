//! A model of the series this service exposes: what one request adds to each metric of the
//! [catalog](super::CATALOG), given its method, path and the active chaos faults.
//!
//! It mirrors what [`crate::app`], [`crate::handlers`] and [`crate::downstream`] do (which route, which
//! status, how long, which downstream calls), as shares of requests rather than single draws, so a
//! planner can turn a traffic plan into the series Prometheus would scrape. It lives beside the
//! catalog so the two change together; a test in loadgen checks it against a real `/metrics`. It does not
//! model load shedding (that depends on the rate; see [`shed_share`]) or process metrics.

use crate::chaos::Fault;
use crate::route::{Role, Route};

/// Time the cheapest handlers take, in seconds: well inside the first latency bucket.
const INSTANT: f64 = 0.0005;

/// A duration distribution: the sum of independent uniform parts `[lo, hi]` seconds (`lo == hi` for a
/// fixed time).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dist {
    parts: Vec<(f64, f64)>,
}

impl Dist {
    /// A fixed time.
    pub fn fixed(seconds: f64) -> Dist {
        Dist {
            parts: vec![(seconds, seconds)],
        }
    }

    /// Uniform between `lo` and `hi` seconds.
    pub fn uniform(lo: f64, hi: f64) -> Dist {
        Dist {
            parts: vec![(lo.min(hi), lo.max(hi))],
        }
    }

    /// The sum of `self` and `other`.
    pub fn plus(mut self, other: &Dist) -> Dist {
        self.parts.extend_from_slice(&other.parts);
        self
    }

    /// The mean, in seconds.
    pub fn mean(&self) -> f64 {
        self.parts.iter().map(|(lo, hi)| (lo + hi) / 2.0).sum()
    }

    /// The share of values at or below `x` seconds (what a histogram bucket `le = x` counts).
    pub fn cdf(&self, x: f64) -> f64 {
        // Every part but the widest is taken at a few quantiles; the widest stays exact.
        const POINTS: usize = 24;
        let mut parts = self.parts.clone();
        parts.sort_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)));
        let Some((lo, hi)) = parts.pop() else {
            return if x >= 0.0 { 1.0 } else { 0.0 };
        };
        let mut offsets = vec![0.0];
        for (a, b) in parts {
            let steps = if b > a { POINTS } else { 1 };
            offsets = offsets
                .iter()
                .flat_map(|o| (0..steps).map(move |k| o + a + (b - a) * (k as f64 + 0.5) / steps as f64))
                .collect();
        }
        let n = offsets.len() as f64;
        offsets
            .iter()
            .map(|o| {
                let y = x - o;
                if hi > lo {
                    ((y - lo) / (hi - lo)).clamp(0.0, 1.0)
                } else if y >= lo {
                    1.0
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            / n
    }
}

/// A share of requests served one way: counted in `http_requests_total` and
/// `http_request_duration_seconds` of `role` with these labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// Which service counts it.
    pub role: Role,
    /// `method` label.
    pub method: &'static str,
    /// `route` label (its template).
    pub route: Route,
    /// `status` label: three digits, or `aborted`.
    pub status: &'static str,
    /// Requests of this kind per request sent to the app (a share, or a count of calls).
    pub share: f64,
    /// How long each takes.
    pub duration: Dist,
}

/// A share of calls from the app to its downstream, counted in `downstream_requests_total` and
/// `downstream_request_duration_seconds` with `peer` = [`crate::downstream::PEER`].
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `status` label: three digits, or `error` when no answer came.
    pub status: &'static str,
    /// Calls per request sent to the app.
    pub share: f64,
    /// How long each takes.
    pub duration: Dist,
}

/// Everything one request to the app adds to the series of the app and its downstream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Requests served, by the app and by the downstream.
    pub served: Vec<Served>,
    /// The app's calls to the downstream.
    pub calls: Vec<Call>,
}

impl Effects {
    /// The mean time the app spends on one such request (what holds a concurrency slot).
    pub fn mean_app_time(&self) -> f64 {
        self.served
            .iter()
            .filter(|s| s.role == Role::App)
            .map(|s| s.share * s.duration.mean())
            .sum()
    }

    fn serve(
        &mut self,
        role: Role,
        method: &'static str,
        route: Route,
        status: &'static str,
        share: f64,
        duration: Dist,
    ) {
        if share > 0.0 {
            self.served.push(Served {
                role,
                method,
                route,
                status,
                share,
                duration,
            });
        }
    }
}

/// The share of requests the app refuses with 503 when requests would keep `wanted` of them in flight
/// at once and it admits at most `limit`: the admitted ones keep it full, the rest are shed.
pub fn shed_share(wanted: f64, limit: usize) -> f64 {
    if wanted <= limit as f64 || wanted <= 0.0 {
        0.0
    } else {
        1.0 - limit as f64 / wanted
    }
}

/// What one request `method path?query` (with `body`) sent to the app adds, while `faults` are active.
/// Shares are exact over many requests, as the chaos decisions are (a fault's ratio holds over any
/// window).
pub fn request(method: &str, path_and_query: &str, body: Option<&[u8]>, faults: &[Fault]) -> Effects {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let method = super::method_label(method);
    let route = Route::resolve(path, Role::App);
    let mut out = Effects::default();
    if !route.faultable() {
        let status = match route {
            Route::Unmatched => "404",
            _ => "200",
        };
        out.serve(Role::App, method, route, status, 1.0, Dist::fixed(INSTANT));
        return out;
    }
    let applies = |routes: &[String]| routes.is_empty() || routes.iter().any(|r| r == route.template());

    // Latency faults delay every request they hit, before anything else (see `Chaos::decide`). Each is
    // an independent share; mixtures of several are kept as separate branches.
    let mut branches: Vec<(f64, Dist)> = vec![(1.0, Dist::fixed(0.0))];
    for f in faults {
        if let Fault::Latency(l) = f {
            if applies(&l.routes) {
                let delay = Dist::uniform(l.delay.as_secs_f64(), (l.delay + l.jitter).as_secs_f64());
                branches = branches
                    .into_iter()
                    .flat_map(|(share, d)| {
                        [
                            (share * l.ratio, d.clone().plus(&delay)),
                            (share * (1.0 - l.ratio), d),
                        ]
                    })
                    .filter(|(share, _)| *share > 0.0)
                    .collect();
            }
        }
    }
    // Terminal faults in order: a request ended by one does not reach the next.
    let mut remaining = 1.0;
    for f in faults {
        let (status, extra, ratio) = match f {
            Fault::Error(e) if applies(&e.routes) => (status_label(e.status), 0.0, e.ratio),
            Fault::Timeout(t) if applies(&t.routes) => ("aborted", t.hold.as_secs_f64(), t.ratio),
            Fault::Reset(r) if applies(&r.routes) => ("aborted", 0.0, r.ratio),
            _ => continue,
        };
        let hit = remaining * ratio;
        for (share, delay) in &branches {
            let d = delay.clone().plus(&Dist::fixed(INSTANT + extra));
            out.serve(Role::App, method, route, status, hit * share, d);
        }
        remaining -= hit;
    }
    if remaining <= 0.0 {
        return out;
    }
    let downstream_failure = faults
        .iter()
        .filter_map(|f| match f {
            Fault::Downstream(d) if applies(&d.routes) => Some(d.ratio),
            _ => None,
        })
        .fold(0.0, |ok: f64, r| 1.0 - (1.0 - ok) * (1.0 - r));
    let mut handled = Effects::default();
    handler(&mut handled, method, route, query, body, downstream_failure);
    for (share, delay) in &branches {
        for s in &handled.served {
            let d = if s.role == Role::App {
                s.duration.clone().plus(delay)
            } else {
                s.duration.clone()
            };
            out.serve(
                s.role,
                s.method,
                s.route,
                s.status,
                s.share * share * remaining,
                d,
            );
        }
    }
    for c in handled.calls {
        out.calls.push(Call {
            share: c.share * remaining,
            ..c
        });
    }
    out
}

/// What the handler of `route` does, per request that reaches it; `fail` is the share of downstream
/// calls a `downstream` fault makes fail.
fn handler(
    out: &mut Effects,
    method: &'static str,
    route: Route,
    query: &str,
    body: Option<&[u8]>,
    fail: f64,
) {
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    };
    let ms = |name: &str| {
        param(name)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64 / 1000.0)
    };
    let app = |out: &mut Effects, status, share, d| out.serve(Role::App, method, route, status, share, d);
    match route {
        Route::Index => app(out, "200", 1.0, Dist::fixed(INSTANT)),
        Route::Slow => app(
            out,
            "200",
            1.0,
            ms("ms").map_or(Dist::uniform(1.0, 3.0), Dist::fixed),
        ),
        Route::Error => {
            let kinds: &[&str] = match param("type").unwrap_or("500") {
                "random" => &["500", "502", "503", "404", "timeout"],
                "500" => &["500"],
                "502" => &["502"],
                "503" => &["503"],
                "404" => &["404"],
                "timeout" => &["timeout"],
                _ => &["400"],
            };
            for kind in kinds {
                let share = 1.0 / kinds.len() as f64;
                match *kind {
                    "timeout" => app(out, "504", share, Dist::fixed(ms("ms").unwrap_or(5.0))),
                    status => app(out, status, share, Dist::fixed(INSTANT)),
                }
            }
        }
        Route::External => {
            let data = Dist::uniform(0.005, 0.025);
            out.serve(
                Role::Downstream,
                "GET",
                Route::Data,
                "200",
                1.0 - fail,
                data.clone(),
            );
            out.calls.push(Call {
                status: "200",
                share: 1.0 - fail,
                duration: data.clone(),
            });
            out.calls.push(Call {
                status: "error",
                share: fail,
                duration: Dist::fixed(0.0),
            });
            app(out, "200", 1.0 - fail, data);
            app(out, "502", fail, Dist::fixed(INSTANT));
        }
        Route::GenerateLoad => app(out, "200", 1.0, Dist::fixed(ms("ms").unwrap_or(0.05))),
        Route::Checkout => {
            let valid = method == "GET"
                || body
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .and_then(|v| v.get("items")?.as_array().map(|items| !items.is_empty()))
                    .unwrap_or(false);
            if !valid {
                app(out, "400", 1.0, Dist::fixed(INSTANT));
                return;
            }
            // Two calls, reserve then charge; the first failure ends the checkout. The fault decides
            // call by call from one counter per route, evenly spread, so the two calls of a checkout
            // are not independent (at 50%, nearly every checkout fails at its second call): the
            // shares come from the same decision function, run over many calls.
            let step = Dist::uniform(0.005, 0.04);
            let (first_ok, both_ok) = checkout_shares(fail);
            for (route_down, share) in [
                (Route::InventoryReserve, first_ok),
                (Route::PaymentsCharge, both_ok),
            ] {
                out.serve(Role::Downstream, "POST", route_down, "200", share, step.clone());
            }
            out.calls.push(Call {
                status: "200",
                share: first_ok + both_ok,
                duration: step.clone(),
            });
            out.calls.push(Call {
                status: "error",
                share: 1.0 - both_ok,
                duration: Dist::fixed(0.0),
            });
            app(out, "200", both_ok, step.clone().plus(&step));
            app(out, "502", 1.0 - first_ok, Dist::fixed(INSTANT));
            app(out, "502", first_ok - both_ok, step);
        }
        _ => app(out, "200", 1.0, Dist::fixed(INSTANT)),
    }
}

/// Shares of checkouts whose first call succeeds, and whose both calls succeed, when `fail` of the
/// calls fail by [`crate::chaos::state::hits`].
fn checkout_shares(fail: f64) -> (f64, f64) {
    const CALLS: u64 = 100_000;
    let ratio_ppm = (fail * 1e6).round() as u64;
    let (mut n, mut checkouts, mut first_ok, mut both_ok) = (0, 0u64, 0u64, 0u64);
    while n < CALLS {
        checkouts += 1;
        let first = crate::chaos::state::hits(n, ratio_ppm, 0);
        n += 1;
        if first {
            continue;
        }
        first_ok += 1;
        let second = crate::chaos::state::hits(n, ratio_ppm, 0);
        n += 1;
        if !second {
            both_ok += 1;
        }
    }
    (
        first_ok as f64 / checkouts as f64,
        both_ok as f64 / checkouts as f64,
    )
}

/// The `status` label of an HTTP status code.
fn status_label(status: u16) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..1000).map(|code: u16| code.to_string()).collect());
    labels
        .get(usize::from(status).saturating_sub(100))
        .map_or("500", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ChaosSpec;

    fn faults(json: &str) -> Vec<Fault> {
        serde_json::from_str::<ChaosSpec>(json).unwrap().faults
    }

    fn share(e: &Effects, role: Role, route: Route, status: &str) -> f64 {
        e.served
            .iter()
            .filter(|s| s.role == role && s.route == route && s.status == status)
            .map(|s| s.share)
            .sum()
    }

    #[test]
    fn an_error_fault_splits_requests_by_its_ratio() {
        let f = faults(r#"{"faults":[{"fault":"error","status":503,"ratio":0.3}]}"#);
        let e = request("GET", "/external", None, &f);
        assert!((share(&e, Role::App, Route::External, "503") - 0.3).abs() < 1e-9);
        assert!((share(&e, Role::App, Route::External, "200") - 0.7).abs() < 1e-9);
        assert!((share(&e, Role::Downstream, Route::Data, "200") - 0.7).abs() < 1e-9);
    }

    #[test]
    fn a_downstream_fault_fails_calls_and_checkouts() {
        let f = faults(r#"{"faults":[{"fault":"downstream","ratio":1.0,"routes":["/checkout"]}]}"#);
        let e = request(
            "POST",
            "/checkout",
            Some(br#"{"items":[{"sku":"A1","qty":1}]}"#),
            &f,
        );
        assert_eq!(share(&e, Role::App, Route::Checkout, "502"), 1.0);
        assert_eq!(share(&e, Role::Downstream, Route::InventoryReserve, "200"), 0.0);
        let errors: f64 = e
            .calls
            .iter()
            .filter(|c| c.status == "error")
            .map(|c| c.share)
            .sum();
        assert_eq!(errors, 1.0);
        let other = request("GET", "/external", None, &f);
        assert_eq!(
            share(&other, Role::App, Route::External, "200"),
            1.0,
            "scoped to /checkout"
        );
    }

    #[test]
    fn latency_faults_move_the_distribution() {
        let f = faults(r#"{"faults":[{"fault":"latency","delay":"1200ms","jitter":"300ms"}]}"#);
        let e = request("GET", "/", None, &f);
        let d = &e.served[0].duration;
        assert_eq!(d.cdf(1.0), 0.0);
        assert!((d.cdf(1.35) - 0.5).abs() < 0.01);
        assert_eq!(d.cdf(1.6), 1.0);
        assert!((e.mean_app_time() - 1.3505).abs() < 1e-6);
    }

    #[test]
    fn shedding_starts_past_the_limit() {
        assert_eq!(shed_share(500.0, 512), 0.0);
        assert!((shed_share(1024.0, 512) - 0.5).abs() < 1e-12);
    }
}

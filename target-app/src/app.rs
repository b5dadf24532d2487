//! The request path, as layers around the handlers: **shed → telemetry → chaos → handler**.
//!
//! - [`shed`] refuses work past the concurrency limit with 503 before anything else is spent on it
//!   (a shed answer is still counted in the request metrics, so `HighErrorRate` and `Saturated` see it).
//! - [`observe`] opens the server span (`tracing`, exported by `tracing-opentelemetry`, joined to the
//!   caller's W3C context), writes the access log line inside it and records the RED metrics. Probes
//!   and scrapes (`/health`, `/metrics`) only get the metrics.
//! - [`inject_faults`] applies the chaos decision for the request.
//! - [`crate::handlers::dispatch`] produces the answer.
//!
//! Every request runs under its service instance's `tracing` dispatcher, so spans and log lines carry
//! that instance's `service.name` even with two instances in one process. Handlers never record request
//! metrics or write the access log themselves, so every route is measured the same way. The instance's
//! state is the [`App`] of [`crate::state`].

use std::borrow::Cow;
use std::future::Future as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::KeyValue;
use opentelemetry_http::HeaderExtractor;
use tokio::time::Instant;
use tracing::instrument::WithSubscriber as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::chaos::Terminal;
use crate::exchange::{json_error, Abort, Body, ConnInfo};
use crate::route::Route;
use crate::state::App;
use crate::telemetry::logs;
use crate::telemetry::profiles::{hex_id, ProfileId, PROFILE_ID_ATTRIBUTE};

type Answer = Result<Response<Body>, Abort>;

/// Serves one request end to end, under the instance's `tracing` dispatcher (set around each poll,
/// unless it is the process's default).
pub async fn handle(app: Arc<App>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Answer {
    let route = Route::resolve(req.uri().path(), app.config.role);
    if app.telemetry.is_process_default() {
        return shed(app, conn, route, req).await;
    }
    let dispatch = app.telemetry.dispatch().clone();
    shed(app, conn, route, req).with_subscriber(dispatch).await
}

/// Layer 1: past the concurrency limit, faultable routes answer 503 at once.
async fn shed(app: Arc<App>, conn: Arc<ConnInfo>, route: Route, req: Request<Incoming>) -> Answer {
    let _permit = if route.faultable() {
        match app.limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let start = Instant::now();
                let method = crate::metrics::method_label(req.method().as_str());
                let metrics = &app.telemetry.metrics;
                metrics.shed(route);
                metrics.request(method, route, "503", start.elapsed());
                return Ok(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded: concurrency limit reached, retry later",
                ));
            }
        }
    } else {
        None
    };
    let _in_flight = InFlight::enter(&app);
    observe(&app, &conn, route, req).await
}

/// Layer 2: the server span, the access log line and the request metrics.
async fn observe(app: &Arc<App>, conn: &ConnInfo, route: Route, mut req: Request<Incoming>) -> Answer {
    if !app.telemetry.enabled {
        return inject_faults(app, conn, route, req).await;
    }
    let start = Instant::now();
    let method = crate::metrics::method_label(req.method().as_str());
    if !route.traced() {
        // Probes and scrapes: counted, never traced nor logged. At a 5 s scrape and frequent probes they
        // would be most of the spans and say nothing about the service's work.
        let outcome = inject_faults(app, conn, route, req).await;
        let status = outcome.as_ref().map_or("aborted", |r| status_label(r.status()));
        app.telemetry
            .metrics
            .request(method, route, status, start.elapsed());
        return outcome;
    }
    // A matched route's path is its template: no copy needed.
    let path: Cow<'static, str> = match route {
        Route::Unmatched => req.uri().path().to_owned().into(),
        r => r.template().into(),
    };
    // Few attributes, each one read by someone: every attribute is copied and encoded once more on export.
    // `url.path` only where it says more than the route.
    let span = tracing::info_span!(
        target: "target_app::request",
        "request",
        otel.name = span_name(method, route),
        otel.kind = "server",
        http.request.method = method,
        http.route = route.template(),
        url.path = tracing::field::Empty,
    );
    if route == Route::Unmatched {
        span.record("url.path", path.as_ref());
    }
    if req.headers().contains_key("traceparent") {
        let parent = app.propagator.extract(&HeaderExtractor(req.headers()));
        let _ = span.set_parent(parent);
    }
    // Only the one route whose work owns a thread has span profiles: its samples can be labelled
    // (see telemetry::profiles); the label must be known before the work starts. Other spans do not
    // carry the profile id, so Grafana offers no "Profiles for this span" that would open empty.
    let span_profile = app.telemetry.profiling() && route == Route::GenerateLoad;
    if span_profile {
        req.extensions_mut().insert(ProfileId {
            span_id: hex_id(span.context().span().span_context().span_id()),
            span_name: span_name(method, route).to_owned(),
        });
    }

    // Entered around each poll, as `Instrumented` would, but by reference: no clone of the span to
    // register and close.
    let mut work = std::pin::pin!(inject_faults(app, conn, route, req));
    let outcome = std::future::poll_fn(|cx| {
        let _entered = span.enter();
        work.as_mut().poll(cx)
    })
    .await;

    let elapsed = start.elapsed();
    let status = match &outcome {
        Ok(resp) => status_label(resp.status()),
        Err(_) => "aborted",
    };
    let ids = {
        // Everything known only now goes to the OpenTelemetry span through one look-up of it, and
        // one lock of it for the attributes.
        let cx = span.context();
        let otel = cx.span();
        let sc = otel.span_context();
        let mut attributes: [Option<KeyValue>; 3] = [None, None, None];
        if span_profile {
            // This span is the local root: its id names the profile of the request's work.
            let id = hex_id(sc.span_id());
            attributes[0] = Some(KeyValue::new(PROFILE_ID_ATTRIBUTE, id));
        }
        match &outcome {
            Ok(resp) => {
                let code = i64::from(resp.status().as_u16());
                attributes[1] = Some(KeyValue::new("http.response.status_code", code));
                if resp.status().is_server_error() {
                    attributes[2] = Some(KeyValue::new("error.type", status));
                }
            }
            Err(_) => attributes[2] = Some(KeyValue::new("error.type", "aborted")),
        }
        otel.set_attributes(attributes.into_iter().flatten());
        match &outcome {
            Ok(resp) if resp.status().is_server_error() => {
                otel.set_status(Status::error(format!("HTTP {status}")));
            }
            Ok(_) => {}
            Err(abort) => otel.set_status(Status::error(abort.to_string())),
        }
        sc.is_valid()
            .then(|| (sc.trace_id(), sc.span_id(), sc.trace_flags()))
    };
    app.telemetry.metrics.request(method, route, status, elapsed);
    // Written in the span (its ids on the line, handed over as just read rather than looked up again)
    // without entering it: nothing else runs in it now.
    logs::with_span_ids(&span, ids, || {
        access_log(
            &span,
            method,
            route,
            &path,
            &outcome,
            // To the microsecond: a value with three decimals is written without the shortest-float
            // algorithm (see `logs`).
            elapsed.as_micros() as f64 / 1000.0,
        )
    });
    outcome
}

/// The access log line of a request, in its span, at a level that follows its outcome.
fn access_log(
    span: &tracing::Span,
    method: &str,
    route: Route,
    path: &str,
    outcome: &Answer,
    duration_ms: f64,
) {
    let route = route.template();
    match outcome.as_ref().map(|r| r.status()) {
        Ok(s) if s.is_server_error() => {
            tracing::error!(
                parent: span,
                method,
                route,
                path,
                status = s.as_u16(),
                duration_ms,
                "request failed"
            )
        }
        Ok(s) if s.is_client_error() => {
            tracing::warn!(
                parent: span,
                method,
                route,
                path,
                status = s.as_u16(),
                duration_ms,
                "request rejected"
            )
        }
        Ok(s) => {
            tracing::info!(
                parent: span,
                method,
                route,
                path,
                status = s.as_u16(),
                duration_ms,
                "request completed"
            )
        }
        Err(e) => {
            tracing::error!(parent: span, method, route, path, status = 0u64, duration_ms, error = %e, "request aborted")
        }
    }
}

/// Layer 3: the chaos decision for this request, then the handler.
async fn inject_faults(app: &Arc<App>, conn: &ConnInfo, route: Route, req: Request<Incoming>) -> Answer {
    let decision = app.chaos.decide(route);
    if !decision.hits.is_empty() {
        let span = tracing::Span::current();
        let kinds = decision.hits.join(",");
        span.add_event("chaos.fault", vec![KeyValue::new("chaos.fault", kinds.clone())]);
        span.set_attribute("chaos.fault", kinds.clone());
        tracing::warn!(fault = kinds, route = route.template(), "chaos fault injected");
    }
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    match decision.terminal {
        Some(Terminal::Error(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            tracing::Span::current().set_status(Status::error("injected error fault"));
            return Ok(json_error(status, "injected fault: error"));
        }
        Some(Terminal::Timeout(hold)) => {
            tokio::time::sleep(hold).await;
            return Err(Abort::Timeout);
        }
        Some(Terminal::RateLimited(wait)) => return Ok(too_many_requests(wait)),
        Some(Terminal::Reset) => {
            // An HTTP/1.1 connection carries this one request, so resetting the request is resetting the
            // connection: it closes with a TCP RST. An HTTP/2 connection carries other requests too;
            // killing it would fail them all and make the fault's ratio a ratio of connections. There only
            // the stream is reset (the `Err` becomes `RST_STREAM`) and the connection goes on.
            if req.version() != http::Version::HTTP_2 {
                conn.reset.store(true, Ordering::Relaxed);
            }
            return Err(Abort::Reset);
        }
        None => {}
    }
    crate::handlers::dispatch(app, conn, route, req).await
}

/// `"METHOD route"`, from a table made once for every method label and route.
fn span_name(method: &'static str, route: Route) -> &'static str {
    use crate::metrics::METHOD_LABELS;
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        METHOD_LABELS
            .iter()
            .flat_map(|m| Route::ALL.iter().map(move |r| format!("{m} {}", r.template())))
            .collect()
    });
    let m = METHOD_LABELS
        .iter()
        .position(|x| *x == method)
        .unwrap_or(METHOD_LABELS.len() - 1);
    &names[m * Route::ALL.len() + route.index()]
}

/// The `status` label of a response: its three digits, from a table made once.
fn status_label(status: StatusCode) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..1000).map(|code: u16| code.to_string()).collect());
    &labels[usize::from(status.as_u16()) - 100]
}

/// The 429 answer of a rate-limit fault. `Retry-After` is in whole seconds (rounded up, at least 1), as
/// HTTP allows no fractions.
pub fn too_many_requests(wait: std::time::Duration) -> Response<Body> {
    let secs = wait.as_nanos().div_ceil(1_000_000_000).max(1);
    let mut resp = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "injected fault: rate limit exceeded, retry later",
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs as u64));
    resp
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a App);

impl<'a> InFlight<'a> {
    fn enter(app: &'a App) -> Self {
        app.telemetry.metrics.request_started();
        InFlight(app)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.telemetry.metrics.request_ended();
    }
}

//! What happens to every request before and after its handler: routing, load shedding, the server
//! span, chaos decisions, the access log line and the RED metrics.
//!
//! Handlers in [`crate::handlers`] only produce answers; they never record request metrics or write the
//! access log themselves, so every route is measured the same way.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::chaos::{Chaos, Terminal};
use crate::config::Config;
use crate::downstream::Downstream;
use crate::route::Route;
use crate::server::ServeError;
use crate::telemetry::Telemetry;

/// Response body type of every handler.
pub type Body = Full<Bytes>;

/// A request that ends without an answer: the connection is dropped.
#[derive(Debug, thiserror::Error)]
pub enum Abort {
    #[error("request held by a timeout fault, connection dropped")]
    Timeout,
    #[error("connection reset by a reset fault")]
    Reset,
}

/// The connection a request arrived on.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Set to close the connection with a reset.
    pub reset: Arc<AtomicBool>,
}

/// Shared state of one service instance.
pub struct App {
    pub config: Config,
    pub telemetry: Telemetry,
    pub chaos: Chaos,
    pub downstream: Downstream,
    pub propagator: TraceContextPropagator,
    limit: Arc<Semaphore>,
    in_flight: AtomicUsize,
}

impl App {
    /// Builds the instance's telemetry, chaos state and downstream client.
    pub fn new(config: Config) -> Result<Self, ServeError> {
        let telemetry = Telemetry::new(&config)?;
        let chaos = Chaos::new(telemetry.metrics.clone());
        Ok(App {
            downstream: Downstream::new(&config),
            limit: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            in_flight: AtomicUsize::new(0),
            propagator: TraceContextPropagator::new(),
            config,
            telemetry,
            chaos,
        })
    }
}

/// Serves one request end to end.
pub async fn handle(
    app: Arc<App>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Abort> {
    let start = Instant::now();
    let route = Route::resolve(req.uri().path(), app.config.role);
    if !app.telemetry.enabled {
        return admit(&app, &conn, route, req).await;
    }
    let method = crate::metrics::method_label(req.method().as_str());
    // A matched route's path is its template: no copy needed.
    let path: std::borrow::Cow<'static, str> = match route {
        Route::Unmatched => req.uri().path().to_owned().into(),
        r => r.template().into(),
    };
    let parent = app.propagator.extract(&HeaderExtractor(req.headers()));
    let tracer = &app.telemetry.tracer;
    let span = tracer
        .span_builder(span_name(method, route))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route.template()),
            KeyValue::new("url.path", path.clone()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("network.peer.address", conn.peer.ip().to_string()),
            KeyValue::new("network.protocol.version", version_text(req.version())),
        ])
        .start_with_context(tracer, &parent);
    let cx = parent.with_span(span).with_value(app.telemetry.scope.clone());

    let outcome = admit(&app, &conn, route, req).with_context(cx.clone()).await;

    let elapsed = start.elapsed();
    let status = match &outcome {
        Ok(resp) => status_label(resp.status()),
        Err(_) => "aborted",
    };
    let _attached = cx.clone().attach();
    let span = cx.span();
    match &outcome {
        Ok(resp) => {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(resp.status().as_u16()),
            ));
            if resp.status().is_server_error() {
                span.set_attribute(KeyValue::new("error.type", status));
                span.set_status(Status::error(format!("HTTP {status}")));
            }
        }
        Err(abort) => {
            span.set_attribute(KeyValue::new("error.type", "aborted"));
            span.set_status(Status::error(abort.to_string()));
        }
    }
    app.telemetry.metrics.request(method, route, status, elapsed);
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let route_t = route.template();
    if route != Route::Metrics && route != Route::Health {
        match outcome.as_ref().map(|r| r.status()) {
            Ok(s) if s.is_server_error() => {
                tracing::error!(
                    method,
                    route = route_t,
                    path = path.as_ref(),
                    status = s.as_u16(),
                    duration_ms,
                    "request failed"
                )
            }
            Ok(s) if s.is_client_error() => {
                tracing::warn!(
                    method,
                    route = route_t,
                    path = path.as_ref(),
                    status = s.as_u16(),
                    duration_ms,
                    "request rejected"
                )
            }
            Ok(s) => {
                tracing::info!(
                    method,
                    route = route_t,
                    path = path.as_ref(),
                    status = s.as_u16(),
                    duration_ms,
                    "request completed"
                )
            }
            Err(e) => {
                tracing::error!(method, route = route_t, path = path.as_ref(), status = 0u64, duration_ms, error = %e, "request aborted")
            }
        }
    }
    span.end();
    outcome
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

fn version_text(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    }
}

/// The `status` label of a response: its three digits, from a table made once.
fn status_label(status: StatusCode) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..1000).map(|code: u16| code.to_string()).collect());
    &labels[usize::from(status.as_u16()) - 100]
}

/// Sheds load past the concurrency limit, then applies chaos, then calls the handler.
async fn admit(
    app: &Arc<App>,
    conn: &ConnInfo,
    route: Route,
    req: Request<Incoming>,
) -> Result<Response<Body>, Abort> {
    let _permit = if route.faultable() {
        match app.limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                app.telemetry.metrics.shed(route);
                return Ok(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded: concurrency limit reached, retry later",
                ));
            }
        }
    } else {
        None
    };
    let _in_flight = InFlight::enter(app);

    let decision = app.chaos.decide(route);
    if !decision.hits.is_empty() {
        let cx = Context::current();
        let kinds = decision.hits.join(",");
        cx.span()
            .add_event("chaos.fault", vec![KeyValue::new("chaos.fault", kinds.clone())]);
        cx.span()
            .set_attribute(KeyValue::new("chaos.fault", kinds.clone()));
        tracing::warn!(fault = kinds, route = route.template(), "chaos fault injected");
    }
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    match decision.terminal {
        Some(Terminal::Error(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Context::current()
                .span()
                .set_status(Status::error("injected error fault"));
            return Ok(json_error(status, "injected fault: error"));
        }
        Some(Terminal::Timeout(hold)) => {
            tokio::time::sleep(hold).await;
            return Err(Abort::Timeout);
        }
        Some(Terminal::RateLimited(wait)) => return Ok(too_many_requests(wait)),
        Some(Terminal::Reset) => {
            conn.reset.store(true, Ordering::Relaxed);
            return Err(Abort::Reset);
        }
        None => {}
    }
    crate::handlers::dispatch(app, conn, route, req).await
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
        let n = app.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        app.telemetry.metrics.in_flight(n);
        InFlight(app)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let n = self.0.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        self.0.telemetry.metrics.in_flight(n);
    }
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// A JSON error response: `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": message, "status": status.as_u16() }),
    )
}

/// Whether `method` is one of `allowed`; the 405 answer otherwise.
pub fn allow(method: &Method, allowed: &[Method]) -> Result<(), Response<Body>> {
    if allowed.contains(method) {
        return Ok(());
    }
    let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut resp = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} not allowed; use {}", list.join(", ")),
    );
    if let Ok(v) = http::HeaderValue::from_str(&list.join(", ")) {
        resp.headers_mut().insert(http::header::ALLOW, v);
    }
    Err(resp)
}

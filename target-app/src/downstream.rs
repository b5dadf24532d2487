//! Calls to the downstream service: a client span per call, W3C trace context injected, a timeout, and
//! the `downstream_*` metrics. A chaos `downstream` fault makes a call fail before it leaves, exactly as
//! an unreachable dependency would look from here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderInjector;
use tokio::time::Instant;

use crate::app::App;
use crate::config::Config;
use crate::route::Route;

/// The `peer` label of the downstream metrics.
pub const PEER: &str = "downstream";

/// Largest downstream answer read.
const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Why a downstream call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("downstream unreachable (injected by a chaos downstream fault)")]
    Injected,
    #[error("downstream URL `{0}` is not a valid http URL")]
    BadUrl(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Transport(String),
}

/// An answer from the downstream.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// The client of the downstream service.
pub struct Downstream {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

impl Downstream {
    pub fn new(config: &Config) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.downstream_timeout));
        Downstream {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            base: config.downstream_url.trim_end_matches('/').to_owned(),
            timeout: config.downstream_timeout,
        }
    }

    /// Calls `method path` on the downstream on behalf of a request to `route`.
    pub async fn call(
        &self,
        app: &Arc<App>,
        route: Route,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, CallError> {
        let url = format!("{}{}", self.base, path);
        let parent = Context::current();
        let tracer = &app.telemetry.tracer;
        let uri: http::Uri = url.parse().map_err(|_| CallError::BadUrl(self.base.clone()))?;
        let span = tracer
            .span_builder(format!("{method} {path}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("url.full", url.clone()),
                KeyValue::new("server.address", uri.host().unwrap_or_default().to_owned()),
                KeyValue::new("server.port", i64::from(uri.port_u16().unwrap_or(80))),
                KeyValue::new("peer.service", PEER),
            ])
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        let start = Instant::now();
        let result = self.send(app, route, &cx, method, uri, body).await;
        let elapsed = start.elapsed();
        let span = cx.span();
        let status_label = match &result {
            Ok(reply) => {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(reply.status.as_u16()),
                ));
                if reply.status.is_server_error() {
                    span.set_status(Status::error(format!("HTTP {}", reply.status.as_u16())));
                }
                reply.status.as_str().to_owned()
            }
            Err(e) => {
                span.set_attribute(KeyValue::new("error.type", error_type(e)));
                span.set_status(Status::error(e.to_string()));
                "error".to_owned()
            }
        };
        span.end();
        app.telemetry.metrics.downstream(PEER, &status_label, elapsed);
        result
    }

    async fn send(
        &self,
        app: &App,
        route: Route,
        cx: &Context,
        method: Method,
        uri: http::Uri,
        body: Option<Bytes>,
    ) -> Result<Reply, CallError> {
        if app.chaos.fail_downstream(route) {
            cx.span()
                .add_event("chaos.fault", vec![KeyValue::new("chaos.fault", "downstream")]);
            return Err(CallError::Injected);
        }
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let mut req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| CallError::Transport(e.to_string()))?;
        if app.telemetry.enabled {
            app.propagator
                .inject_context(cx, &mut HeaderInjector(req.headers_mut()));
        }
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| CallError::Transport(root_cause(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await
                .map_err(|e| CallError::Transport(e.to_string()))?
                .to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CallError::Timeout(self.timeout))?
    }
}

fn error_type(e: &CallError) -> &'static str {
    match e {
        CallError::Injected => "chaos.downstream",
        CallError::BadUrl(_) => "bad_url",
        CallError::Timeout(_) => "timeout",
        CallError::Transport(_) => "transport",
    }
}

/// The innermost cause of an error chain, which is what says what went wrong ("connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

//! Calls to the downstream service: a client span per call (a `tracing` span), W3C trace context
//! injected, a timeout, and the `downstream_*` metrics. The base URL is parsed once, at start. A chaos `downstream` fault makes a call fail before it leaves, exactly as
//! an unreachable dependency would look from here.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::Status;
use opentelemetry_http::HeaderInjector;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tokio::time::Instant;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::chaos::Chaos;
use crate::config::Config;
use crate::route::Route;
use crate::telemetry::Telemetry;

/// The `peer` label of the downstream metrics.
pub const PEER: &str = "downstream";

/// Largest downstream answer read.
const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Why a downstream call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("downstream unreachable (injected by a chaos downstream fault)")]
    Injected,
    #[error("cannot build a request to the downstream: {0}")]
    BadRequest(String),
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

/// A downstream URL that cannot be used, found at start.
#[derive(Debug, thiserror::Error)]
#[error("--downstream-url `{url}`: {problem}")]
pub struct BadDownstreamUrl {
    pub url: String,
    pub problem: String,
}

/// The client of the downstream service.
pub struct Downstream {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Scheme and authority, parsed once.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// Path prefix of the base URL, without its trailing slash.
    prefix: String,
    /// The base URL as written, without its trailing slash, for span attributes.
    base: String,
    timeout: Duration,
    propagator: TraceContextPropagator,
}

impl Downstream {
    /// Parses the downstream URL once: an `http://host[:port][/prefix]` URL.
    pub fn new(config: &Config) -> Result<Self, BadDownstreamUrl> {
        let url = config.downstream_url.as_str();
        let bad = |problem: &str| BadDownstreamUrl {
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| bad(&format!("not a URL ({e}); expected e.g. http://127.0.0.1:8081")))?;
        let parts = uri.into_parts();
        let scheme = parts
            .scheme
            .ok_or_else(|| bad("no scheme; expected http://host:port"))?;
        if scheme != http::uri::Scheme::HTTP {
            return Err(bad(&format!("scheme `{scheme}` is not supported; use http://")));
        }
        let authority = parts
            .authority
            .ok_or_else(|| bad("no host; expected http://host:port"))?;
        if parts.path_and_query.as_ref().and_then(|p| p.query()).is_some() {
            return Err(bad("a query is not allowed in the base URL"));
        }
        let prefix = parts
            .path_and_query
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.downstream_timeout));
        Ok(Downstream {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            base: format!("{scheme}://{authority}{prefix}"),
            scheme,
            authority,
            prefix,
            timeout: config.downstream_timeout,
            propagator: TraceContextPropagator::new(),
        })
    }

    /// Calls `method path` on the downstream on behalf of a request to `route`, in a client span;
    /// `chaos` decides whether it fails before it leaves, `telemetry` records it.
    pub async fn call(
        &self,
        telemetry: &Telemetry,
        chaos: &Chaos,
        route: Route,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, CallError> {
        let url = format!("{}{}", self.base, path);
        let name = format!("{method} {path}");
        let span = tracing::info_span!(
            target: "target_app::downstream",
            "downstream",
            otel.name = name.as_str(),
            otel.kind = "client",
            http.request.method = method.as_str(),
            url.full = url.as_str(),
            server.address = self.authority.host(),
            server.port = i64::from(self.authority.port_u16().unwrap_or(80)),
            peer.service = PEER,
        );
        let start = Instant::now();
        let result = if chaos.fail_downstream(route) {
            span.add_event(
                "chaos.fault",
                vec![opentelemetry::KeyValue::new("chaos.fault", "downstream")],
            );
            Err(CallError::Injected)
        } else {
            self.send(telemetry, &span, method, path, body)
                .instrument(span.clone())
                .await
        };
        let elapsed = start.elapsed();
        let status_label = match &result {
            Ok(reply) => {
                span.set_attribute("http.response.status_code", i64::from(reply.status.as_u16()));
                if reply.status.is_server_error() {
                    span.set_status(Status::error(format!("HTTP {}", reply.status.as_u16())));
                }
                reply.status.as_str().to_owned()
            }
            Err(e) => {
                span.set_attribute("error.type", error_type(e));
                span.set_status(Status::error(e.to_string()));
                "error".to_owned()
            }
        };
        drop(span);
        telemetry.metrics.downstream(PEER, &status_label, elapsed);
        result
    }

    async fn send(
        &self,
        telemetry: &Telemetry,
        span: &tracing::Span,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, CallError> {
        let uri = http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}", self.prefix, path))
            .build()
            .map_err(|e| CallError::BadRequest(e.to_string()))?;
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let mut req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| CallError::Transport(e.to_string()))?;
        if telemetry.enabled {
            self.propagator
                .inject_context(&span.context(), &mut HeaderInjector(req.headers_mut()));
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
        CallError::BadRequest(_) => "bad_request",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> Result<Downstream, BadDownstreamUrl> {
        let mut config = Config::embedded(crate::Role::App);
        config.downstream_url = url.to_owned();
        Downstream::new(&config)
    }

    #[tokio::test]
    async fn base_url_is_checked_at_start() {
        assert_eq!(
            with_url("http://127.0.0.1:8081/").unwrap().base,
            "http://127.0.0.1:8081"
        );
        assert_eq!(with_url("http://h:1/api/").unwrap().prefix, "/api");
        for (url, problem) in [
            ("127.0.0.1:8081", "no scheme"),
            ("https://h:1", "scheme `https`"),
            ("http://", "not a URL"),
            ("http://h:1/?a=b", "query"),
        ] {
            let err = with_url(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"))
                .to_string();
            assert!(err.contains(url) && err.contains(problem), "{url}: {err}");
        }
    }
}

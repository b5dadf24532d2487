//! What every endpoint shares about one HTTP exchange: the connection it came on ([`ConnInfo`]), its
//! body, read within limits ([`read_body`]), and its answer: a JSON response ([`json`], [`json_error`],
//! [`allow`]) or none at all ([`Abort`]).
//!
//! These are the types and helpers that the request layers ([`crate::app`]), the endpoints
//! ([`crate::handlers`], [`crate::admin`]) and the accept loop ([`crate::server`]) have in common; they live
//! here so that none of those has to import another for them. This module knows no route and records nothing.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

/// Longest time a request body may take to arrive; slower bodies get 408.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request body accepted (chaos requests, checkout carts); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Response body type of every handler.
pub type Body = Full<Bytes>;

/// A request that ends without an answer: on HTTP/1.1 the connection is dropped, on HTTP/2 the stream is
/// reset (`RST_STREAM` with `INTERNAL_ERROR`, hyper's answer to a service error).
#[derive(Debug, thiserror::Error)]
pub enum Abort {
    #[error("request held by a timeout fault, then dropped unanswered")]
    Timeout,
    #[error("request reset by a reset fault")]
    Reset,
}

/// The connection a request arrived on.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Set to close the connection with a reset (HTTP/1.1 only; see `inject_faults` in [`crate::app`]).
    pub reset: Arc<AtomicBool>,
}

/// Reads a body of at most [`MAX_BODY_BYTES`], or answers 413/400.
pub async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let reading = Limited::new(req.into_body(), MAX_BODY_BYTES).collect();
    // A client that trickles its body must not hold a connection and a concurrency slot for long.
    let Ok(read) = tokio::time::timeout(BODY_TIMEOUT, reading).await else {
        return Err(json_error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "request body not received within {}",
                crate::duration::format(BODY_TIMEOUT)
            ),
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(_) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "could not read the request body",
        )),
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

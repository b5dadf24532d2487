//! Live control over HTTP (`loadgen run --control ADDR`): JSON to read the run's state and to change
//! it, and the console page that does both from a browser.
//!
//! - `GET /api/state`: phase, target and achieved rate, error ratio, p95, faults in force, alert
//!   states, the next predicted alert, and every change so far.
//! - `POST /api/control`: one order ([`order`] says the format); 200 with the change made, 400 naming
//!   the field at fault (nothing changed), 409 once the run is over.
//! - `GET /`: the console page, one self-contained HTML file.
//! - [`keys`]: the same orders from keys on the terminal, under the live panel.
//!
//! When a token is configured (required off loopback), every request must carry it as
//! `Authorization: Bearer …`. Orders go to the engine through [`Steer`]; nothing here paces, applies
//! faults or decides whether an order can be applied now: the engine does, at the instant it takes it.

pub mod keys;
pub mod order;
mod state;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::scenario::Scenario;
use crate::shared::control::{Refusal, Steer, Unapplied};
use crate::shared::Snapshot;
pub use state::{state, Predicted, State};

/// The environment variable that holds the control token.
pub const TOKEN_ENV: &str = "LOADGEN_CONTROL_TOKEN";

/// Largest order body read.
const MAX_BODY: usize = 64 * 1024;

/// How long an order's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an order may wait for the engine to take it.
const ORDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The console page.
const CONSOLE: &str = include_str!("console.html");

/// What the control endpoint reads and where its orders go.
#[derive(Clone)]
pub struct Sources {
    pub steer: Steer,
    pub snapshot: watch::Receiver<Snapshot>,
    pub scenario: Arc<Scenario>,
    pub start: Instant,
    /// The bearer token every request must carry, when set.
    pub token: Option<String>,
    /// The predicted alert timeline as the schedule now stands, when alerts are predicted.
    pub predicted: watch::Receiver<Predicted>,
}

/// Serves the control API and console on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, sources: Sources, shutdown: watch::Receiver<bool>) {
    let sources = Arc::new(sources);
    crate::http_server::serve(listener, shutdown, move |req| {
        let sources = sources.clone();
        async move { answer(&sources, req).await }
    })
    .await;
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    reply(
        status,
        "application/json",
        serde_json::to_string(value).unwrap_or_default() + "\n",
    )
}

fn refused(status: StatusCode, refusal: Refusal) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": refusal }))
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized<B>(sources: &Sources, req: &Request<B>) -> bool {
    let Some(token) = &sources.token else {
        return true;
    };
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| same(g.as_bytes(), token.as_bytes()))
}

async fn answer(sources: &Sources, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    // The page itself holds nothing secret; it asks for the token and sends it with each call.
    if req.method() == Method::GET && (path == "/" || path == "/console") {
        return reply(StatusCode::OK, "text/html; charset=utf-8", CONSOLE.to_owned());
    }
    if !authorized(sources, &req) {
        let refusal = Refusal {
            field: "authorization".to_owned(),
            problem: format!("send the control token ({TOKEN_ENV}) as `Authorization: Bearer …`"),
        };
        return refused(StatusCode::UNAUTHORIZED, refusal);
    }
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/api/state") => json(StatusCode::OK, &state(sources, Instant::now())),
        (Method::POST, "/api/control") => {
            let source = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("source=")))
                .filter(|s| matches!(*s, "console" | "api"))
                .unwrap_or("api")
                .to_owned();
            let body = match read(req).await {
                Ok(body) => body,
                Err(refusal) => return refused(StatusCode::BAD_REQUEST, refusal),
            };
            let command = match order::parse(&body) {
                Ok(command) => command,
                Err(refusal) => return refused(StatusCode::BAD_REQUEST, refusal),
            };
            match tokio::time::timeout(ORDER_TIMEOUT, sources.steer.give(command, &source)).await {
                Ok(Ok(change)) => json(StatusCode::OK, &change),
                Ok(Err(Unapplied::Refused(refusal))) => refused(StatusCode::BAD_REQUEST, refusal),
                Ok(Err(Unapplied::Gone)) | Err(_) => refused(
                    StatusCode::CONFLICT,
                    Refusal {
                        field: "action".to_owned(),
                        problem: "the run is over (or stopping): nothing more can change".to_owned(),
                    },
                ),
            }
        }
        (_, "/api/state" | "/api/control") => refused(
            StatusCode::METHOD_NOT_ALLOWED,
            Refusal {
                field: "method".to_owned(),
                problem: "GET /api/state, POST /api/control".to_owned(),
            },
        ),
        _ => refused(
            StatusCode::NOT_FOUND,
            Refusal {
                field: "path".to_owned(),
                problem: "the console is at /, the API at /api/state and /api/control".to_owned(),
            },
        ),
    }
}

async fn read(req: Request<Incoming>) -> Result<Bytes, Refusal> {
    let bad = |problem: String| Refusal {
        field: "body".to_owned(),
        problem,
    };
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), MAX_BODY).collect()).await;
    match collected {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(bad(format!("larger than {MAX_BODY} bytes")))
        }
        Ok(Err(e)) => Err(bad(format!("cannot be read: {e}"))),
        Err(_) => Err(bad(format!("not received within {BODY_TIMEOUT:?}"))),
    }
}

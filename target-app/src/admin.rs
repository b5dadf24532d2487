//! The chaos API: `GET`, `PUT` and `DELETE /admin/chaos`.
//!
//! Writes need `Authorization: Bearer <token>` when a token is configured (compared in constant time,
//! never logged); without a token only loopback peers may write. A bad request gets 400 with every
//! problem named, and the faults in force stay as they were; so does a request whose faults together
//! would take more threads, memory or per-request work than one fault may. Changing faults starts and
//! stops their threads (joining them, freeing their memory) on a blocking thread, never on the runtime.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::chaos::{ChaosSpec, Fault, FieldError};
use crate::exchange::{json, json_error, read_body, Body, ConnInfo};
use crate::state::App;

pub async fn chaos(app: &Arc<App>, conn: &ConnInfo, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::GET {
        return json(
            StatusCode::OK,
            &serde_json::to_value(app.chaos.spec()).unwrap_or_default(),
        );
    }
    if let Err(resp) = authorize(app, conn, &req) {
        return resp;
    }
    if req.method() == Method::DELETE {
        // Stopping fault threads joins them and may free gigabytes: off the async workers.
        let owner = app.clone();
        let _ = tokio::task::spawn_blocking(move || owner.chaos.clear()).await;
        tracing::warn!("chaos faults cleared");
        return json(
            StatusCode::OK,
            &serde_json::to_value(app.chaos.spec()).unwrap_or_default(),
        );
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let spec = match crate::chaos::json::read(&body) {
        Ok(spec) => spec,
        Err(problems) => {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({ "error": "invalid chaos request; faults unchanged", "details": problems }),
            )
        }
    };
    let problems = limits(&spec);
    if !problems.is_empty() {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid chaos request; faults unchanged", "details": problems }),
        );
    }
    let owner = app.clone();
    let applied = tokio::task::spawn_blocking(move || owner.chaos.apply(spec))
        .await
        .unwrap_or_else(|e| {
            Err(vec![FieldError {
                field: "faults".to_owned(),
                problem: format!("applying the faults failed: {e}"),
            }])
        });
    match applied {
        Ok(spec) => {
            let kinds: Vec<&str> = spec.faults.iter().map(|f| f.kind()).collect();
            tracing::warn!(faults = kinds.join(","), seed = spec.seed, "chaos faults applied");
            json(StatusCode::OK, &serde_json::to_value(&spec).unwrap_or_default())
        }
        Err(errors) => json(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid chaos request; faults unchanged", "details": errors }),
        ),
    }
}

/// Most faults in one request: every kind several times over, far below what would slow each request.
pub const MAX_FAULTS: usize = 32;
/// Most CPU-burning threads and most memory held, summed over every fault of a request: each fault is
/// capped on its own, and these keep a request from multiplying the caps.
pub const MAX_CPU_THREADS: u32 = 64;
pub const MAX_MEMORY_MB: u32 = 4096;

/// Checks the request as a whole, beyond what each fault checks on its own (loadgen runs the same check
/// on each phase's faults).
pub fn limits(spec: &ChaosSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.faults.len() > MAX_FAULTS {
        errors.push(FieldError {
            field: "faults".to_owned(),
            problem: format!("at most {MAX_FAULTS} faults at once, got {}", spec.faults.len()),
        });
    }
    let (mut threads, mut memory) = (0u32, 0u32);
    for fault in &spec.faults {
        match fault {
            Fault::Cpu(f) => threads = threads.saturating_add(f.threads),
            Fault::Memory(f) => memory = memory.saturating_add(f.limit_mb),
            _ => {}
        }
    }
    if threads > MAX_CPU_THREADS {
        errors.push(FieldError {
            field: "faults".to_owned(),
            problem: format!("cpu faults may use at most {MAX_CPU_THREADS} threads together, got {threads}"),
        });
    }
    if memory > MAX_MEMORY_MB {
        errors.push(FieldError {
            field: "faults".to_owned(),
            problem: format!("memory faults may hold at most {MAX_MEMORY_MB} MiB together, got {memory}"),
        });
    }
    errors
}

fn authorize(app: &App, conn: &ConnInfo, req: &Request<Incoming>) -> Result<(), Response<Body>> {
    match &app.config.chaos_token {
        Some(token) => {
            let given = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                let mut resp = json_error(
                    StatusCode::UNAUTHORIZED,
                    "changing faults needs `Authorization: Bearer <token>`",
                );
                resp.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                Err(resp)
            }
        }
        None if conn.peer.ip().is_loopback() => Ok(()),
        None => Err(json_error(
            StatusCode::FORBIDDEN,
            "no chaos token is configured, so only loopback clients may change faults (set --chaos-token)",
        )),
    }
}

/// Compares without an early exit, so the time taken does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}

//! The webhook receiver inside loadgen (`--notify-listen ADDR`): Alertmanager posts its notifications
//! here (webhook payload version 4), and each one is kept with its arrival time, so the report can say
//! when an alert was not just firing in Prometheus but delivered.
//!
//! A body that is not a version 4 payload, or larger than [`MAX_BODY`], is answered 400 and counted,
//! never trusted. Memory is bounded: at most [`MAX_KEPT`] notifications, and bodies of at most
//! [`MAX_KEPT_BYTES`] in all, are kept; the rest are counted.
//! This module receives; it does not start Alertmanager (see [`crate::alerts::alertmanager`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

/// The largest body accepted (Alertmanager's notifications are a few kB; a group of hundreds of alerts
/// stays well under this).
pub const MAX_BODY: usize = 1 << 20;
/// Notifications kept per run; later ones are counted in [`Inbox::dropped`] only.
pub const MAX_KEPT: usize = 10_000;
/// Bytes of the bodies of the notifications kept per run; later ones are counted in
/// [`Received::dropped`] only.
pub const MAX_KEPT_BYTES: usize = 32 << 20;
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a notification (or one alert in it) announces firing or resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    fn parse(text: &str) -> Option<Status> {
        match text {
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }

    /// As Alertmanager spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    /// Its `alertname` label.
    pub alert: String,
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    /// As Alertmanager wrote them (RFC 3339).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub starts_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ends_at: String,
}

/// One notification as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Seconds from the run's start to its arrival (negative: before the run started).
    pub at_s: f64,
    /// The Alertmanager receiver that sent it.
    pub receiver: String,
    pub group_key: String,
    pub status: Status,
    pub alerts: Vec<NotifiedAlert>,
    /// Alerts Alertmanager left out of the payload (`max_alerts`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated_alerts: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("`{field}`: {problem}")]
    Field { field: String, problem: String },
}

fn field(field: impl Into<String>, problem: impl Into<String>) -> PayloadError {
    PayloadError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The raw payload, as loose as JSON allows, so that each problem can be named by field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload {
    version: Option<serde_json::Value>,
    status: Option<serde_json::Value>,
    receiver: Option<serde_json::Value>,
    group_key: Option<serde_json::Value>,
    truncated_alerts: Option<serde_json::Value>,
    alerts: Option<serde_json::Value>,
}

fn string<'a>(value: Option<&'a serde_json::Value>, name: &str) -> Result<&'a str, PayloadError> {
    match value {
        None | Some(serde_json::Value::Null) => Err(field(name, "missing")),
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Err(field(name, format!("expected a string, found {}", kind(other)))),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn status(value: Option<&serde_json::Value>, name: &str) -> Result<Status, PayloadError> {
    let text = string(value, name)?;
    Status::parse(text).ok_or_else(|| field(name, format!("expected `firing` or `resolved`, found `{text}`")))
}

/// Parses and checks one webhook body (Alertmanager's payload, version 4). `at_s` is its arrival.
pub fn parse(body: &[u8], at_s: f64) -> Result<Notification, PayloadError> {
    let raw: RawPayload = serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    let version = string(raw.version.as_ref(), "version")?;
    if version != "4" {
        return Err(field(
            "version",
            format!("expected \"4\" (Alertmanager's webhook payload), found \"{version}\""),
        ));
    }
    let group_key = string(raw.group_key.as_ref(), "groupKey")?;
    if group_key.is_empty() {
        return Err(field("groupKey", "empty"));
    }
    let truncated_alerts = match &raw.truncated_alerts {
        None | Some(serde_json::Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| field("truncatedAlerts", format!("expected a count, found {}", kind(v))))?,
    };
    let alerts = match &raw.alerts {
        Some(serde_json::Value::Array(a)) if !a.is_empty() => a,
        Some(serde_json::Value::Array(_)) => return Err(field("alerts", "empty")),
        None | Some(serde_json::Value::Null) => return Err(field("alerts", "missing")),
        Some(other) => {
            return Err(field(
                "alerts",
                format!("expected an array, found {}", kind(other)),
            ))
        }
    };
    let mut parsed = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.iter().enumerate() {
        let at = |name: &str| format!("alerts[{i}].{name}");
        let serde_json::Value::Object(a) = a else {
            return Err(field(
                format!("alerts[{i}]"),
                format!("expected an object, found {}", kind(a)),
            ));
        };
        let labels = match a.get("labels") {
            Some(serde_json::Value::Object(map)) => {
                let mut labels = BTreeMap::new();
                for (k, v) in map {
                    let serde_json::Value::String(v) = v else {
                        return Err(field(
                            at(&format!("labels.{k}")),
                            format!("expected a string, found {}", kind(v)),
                        ));
                    };
                    labels.insert(k.clone(), v.clone());
                }
                labels
            }
            None | Some(serde_json::Value::Null) => return Err(field(at("labels"), "missing")),
            Some(other) => {
                return Err(field(
                    at("labels"),
                    format!("expected an object, found {}", kind(other)),
                ))
            }
        };
        let Some(alert) = labels.get("alertname").filter(|n| !n.is_empty()).cloned() else {
            return Err(field(at("labels.alertname"), "missing"));
        };
        let optional = |name: &str| -> Result<String, PayloadError> {
            match a.get(name) {
                None | Some(serde_json::Value::Null) => Ok(String::new()),
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(field(
                    at(name),
                    format!("expected a string, found {}", kind(other)),
                )),
            }
        };
        parsed.push(NotifiedAlert {
            status: status(a.get("status"), &at("status"))?,
            starts_at: optional("startsAt")?,
            ends_at: optional("endsAt")?,
            alert,
            labels,
        });
    }
    Ok(Notification {
        at_s,
        receiver: string(raw.receiver.as_ref(), "receiver")?.to_owned(),
        group_key: group_key.to_owned(),
        status: status(raw.status.as_ref(), "status")?,
        alerts: parsed,
        truncated_alerts,
    })
}

/// What the receiver has seen so far.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Received {
    pub notifications: Vec<Notification>,
    /// Bodies answered 400 (not a version 4 payload, or too large).
    pub rejected: u64,
    /// Notifications past [`MAX_KEPT`] or [`MAX_KEPT_BYTES`], answered 200 but not kept.
    pub dropped: u64,
    /// Why the first refused body was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_rejection: Option<String>,
    /// What receivers other than webhooks posted on `/receivers/<name>/<kind>` (Slack, PagerDuty, …
    /// and the user's own webhooks), kept as sent: the rendered messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rendered: Vec<Rendered>,
    /// Bytes of the bodies kept.
    #[serde(skip)]
    pub(crate) kept_bytes: usize,
}

/// One message as a receiver of a user's Alertmanager configuration sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    /// Seconds from the run's start to its arrival.
    pub at_s: f64,
    /// The Alertmanager receiver that sent it.
    pub receiver: String,
    /// Which of its configurations: `slack`, `pagerduty`, `slack.2` for the second Slack one, ….
    pub kind: String,
    /// The body: JSON as sent, or a string when it was not JSON.
    pub body: serde_json::Value,
}

/// The receiver's shared record; times are seconds from `start`.
#[derive(Clone)]
pub struct Inbox {
    start: Arc<Mutex<Instant>>,
    received: Arc<Mutex<Received>>,
}

impl Inbox {
    /// An empty inbox timing arrivals from `start` (see [`Inbox::restart`]).
    pub fn new(start: Instant) -> Inbox {
        Inbox {
            start: Arc::new(Mutex::new(start)),
            received: Arc::default(),
        }
    }

    /// Times later arrivals, and those already kept, from `start` (the run's start, known only once the
    /// receiver is already listening).
    pub fn restart(&self, start: Instant) {
        let mut old = self.start.lock().unwrap_or_else(|e| e.into_inner());
        let shift = if start >= *old {
            -(start - *old).as_secs_f64()
        } else {
            (*old - start).as_secs_f64()
        };
        *old = start;
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        for n in &mut received.notifications {
            n.at_s += shift;
        }
        for r in &mut received.rendered {
            r.at_s += shift;
        }
    }

    fn seconds(&self, at: Instant) -> f64 {
        let start = *self.start.lock().unwrap_or_else(|e| e.into_inner());
        if at >= start {
            (at - start).as_secs_f64()
        } else {
            -(start - at).as_secs_f64()
        }
    }

    /// A copy of what was received.
    pub fn snapshot(&self) -> Received {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes one body that arrived at `at`.
    pub fn take(&self, body: &[u8], at: Instant) -> Result<(), PayloadError> {
        let parsed = parse(body, self.seconds(at));
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        match parsed {
            Ok(n)
                if received.notifications.len() < MAX_KEPT
                    && received.kept_bytes + body.len() <= MAX_KEPT_BYTES =>
            {
                received.kept_bytes += body.len();
                received.notifications.push(n);
            }
            Ok(_) => received.dropped += 1,
            Err(e) => {
                received.rejected += 1;
                received.first_rejection.get_or_insert_with(|| e.to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Keeps one message a receiver (`receiver`, configuration `kind`) sent at `at`.
    pub fn keep_rendered(&self, receiver: String, kind: String, body: &[u8], at: Instant) {
        let at_s = self.seconds(at);
        let body = serde_json::from_slice(body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()));
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let kept = received.notifications.len() + received.rendered.len();
        if kept < MAX_KEPT && received.kept_bytes + body.to_string().len() <= MAX_KEPT_BYTES {
            received.kept_bytes += body.to_string().len();
            received.rendered.push(Rendered {
                at_s,
                receiver,
                kind,
                body,
            });
        } else {
            received.dropped += 1;
        }
    }

    fn refuse(&self, why: String) {
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        received.rejected += 1;
        received.first_rejection.get_or_insert(why);
    }
}

/// Serves the webhook on an already bound listener until `shutdown` changes: `POST` on any path takes
/// a notification (Alertmanager's URL decides the path), except `/receivers/<name>/<kind>`, where the
/// receivers of a rewritten configuration ([`crate::alerts::routing`]) post their rendered messages
/// (loadgen's own webhook on each, `/receivers/<name>/loadgen`, is a notification); `GET /` lists what
/// was received.
pub async fn serve(listener: TcpListener, inbox: Inbox, shutdown: watch::Receiver<bool>) {
    crate::http_server::serve(listener, shutdown, move |req| {
        let inbox = inbox.clone();
        async move { answer(&inbox, req).await }
    })
    .await;
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "error": message }).to_string() + "\n")
}

async fn answer(inbox: &Inbox, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match *req.method() {
        Method::POST => {}
        Method::GET if req.uri().path() == "/" => {
            let received = inbox.snapshot();
            return reply(
                StatusCode::OK,
                serde_json::to_string_pretty(&received).unwrap_or_default() + "\n",
            );
        }
        Method::GET => {
            return error(
                StatusCode::NOT_FOUND,
                "POST notifications to any path; GET / lists them",
            )
        }
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "POST a notification"),
    }
    let from = crate::alerts::routing::parse_path(req.uri().path());
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = format!("body larger than {MAX_BODY} bytes");
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        inbox.refuse(too_large.clone());
        return error(StatusCode::BAD_REQUEST, &too_large);
    }
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), MAX_BODY).collect()).await;
    let body = match collected {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) => {
            let why = if e.is::<http_body_util::LengthLimitError>() {
                too_large
            } else {
                format!("cannot read the body: {e}")
            };
            inbox.refuse(why.clone());
            return error(StatusCode::BAD_REQUEST, &why);
        }
        Err(_) => {
            let why = format!("body not received within {BODY_TIMEOUT:?}");
            inbox.refuse(why.clone());
            return error(StatusCode::BAD_REQUEST, &why);
        }
    };
    match from {
        Some((receiver, kind)) if kind != crate::alerts::routing::OWN_KIND => {
            inbox.keep_rendered(receiver, kind, &body, Instant::now());
            // Shaped so that every notifier is content: Telegram's client reads `ok` and `result`.
            return reply(
                StatusCode::OK,
                "{\"ok\":true,\"status\":\"success\",\"result\":{}}\n".to_owned(),
            );
        }
        _ => {}
    }
    match inbox.take(&body, Instant::now()) {
        Ok(()) => reply(StatusCode::OK, "{\"status\":\"ok\"}\n".to_owned()),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A notification in the shape Alertmanager 0.25 sends (the fields of its webhook payload, version 4).
    pub const FIRING: &str = r#"{"receiver":"loadgen","status":"firing","alerts":[{"status":"firing",
"labels":{"alertname":"HighErrorRate","instance":"127.0.0.1:4000","job":"target-app","severity":"page"},
"annotations":{"summary":"error ratio above 10%"},"startsAt":"2026-12-01T02:40:10.123Z",
"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://127.0.0.1:9090/graph","fingerprint":"a1b2"}],
"groupLabels":{"alertname":"HighErrorRate","job":"target-app"},"commonLabels":{"alertname":"HighErrorRate"},
"commonAnnotations":{},"externalURL":"http://127.0.0.1:9093","version":"4",
"groupKey":"{}:{alertname=\"HighErrorRate\", job=\"target-app\"}","truncatedAlerts":0}"#;

    #[test]
    fn a_real_payload_is_parsed() {
        let n = parse(FIRING.as_bytes(), 41.5).unwrap();
        assert_eq!(n.status, Status::Firing);
        assert_eq!(n.receiver, "loadgen");
        assert_eq!(
            n.group_key,
            "{}:{alertname=\"HighErrorRate\", job=\"target-app\"}"
        );
        assert_eq!(n.alerts.len(), 1);
        assert_eq!(n.alerts[0].alert, "HighErrorRate");
        assert_eq!(n.alerts[0].labels["job"], "target-app");
        assert_eq!(n.alerts[0].starts_at, "2026-12-01T02:40:10.123Z");
        assert_eq!(n.at_s, 41.5);
    }

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn every_problem_is_named_by_field() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "not JSON"),
            (b"{\"version\":".to_vec(), "not JSON"),
            (b"[1,2]".to_vec(), "not JSON"),
            (with(|v| v["version"] = "3".into()), "`version`: expected \"4\""),
            (
                with(|v| v["version"] = 4.into()),
                "`version`: expected a string, found a number",
            ),
            (with(|v| v["groupKey"] = "".into()), "`groupKey`: empty"),
            (
                with(|v| v["status"] = "on fire".into()),
                "`status`: expected `firing` or `resolved`",
            ),
            (with(|v| v["alerts"] = serde_json::json!([])), "`alerts`: empty"),
            (
                with(|v| v["alerts"] = serde_json::json!({})),
                "`alerts`: expected an array",
            ),
            (
                with(|v| v["alerts"][0] = 7.into()),
                "`alerts[0]`: expected an object",
            ),
            (
                with(|v| v["alerts"][0]["labels"]["alertname"] = serde_json::Value::Null),
                "`alerts[0].labels.alertname`: expected a string, found null",
            ),
            (
                with(|v| {
                    v["alerts"][0]["labels"]
                        .as_object_mut()
                        .unwrap()
                        .remove("alertname");
                }),
                "`alerts[0].labels.alertname`: missing",
            ),
            (
                with(|v| v["alerts"][0]["status"] = "pending".into()),
                "`alerts[0].status`: expected",
            ),
            (
                with(|v| v["alerts"][0]["startsAt"] = 1.into()),
                "`alerts[0].startsAt`: expected a string",
            ),
            (
                with(|v| v["truncatedAlerts"] = (-1).into()),
                "`truncatedAlerts`: expected a count",
            ),
            (
                with(|v| {
                    v.as_object_mut().unwrap().remove("receiver");
                }),
                "`receiver`: missing",
            ),
        ];
        for (body, expected) in cases {
            let e = parse(&body, 0.0).expect_err(expected).to_string();
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
        }
    }

    #[test]
    fn memory_is_bounded_past_the_limit() {
        let inbox = Inbox::new(Instant::now());
        for _ in 0..MAX_KEPT + 3 {
            inbox.take(FIRING.as_bytes(), Instant::now()).unwrap();
        }
        let r = inbox.snapshot();
        assert_eq!((r.notifications.len(), r.dropped, r.rejected), (MAX_KEPT, 3, 0));
    }

    #[test]
    fn memory_is_bounded_in_bytes_too() {
        // Bodies of about half a megabyte each: the byte bound comes long before the count.
        let padding = "x".repeat(512 << 10);
        let body = FIRING.replacen("\"labels\":{", &format!("\"labels\":{{\"pad\":\"{padding}\","), 1);
        assert!(parse(body.as_bytes(), 0.0).is_ok(), "still a notification");
        let inbox = Inbox::new(Instant::now());
        let fits = MAX_KEPT_BYTES / body.len();
        for _ in 0..fits + 5 {
            inbox.take(body.as_bytes(), Instant::now()).unwrap();
        }
        let r = inbox.snapshot();
        assert_eq!((r.notifications.len(), r.dropped), (fits, 5));
    }

    #[test]
    fn arrivals_are_timed_from_the_run_start_once_it_is_known() {
        let t0 = Instant::now();
        let inbox = Inbox::new(t0);
        inbox
            .take(FIRING.as_bytes(), t0 + Duration::from_secs(3))
            .unwrap();
        inbox.restart(t0 + Duration::from_secs(5));
        inbox
            .take(FIRING.as_bytes(), t0 + Duration::from_secs(9))
            .unwrap();
        let got: Vec<f64> = inbox.snapshot().notifications.iter().map(|n| n.at_s).collect();
        assert_eq!(got, [-2.0, 4.0]);
        assert!(inbox.take(b"nope", t0).is_err());
        let r = inbox.snapshot();
        assert_eq!((r.rejected, r.notifications.len()), (1, 2));
        assert!(r.first_rejection.unwrap().starts_with("not JSON"));
    }
}

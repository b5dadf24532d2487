//! The poller: asks Prometheus' `/api/v1/alerts` once just before the run starts, every second during
//! it, and once more when it has ended, and writes each answer and each failure into the judge's
//! [`Book`]. Only alerts in the run's scope count; the label sets seen on either side of it are kept
//! for the report. The alerts active at each answer go into the run's snapshot, for the live displays.
//!
//! Memory grows with the number of state changes and failed polls, not with the run's length.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::alerts::judge::{Book, Observations, POLL_S};
use crate::alerts::scope::{Scope, ScopeReport, Seen};
use crate::client::Api;
use crate::shared::{Snapshot, State};

/// How often Prometheus is asked.
pub const POLL: Duration = Duration::from_secs(POLL_S as u64);

/// How long one poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct AlertsAnswer {
    data: AlertsData,
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<PromAlert>,
}

#[derive(Deserialize)]
struct PromAlert {
    labels: BTreeMap<String, String>,
    state: String,
}

/// What the watcher saw.
#[derive(Debug, Default)]
pub struct Watched {
    pub observations: Observations,
    /// Why the first failed poll failed.
    pub first_failure: Option<String>,
    /// The scope and the alert label sets seen on either side of it.
    pub scope: ScopeReport,
}

/// A watch on Prometheus' alerts, with its first answer (or failure) taken before the run starts, so
/// that the run's first instant is known.
pub struct Watcher {
    prometheus: Arc<Api>,
    scope: Arc<Scope>,
    seen: Seen,
    first: (Instant, Result<BTreeMap<String, State>, String>),
}

impl Watcher {
    /// Asks Prometheus once, now.
    pub async fn start(prometheus: Arc<Api>, scope: Arc<Scope>) -> Watcher {
        let mut seen = Seen::default();
        let at = Instant::now();
        let answer = poll(&prometheus, &scope, &mut seen).await;
        Watcher {
            prometheus,
            scope,
            seen,
            first: (at, answer),
        }
    }

    /// Polls every [`POLL`] until the run's snapshot is finished, then once more.
    pub async fn run(mut self, start: Instant, snapshot: watch::Sender<Snapshot>) -> Watched {
        let at_s = |at: Instant| {
            if at >= start {
                at.duration_since(start).as_secs_f64()
            } else {
                -start.duration_since(at).as_secs_f64()
            }
        };
        let mut finished = snapshot.subscribe();
        let mut book = Book::default();
        let mut first_failure = None;
        let mut note =
            |book: &mut Book, at: Instant, answer: Result<BTreeMap<String, State>, String>| match answer {
                Ok(states) => {
                    book.answered(at_s(at), &states);
                    let active = states.into_iter().collect();
                    snapshot.send_modify(|s| {
                        s.alerts = Some(active);
                        s.alert_polls_failing = 0;
                    });
                }
                Err(why) => {
                    book.failed(at_s(at));
                    snapshot.send_modify(|s| s.alert_polls_failing += 1);
                    first_failure.get_or_insert(why);
                }
            };
        let (at, answer) = std::mem::replace(&mut self.first, (start, Ok(BTreeMap::new())));
        note(&mut book, at, answer);
        let mut tick = tokio::time::interval_at(start + POLL, POLL);
        let mut done = false;
        while !done {
            tokio::select! {
                _ = tick.tick() => {}
                _ = finished.wait_for(|s| s.finished) => done = true,
            }
            let at = Instant::now();
            let answer = poll(&self.prometheus, &self.scope, &mut self.seen).await;
            note(&mut book, at, answer);
        }
        let end = at_s(Instant::now());
        Watched {
            observations: book.finish(end),
            first_failure,
            scope: self.seen.report(&self.scope),
        }
    }
}

/// The alerts in `scope` that are pending or firing now (the most severe state per alert name).
async fn poll(prometheus: &Api, scope: &Scope, seen: &mut Seen) -> Result<BTreeMap<String, State>, String> {
    let body = prometheus.get("/api/v1/alerts", POLL_TIMEOUT).await?;
    let answer: AlertsAnswer = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "{}/api/v1/alerts: not a Prometheus alerts answer: {e}",
            prometheus.url
        )
    })?;
    let mut states = BTreeMap::new();
    for a in answer.data.alerts {
        let Some(name) = a.labels.get("alertname") else {
            continue;
        };
        let state = match a.state.as_str() {
            "firing" => State::Firing,
            "pending" => State::Pending,
            _ => continue,
        };
        let counted = scope.matches(&a.labels);
        seen.note(counted, name, scope.relevant(&a.labels), state);
        if !counted {
            continue;
        }
        let entry = states.entry(name.clone()).or_insert(state);
        *entry = (*entry).max(state);
    }
    Ok(states)
}

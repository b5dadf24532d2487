//! What Alertmanager itself says about the alerts it holds: its API (`/api/v2/alerts`) polled during a
//! run, kept as spans per alert name of "active" or "inhibited by …", so that an inhibited alert is
//! reported inhibited rather than missing ([`crate::alerts::routed`] judges on it).
//!
//! Memory is bounded ([`MAX_SPANS`]); the poller ends when told to. This module asks; it judges nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::alerts::scope::Scope;
use crate::client::Api;

/// Spans kept per run; later changes are counted in [`AmStates::dropped`].
pub const MAX_SPANS: usize = 10_000;
/// How often Alertmanager is asked.
pub const POLL: Duration = Duration::from_secs(1);

/// One alert name's state over a span of polls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmSpan {
    pub alert: String,
    /// Seconds from the run's start of the first and last poll that saw this state.
    pub from_s: f64,
    pub to_s: f64,
    /// Names of the alerts inhibiting it; empty when at least one alert of that name was active
    /// (neither inhibited nor silenced).
    pub inhibited_by: Vec<String>,
}

/// What the polls of Alertmanager saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AmStates {
    pub spans: Vec<AmSpan>,
    /// Spans of the run (seconds) over which Alertmanager answered.
    pub answered: Vec<(f64, f64)>,
    pub failed_polls: u64,
    /// Changes past [`MAX_SPANS`], not kept.
    pub dropped: u64,
    /// The first failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// One alert as Alertmanager's API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct AmAlert {
    pub labels: BTreeMap<String, String>,
    pub fingerprint: String,
    pub inhibited_by: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    fingerprint: String,
    status: RawStatus,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    #[serde(default)]
    inhibited_by: Option<Vec<String>>,
}

/// Parses the body of `GET /api/v2/alerts`.
pub fn parse(body: &[u8]) -> Result<Vec<AmAlert>, String> {
    let raw: Vec<RawAlert> =
        serde_json::from_slice(body).map_err(|e| format!("not Alertmanager's alert list: {e}"))?;
    Ok(raw
        .into_iter()
        .map(|a| AmAlert {
            labels: a.labels,
            fingerprint: a.fingerprint,
            inhibited_by: a.status.inhibited_by.unwrap_or_default(),
        })
        .collect())
}

impl AmStates {
    /// Adds one answered poll at `at_s` (seconds from the run's start), of the alerts `scope` counts;
    /// `previous` is when the poll before it was answered, if it was.
    pub fn add(&mut self, at_s: f64, previous: Option<f64>, alerts: &[AmAlert], scope: &Scope) {
        match (self.answered.last_mut(), previous) {
            (Some(last), Some(p)) if last.1 == p => last.1 = at_s,
            _ => self.answered.push((at_s, at_s)),
        }
        let names: BTreeMap<&str, &str> = alerts
            .iter()
            .filter_map(|a| Some((a.fingerprint.as_str(), a.labels.get("alertname")?.as_str())))
            .collect();
        // Per alert name: inhibitors of its inhibited instances, and whether any is not inhibited.
        let mut now: BTreeMap<&str, (BTreeSet<String>, bool)> = BTreeMap::new();
        for a in alerts.iter().filter(|a| scope.matches(&a.labels)) {
            let Some(name) = a.labels.get("alertname") else {
                continue;
            };
            let entry = now.entry(name.as_str()).or_default();
            if a.inhibited_by.is_empty() {
                entry.1 = true;
            }
            for fp in &a.inhibited_by {
                entry.0.insert(
                    names
                        .get(fp.as_str())
                        .map_or_else(|| fp.clone(), |n| (*n).to_owned()),
                );
            }
        }
        for (name, (by, active)) in now {
            let inhibited_by: Vec<String> = if active {
                Vec::new()
            } else {
                by.into_iter().collect()
            };
            let kept = self.spans.len();
            let open = self
                .spans
                .iter_mut()
                .rev()
                .find(|s| s.alert == name)
                .filter(|s| previous.is_some_and(|p| s.to_s == p));
            match open {
                Some(s) if s.inhibited_by == inhibited_by => s.to_s = at_s,
                _ if kept >= MAX_SPANS => self.dropped += 1,
                _ => self.spans.push(AmSpan {
                    alert: name.to_owned(),
                    from_s: at_s,
                    to_s: at_s,
                    inhibited_by,
                }),
            }
        }
    }

    /// Whether Alertmanager answered at some time within `[from, to]`.
    pub fn answered_within(&self, from: f64, to: f64) -> bool {
        self.answered.iter().any(|(a, b)| *a <= to && *b >= from)
    }

    /// The spans of `alert` overlapping `[from, to]`.
    pub fn of<'a>(&'a self, alert: &'a str, from: f64, to: f64) -> impl Iterator<Item = &'a AmSpan> + 'a {
        self.spans
            .iter()
            .filter(move |s| s.alert == alert && s.from_s <= to && s.to_s >= from)
    }
}

/// Polls `api` every [`POLL`] into `into` until `stop` changes, timing from `start`.
pub async fn watch(
    api: Api,
    scope: Arc<Scope>,
    start: Instant,
    into: Arc<Mutex<AmStates>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut previous = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let answer = api.get("/api/v2/alerts", POLL * 2).await;
        let at_s = Instant::now().saturating_duration_since(start).as_secs_f64();
        let mut states = into.lock().unwrap_or_else(|e| e.into_inner());
        match answer.and_then(|body| parse(&body)) {
            Ok(alerts) => {
                states.add(at_s, previous, &alerts, &scope);
                previous = Some(at_s);
            }
            Err(why) => {
                states.failed_polls += 1;
                states.first_failure.get_or_insert(why);
                previous = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Alertmanager 0.25 answers `/api/v2/alerts` with: ServiceDown inhibiting HighErrorRate.
    const ANSWER: &str = r#"[
 {"annotations":{},"endsAt":"2026-12-07T06:00:00Z","fingerprint":"aa01","receivers":[{"name":"pager"}],
  "startsAt":"2026-12-07T05:50:00Z","status":{"inhibitedBy":[],"silencedBy":[],"state":"active"},
  "updatedAt":"2026-12-07T05:50:00Z","labels":{"alertname":"ServiceDown","job":"target-app"}},
 {"annotations":{},"endsAt":"2026-12-07T06:00:00Z","fingerprint":"bb02","receivers":[{"name":"pager"}],
  "startsAt":"2026-12-07T05:50:00Z","status":{"inhibitedBy":["aa01"],"silencedBy":[],"state":"suppressed"},
  "updatedAt":"2026-12-07T05:50:00Z","labels":{"alertname":"HighErrorRate","job":"target-app"}},
 {"annotations":{},"endsAt":"2026-12-07T06:00:00Z","fingerprint":"cc03","receivers":[{"name":"pager"}],
  "startsAt":"2026-12-07T05:50:00Z","status":{"inhibitedBy":null,"silencedBy":[],"state":"active"},
  "updatedAt":"2026-12-07T05:50:00Z","labels":{"alertname":"HighErrorRate","job":"elsewhere"}}
]"#;

    fn scope() -> Scope {
        Scope::private("target-app", "127.0.0.1:1")
    }

    #[test]
    fn inhibitors_are_named_and_spans_merge_over_consecutive_polls() {
        let alerts = parse(ANSWER.as_bytes()).unwrap();
        assert_eq!(alerts[1].inhibited_by, ["aa01"]);
        let mut s = AmStates::default();
        s.add(1.0, None, &alerts, &scope());
        s.add(2.0, Some(1.0), &alerts, &scope());
        // A gap: the poll at 3.0 failed.
        s.add(4.0, None, &alerts, &scope());
        assert_eq!(s.answered, [(1.0, 2.0), (4.0, 4.0)]);
        let her: Vec<_> = s.of("HighErrorRate", 0.0, 10.0).collect();
        assert_eq!(her.len(), 2, "{s:?}");
        assert_eq!(
            her[0].inhibited_by,
            ["ServiceDown"],
            "the other job is out of scope"
        );
        assert_eq!((her[0].from_s, her[0].to_s), (1.0, 2.0));
        assert!(s
            .of("ServiceDown", 0.0, 10.0)
            .all(|sp| sp.inhibited_by.is_empty()));
        assert!(s.answered_within(3.5, 4.5) && !s.answered_within(2.5, 3.5));
    }

    #[test]
    fn one_active_instance_makes_the_name_active() {
        let mut alerts = parse(ANSWER.as_bytes()).unwrap();
        alerts[2].labels.insert("job".into(), "target-app".into());
        let mut s = AmStates::default();
        s.add(1.0, None, &alerts, &scope());
        assert!(s
            .of("HighErrorRate", 0.0, 2.0)
            .all(|sp| sp.inhibited_by.is_empty()));
        assert!(parse(b"{\"not\":\"a list\"}").is_err());
    }
}

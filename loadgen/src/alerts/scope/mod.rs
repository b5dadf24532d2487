//! Which alerts belong to a run. Against a shared Prometheus, `HighErrorRate` of another service must
//! neither meet a run's `alerts_firing` nor fail its `alerts_inactive`, so only alerts whose labels
//! point at the run's target count.
//!
//! The scope is either the `--alert-match` label matchers (PromQL syntax, parsed and validated here),
//! or the `job` and `instance` that Prometheus' `/api/v1/targets` gives the target's host and port.
//! This module decides what matches; it does not poll alerts (see [`crate::alerts`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::Api;

mod matchers;

pub use matchers::{parse_matchers, Matcher, Matchers, Op};

/// Most label sets kept in the report's `matched` and `ignored` lists.
const MAX_SEEN: usize = 100;

/// Where a scope came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `--alert-match`.
    AlertMatch,
    /// Prometheus' `/api/v1/targets`, for the target's host and port.
    Targets,
    /// The private Prometheus' own scrape configuration.
    Private,
}

/// The alerts that count for a run.
#[derive(Debug, Clone)]
pub struct Scope {
    pub source: Source,
    /// An alert counts when it satisfies every matcher of any one of these lists.
    pub selectors: Vec<Vec<Matcher>>,
    /// Why no alert can be attributed to the run (the target is not among Prometheus' targets):
    /// every alert check then fails with this reason.
    pub problem: Option<String>,
    /// How the target was found among Prometheus' targets, when it was not by its exact address.
    pub note: Option<String>,
}

impl Scope {
    /// `--alert-match`: PromQL semantics (a missing label is the empty string).
    pub fn from_flag(matchers: &Matchers) -> Scope {
        Scope {
            source: Source::AlertMatch,
            selectors: vec![matchers.0.clone()],
            problem: None,
            note: None,
        }
    }

    /// A target known without asking: the private Prometheus scrapes it under `job` at `instance`.
    pub fn private(job: &str, instance: &str) -> Scope {
        Scope {
            source: Source::Private,
            selectors: vec![vec![Matcher::eq("job", job), Matcher::eq("instance", instance)]],
            problem: None,
            note: None,
        }
    }

    /// Whether an alert with these labels counts for the run.
    ///
    /// Scopes found from the targets (or the private configuration) are `job` and `instance`; rules that
    /// aggregate `by (job)` drop `instance`, so a label the alert does not carry is not held against
    /// it, but it must carry at least one of them. `--alert-match` is taken literally, as PromQL does.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let literal = self.source == Source::AlertMatch;
        self.selectors.iter().any(|selector| {
            let mut carried = false;
            let all = selector.iter().all(|m| match labels.get(&m.name) {
                Some(v) => {
                    carried = true;
                    m.matches(v)
                }
                None => !literal || m.matches(""),
            });
            all && (literal || carried)
        })
    }

    /// The alert's labels that the scope looks at, for showing what matched (or did not).
    pub fn relevant(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut names: Vec<&str> = self.selectors.iter().flatten().map(|m| m.name.as_str()).collect();
        if names.is_empty() {
            names = vec!["job", "instance"];
        }
        labels
            .iter()
            .filter(|(k, _)| names.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The selectors as text: `{job="api", instance="10.0.0.5:8080"}`.
    pub fn describe(&self) -> Vec<String> {
        self.selectors
            .iter()
            .map(|s| Matchers(s.clone()).to_string())
            .collect()
    }
}

/// The scope in the report: where it came from, its matchers, and the alert label sets seen on either
/// side of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ScopeReport {
    /// `alert-match`, `targets` or `private`.
    pub source: Option<Source>,
    /// Each entry is a matcher list; an alert counts when it satisfies any one of them.
    pub matchers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why no alert was attributed to the run, when none could be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Alerts that counted: name, the labels the scope looked at, and the most severe state seen.
    #[serde(default)]
    pub matched: Vec<SeenAlert>,
    /// Alerts active in Prometheus during the run that did not count (another service's).
    #[serde(default)]
    pub ignored: Vec<SeenAlert>,
}

/// One alert label set seen during the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeenAlert {
    pub alert: String,
    pub labels: BTreeMap<String, String>,
    pub state: crate::shared::State,
}

/// Alert label sets seen by the watcher, on each side of the scope, with their most severe state.
#[derive(Debug, Default)]
pub struct Seen {
    matched: BTreeMap<(String, BTreeMap<String, String>), crate::shared::State>,
    ignored: BTreeMap<(String, BTreeMap<String, String>), crate::shared::State>,
}

impl Seen {
    /// Notes one active alert; memory stays bounded by [`MAX_SEEN`] label sets a side.
    pub fn note(
        &mut self,
        counted: bool,
        alert: &str,
        labels: BTreeMap<String, String>,
        state: crate::shared::State,
    ) {
        let side = if counted {
            &mut self.matched
        } else {
            &mut self.ignored
        };
        let key = (alert.to_owned(), labels);
        if let Some(s) = side.get_mut(&key) {
            *s = (*s).max(state);
        } else if side.len() < MAX_SEEN {
            side.insert(key, state);
        }
    }

    /// The report's view of the scope.
    pub fn report(self, scope: &Scope) -> ScopeReport {
        let list = |m: BTreeMap<(String, BTreeMap<String, String>), crate::shared::State>| {
            m.into_iter()
                .map(|((alert, labels), state)| SeenAlert { alert, labels, state })
                .collect()
        };
        ScopeReport {
            source: Some(scope.source),
            matchers: scope.describe(),
            note: scope.note.clone(),
            problem: scope.problem.clone(),
            matched: list(self.matched),
            ignored: list(self.ignored),
        }
    }
}

/// One active scrape target as `/api/v1/targets` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeTarget {
    pub job: String,
    pub instance: String,
    /// Host and port of its scrape URL.
    pub host: String,
    pub port: u16,
}

#[derive(Deserialize)]
struct TargetsAnswer {
    data: TargetsData,
}

#[derive(Deserialize)]
struct TargetsData {
    #[serde(rename = "activeTargets")]
    active: Vec<ActiveTarget>,
}

#[derive(Deserialize)]
struct ActiveTarget {
    labels: BTreeMap<String, String>,
    #[serde(rename = "scrapeUrl")]
    scrape_url: String,
}

/// Host (without brackets, lower case) and port (the scheme's default when absent) of a URL.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_matches(['[', ']']).to_ascii_lowercase();
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    Some((host, port))
}

/// Parses `/api/v1/targets`' answer.
pub fn parse_targets(body: &[u8]) -> Result<Vec<ScrapeTarget>, String> {
    let answer: TargetsAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not a Prometheus targets answer: {e}"))?;
    Ok(answer
        .data
        .active
        .into_iter()
        .filter_map(|t| {
            let (host, port) = host_port(&t.scrape_url)?;
            Some(ScrapeTarget {
                job: t.labels.get("job").cloned().unwrap_or_default(),
                instance: t.labels.get("instance").cloned().unwrap_or_default(),
                host,
                port,
            })
        })
        .collect())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The targets that are the run's target at `host:port`: the same host and port; else, for a
/// loopback host, any loopback host on that port; else, for a loopback host, the only target on that
/// port (a service published from a container or VM on the same port, as the bundled stack does).
/// The note says how, when it was not by the exact address.
pub fn find<'a>(
    targets: &'a [ScrapeTarget],
    host: &str,
    port: u16,
) -> (Vec<&'a ScrapeTarget>, Option<String>) {
    let on_port: Vec<&ScrapeTarget> = targets.iter().filter(|t| t.port == port).collect();
    let exact: Vec<_> = on_port.iter().copied().filter(|t| t.host == host).collect();
    if !exact.is_empty() {
        return (exact, None);
    }
    if !is_loopback(host) {
        return (Vec::new(), None);
    }
    let loopback: Vec<_> = on_port.iter().copied().filter(|t| is_loopback(&t.host)).collect();
    if !loopback.is_empty() {
        return (loopback, None);
    }
    let pools: std::collections::BTreeSet<(&str, &str)> = on_port
        .iter()
        .map(|t| (t.job.as_str(), t.instance.as_str()))
        .collect();
    if pools.len() == 1 {
        let t = on_port[0];
        let note = format!(
            "{host}:{port} is not a scrape target; the only one on port {port}, {}:{} (job {:?}), was taken \
             for it (a published port); give --alert-match to choose otherwise",
            t.host, t.port, t.job
        );
        return (on_port, Some(note));
    }
    (Vec::new(), None)
}

/// The scope for a target at `target_url`, from the targets Prometheus scrapes. Asks again every
/// second, for up to `wait`, while the target is not listed (a Prometheus just started lists its
/// targets after a few seconds); then gives a scope whose `problem` says what was seen.
/// `waiting` is told why, once, when the first answer did not list it.
pub async fn from_targets(api: &Api, target_url: &str, wait: Duration, waiting: impl FnOnce(&str)) -> Scope {
    let mut waiting = Some(waiting);
    let failed = |problem: String| Scope {
        source: Source::Targets,
        selectors: Vec::new(),
        problem: Some(problem),
        note: None,
    };
    let Some((host, port)) = host_port(target_url) else {
        return failed(format!("cannot tell the host and port of {target_url}"));
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (why, short) = match api
            .get("/api/v1/targets?state=active", Duration::from_secs(5))
            .await
            .and_then(|body| parse_targets(&body).map_err(|e| format!("{}/api/v1/targets: {e}", api.url)))
        {
            Ok(targets) => {
                let (found, note) = find(&targets, &host, port);
                if !found.is_empty() {
                    let pairs: std::collections::BTreeSet<(&str, &str)> = found
                        .iter()
                        .map(|t| (t.job.as_str(), t.instance.as_str()))
                        .collect();
                    let selectors = pairs
                        .into_iter()
                        .map(|(job, instance)| {
                            vec![Matcher::eq("job", job), Matcher::eq("instance", instance)]
                        })
                        .collect();
                    return Scope {
                        source: Source::Targets,
                        selectors,
                        problem: None,
                        note,
                    };
                }
                (
                    not_found(&api.url, &host, port, &targets),
                    format!("{host}:{port} is not listed yet"),
                )
            }
            Err(e) => {
                let why = format!("cannot ask Prometheus for its targets: {e}");
                (why.clone(), why)
            }
        };
        if tokio::time::Instant::now() + Duration::from_secs(1) > deadline {
            return failed(why);
        }
        if let Some(tell) = waiting.take() {
            tell(&short);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn not_found(prometheus: &str, host: &str, port: u16, targets: &[ScrapeTarget]) -> String {
    const SHOWN: usize = 12;
    let mut seen: Vec<String> = targets
        .iter()
        .take(SHOWN)
        .map(|t| format!("{}:{} (job {:?})", t.host, t.port, t.job))
        .collect();
    if targets.len() > SHOWN {
        seen.push(format!("and {} more", targets.len() - SHOWN));
    }
    let seen = if seen.is_empty() {
        "none".to_owned()
    } else {
        seen.join(", ")
    };
    format!(
        "the target {host}:{port} is not among the scrape targets of {prometheus} (seen: {seen}), so no \
         alert can be attributed to this run; give --alert-match 'job=\"…\"' to choose the alerts that count"
    )
}

/// Writes the scope lines of the text summary: what counted, and what was seen but did not.
pub fn write_text(scope: &ScopeReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let source = match scope.source {
        Some(Source::AlertMatch) => "from --alert-match",
        Some(Source::Targets) => "the target's job and instance in Prometheus' targets",
        Some(Source::Private) => "the target's job and instance in the private Prometheus",
        None => "",
    };
    if let Some(problem) = &scope.problem {
        writeln!(out, "  scope: none: {problem}")?;
    } else {
        writeln!(out, "  scope: {} ({source})", scope.matchers.join(" or "))?;
    }
    if let Some(note) = &scope.note {
        writeln!(out, "         {note}")?;
    }
    let seen = |a: &SeenAlert| {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{}{{{}}} {}", a.alert, labels.join(", "), a.state.as_str())
    };
    if !scope.matched.is_empty() {
        let list: Vec<String> = scope.matched.iter().map(seen).collect();
        writeln!(out, "  counted: {}", list.join("; "))?;
    }
    if !scope.ignored.is_empty() {
        let list: Vec<String> = scope.ignored.iter().map(seen).collect();
        writeln!(out, "  not counted (outside the scope): {}", list.join("; "))?;
    }
    Ok(())
}

/// Makes every check NOT VERIFIED when the scope has a problem: no alert can be attributed to the run,
/// so nothing seen or missed says anything about it.
pub fn unverify_checks(scope: &Scope, checks: &mut [crate::alerts::AlertCheck]) {
    if scope.problem.is_some() {
        for c in checks {
            c.verdict = crate::shared::Verdict::NotVerified;
            c.detail = "not checked: no alert can be attributed to this run (see the scope)".to_owned();
        }
    }
}

#[cfg(test)]
mod tests;

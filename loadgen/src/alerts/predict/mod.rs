//! Alert prediction: from a scenario's traffic and faults to when each alerting rule would go pending,
//! firing and inactive, without a server.
//!
//! [`series`] turns the scenario into the series the target would expose (through the target's own
//! model, `target_app::metrics::model`); [`promtool`] evaluates the real rule files on them with
//! `promtool test rules`; this module turns the states into intervals and transitions, and judges the
//! scenario's alert expectations on them with the same rules as a live run ([`crate::alerts::check`]).
//! [`coverage`] lists every rule against every scenario; [`cmd`] holds the `plan --predict`,
//! `validate` and `coverage` commands. Nothing here sends a request.

pub mod coverage;
pub mod live;
pub mod margin;
pub mod mutants;
pub mod promql;
pub mod promtool;
pub mod rulefile;
pub mod series;

use std::io::{self, Write};
use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

pub use promtool::{PredictError, Rules};

use crate::alerts::judge::{Observations, Span, SLACK_S};
use crate::alerts::AlertCheck;
use crate::scenario::Scenario;
use crate::shared::Timeline;
use crate::shared::{State, Transition, Verdict};

/// How the Prometheus being predicted scrapes and evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scrapes {
    /// Scrape and evaluation interval.
    pub interval: Duration,
    /// When, from the scenario's start, the first scrape happens.
    pub first: Duration,
}

impl Scrapes {
    /// The stack's Prometheus (`stack/prometheus/prometheus.yml`: every 5s), already scraping when the
    /// scenario starts.
    pub const STACK: Scrapes = Scrapes {
        interval: Duration::from_secs(5),
        first: Duration::ZERO,
    };

    /// loadgen's private Prometheus ([`crate::alerts::prometheus`]): every 1s, and started with the run.
    /// Prometheus applies new scrape targets on a 5s tick, so its first scrape comes about 5s in.
    pub const PRIVATE: Scrapes = Scrapes {
        interval: Duration::from_secs(1),
        first: Duration::from_secs(5),
    };
}

/// What the rules would do during one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// Scrape and evaluation interval assumed, in seconds.
    pub interval_s: f64,
    /// Where the rules came from.
    pub rules: String,
    /// The rule groups in the order evaluated at each step for `alerts`: each group after the
    /// groups whose recorded series it reads.
    pub group_order: Vec<String>,
    /// Every alerting rule of the rule files, in file order, with its predicted intervals.
    pub alerts: Vec<AlertPrediction>,
    /// State changes, in time order (the same shape a live run records).
    #[serde(skip)]
    pub transitions: Vec<Transition>,
    /// The same under the other orders of the rule groups that matter (see [`rulefile`]): a live
    /// Prometheus may evaluate the groups either way.
    #[serde(skip)]
    pub other_orders: Vec<Ordering>,
}

/// The prediction under one order of the rule groups.
#[derive(Debug, Clone)]
pub struct Ordering {
    pub group_order: Vec<String>,
    pub alerts: Vec<AlertPrediction>,
    pub transitions: Vec<Transition>,
}

/// One alerting rule's predicted intervals, in seconds from the scenario's start: `[start, end)`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertPrediction {
    pub name: String,
    pub pending: Vec<[f64; 2]>,
    pub firing: Vec<[f64; 2]>,
    /// The intervals with the rule groups in the other order, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_order: Option<Intervals>,
}

/// Pending and firing intervals.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Intervals {
    pub group_order: Vec<String>,
    pub pending: Vec<[f64; 2]>,
    pub firing: Vec<[f64; 2]>,
}

impl AlertPrediction {
    /// Whether the alert fires at some point.
    pub fn fires(&self) -> bool {
        !self.firing.is_empty()
    }

    /// The first moment it is pending or firing.
    pub fn first_pending(&self) -> Option<f64> {
        self.pending.first().map(|p| p[0])
    }

    /// The first moment it fires.
    pub fn first_firing(&self) -> Option<f64> {
        self.firing.first().map(|p| p[0])
    }

    /// The end of its first firing interval (when it resolves), unless it still fires at the end.
    pub fn first_resolved(&self, end: f64) -> Option<f64> {
        self.firing.first().map(|p| p[1]).filter(|t| *t < end)
    }
}

impl Prediction {
    /// The prediction for alert `name`, if the rules define it.
    pub fn alert(&self, name: &str) -> Option<&AlertPrediction> {
        self.alerts.iter().find(|a| a.name == name)
    }

    /// Every order's transitions, the first order's first.
    pub fn every_order(&self) -> impl Iterator<Item = (&[AlertPrediction], &[Transition])> {
        std::iter::once((self.alerts.as_slice(), self.transitions.as_slice())).chain(
            self.other_orders
                .iter()
                .map(|o| (o.alerts.as_slice(), o.transitions.as_slice())),
        )
    }

    /// Builds a prediction from the states promtool reported under each order of the groups; `names`
    /// are the alerts to list (more are added as they appear).
    pub fn from_orders(
        names: &[String],
        origin: &str,
        ordered: &[promtool::Ordered],
        interval: f64,
        end: f64,
    ) -> Prediction {
        let mut orders = ordered.iter().map(|o| {
            let (alerts, transitions) = from_states(names, &o.states, interval, end);
            Ordering {
                group_order: o.order.clone(),
                alerts,
                transitions,
            }
        });
        let first = orders.next().unwrap_or(Ordering {
            group_order: Vec::new(),
            alerts: Vec::new(),
            transitions: Vec::new(),
        });
        let other_orders: Vec<Ordering> = orders.collect();
        let mut alerts = first.alerts;
        for a in &mut alerts {
            for o in &other_orders {
                if let Some(b) = o.alerts.iter().find(|b| b.name == a.name) {
                    if (&b.pending, &b.firing) != (&a.pending, &a.firing) && a.other_order.is_none() {
                        a.other_order = Some(Intervals {
                            group_order: o.group_order.clone(),
                            pending: b.pending.clone(),
                            firing: b.firing.clone(),
                        });
                    }
                }
            }
        }
        Prediction {
            interval_s: interval,
            rules: origin.to_owned(),
            group_order: first.group_order,
            alerts,
            transitions: first.transitions,
            other_orders,
        }
    }
}

/// Predicts `scenario` under `rules`, for a Prometheus that scrapes and evaluates as `scrapes` says.
pub fn predict(scenario: &Scenario, rules: &Rules, scrapes: Scrapes) -> Result<Prediction, PredictError> {
    let series = series::build(scenario, scrapes);
    let ordered = promtool::evaluate(rules, &series)?;
    Ok(Prediction::from_orders(
        &rules.alerts,
        &rules.origin,
        &ordered,
        series.interval,
        scenario.duration().as_secs_f64(),
    ))
}

fn from_states(
    names: &[String],
    states: &promtool::States,
    interval: f64,
    end: f64,
) -> (Vec<AlertPrediction>, Vec<Transition>) {
    let mut names = names.to_vec();
    for s in states {
        for name in s.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let mut transitions = Vec::new();
    let mut alerts = Vec::new();
    for name in names {
        let mut pending: Vec<[f64; 2]> = Vec::new();
        let mut firing: Vec<[f64; 2]> = Vec::new();
        let mut previous = State::Inactive;
        for (k, s) in states.iter().enumerate() {
            let t = k as f64 * interval;
            let state = s.get(&name).copied().unwrap_or(State::Inactive);
            if state != previous {
                transitions.push(Transition {
                    at_s: t,
                    alert: name.clone(),
                    to: state,
                });
                close(&mut pending, t);
                close(&mut firing, t);
                match state {
                    State::Pending => pending.push([t, f64::INFINITY]),
                    State::Firing => firing.push([t, f64::INFINITY]),
                    State::Inactive => {}
                }
                previous = state;
            }
        }
        close(&mut pending, end);
        close(&mut firing, end);
        alerts.push(AlertPrediction {
            name,
            pending,
            firing,
            other_order: None,
        });
    }
    transitions.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    (alerts, transitions)
}

fn close(intervals: &mut [[f64; 2]], t: f64) {
    if let Some(last) = intervals.last_mut() {
        if last[1].is_infinite() {
            last[1] = t;
        }
    }
}

/// The scenario's alert expectations judged on the prediction, exactly as a live run judges them on
/// what Prometheus reported, phases taken at their planned times. An expectation holds only when it
/// holds under every order of the rule groups; otherwise its check is the first order's that fails.
pub fn check(scenario: &Scenario, prediction: &Prediction) -> Vec<AlertCheck> {
    let mut checks = check_order(scenario, &prediction.transitions);
    for other in &prediction.other_orders {
        let theirs = check_order(scenario, &other.transitions);
        for (mine, theirs) in checks.iter_mut().zip(theirs) {
            if mine.verdict == Verdict::Pass && theirs.verdict != Verdict::Pass {
                *mine = theirs;
                mine.detail = format!(
                    "{} (rule groups evaluated in the order {})",
                    mine.detail,
                    other.group_order.join(", ")
                );
            }
        }
    }
    checks
}

/// The expectations judged on one order's transitions.
fn check_order(scenario: &Scenario, transitions: &[Transition]) -> Vec<AlertCheck> {
    let phases = (0..scenario.phases.len())
        .map(|i| {
            let start = scenario.phase_start(i);
            (start, start + scenario.phases[i].duration)
        })
        .collect();
    let timeline = Timeline {
        phases,
        faults: Vec::new(),
        ..Timeline::default()
    };
    // The prediction knows every instant: from before the first phase to past the last.
    let end = timeline.phases.last().map_or(0.0, |(_, end)| end.as_secs_f64()) + SLACK_S;
    let observed = Observations {
        transitions: transitions.to_vec(),
        known: vec![Span {
            from_s: f64::NEG_INFINITY,
            to_s: end,
        }],
        failed: Vec::new(),
    };
    crate::alerts::check(scenario, &timeline, &observed)
}

/// An expectation the prediction contradicts, with where it is written.
#[derive(Debug, Clone, Serialize)]
pub struct Contradiction {
    /// `file:line:column` of the alert name in the expectation.
    pub at: String,
    pub phase: String,
    pub alert: String,
    /// `firing`, `inactive` or `resolved`.
    pub expect: &'static str,
    /// What the prediction says instead.
    pub predicted: String,
}

/// The expectations of `scenario` (read from `file`, whose text is `source`) that `prediction`
/// contradicts.
pub fn contradictions(
    scenario: &Scenario,
    prediction: &Prediction,
    file: &str,
    source: &str,
) -> Vec<Contradiction> {
    let positions = crate::scenario::Diagnostics::new(file, source, Vec::new());
    let checks = check(scenario, prediction);
    checks
        .into_iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(|c| {
            let (index, phase) = scenario
                .phases
                .iter()
                .enumerate()
                .find(|(_, p)| p.name == c.phase)
                .expect("checks name the scenario's phases");
            let span: Option<&Range<usize>> = phase
                .expect
                .alert_spans
                .iter()
                .find(|(name, _)| *name == c.alert)
                .map(|(_, span)| span);
            let at = match span {
                Some(span) => {
                    let (line, col) = positions.line_col(span.start);
                    format!("{file}:{line}:{col}")
                }
                None => file.to_owned(),
            };
            let start = scenario.phase_start(index).as_secs_f64();
            let end = start + phase.duration.as_secs_f64();
            Contradiction {
                at,
                phase: c.phase.clone(),
                alert: c.alert.clone(),
                expect: c.expect,
                predicted: describe(prediction.alert(&c.alert), start, end),
            }
        })
        .collect()
}

/// What the prediction says of one alert, relative to a phase `[start, end)`.
fn describe(alert: Option<&AlertPrediction>, start: f64, end: f64) -> String {
    let Some(a) = alert else {
        return "no alerting rule of this name in the rule files".to_owned();
    };
    if a.pending.is_empty() && a.firing.is_empty() {
        return "never pending or firing in the whole scenario".to_owned();
    }
    let mut parts = Vec::new();
    for (what, list) in [("pending", &a.pending), ("firing", &a.firing)] {
        for [from, to] in list {
            parts.push(format!("{what} {}-{}", secs(*from), secs(*to)));
        }
    }
    let mut text = format!(
        "predicted {} (phase runs {}-{})",
        parts.join(", "),
        secs(start),
        secs(end)
    );
    if let Some(o) = &a.other_order {
        let other = AlertPrediction {
            name: a.name.clone(),
            pending: o.pending.clone(),
            firing: o.firing.clone(),
            other_order: None,
        };
        let theirs = describe(Some(&other), start, end);
        let theirs = theirs.strip_prefix("predicted ").unwrap_or(&theirs);
        text.push_str(&format!("; with the rule groups in the other order, {theirs}"));
    }
    text
}

/// One alert's predicted first transitions; where the orders of the rule groups disagree, the
/// earliest and latest time of each (`pending at 25-30s, firing at 40s or never`).
pub fn summary(a: &AlertPrediction, end: f64) -> String {
    let mut views = vec![(a.pending.as_slice(), a.firing.as_slice())];
    if let Some(o) = &a.other_order {
        views.push((o.pending.as_slice(), o.firing.as_slice()));
    }
    let first = |list: &[[f64; 2]]| list.first().map(|p| p[0]);
    let pending: Vec<Option<f64>> = views
        .iter()
        .map(|(p, f)| match (first(p), first(f)) {
            (Some(p), Some(f)) => Some(p.min(f)),
            (p, f) => p.or(f),
        })
        .collect();
    let firing: Vec<Option<f64>> = views.iter().map(|(_, f)| first(f)).collect();
    if pending.iter().all(Option::is_none) {
        return "inactive throughout".to_owned();
    }
    let mut text = format!("pending at {}", span(&pending));
    if firing.iter().all(Option::is_none) {
        text.push_str(", never firing");
        return text;
    }
    text.push_str(&format!(", firing at {}", span(&firing)));
    let resolved: Vec<Option<f64>> = views
        .iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(_, f)| f.first().map(|p| p[1]).filter(|t| *t < end))
        .collect();
    if resolved.iter().all(Option::is_none) {
        text.push_str(", still firing at the end");
    } else {
        let known: Vec<Option<f64>> = resolved.iter().filter(|r| r.is_some()).copied().collect();
        text.push_str(&format!(", resolved at {}", span(&known)));
        if resolved.iter().any(Option::is_none) {
            text.push_str(" or still firing at the end");
        }
    }
    if a.firing.len() > 1 {
        text.push_str(&format!(" (fires {} times)", a.firing.len()));
    }
    text
}

/// `25s`, `25-30s`, `25s or never`, `25-30s or never`: the range of the times given.
fn span(times: &[Option<f64>]) -> String {
    let known: Vec<f64> = times.iter().flatten().copied().collect();
    let low = known.iter().copied().fold(f64::INFINITY, f64::min);
    let high = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut text = if known.is_empty() {
        "never".to_owned()
    } else if low == high {
        secs(low)
    } else {
        format!("{}-{}", secs(low).trim_end_matches('s'), secs(high))
    };
    if !known.is_empty() && known.len() < times.len() {
        text.push_str(" or never");
    }
    text
}

fn secs(s: f64) -> String {
    let text = format!("{s:.1}");
    format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Writes the predicted timeline: one line per alerting rule, then a strip chart per rule that
/// is ever pending (`-` inactive, `p` pending, `F` firing), phases marked.
pub fn write_timeline(scenario: &Scenario, p: &Prediction, out: &mut impl Write) -> io::Result<()> {
    const COLUMNS: usize = 60;
    let end = scenario.duration().as_secs_f64();
    writeln!(
        out,
        "predicted alerts (rules: {}; scrape and evaluation every {})",
        p.rules,
        secs(p.interval_s)
    )?;
    let width = p.alerts.iter().map(|a| a.name.len()).max().unwrap_or(0).max(5);
    for a in &p.alerts {
        let text = summary(a, end);
        writeln!(out, "  {:<width$}  {text}", a.name)?;
    }
    let active: Vec<&AlertPrediction> = p
        .alerts
        .iter()
        .filter(|a| !a.pending.is_empty() || a.fires())
        .collect();
    if active.is_empty() {
        return Ok(());
    }
    let at = |c: usize| end * (c as f64 + 0.5) / COLUMNS as f64;
    let inside = |list: &[[f64; 2]], t: f64| list.iter().any(|[a, b]| (*a..*b).contains(&t));
    writeln!(out)?;
    for a in active {
        let strip: String = (0..COLUMNS)
            .map(|c| {
                let t = at(c);
                if inside(&a.firing, t) {
                    'F'
                } else if inside(&a.pending, t) {
                    'p'
                } else {
                    '-'
                }
            })
            .collect();
        writeln!(out, "  {:<width$}  |{strip}|", a.name)?;
    }
    let mut marks = vec![b' '; COLUMNS + 1];
    for i in 0..scenario.phases.len() {
        let col = ((scenario.phase_start(i).as_secs_f64() / end) * COLUMNS as f64).round() as usize;
        let digits = (i + 1).to_string();
        if col + digits.len() <= marks.len() {
            marks[col..col + digits.len()].copy_from_slice(digits.as_bytes());
        }
    }
    writeln!(
        out,
        "  {:<width$}   {}   (phase starts; p pending, F firing)",
        "",
        String::from_utf8_lossy(&marks).trim_end()
    )?;
    writeln!(out, "  {:<width$}   0s{:>pad$}", "", secs(end), pad = COLUMNS - 2)
}

/// The JSON form of a prediction: `{"alerts": [{"name", "pending", "firing"}], ...}`.
pub fn to_json(scenario: &Scenario, p: &Prediction) -> serde_json::Value {
    serde_json::json!({
        "scenario": scenario.name,
        "duration_s": scenario.duration().as_secs_f64(),
        "interval_s": p.interval_s,
        "rules": p.rules,
        "group_order": p.group_order,
        "alerts": p.alerts,
    })
}

//! Mutation testing of a rule suite: would the scenarios notice if an alerting rule were wrong?
//!
//! Every alerting rule is changed by the operators below, one change at a time (a *mutant*), and
//! every scenario is predicted with the mutant beside the original. A mutant is *killed* when some
//! expectation of some scenario about that alert holds with the original rules and not with the
//! mutant (under every order of the rule groups, as always). Mutants that read the same as the
//! original or as another mutant after [`promql::normalise`] are left out (equivalent).
//!
//! Operators, on the alert's expression and on the expression of every recording rule it reads,
//! directly or through other recording rules:
//!
//! | operator | change |
//! |---|---|
//! | `threshold x0.5`, `x0.9`, `x1.1`, `x2` | the literal (or parenthesised) side of a comparison scaled |
//! | `comparison flipped` | `>` and `<`, `>=` and `<=`, `==` and `!=` swapped |
//! | `window x0.5`, `window x2` | a range `[1m]` shortened or lengthened |
//! | `and -> or`, `or -> and` | a set operator replaced |
//! | `unless dropped` | `a unless b` becomes `a` |
//! | `matcher dropped` | one label matcher of a selector removed |
//! | `windows swapped` | the windows of the two sides of an `and` exchanged (multi-window burn rates) |
//! | `for halved`, `for doubled`, `for removed` | the alert's `for` (alerts only) |
//!
//! All mutants of the suite go into one extra rule file: the mutated rule renamed (`Name__mutantN`),
//! and copies, renamed the same way, of the rules between it and the alert, each in a group beside
//! its original's (`group__mutants`), so the order of evaluation treats them as it treats the
//! originals. One promtool process per scenario evaluates them all.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;

use super::promql::{self, Kind, Token};
use super::promtool::{self, Ordered, PredictError, Rules};
use super::rulefile::{Group, Rule, RuleFile};
use super::{margin, series, Prediction, Scrapes};
use crate::scenario::Scenario;
use crate::shared::Verdict;
pub use near_miss::{search_near_misses, NearMiss};

/// One changed rule suite.
#[derive(Debug, Clone, Serialize)]
pub struct Mutant {
    /// The alerting rule it tests.
    pub alert: String,
    pub operator: String,
    /// The rule changed: the alert itself or a recording rule it reads.
    pub rule: String,
    /// The changed rule's expression after the change.
    pub expr: String,
    /// The alert's `for` after the change.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// The scenario and phase whose expectation failed with it; `None` while it survives.
    pub killed_by: Option<String>,
    /// For a survivor: the expectation about the alert that held with the least room with it.
    pub closest: Option<String>,
    /// For a survivor, when searched: the smallest change to a scenario that kills it, or why none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_miss: Option<NearMiss>,
    /// The copies of rules it needs, by original group name, and the name of its alert.
    #[serde(skip)]
    copies: Vec<(String, Rule)>,
    #[serde(skip)]
    renamed: String,
}

/// The score of one alerting rule.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub alert: String,
    pub total: usize,
    pub killed: usize,
    /// Scenarios with an expectation about the alert (the only ones that can kill its mutants).
    pub checked_by: Vec<String>,
    pub mutants: Vec<Mutant>,
}

impl Score {
    /// Killed over total, 1 with no mutants.
    pub fn score(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.killed as f64 / self.total as f64
        }
    }
}

/// The whole suite's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rules: Vec<Score>,
    pub total: usize,
    pub killed: usize,
    pub score: f64,
}

/// Every mutant of every alerting rule in `rules` (none when the rule files do not read as rules).
pub fn generate(rules: &Rules) -> Vec<Mutant> {
    let groups = &rules.groups;
    let records: BTreeMap<&str, (&str, &Rule)> = groups
        .iter()
        .flat_map(|g| {
            g.rules
                .iter()
                .filter_map(move |r| Some((r.record.as_deref()?, (g.name.as_str(), r))))
        })
        .collect();
    let record_names: Vec<String> = records.keys().map(|k| (*k).to_owned()).collect();
    let mut all = Vec::new();
    for g in groups {
        for rule in &g.rules {
            let Some(alert) = rule.alert.as_deref() else {
                continue;
            };
            let mut seen = vec![(alert.to_owned(), promql::normalise(&rule.expr), rule.for_.clone())];
            let mut mine: Vec<Mutant> = Vec::new();
            let mut push = |operator: String, changed: &str, expr: String, for_: Option<String>| {
                let key = (changed.to_owned(), promql::normalise(&expr), for_.clone());
                let original_key = if changed == alert {
                    (alert.to_owned(), promql::normalise(&rule.expr), rule.for_.clone())
                } else {
                    let r = records[changed].1;
                    (changed.to_owned(), promql::normalise(&r.expr), rule.for_.clone())
                };
                if key == original_key || seen.contains(&key) {
                    return;
                }
                seen.push(key);
                mine.push(Mutant {
                    alert: alert.to_owned(),
                    operator,
                    rule: changed.to_owned(),
                    expr,
                    for_,
                    killed_by: None,
                    closest: None,
                    near_miss: None,
                    copies: Vec::new(),
                    renamed: String::new(),
                });
            };
            for (op, expr) in expr_mutants(&rule.expr, &record_names) {
                push(op, alert, expr, rule.for_.clone());
            }
            if let Some(ms) = rule
                .for_
                .as_deref()
                .and_then(promql::parse_duration)
                .filter(|ms| *ms > 0)
            {
                let f = |ms: u64| Some(promql::format_duration(ms));
                push("for halved".into(), alert, rule.expr.clone(), f(ms / 2));
                push("for doubled".into(), alert, rule.expr.clone(), f(ms * 2));
                push("for removed".into(), alert, rule.expr.clone(), None);
            }
            let deps = dependencies(&rule.expr, &records);
            for dep in &deps {
                let r = records[dep.as_str()].1;
                for (op, expr) in expr_mutants(&r.expr, &record_names) {
                    push(format!("{op} in {dep}"), dep, expr, rule.for_.clone());
                }
            }
            for m in &mut mine {
                let k = all.len();
                wire(m, k, groups, g, rule, &deps, &records);
                all.push(m.clone());
            }
        }
    }
    all
}

/// The recording rules `expr` reads, directly or through others, nearest first.
fn dependencies(expr: &str, records: &BTreeMap<&str, (&str, &Rule)>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut queue: Vec<String> = promql::series_names(expr);
    while let Some(name) = (!queue.is_empty()).then(|| queue.remove(0)) {
        if let Some((_, r)) = records.get(name.as_str()) {
            if !found.contains(&name) {
                found.push(name.clone());
                queue.extend(promql::series_names(&r.expr));
            }
        }
    }
    found
}

/// Fills in the rule copies mutant number `k` needs: the changed rule renamed, every recording rule
/// on a path from the alert to it renamed and reading the renamed ones, and the alert itself.
fn wire(
    m: &mut Mutant,
    k: usize,
    groups: &[Group],
    group: &Group,
    alert: &Rule,
    deps: &[String],
    records: &BTreeMap<&str, (&str, &Rule)>,
) {
    let suffix = format!("__mutant{k}");
    // The recording rules to copy: the changed one and those of `deps` that read it, at any depth.
    let mut copied: Vec<String> = Vec::new();
    if m.rule != m.alert {
        copied.push(m.rule.clone());
        loop {
            let more: Vec<String> = deps
                .iter()
                .filter(|d| !copied.contains(d))
                .filter(|d| {
                    let reads = promql::series_names(&records[d.as_str()].1.expr);
                    reads.iter().any(|r| copied.contains(r))
                })
                .cloned()
                .collect();
            if more.is_empty() {
                break;
            }
            copied.extend(more);
        }
    }
    let renames: Vec<(String, String)> = copied
        .iter()
        .map(|c| (c.clone(), format!("{c}{suffix}")))
        .collect();
    // Copies in the order of their originals in the files: dependencies first within a group.
    let mut copies = Vec::new();
    let in_order = groups.iter().flat_map(|g| {
        g.rules
            .iter()
            .filter_map(move |r| Some((r.record.as_deref()?, g.name.as_str(), r)))
    });
    for (name, group_name, rule) in in_order {
        if !copied.iter().any(|c| c == name) {
            continue;
        }
        let expr = if name == m.rule {
            m.expr.clone()
        } else {
            rule.expr.clone()
        };
        copies.push((
            group_name.to_owned(),
            Rule {
                record: Some(format!("{name}{suffix}")),
                alert: None,
                expr: promql::rename(&expr, &renames),
                for_: None,
                labels: rule.labels.clone(),
            },
        ));
    }
    let expr = if m.rule == m.alert {
        m.expr.clone()
    } else {
        alert.expr.clone()
    };
    m.renamed = format!("{}{suffix}", m.alert);
    copies.push((
        group.name.clone(),
        Rule {
            record: None,
            alert: Some(m.renamed.clone()),
            expr: promql::rename(&expr, &renames),
            for_: m.for_.clone(),
            labels: alert.labels.clone(),
        },
    ));
    m.copies = copies;
}

/// The rule file holding every mutant: per original group, a group `name__mutants` with the
/// copies, in the order of the groups and, within one mutant, in the order the copies need.
fn mutant_file(groups: &[Group], mutants: &[Mutant]) -> RuleFile {
    let mut out = Vec::new();
    for g in groups {
        let rules: Vec<Rule> = mutants
            .iter()
            .flat_map(|m| {
                m.copies
                    .iter()
                    .filter(|(name, _)| *name == g.name)
                    .map(|(_, r)| r.clone())
            })
            .collect();
        if !rules.is_empty()
            && !out
                .iter()
                .any(|o: &Group| o.name == format!("{}__mutants", g.name))
        {
            out.push(Group {
                name: format!("{}__mutants", g.name),
                interval: g.interval.clone(),
                rules,
            });
        }
    }
    RuleFile { groups: out }
}

/// One scenario evaluated by promtool with mutants beside the original rules.
pub(super) struct Evaluated {
    /// The prediction with the original rules.
    pub original: Prediction,
    ordered: Vec<Ordered>,
    interval: f64,
    end: f64,
}

/// What one scenario says of one mutant.
pub(super) enum Judged {
    /// An expectation that holds with the original rules fails with the mutant: `(phase, expect)`.
    Killed(String, String),
    /// Every expectation about the alert that holds with the original holds with the mutant; the
    /// smallest margin among them, with its text.
    Survived(Option<(f64, String)>),
}

/// Evaluates every scenario with `mutants` beside `rules`: one promtool process per scenario, two
/// at a time.
pub(super) fn evaluate(
    rules: &Rules,
    mutants: &[Mutant],
    scenarios: &[(String, Scenario)],
    scrapes: Scrapes,
) -> Result<Vec<Evaluated>, PredictError> {
    let file = mutant_file(&rules.groups, mutants);
    let text = serde_norway::to_string(&file).map_err(|e| PredictError::Promtool(e.to_string()))?;
    let with = rules.with_file("mutants.yml", text);
    let evaluated: Vec<Result<(Vec<Ordered>, f64), PredictError>> = std::thread::scope(|scope| {
        let mut out = Vec::new();
        for chunk in scenarios.chunks(2) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(_, s)| {
                    let with = &with;
                    scope.spawn(move || {
                        let series = series::build(s, scrapes);
                        promtool::evaluate(with, &series).map(|o| (o, series.interval))
                    })
                })
                .collect();
            out.extend(handles.into_iter().map(|h| h.join().expect("mutant thread")));
        }
        out
    });
    scenarios
        .iter()
        .zip(evaluated)
        .map(|((_, s), result)| {
            let (ordered, interval) = result?;
            let end = s.duration().as_secs_f64();
            let original = Prediction::from_orders(&rules.alerts, &rules.origin, &ordered, interval, end);
            Ok(Evaluated {
                original,
                ordered,
                interval,
                end,
            })
        })
        .collect()
}

impl Evaluated {
    /// The prediction of the mutant's alert with the mutant in place of the rule.
    fn with_mutant(&self, rules: &Rules, m: &Mutant) -> Prediction {
        let only: Vec<Ordered> = self
            .ordered
            .iter()
            .map(|o| Ordered {
                order: o.order.clone(),
                states: o
                    .states
                    .iter()
                    .map(|step| {
                        step.get(&m.renamed)
                            .map(|state| BTreeMap::from([(m.alert.clone(), *state)]))
                            .unwrap_or_default()
                    })
                    .collect(),
            })
            .collect();
        Prediction::from_orders(
            std::slice::from_ref(&m.alert),
            &rules.origin,
            &only,
            self.interval,
            self.end,
        )
    }

    /// The scale of the evaluation steps, in seconds.
    pub(super) fn interval(&self) -> f64 {
        self.interval
    }

    /// Judges `m` on scenario `s` (the one evaluated), given the checks of the original prediction.
    /// `None` when no expectation about the mutant's alert holds with the original rules.
    pub(super) fn judge(
        &self,
        rules: &Rules,
        m: &Mutant,
        s: &Scenario,
        original_checks: &[super::AlertCheck],
    ) -> Option<Judged> {
        let holding: Vec<_> = original_checks
            .iter()
            .filter(|c| c.alert == m.alert && c.verdict == Verdict::Pass)
            .collect();
        if holding.is_empty() {
            return None;
        }
        let changed = self.with_mutant(rules, m);
        let checks = super::check(s, &changed);
        let failed = holding.iter().find(|h| {
            checks.iter().any(|c| {
                c.phase == h.phase && c.alert == h.alert && c.expect == h.expect && c.verdict != Verdict::Pass
            })
        });
        if let Some(h) = failed {
            return Some(Judged::Killed(
                h.phase.clone(),
                format!("{} {}", h.alert, h.expect),
            ));
        }
        let mut closest: Option<(f64, String)> = None;
        for mg in margin::margins(s, &changed) {
            if mg.alert != m.alert || !mg.holds {
                continue;
            }
            let room = mg.seconds.unwrap_or(f64::INFINITY);
            let by = match mg.seconds {
                Some(room) => format!("holds by {room}s"),
                None => "the alert is never active near the phase".to_owned(),
            };
            if closest.as_ref().is_none_or(|(best, _)| room < *best) {
                let text = format!("phase {} expects {} {} ({by})", mg.phase, mg.alert, mg.expect);
                closest = Some((room, text));
            }
        }
        Some(Judged::Survived(closest))
    }
}

/// Judges every mutant against every scenario. `scenarios` are the loaded scenarios with their
/// names for the report.
pub fn run(
    rules: &Rules,
    mut mutants: Vec<Mutant>,
    scenarios: &[(String, Scenario)],
    scrapes: Scrapes,
) -> Result<Report, PredictError> {
    let evaluated = evaluate(rules, &mutants, scenarios, scrapes)?;
    let mut closest: BTreeMap<usize, (f64, String)> = BTreeMap::new();
    for ((name, s), ev) in scenarios.iter().zip(&evaluated) {
        let original_checks = super::check(s, &ev.original);
        for (k, m) in mutants.iter_mut().enumerate() {
            if m.killed_by.is_some() {
                continue;
            }
            match ev.judge(rules, m, s, &original_checks) {
                None => {}
                Some(Judged::Killed(phase, expect)) => {
                    m.killed_by = Some(format!("{name}: phase {phase} expects {expect}"));
                }
                Some(Judged::Survived(Some((room, text))))
                    if closest.get(&k).is_none_or(|(best, _)| room < *best) =>
                {
                    closest.insert(k, (room, format!("{name}: {text}")));
                }
                Some(Judged::Survived(_)) => {}
            }
        }
    }
    for (k, m) in mutants.iter_mut().enumerate() {
        if m.killed_by.is_none() {
            m.closest = closest.remove(&k).map(|(_, text)| text);
        }
    }
    let mut scores: Vec<Score> = Vec::new();
    for alert in &rules.alerts {
        let mine: Vec<Mutant> = mutants.iter().filter(|m| m.alert == *alert).cloned().collect();
        let checked_by = scenarios
            .iter()
            .filter(|(_, s)| last_check(s, alert).is_some())
            .map(|(name, _)| name.clone())
            .collect();
        scores.push(Score {
            alert: alert.clone(),
            total: mine.len(),
            killed: mine.iter().filter(|m| m.killed_by.is_some()).count(),
            checked_by,
            mutants: mine,
        });
    }
    let total = scores.iter().map(|s| s.total).sum();
    let killed = scores.iter().map(|s| s.killed).sum();
    Ok(Report {
        score: if total == 0 {
            1.0
        } else {
            killed as f64 / total as f64
        },
        rules: scores,
        total,
        killed,
    })
}

/// The last phase of `s` with an expectation about the state of `alert` (the only expectations
/// that can kill its mutants).
pub(super) fn last_check(s: &Scenario, alert: &str) -> Option<usize> {
    s.phases.iter().rposition(|p| {
        let e = &p.expect;
        e.alerts_firing
            .iter()
            .chain(&e.alerts_inactive)
            .chain(&e.alerts_resolved)
            .any(|a| a == alert)
    })
}

/// Writes the score of each rule and every surviving mutant.
pub fn write_text(r: &Report, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "mutation score: {} of {} mutants killed ({:.0}%)",
        r.killed,
        r.total,
        r.score * 100.0
    )?;
    let width = r.rules.iter().map(|s| s.alert.len()).max().unwrap_or(5);
    for s in &r.rules {
        writeln!(
            out,
            "  {:<width$}  {:>3} / {:<3} {:>4.0}%  checked by {} scenario(s)",
            s.alert,
            s.killed,
            s.total,
            s.score() * 100.0,
            s.checked_by.len()
        )?;
    }
    for s in &r.rules {
        let survivors: Vec<&Mutant> = s.mutants.iter().filter(|m| m.killed_by.is_none()).collect();
        if survivors.is_empty() {
            continue;
        }
        writeln!(out, "\nsurviving mutants of {}:", s.alert)?;
        for m in survivors {
            let what = if m.operator.starts_with("for ") {
                format!("for: {}", m.for_.as_deref().unwrap_or("(none)"))
            } else {
                one_line(&m.expr)
            };
            writeln!(out, "  {}\n      {what}", m.operator)?;
            match &m.closest {
                Some(c) => writeln!(out, "      closest: {c}")?,
                None if s.checked_by.is_empty() => writeln!(out, "      no scenario checks {}", s.alert)?,
                None => writeln!(out, "      no expectation about it holds with the mutant")?,
            }
            match &m.near_miss {
                Some(NearMiss { change: Some(c), .. }) => writeln!(
                    out,
                    "      near miss: {} phase {}: {} (then phase {})",
                    c.scenario,
                    c.phase,
                    c.what,
                    c.killed_by.trim_start_matches("phase ")
                )?,
                Some(NearMiss { why: Some(why), .. }) => writeln!(out, "      no near miss: {why}")?,
                _ => {}
            }
        }
    }
    Ok(())
}

fn one_line(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The changes of one expression: operator name and changed text, in the order found.
pub fn expr_mutants(expr: &str, records: &[String]) -> Vec<(String, String)> {
    let t = promql::tokens(expr);
    let mut out = Vec::new();
    let word = |k: usize| &expr[t[k].span.clone()];
    let mut change = |op: &str, edits: Vec<(Range<usize>, String)>| {
        out.push((op.to_owned(), promql::edit(expr, &edits)));
    };
    for k in 0..t.len() {
        match t[k].kind {
            Kind::Comparison => {
                let flipped = match word(k) {
                    ">" => "<",
                    "<" => ">",
                    ">=" => "<=",
                    "<=" => ">=",
                    "==" => "!=",
                    _ => "==",
                };
                change(
                    "comparison flipped",
                    vec![(t[k].span.clone(), flipped.to_owned())],
                );
                let mut j = k + 1;
                if t.get(j)
                    .is_some_and(|x| x.kind == Kind::Ident && word(j) == "bool")
                {
                    j += 1;
                }
                for factor in ["0.5", "0.9", "1.1", "2"] {
                    let f: f64 = factor.parse().expect("a factor");
                    let edits = match t.get(j).map(|x| x.kind) {
                        Some(Kind::Number) => {
                            let v: f64 = word(j).parse().unwrap_or(0.0);
                            vec![(t[j].span.clone(), number(v * f))]
                        }
                        Some(Kind::Open) => match matching(&t, j) {
                            Some(close) => {
                                vec![(t[close].span.end..t[close].span.end, format!(" * {factor}"))]
                            }
                            None => continue,
                        },
                        _ if k > 0 && t[k - 1].kind == Kind::Number => {
                            let v: f64 = word(k - 1).parse().unwrap_or(0.0);
                            vec![(t[k - 1].span.clone(), number(v * f))]
                        }
                        _ => continue,
                    };
                    change(&format!("threshold x{factor}"), edits);
                }
            }
            Kind::Range => {
                let inner = &word(k)[1..word(k).len().saturating_sub(1)];
                let (range, rest) = inner.split_once(':').map_or((inner, None), |(a, b)| (a, Some(b)));
                let Some(ms) = promql::parse_duration(range) else {
                    continue;
                };
                for (op, scaled) in [("window x0.5", ms / 2), ("window x2", ms * 2)] {
                    if scaled == 0 {
                        continue;
                    }
                    let text = match rest {
                        Some(rest) => format!("[{}:{rest}]", promql::format_duration(scaled)),
                        None => format!("[{}]", promql::format_duration(scaled)),
                    };
                    change(op, vec![(t[k].span.clone(), text)]);
                }
            }
            Kind::Ident => match word(k) {
                "and" => {
                    change("and -> or", vec![(t[k].span.clone(), "or".into())]);
                    if let Some(edits) = swap_windows(expr, &t, k, records) {
                        change("windows swapped", edits);
                    }
                }
                "or" => change("or -> and", vec![(t[k].span.clone(), "and".into())]),
                "unless" => {
                    let end = operand_end(expr, &t, k + 1);
                    if end > k + 1 {
                        change(
                            "unless dropped",
                            vec![(t[k].span.start..t[end - 1].span.end, String::new())],
                        );
                    }
                }
                _ => {}
            },
            Kind::Matchers => {
                let inner = &word(k)[1..word(k).len().saturating_sub(1)];
                let matchers = split_matchers(inner);
                let named = k > 0 && t[k - 1].kind == Kind::Ident;
                for i in 0..matchers.len() {
                    let rest: Vec<&str> = matchers
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, m)| m.trim())
                        .collect();
                    if rest.is_empty() && !named {
                        continue;
                    }
                    change(
                        "matcher dropped",
                        vec![(t[k].span.clone(), format!("{{{}}}", rest.join(", ")))],
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// A number as PromQL reads it, without float noise.
fn number(v: f64) -> String {
    let rounded = (v * 1e9).round() / 1e9;
    format!("{rounded}")
}

/// The index of the `)` closing the `(` at `open`.
fn matching(t: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, tok) in t.iter().enumerate().skip(open) {
        match tok.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// The index just past the right operand of a set operator whose operand starts at `from`: up to a
/// set operator at the same depth or the parenthesis that closes the enclosing one.
fn operand_end(expr: &str, t: &[Token], from: usize) -> usize {
    let mut depth = 0i32;
    let mut k = from;
    // The operator's own modifier: `on (...)` or `ignoring (...)`.
    if t.get(k)
        .is_some_and(|x| x.kind == Kind::Ident && matches!(&expr[x.span.clone()], "on" | "ignoring"))
    {
        k += 1;
        if let Some(close) = t
            .get(k)
            .filter(|x| x.kind == Kind::Open)
            .and_then(|_| matching(t, k))
        {
            k = close + 1;
        }
    }
    while k < t.len() {
        match t[k].kind {
            Kind::Open => depth += 1,
            Kind::Close if depth == 0 => return k,
            Kind::Close => depth -= 1,
            Kind::Ident if depth == 0 && matches!(&expr[t[k].span.clone()], "and" | "or" | "unless") => {
                return k
            }
            _ => {}
        }
        k += 1;
    }
    k
}

/// The start of the left operand of the set operator at `at` (the mirror of [`operand_end`]).
fn operand_start(expr: &str, t: &[Token], at: usize) -> usize {
    let mut depth = 0i32;
    let mut k = at;
    while k > 0 {
        k -= 1;
        match t[k].kind {
            Kind::Close => depth += 1,
            Kind::Open if depth == 0 => return k + 1,
            Kind::Open => depth -= 1,
            Kind::Ident if depth == 0 && matches!(&expr[t[k].span.clone()], "and" | "or" | "unless") => {
                return k + 1
            }
            _ => {}
        }
    }
    0
}

/// Exchanges the windows of the two sides of the `and` at `at` when each side has exactly one
/// window (a range, or a recorded series named for its window such as `ratio_rate30s`) and they
/// differ; `None` otherwise, or when a renamed series would not exist.
fn swap_windows(
    expr: &str,
    t: &[Token],
    at: usize,
    records: &[String],
) -> Option<Vec<(Range<usize>, String)>> {
    let left = operand_start(expr, t, at)..at;
    let right = at + 1..operand_end(expr, t, at + 1);
    let windows = |range: Range<usize>| -> Vec<(usize, String)> {
        range
            .filter_map(|k| match t[k].kind {
                Kind::Range => {
                    let inner = &expr[t[k].span.start + 1..t[k].span.end - 1];
                    Some((k, inner.split(':').next().unwrap_or("").to_owned()))
                }
                Kind::Ident => window_suffix(&expr[t[k].span.clone()]).map(|w| (k, w.to_owned())),
                _ => None,
            })
            .collect()
    };
    let (l, r) = (windows(left), windows(right));
    let distinct = |v: &[(usize, String)]| {
        let mut w: Vec<&String> = v.iter().map(|(_, w)| w).collect();
        w.dedup();
        w.into_iter().cloned().collect::<Vec<_>>()
    };
    let (lw, rw) = (distinct(&l), distinct(&r));
    if lw.len() != 1 || rw.len() != 1 || lw[0] == rw[0] {
        return None;
    }
    let mut edits = Vec::new();
    for (side, to) in [(&l, &rw[0]), (&r, &lw[0])] {
        for (k, from) in side.iter() {
            let w = &expr[t[*k].span.clone()];
            let new = if t[*k].kind == Kind::Range {
                w.replacen(from.as_str(), to, 1)
            } else {
                let renamed = format!("{}{to}", &w[..w.len() - from.len()]);
                if !records.contains(&renamed) {
                    return None;
                }
                renamed
            };
            edits.push((t[*k].span.clone(), new));
        }
    }
    Some(edits)
}

/// The window a recorded series is named for: `30s` of `job:x:ratio_rate30s`.
fn window_suffix(name: &str) -> Option<&str> {
    let last = name.rsplit([':', '_']).next()?;
    let digits = last.find(|c: char| c.is_ascii_digit())?;
    let window = &last[digits..];
    promql::parse_duration(window).map(|_| window)
}

/// The matchers inside braces, split at commas outside strings.
fn split_matchers(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quote) = (0, None::<char>);
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None if c == ',' => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            None => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

mod near_miss;
#[cfg(test)]
mod tests;

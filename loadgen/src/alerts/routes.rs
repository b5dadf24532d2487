//! Offline routing (`loadgen plan --predict --routes`, `loadgen coverage --routes`): the alerts a
//! scenario is predicted to fire, with the labels their rules give them, sent through the
//! Alertmanager configuration's routing tree by `amtool config routes test`, and through its inhibit
//! rules by the predicted firing times: which receiver each alert would reach, and which would be
//! inhibited.
//!
//! Pure functions apart from [`receivers`], which asks amtool. Matchers follow Alertmanager's syntax
//! (`name="v"`, `!=`, `=~`, `!~`, regexes anchored); the older `source_match` / `source_match_re`
//! maps are read too.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use regex_automata::meta::Regex;
use serde::Serialize;
use serde_json::Value;

use crate::alerts::predict::promtool::Rules;
use crate::alerts::predict::Prediction;

/// The job the predicted alerts carry (the stack's and the private Prometheus' job of the target).
pub const JOB: &str = "target-app";

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    negative: bool,
    value: Result<String, Regex>,
}

impl Matcher {
    /// Parses `name="value"` (or `=~`, `!=`, `!~`; quotes optional).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim().trim_start_matches('{').trim_end_matches('}').trim();
        let at = text
            .find(['=', '!'])
            .ok_or_else(|| format!("`{text}`: expected name=\"value\", name=~\"regex\", != or !~"))?;
        let name = text[..at].trim().to_owned();
        let rest = &text[at..];
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
            .ok_or_else(|| format!("`{text}`: unknown operator"))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .replace("\\\"", "\"");
        Self::new(&name, op, &value)
    }

    fn new(name: &str, op: &str, value: &str) -> Result<Matcher, String> {
        if name.is_empty() {
            return Err(format!("`{op}{value}`: no label name"));
        }
        let value = if op.ends_with('~') {
            Err(Regex::new(&format!("^(?:{value})$")).map_err(|e| format!("`{name}{op}\"{value}\"`: {e}"))?)
        } else {
            Ok(value.to_owned())
        };
        Ok(Matcher {
            name: name.to_owned(),
            negative: op.starts_with('!'),
            value,
        })
    }

    /// Whether `labels` match (a missing label is the empty string, as in Alertmanager).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        let hit = match &self.value {
            Ok(want) => v == want,
            Err(re) => re.is_match(v),
        };
        hit != self.negative
    }
}

/// One inhibit rule.
#[derive(Debug, Clone)]
pub struct Inhibit {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

fn matchers(rule: &Value, new: &str, old: &str, old_re: &str, at: &str) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for m in rule.get(new).and_then(Value::as_array).into_iter().flatten() {
        let text = m
            .as_str()
            .ok_or_else(|| format!("{at}.{new}: expected strings"))?;
        out.push(Matcher::parse(text).map_err(|e| format!("{at}.{new}: {e}"))?);
    }
    for (key, op) in [(old, "="), (old_re, "=~")] {
        for (name, v) in rule.get(key).and_then(Value::as_object).into_iter().flatten() {
            let v = v
                .as_str()
                .ok_or_else(|| format!("{at}.{key}.{name}: expected a string"))?;
            out.push(Matcher::new(name, op, v).map_err(|e| format!("{at}.{key}: {e}"))?);
        }
    }
    Ok(out)
}

/// The inhibit rules of an Alertmanager configuration's text.
pub fn inhibit_rules(config: &str) -> Result<Vec<Inhibit>, String> {
    let doc: Value = serde_norway::from_str(config).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, r) in doc
        .get("inhibit_rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("inhibit_rules[{i}]");
        out.push(Inhibit {
            source: matchers(r, "source_matchers", "source_match", "source_match_re", &at)?,
            target: matchers(r, "target_matchers", "target_match", "target_match_re", &at)?,
            equal: r
                .get("equal")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        });
    }
    Ok(out)
}

/// The labels a predicted alert of rule `alert` carries: its name, the target's job and the rule's
/// own labels.
pub fn labels(rules: &Rules, alert: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = rules
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .find(|r| r.alert.as_deref() == Some(alert))
        .map(|r| r.labels.clone())
        .unwrap_or_default();
    labels.insert("alertname".into(), alert.into());
    labels.insert("job".into(), JOB.into());
    labels
}

/// Where one predicted alert goes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Route {
    pub alert: String,
    pub labels: BTreeMap<String, String>,
    /// The receivers the routing tree gives it (amtool), in tree order.
    pub receivers: Vec<String>,
    /// The alerts that would inhibit it, when one fires over all of its firing time (`whole`) or
    /// part of it.
    pub inhibited_by: Vec<String>,
    pub whole: bool,
    /// Its predicted firing intervals, seconds from the scenario's start.
    pub firing: Vec<[f64; 2]>,
}

/// Seconds of `spans` covered by the union of `by`.
fn covered(spans: &[[f64; 2]], by: &[[f64; 2]]) -> f64 {
    let mut by = by.to_vec();
    by.sort_by(|a, b| a[0].total_cmp(&b[0]));
    spans
        .iter()
        .map(|s| {
            let mut t = s[0];
            let mut got = 0.0;
            for b in &by {
                if b[1] <= t || b[0] >= s[1] {
                    continue;
                }
                let from = b[0].max(t);
                let to = b[1].min(s[1]);
                if to > from {
                    got += to - from;
                    t = to;
                }
            }
            got
        })
        .sum()
}

/// A predicted firing alert: its name, labels and firing intervals.
type Firing<'a> = (&'a str, BTreeMap<String, String>, &'a [[f64; 2]]);

/// The routes of every alert `prediction` fires: receivers from `receivers_of` (amtool), inhibitions
/// from `inhibit` and the predicted firing times.
pub fn routes(
    rules: &Rules,
    prediction: &Prediction,
    inhibit: &[Inhibit],
    mut receivers_of: impl FnMut(&BTreeMap<String, String>) -> Result<Vec<String>, String>,
) -> Result<Vec<Route>, String> {
    let firing: Vec<Firing<'_>> = prediction
        .alerts
        .iter()
        .filter(|a| a.fires())
        .map(|a| (a.name.as_str(), labels(rules, &a.name), a.firing.as_slice()))
        .collect();
    let mut out = Vec::new();
    for (alert, labels, spans) in &firing {
        let mut by: Vec<String> = Vec::new();
        let mut sources: Vec<[f64; 2]> = Vec::new();
        for rule in inhibit
            .iter()
            .filter(|r| r.target.iter().all(|m| m.matches(labels)))
        {
            for (source, source_labels, source_spans) in &firing {
                let same = rule.equal.iter().all(|l| source_labels.get(l) == labels.get(l));
                if source != alert && same && rule.source.iter().all(|m| m.matches(source_labels)) {
                    if !by.iter().any(|b| b == source) {
                        by.push((*source).to_owned());
                    }
                    sources.extend_from_slice(source_spans);
                }
            }
        }
        let total: f64 = spans.iter().map(|s| s[1] - s[0]).sum();
        let inhibited = covered(spans, &sources);
        if inhibited <= 0.0 {
            by.clear();
        }
        out.push(Route {
            alert: (*alert).to_owned(),
            receivers: receivers_of(labels)?,
            labels: labels.clone(),
            inhibited_by: by,
            whole: total > 0.0 && inhibited + 1e-9 >= total,
            firing: spans.to_vec(),
        });
    }
    Ok(out)
}

/// The receivers `amtool config routes test` gives `labels` under the configuration in `file`.
pub fn receivers(file: &Path, labels: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let out = std::process::Command::new("amtool")
        .arg("config")
        .arg("routes")
        .arg("test")
        .arg(format!("--config.file={}", file.display()))
        .args(labels.iter().map(|(k, v)| format!("{k}={v}")))
        .output()
        .map_err(|e| format!("cannot run amtool (apt-get install prometheus-alertmanager): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "amtool config routes test: {}{}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(text
        .trim()
        .split(',')
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect())
}

/// `page` / `inhibited by ServiceDown` for one route.
pub fn outcome(r: &Route) -> String {
    let to = r.receivers.join(", ");
    match (r.inhibited_by.is_empty(), r.whole) {
        (true, _) => to,
        (false, true) => format!("inhibited by {} (would go to {to})", r.inhibited_by.join(", ")),
        (false, false) => format!(
            "{to}, inhibited part of the time by {}",
            r.inhibited_by.join(", ")
        ),
    }
}

/// The routes section of `plan --predict --routes`.
pub fn write_routes(config: &str, routes: &[Route], out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "\nroutes (Alertmanager configuration: {config}; amtool config routes test)"
    )?;
    if routes.is_empty() {
        writeln!(out, "  no alert is predicted to fire")?;
    }
    for r in routes {
        let severity = r
            .labels
            .get("severity")
            .map_or(String::new(), |s| format!("severity={s}"));
        writeln!(out, "  {:<24} {:<18} → {}", r.alert, severity, outcome(r))?;
    }
    Ok(())
}

/// The scenario × receiver matrix of `coverage --routes`: for each scenario, the alerts each receiver
/// would get (inhibited ones in parentheses), and the receivers no scenario reaches.
pub fn write_matrix(
    config: &str,
    all_receivers: &[String],
    rows: &[(String, Vec<Route>)],
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(
        out,
        "\nroutes: scenario × receiver (Alertmanager configuration: {config})"
    )?;
    let mut line = format!("  {:<24}", "scenario");
    for r in all_receivers {
        line += &format!(" {r:<44}");
    }
    writeln!(out, "{}", line.trim_end())?;
    for (scenario, routes) in rows {
        let mut line = format!("  {scenario:<24}");
        for receiver in all_receivers {
            let cell: Vec<String> = routes
                .iter()
                .filter(|r| r.receivers.contains(receiver))
                .map(|r| match (r.inhibited_by.is_empty(), r.whole) {
                    (true, _) => r.alert.clone(),
                    (false, true) => format!("({} inhibited)", r.alert),
                    (false, false) => format!("{} (partly inhibited)", r.alert),
                })
                .collect();
            let cell = if cell.is_empty() {
                "-".to_owned()
            } else {
                cell.join(", ")
            };
            line += &format!(" {cell:<44}");
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let unreached: Vec<&String> = all_receivers
        .iter()
        .filter(|rec| {
            !rows.iter().any(|(_, routes)| {
                routes
                    .iter()
                    .any(|r| r.receivers.contains(rec) && (!r.whole || r.inhibited_by.is_empty()))
            })
        })
        .collect();
    if !unreached.is_empty() {
        let names: Vec<&str> = unreached.iter().map(|s| s.as_str()).collect();
        writeln!(out, "  no scenario notifies: {}", names.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::predict::AlertPrediction;

    fn rules() -> Rules {
        let text = r#"
groups:
  - name: g
    rules:
      - alert: ServiceDown
        expr: up == 0
        labels: { severity: critical }
      - alert: HighErrorRate
        expr: vector(1)
        labels: { severity: critical }
      - alert: SLOErrorBudgetBurnSlow
        expr: vector(1)
        labels: { severity: ticket }
"#;
        Rules::new(vec![("r.yml".into(), text.into())], "test".into())
    }

    fn prediction(firing: &[(&str, [f64; 2])]) -> Prediction {
        Prediction {
            interval_s: 5.0,
            rules: "test".into(),
            group_order: vec![],
            alerts: ["ServiceDown", "HighErrorRate", "SLOErrorBudgetBurnSlow", "Quiet"]
                .iter()
                .map(|name| AlertPrediction {
                    name: (*name).into(),
                    pending: vec![],
                    firing: firing
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, s)| *s)
                        .collect(),
                    other_order: None,
                })
                .collect(),
            transitions: vec![],
            other_orders: vec![],
        }
    }

    const CONFIG: &str = r#"
inhibit_rules:
  - source_matchers: ['alertname="ServiceDown"']
    target_matchers: ['alertname=~"HighErrorRate|HighLatency"']
    equal: [job]
  - source_match: { alertname: HighErrorRate }
    target_match_re: { severity: "tick.*" }
"#;

    fn by_severity(labels: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
        Ok(vec![if labels["severity"] == "critical" {
            "page"
        } else {
            "ticket"
        }
        .into()])
    }

    #[test]
    fn receivers_and_inhibitions_follow_the_predicted_firing_times() {
        let inhibit = inhibit_rules(CONFIG).unwrap();
        let p = prediction(&[
            ("ServiceDown", [30.0, 70.0]),
            ("HighErrorRate", [40.0, 60.0]),
            ("SLOErrorBudgetBurnSlow", [50.0, 90.0]),
        ]);
        let got = routes(&rules(), &p, &inhibit, by_severity).unwrap();
        let summary: Vec<(String, String)> = got.iter().map(|r| (r.alert.clone(), outcome(r))).collect();
        assert_eq!(
            summary,
            [
                ("ServiceDown".into(), "page".into()),
                (
                    "HighErrorRate".into(),
                    "inhibited by ServiceDown (would go to page)".into()
                ),
                (
                    "SLOErrorBudgetBurnSlow".into(),
                    "ticket, inhibited part of the time by HighErrorRate".into()
                ),
            ]
        );
        assert_eq!(got[1].labels["job"], JOB);
        let mut text = Vec::new();
        write_matrix(
            "c.yml",
            &["page".into(), "ticket".into(), "email".into()],
            &[("outage".into(), got)],
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("ServiceDown, (HighErrorRate inhibited)"), "{text}");
        assert!(
            text.contains("SLOErrorBudgetBurnSlow (partly inhibited)"),
            "{text}"
        );
        assert!(text.contains("no scenario notifies: email"), "{text}");
    }

    #[test]
    fn an_alert_firing_apart_from_its_inhibitor_is_not_inhibited() {
        let inhibit = inhibit_rules(CONFIG).unwrap();
        let p = prediction(&[("ServiceDown", [0.0, 10.0]), ("HighErrorRate", [40.0, 60.0])]);
        let got = routes(&rules(), &p, &inhibit, by_severity).unwrap();
        assert_eq!(outcome(&got[1]), "page");
    }

    #[test]
    fn matchers_read_as_alertmanager_reads_them() {
        let l: BTreeMap<String, String> = [("severity".to_owned(), "critical".to_owned())].into();
        for (m, want) in [
            (r#"severity="critical""#, true),
            (r#"severity=~"crit""#, false),
            (r#"severity=~"crit.*|page""#, true),
            (r#"severity!="critical""#, false),
            (r#"team!~".+""#, true),
            ("severity=critical", true),
        ] {
            assert_eq!(Matcher::parse(m).unwrap().matches(&l), want, "{m}");
        }
        assert!(Matcher::parse("severity").is_err());
        assert!(Matcher::parse(r#"a=~"(""#).is_err());
        assert!(inhibit_rules("inhibit_rules: [{source_matchers: ['nope']}]").is_err());
    }
}

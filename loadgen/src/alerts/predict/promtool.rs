//! Rule files, and their evaluation by `promtool test rules` on modelled series.
//!
//! The series go in as one test's `input_series`; the alert states come back from a
//! `promql_expr_test` at every evaluation step that asks for `ALERTS` with no expected samples, so
//! promtool prints what it got whenever an alert is pending or firing. One promtool process per
//! scenario, no server. This module runs promtool; it does not judge expectations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shared::State;

use super::rulefile::Group;
use super::series::Series;

/// Why a prediction could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("no `promtool` on the PATH (install it: `apt-get install prometheus`)")]
    NoPromtool,
    #[error("cannot read rule file {path}: {source}")]
    ReadRules { path: PathBuf, source: std::io::Error },
    #[error("{0}: no `*.yml` or `*.yaml` rule files there")]
    NoRules(PathBuf),
    #[error("cannot prepare the promtool directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot run promtool: {0}")]
    Spawn(std::io::Error),
    #[error("promtool refused the rules or the series:\n{0}")]
    Promtool(String),
}

/// Rule files to evaluate, with the alerting rules they define.
#[derive(Debug, Clone)]
pub struct Rules {
    /// File name and text of each file.
    pub files: Vec<(String, String)>,
    /// Names of the alerting rules, in file order, each once.
    pub alerts: Vec<String>,
    /// Where they came from, for reports.
    pub origin: String,
    /// The groups of every file, in file order (none when a file does not read as rules: promtool
    /// then says what is wrong with it).
    pub groups: Vec<Group>,
}

impl Rules {
    /// The stack's rule files, compiled in.
    pub fn stack() -> Rules {
        let files: Vec<(String, String)> = crate::alerts::prometheus::STACK_RULES
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        Rules::new(files, "stack/prometheus/rules".to_owned())
    }

    /// Rule files from `paths`; a directory stands for its `*.yml` and `*.yaml` files.
    pub fn load(paths: &[PathBuf]) -> Result<Rules, PredictError> {
        let mut files = Vec::new();
        for path in paths {
            let read = |p: &Path| {
                std::fs::read_to_string(p).map_err(|source| PredictError::ReadRules {
                    path: p.to_owned(),
                    source,
                })
            };
            if path.is_dir() {
                let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(|source| PredictError::ReadRules {
                        path: path.clone(),
                        source,
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                    .collect();
                found.sort();
                if found.is_empty() {
                    return Err(PredictError::NoRules(path.clone()));
                }
                for p in found {
                    files.push((p.display().to_string(), read(&p)?));
                }
            } else {
                files.push((path.display().to_string(), read(path)?));
            }
        }
        let origin = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Rules::new(files, origin))
    }

    /// These rules and one more file, whose alerts are evaluated but not listed.
    pub fn with_file(&self, name: &str, text: String) -> Rules {
        let mut files = self.files.clone();
        files.push((name.to_owned(), text));
        Rules {
            groups: super::rulefile::groups(&files).unwrap_or_default(),
            files,
            alerts: self.alerts.clone(),
            origin: self.origin.clone(),
        }
    }

    pub(crate) fn new(files: Vec<(String, String)>, origin: String) -> Rules {
        let mut alerts = Vec::new();
        for (_, text) in &files {
            for name in alert_names(text) {
                if !alerts.contains(&name) {
                    alerts.push(name);
                }
            }
        }
        let groups = super::rulefile::groups(&files).unwrap_or_default();
        Rules {
            files,
            alerts,
            origin,
            groups,
        }
    }
}

/// The names of the alerting rules in a rule file (`- alert: Name` lines). promtool checks the file
/// itself when it evaluates it; this only needs the names.
pub fn alert_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches('-').trim_start();
            let name = line.strip_prefix("alert:")?.trim();
            let name = name.split(" #").next().unwrap_or(name).trim();
            let name = name.trim_matches(|c| c == '"' || c == '\'');
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// Whether a `promtool` binary is on the PATH.
pub fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("promtool").is_file()))
}

/// The state of every alert that is not inactive, at each evaluation (every `series.interval`
/// seconds from 0 to the last scrape).
pub type States = Vec<BTreeMap<String, State>>;

/// The states under one order of evaluation of the rule groups.
#[derive(Debug, Clone)]
pub struct Ordered {
    /// The group names, in the order they were evaluated at each step (empty: promtool's own order,
    /// for rules whose groups could not be read).
    pub order: Vec<String>,
    pub states: States,
}

/// Evaluates `rules` on `series` with promtool, every `series.interval`, once for each order of the
/// rule groups that matters ([`super::rulefile::orders`]), all in one promtool process.
pub fn evaluate(rules: &Rules, series: &Series) -> Result<Vec<Ordered>, PredictError> {
    if !installed() {
        return Err(PredictError::NoPromtool);
    }
    let dir = std::env::temp_dir().join(format!("loadgen-predict-{}-{}", std::process::id(), unique()));
    let io = |source| PredictError::Dir {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let result = (|| {
        let mut names = Vec::new();
        for (i, (_, text)) in rules.files.iter().enumerate() {
            let name = format!("rules-{i}.yml");
            std::fs::write(dir.join(&name), text).map_err(io)?;
            names.push(name);
        }
        let steps = series.scrapes();
        let mut orders = super::rulefile::orders(&rules.groups);
        if orders.is_empty() {
            orders.push(Vec::new());
        }
        let mut tests = Vec::new();
        for (o, order) in orders.iter().enumerate() {
            let name = format!("test-{o}.yml");
            std::fs::write(dir.join(&name), test_file(&names, order, o, series, steps)).map_err(io)?;
            tests.push(name);
        }
        let output = Command::new("promtool")
            .args(["test", "rules"])
            .args(&tests)
            .current_dir(&dir)
            .output()
            .map_err(PredictError::Spawn)?;
        let text =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        let ordered = |states: Vec<States>| {
            orders
                .iter()
                .zip(states)
                .map(|(order, states)| Ordered {
                    order: order.clone(),
                    states,
                })
                .collect()
        };
        if output.status.success() {
            return Ok(ordered(vec![vec![BTreeMap::new(); steps]; orders.len()]));
        }
        if !text.contains("got:") {
            let text = text.replace(&dir.display().to_string(), "");
            return Err(PredictError::Promtool(text.trim().to_owned()));
        }
        Ok(ordered(parse(&text, orders.len(), steps)))
    })();
    // LOADGEN_PREDICT_KEEP=DIR keeps the generated promtool test there, to inspect or rerun by hand.
    match std::env::var_os("LOADGEN_PREDICT_KEEP") {
        Some(keep) => {
            let _ = std::fs::remove_dir_all(&keep);
            let _ = std::fs::rename(&dir, &keep);
        }
        None => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    result
}

fn test_file(rule_files: &[String], order: &[String], o: usize, series: &Series, steps: usize) -> String {
    let seconds = |s: f64| format!("{}ms", (s * 1000.0).round() as u64);
    let mut out = String::new();
    let _ = writeln!(out, "rule_files: {rule_files:?}");
    let _ = writeln!(out, "evaluation_interval: {}", seconds(series.interval));
    if !order.is_empty() {
        let _ = writeln!(out, "group_eval_order: {order:?}");
    }
    let _ = writeln!(
        out,
        "tests:\n  - interval: {}\n    input_series:",
        seconds(series.interval)
    );
    for (name, values) in &series.values {
        let _ = writeln!(
            out,
            "      - series: '{name}'\n        values: '{}'",
            notation(values)
        );
    }
    let _ = writeln!(out, "    promql_expr_test:");
    for k in 0..steps {
        let ms = (k as f64 * series.interval * 1000.0).round() as u64;
        let _ = writeln!(
            out,
            "      - expr: 'label_replace(label_replace(count by (alertname, alertstate) (ALERTS), \"step\", \"{k}\", \"\", \"\"), \"order\", \"{o}\", \"\", \"\")'\n        eval_time: {ms}ms"
        );
    }
    out
}

/// promtool's expanding notation: runs of a constant step as `a+bxn`, gaps as `_xn`.
///
/// Values are first floored to multiples of 1/1024, so every sum promtool forms while expanding a
/// run is exact: a counter expanded here never dips by a rounding error, which Prometheus would take
/// for a reset.
pub fn notation(values: &[Option<f64>]) -> String {
    let q = |v: f64| (v * 1024.0).floor() / 1024.0;
    let values: Vec<Option<f64>> = values.iter().map(|v| v.map(q)).collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        match values[i] {
            None => {
                let mut j = i;
                while j < values.len() && values[j].is_none() {
                    j += 1;
                }
                parts.push(if j - i == 1 {
                    "_".to_owned()
                } else {
                    format!("_x{}", j - i)
                });
                i = j;
            }
            Some(v) => {
                let mut j = i + 1;
                let step = values.get(j).copied().flatten().map(|w| w - v);
                if let Some(step) = step {
                    while j < values.len() && values[j] == Some(v + step * (j - i) as f64) {
                        j += 1;
                    }
                }
                let n = j - i - 1;
                parts.push(if n == 0 {
                    format!("{v}")
                } else {
                    let step = step.unwrap_or(0.0);
                    let sign = if step < 0.0 { "-" } else { "+" };
                    format!("{v}{sign}{}x{n}", step.abs())
                });
                i = j;
            }
        }
    }
    parts.join(" ")
}

/// Reads the `got:` lines of promtool's report into states per order and step.
fn parse(text: &str, orders: usize, steps: usize) -> Vec<States> {
    let mut states = vec![vec![BTreeMap::new(); steps]; orders];
    for line in text.lines().filter_map(|l| l.trim_start().strip_prefix("got:")) {
        for sample in line.split('{').skip(1) {
            let labels = sample.split('}').next().unwrap_or("");
            let label = |key: &str| {
                labels.split(", ").find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                })
            };
            let (Some(name), Some(state), Some(step)) =
                (label("alertname"), label("alertstate"), label("step"))
            else {
                continue;
            };
            let o = label("order").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
            let Some(states) = states.get_mut(o) else {
                continue;
            };
            let state = match state.as_str() {
                "pending" => State::Pending,
                "firing" => State::Firing,
                _ => continue,
            };
            if let Some(slot) = step.parse::<usize>().ok().and_then(|k| states.get_mut(k)) {
                slot.insert(name, state);
            }
        }
    }
    states
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation_compresses_runs_and_gaps() {
        let v = [None, None, Some(1.0), Some(3.0), Some(5.0), Some(5.0), None];
        assert_eq!(notation(&v), "_x2 1+2x2 5 _");
        assert_eq!(notation(&[Some(2.5), Some(2.5), Some(2.5)]), "2.5+0x2");
    }

    #[test]
    fn alert_names_are_read_from_rule_files() {
        let names = alert_names("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x\n      - record: r\n      - alert: \"B\"  # why\n");
        assert_eq!(names, ["A", "B"]);
        assert_eq!(Rules::stack().alerts.len(), 7);
    }

    #[test]
    fn got_lines_become_states() {
        let text = "  FAILED:\n    expr: \"x\", time: 2s,\n        exp: nil\n        got: {alertname=\"A\", alertstate=\"pending\", order=\"1\", step=\"2\"} 1E+00, {alertname=\"B\", alertstate=\"firing\", order=\"1\", step=\"2\"} 1E+00\n";
        let states = parse(text, 2, 3);
        assert_eq!(states[1][2]["A"], State::Pending);
        assert_eq!(states[1][2]["B"], State::Firing);
        assert!(states[1][1].is_empty());
        assert!(states[0].iter().all(BTreeMap::is_empty));
    }
}

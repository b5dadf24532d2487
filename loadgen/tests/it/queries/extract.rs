//! Finding the queries: fenced blocks of the Markdown catalogs, targets, annotations and variables of
//! the Grafana dashboards, and Grafana's variables replaced by values that fit the test's run.
//!
//! `tools/query-check/check.mjs` extracts the same queries for the static checks; this copy only needs
//! PromQL and LogQL, and reads them the same way (datasource by uid, target's or else panel's).

use std::path::Path;

use serde_json::Value;

/// One query and where it comes from.
#[derive(Debug, Clone)]
pub struct Query {
    /// `promql` or `logql`.
    pub lang: &'static str,
    /// File and line, or file and JSON path.
    pub source: String,
    /// The query as written.
    pub text: String,
    /// Marked `<!-- tempo-generated -->` in a catalog.
    pub tempo_marked: bool,
}

/// Fenced blocks tagged `promql` or `logql` in a Markdown file.
pub fn markdown(path: &Path, shown: &str) -> Vec<Query> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let fence: String = trimmed.chars().take_while(|c| *c == '`' || *c == '~').collect();
        if fence.len() < 3 || !fence.chars().all(|c| c == fence.chars().next().unwrap_or('`')) {
            i += 1;
            continue;
        }
        let lang = trimmed[fence.len()..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        let marked = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim() == "<!-- tempo-generated -->");
        let start = i + 1;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].trim().starts_with(fence.as_str()) {
            body.push(lines[i].trim());
            i += 1;
        }
        i += 1;
        let lang = match lang.as_str() {
            "promql" => "promql",
            "logql" => "logql",
            _ => continue,
        };
        out.push(Query {
            lang,
            source: format!("{shown}:{start}"),
            text: body.join("\n"),
            tempo_marked: marked,
        });
    }
    out
}

fn uid(ds: Option<&Value>) -> Option<&str> {
    match ds? {
        Value::Object(o) => o.get("uid")?.as_str(),
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn push(out: &mut Vec<Query>, uid: Option<&str>, text: Option<&Value>, source: String) {
    let Some(text) = text.and_then(Value::as_str).filter(|t| !t.trim().is_empty()) else {
        return;
    };
    let lang = match uid {
        Some("prometheus") => "promql",
        Some("loki") => "logql",
        _ => return,
    };
    out.push(Query {
        lang,
        source,
        text: text.to_owned(),
        tempo_marked: false,
    });
}

fn panels<'a>(list: Option<&'a Value>, path: &str, out: &mut Vec<(String, &'a Value)>) {
    for (i, p) in list.and_then(Value::as_array).into_iter().flatten().enumerate() {
        let here = format!("{path}[{i}]");
        out.push((here.clone(), p));
        panels(p.get("panels"), &format!("{here}.panels"), out);
    }
}

/// PromQL and LogQL of a dashboard: panel targets, annotations, and `label_values(selector, label)`
/// variables.
pub fn dashboard(path: &Path, shown: &str) -> Vec<Query> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dash: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{shown}: {e}"));
    let mut out = Vec::new();
    let mut all = Vec::new();
    panels(dash.get("panels"), "panels", &mut all);
    for (where_, panel) in all {
        let title = panel.get("title").and_then(Value::as_str).unwrap_or("");
        for (i, t) in panel
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let ds = uid(t.get("datasource")).or_else(|| uid(panel.get("datasource")));
            push(
                &mut out,
                ds,
                t.get("expr"),
                format!("{shown}: {where_} \"{title}\" targets[{i}]"),
            );
        }
    }
    let annotations = dash.pointer("/annotations/list").and_then(Value::as_array);
    for (i, a) in annotations.into_iter().flatten().enumerate() {
        let expr = a.pointer("/target/expr").or_else(|| a.get("expr"));
        push(
            &mut out,
            uid(a.get("datasource")),
            expr,
            format!("{shown}: annotations.list[{i}]"),
        );
    }
    let variables = dash.pointer("/templating/list").and_then(Value::as_array);
    for (i, v) in variables.into_iter().flatten().enumerate() {
        let q = v
            .get("query")
            .and_then(|q| q.get("query").or(Some(q)))
            .and_then(Value::as_str);
        let Some(selector) = q.and_then(label_values_selector) else {
            continue;
        };
        push(
            &mut out,
            uid(v.get("datasource")),
            Some(&Value::String(selector)),
            format!("{shown}: templating.list[{i}]"),
        );
    }
    out
}

/// The selector of `label_values(selector, label)`.
fn label_values_selector(q: &str) -> Option<String> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    (!label.contains('}') && !selector.trim().is_empty()).then(|| selector.trim().to_owned())
}

/// Replaces Grafana's variables with values that fit the run: intervals of a minute, the dashboards'
/// `service` as target-app and `route` as `/` (the route with the most traffic).
pub fn substitute(text: &str) -> Result<String, String> {
    let value = |name: &str| -> Option<&'static str> {
        Some(match name {
            "__rate_interval" | "__interval" | "__auto" => "1m",
            "__range" => "5m",
            "__range_s" => "300",
            "__interval_ms" => "60000",
            "service" => "target-app",
            "route" => "/",
            "scenario" => "queries-check",
            _ => return None,
        })
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            let name = braced[..end].split(':').next().unwrap_or("");
            (name, end + 2)
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..len], len)
        };
        out.push_str(value(name).ok_or_else(|| format!("unknown Grafana variable `{name}` in {text}"))?);
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Shortens every `offset <duration>` to `offset 15s`, so a comparison with the past finds samples in
/// a Prometheus that has only seen this run; the query still reads the same series the same way.
pub fn shorten_offsets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("offset") {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == ']' || c == ')');
        let after = &rest[at + "offset".len()..];
        let spaces = after.len() - after.trim_start().len();
        let dur = after.trim_start();
        let dur_len = dur
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(dur.len());
        if before_ok && spaces > 0 && dur.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(&rest[..at]);
            out.push_str("offset 15s");
            rest = &dur[dur_len..];
        } else {
            out.push_str(&rest[..at + "offset".len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_shortens() {
        assert_eq!(
            substitute(r#"rate(x{job=~"$service", r=~"${route:regex}"}[$__rate_interval])"#).unwrap(),
            r#"rate(x{job=~"target-app", r=~"/"}[1m])"#
        );
        assert!(substitute("x{a=\"$nope\"}").is_err());
        assert_eq!(shorten_offsets("a / a offset 10m"), "a / a offset 15s");
        assert_eq!(shorten_offsets("rate(x[5m] offset 1h)"), "rate(x[5m] offset 15s)");
        assert_eq!(shorten_offsets("my_offset_total"), "my_offset_total");
        assert_eq!(
            label_values_selector(r#"label_values(up{job=~"a|b"}, job)"#).as_deref(),
            Some(r#"up{job=~"a|b"}"#)
        );
    }
}

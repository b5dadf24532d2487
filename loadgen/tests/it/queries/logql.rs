//! What a LogQL query relies on in the app's JSON log lines, and whether real lines provide it.
//!
//! Not a LogQL parser (Grafana's grammar checks the syntax, in `scripts/check-queries.sh`): a tokenizer
//! that finds each stream selector and, in the pipeline after it, the fields the query filters on,
//! unwraps, groups by or formats, and the values it compares them with. A query passes when, for each
//! of its selectors, every such field appears in some line of the selected services, and one single
//! line satisfies all the equality and numeric filters and line filters at once (so the query would
//! return that line).

use serde_json::{Map, Value};

/// Stream labels set by Alloy and Loki, not JSON fields (checked against `stack/alloy/config.alloy`
/// by the static checks).
const STREAM_LABELS: &[&str] = &["service_name", "container", "stream", "source"];

/// Fields whose values differ in every run: only their presence is checked.
const RUN_SPECIFIC: &[&str] = &["trace_id", "span_id", "timestamp"];

/// One log line: its text and its fields.
pub struct Line {
    pub raw: String,
    pub fields: Map<String, Value>,
}

impl Line {
    /// Parses a JSON line; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Line> {
        match serde_json::from_str::<Value>(raw).ok()? {
            Value::Object(fields) => Some(Line {
                raw: raw.to_owned(),
                fields,
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Ident(String),
    Num(String),
    Op(&'static str),
    Punct(char),
}

fn tokens(q: &str) -> Result<Vec<Tok>, String> {
    const OPS: &[&str] = &["|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "=", ">", "<", "|"];
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '`' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if c == '"' && chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err(format!("unterminated string in {q}"));
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if let Some(op) = OPS.iter().find(|op| {
            let n = op.chars().count();
            i + n <= chars.len() && chars[i..i + n].iter().copied().eq(op.chars())
        }) {
            i += op.chars().count();
            out.push(Tok::Op(op));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Cond {
    Eq(String, String),
    Ne(String, String),
    Cmp(String, &'static str, f64),
    Contains(String),
}

impl Cond {
    fn holds(&self, line: &Line) -> bool {
        let text = |f: &str| {
            line.fields.get(f).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        match self {
            Cond::Eq(f, v) => text(f).as_deref() == Some(v.as_str()),
            Cond::Ne(f, v) => text(f).as_deref() != Some(v.as_str()),
            Cond::Cmp(f, op, v) => {
                let Some(x) = text(f).and_then(|t| t.parse::<f64>().ok()) else {
                    return false;
                };
                match *op {
                    ">" => x > *v,
                    ">=" => x >= *v,
                    "<" => x < *v,
                    _ => x <= *v,
                }
            }
            Cond::Contains(s) => line.raw.contains(s.as_str()),
        }
    }
}

/// A stream selector and what its pipeline needs.
struct Segment {
    /// Services selected by `service_name`; `None` when the selector does not say.
    services: Option<Vec<String>>,
    selector: String,
    conds: Vec<Cond>,
    fields: Vec<String>,
}

fn selector_services(matchers: &[(String, &'static str, String)]) -> Option<Vec<String>> {
    let (_, op, value) = matchers.iter().find(|(l, _, _)| l == "service_name")?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    match *op {
        "=" => Some(vec![value.clone()]),
        "=~" if value.split('|').all(plain) => Some(value.split('|').map(str::to_owned).collect()),
        _ => None,
    }
}

fn segments(q: &str) -> Result<Vec<Segment>, String> {
    let toks = tokens(q)?;
    let mut segs: Vec<Segment> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        // A stream selector: `{` label op "value" (, label op "value")* `}`.
        if toks[i] == Tok::Punct('{') {
            let mut matchers = Vec::new();
            let mut j = i + 1;
            while let (Some(Tok::Ident(l)), Some(Tok::Op(op)), Some(Tok::Str(v))) =
                (toks.get(j), toks.get(j + 1), toks.get(j + 2))
            {
                matchers.push((l.clone(), *op, v.clone()));
                j += 3;
                if toks.get(j) == Some(&Tok::Punct(',')) {
                    j += 1;
                }
            }
            if !matchers.is_empty() && toks.get(j) == Some(&Tok::Punct('}')) {
                let selector = matchers
                    .iter()
                    .map(|(l, op, v)| format!("{l}{op}{v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                segs.push(Segment {
                    services: selector_services(&matchers),
                    selector: format!("{{{selector}}}"),
                    conds: Vec::new(),
                    fields: Vec::new(),
                });
                i = j + 1;
                continue;
            }
        }
        let Some(seg) = segs.last_mut() else {
            i += 1;
            continue;
        };
        let prev = i.checked_sub(1).and_then(|p| toks.get(p));
        let filter_start = matches!(prev, Some(Tok::Op("|")) | Some(Tok::Punct(',')))
            || matches!(prev, Some(Tok::Ident(w)) if w == "and" || w == "or");
        match (&toks[i], toks.get(i + 1), toks.get(i + 2)) {
            (Tok::Op("|="), Some(Tok::Str(s)), _) => seg.conds.push(Cond::Contains(s.clone())),
            (Tok::Ident(f), Some(Tok::Op(op)), Some(value)) if filter_start && *op != "|" => {
                let field = f.clone();
                let (text, number) = match value {
                    Tok::Str(s) => (Some(s.clone()), None),
                    Tok::Num(n) => (Some(n.clone()), n.parse::<f64>().ok()),
                    _ => (None, None),
                };
                i += 2;
                if field.starts_with("__") || STREAM_LABELS.contains(&field.as_str()) {
                    i += 1;
                    continue;
                }
                seg.fields.push(field.clone());
                if RUN_SPECIFIC.contains(&field.as_str()) {
                    i += 1;
                    continue;
                }
                match (*op, text, number) {
                    ("=" | "==", Some(t), _) => seg.conds.push(Cond::Eq(field, t)),
                    ("!=", Some(t), _) => seg.conds.push(Cond::Ne(field, t)),
                    (op @ (">" | ">=" | "<" | "<="), _, Some(n)) => seg.conds.push(Cond::Cmp(field, op, n)),
                    _ => {}
                }
            }
            (Tok::Ident(kw), Some(Tok::Ident(f)), _) if kw == "unwrap" => seg.fields.push(f.clone()),
            (Tok::Ident(kw), Some(Tok::Str(template)), _) if kw == "line_format" => {
                for part in template.split("{{").skip(1) {
                    let name: String = part
                        .trim_start()
                        .trim_start_matches('.')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        seg.fields.push(name);
                    }
                }
            }
            (Tok::Ident(kw), Some(Tok::Punct('(')), _) if kw == "by" || kw == "without" => {
                let mut j = i + 2;
                while let Some(Tok::Ident(f)) = toks.get(j) {
                    if !STREAM_LABELS.contains(&f.as_str()) {
                        seg.fields.push(f.clone());
                    }
                    j += 1;
                    if toks.get(j) == Some(&Tok::Punct(',')) {
                        j += 1;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    // `sum by (x) (…{selector}…)` names its grouping labels before the selector they apply to.
    let leading: Vec<String> = match toks.iter().position(|t| *t == Tok::Punct('{')) {
        Some(first) => {
            let head = &toks[..first];
            let mut out = Vec::new();
            for (k, t) in head.iter().enumerate() {
                if matches!(t, Tok::Ident(w) if w == "by" || w == "without") {
                    let mut j = k + 2;
                    while let Some(Tok::Ident(f)) = head.get(j) {
                        if !STREAM_LABELS.contains(&f.as_str()) {
                            out.push(f.clone());
                        }
                        j += 2;
                    }
                }
            }
            out
        }
        None => Vec::new(),
    };
    if let Some(first) = segs.first_mut() {
        first.fields.extend(leading);
    }
    Ok(segs)
}

/// Whether `q` selects only lines of services other than the app's (e.g. the webhook's).
pub fn selects_other_services(q: &str, app_services: &[&str]) -> bool {
    segments(q).is_ok_and(|segs| {
        !segs.is_empty()
            && segs.iter().all(|s| {
                s.services
                    .as_ref()
                    .is_some_and(|v| v.iter().all(|x| !app_services.contains(&x.as_str())))
            })
    })
}

/// Problems of `q` against `lines`: fields no line has, filters no line satisfies.
pub fn check(q: &str, lines: &[Line]) -> Vec<String> {
    let segs = match segments(q) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return vec!["no stream selector found".into()],
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for seg in segs {
        let selected: Vec<&Line> = lines
            .iter()
            .filter(|l| match &seg.services {
                Some(names) => l
                    .fields
                    .get("service")
                    .and_then(Value::as_str)
                    .is_some_and(|s| names.iter().any(|n| n == s)),
                None => true,
            })
            .collect();
        if selected.is_empty() {
            problems.push(format!(
                "{}: no log line of the run has a `service` field matching it",
                seg.selector
            ));
            continue;
        }
        for f in &seg.fields {
            if !selected.iter().any(|l| l.fields.contains_key(f)) {
                problems.push(format!("{}: no log line has the field `{f}`", seg.selector));
            }
        }
        if !seg.conds.is_empty() && !selected.iter().any(|l| seg.conds.iter().all(|c| c.holds(l))) {
            problems.push(format!(
                "{}: no single log line satisfies all of {:?}",
                seg.selector, seg.conds
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<Line> {
        [
            r#"{"level":"error","message":"request failed","trace_id":"ab","service":"target-app","route":"/x","status":500,"duration_ms":3.5}"#,
            r#"{"level":"info","message":"request completed","service":"downstream","route":"/api/data","status":200,"duration_ms":1200}"#,
        ]
        .iter()
        .filter_map(|l| Line::parse(l))
        .collect()
    }

    #[test]
    fn finds_fields_and_conditions() {
        let l = lines();
        let ok = r#"sum by (route) (rate({service_name="target-app", source="docker"} | json | status >= 500 and message="request failed" | line_format "{{.trace_id}}" [1m]))"#;
        assert!(check(ok, &l).is_empty(), "{:?}", check(ok, &l));
        let slow =
            r#"{service_name=~"target-app|downstream"} | json | duration_ms > 1000 | unwrap duration_ms"#;
        assert!(check(slow, &l).is_empty(), "{:?}", check(slow, &l));
        // The fields exist, but not together in one line of target-app.
        let together = r#"{service_name="target-app"} | json | message="request completed""#;
        assert_eq!(check(together, &l).len(), 1);
        let missing = r#"{service_name="target-app"} | json | http_status >= 500"#;
        assert_eq!(check(missing, &l).len(), 2, "{:?}", check(missing, &l));
        assert!(!check(r#"{service_name="target-app"} |= "no such text""#, &l).is_empty());
        assert!(selects_other_services(
            r#"{service_name="webhook"} | json"#,
            &["target-app"]
        ));
    }
}

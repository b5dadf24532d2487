//! Snapshots of what on-call reads: the message a receiver rendered (title and text for Slack,
//! summary and details for PagerDuty, …), as text, with what changes from run to run normalised
//! (times, ports, ids, URLs with ports, percentages), compared with a stored file; a difference is
//! shown as a unified diff.
//!
//! Pure functions of the captured bodies and the stored text; reading and writing the files is the
//! caller's ([`crate::cmd`]).

use std::fmt::Write as _;
use std::sync::OnceLock;

use regex_automata::meta::Regex;
use serde_json::Value;

use crate::alerts::notify::Rendered;
use crate::alerts::routing::ReceiverPlan;

/// The text of one rendered message: the fields a person reads, by receiver kind (`slack.2` is read
/// as `slack`); any other kind, its JSON, keys sorted.
pub fn message_text(kind: &str, body: &Value) -> String {
    let kind = kind.split('.').next().unwrap_or(kind);
    let mut out = String::new();
    let mut line = |name: &str, v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => {
            if s.contains('\n') {
                let _ = writeln!(out, "{name}:\n{}", s.trim_end_matches('\n'));
            } else {
                let _ = writeln!(out, "{name}: {s}");
            }
        }
        Some(Value::Null) | None => {}
        Some(Value::String(_)) => {}
        Some(other) => {
            let _ = writeln!(out, "{name}: {}", pretty(other));
        }
    };
    match kind {
        "slack" => {
            line("channel", body.get("channel"));
            line("username", body.get("username"));
            line("text", body.get("text"));
            for a in body
                .get("attachments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for key in ["pretext", "title", "title_link", "text", "footer"] {
                    line(key, a.get(key));
                }
                for f in a.get("fields").and_then(Value::as_array).into_iter().flatten() {
                    let title = f.get("title").and_then(Value::as_str).unwrap_or("");
                    line(&format!("field {title}"), f.get("value"));
                }
                for b in a.get("actions").and_then(Value::as_array).into_iter().flatten() {
                    let text = b.get("text").and_then(Value::as_str).unwrap_or("");
                    line(&format!("button {text}"), b.get("url"));
                }
            }
        }
        "pagerduty" => {
            line("event_action", body.get("event_action"));
            line("description", body.get("description"));
            let p = body.get("payload");
            line("summary", p.and_then(|p| p.get("summary")));
            line("severity", p.and_then(|p| p.get("severity")));
            line("source", p.and_then(|p| p.get("source")));
            line("class", p.and_then(|p| p.get("class")));
            line("component", p.and_then(|p| p.get("component")));
            line("group", p.and_then(|p| p.get("group")));
            line(
                "details",
                p.and_then(|p| p.get("custom_details")).or(body.get("details")),
            );
            line("client", body.get("client"));
            line("client_url", body.get("client_url"));
            line("links", body.get("links"));
        }
        "opsgenie" => {
            for key in [
                "message",
                "description",
                "priority",
                "tags",
                "details",
                "responders",
            ] {
                line(key, body.get(key));
            }
        }
        "victorops" => {
            for key in [
                "message_type",
                "entity_display_name",
                "state_message",
                "monitoring_tool",
            ] {
                line(key, body.get(key));
            }
        }
        "discord" => {
            for e in body.get("embeds").and_then(Value::as_array).into_iter().flatten() {
                line("title", e.get("title"));
                line("description", e.get("description"));
            }
        }
        "webex" => line("markdown", body.get("markdown")),
        "telegram" => line("text", body.get("text")),
        "msteams" => {
            line("title", body.get("title"));
            line("summary", body.get("summary"));
            line("text", body.get("text"));
        }
        _ => out = pretty(body) + "\n",
    }
    out
}

fn pretty(v: &Value) -> String {
    // serde_json's maps are sorted, so the text is stable.
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn rules() -> &'static [(Regex, &'static str)] {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    RULES.get_or_init(|| {
        [
            // RFC 3339 and Go's default time format.
            (
                r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?( ?(Z|[+-]\d{2}:?\d{2}))?( [A-Z]{2,5})?",
                "<time>",
            ),
            (r"https?://[A-Za-z0-9.\-\[\]:]+:\d{1,5}", "<url>"),
            (
                r"\b(127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0):\d{1,5}\b",
                "<host:port>",
            ),
            (r"\b[0-9a-f]{16}([0-9a-f]{16}){0,3}\b", "<id>"),
            (
                r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                "<id>",
            ),
            // Measured ratios (`humanizePercentage` in an annotation) differ by a hair per run.
            (r"\b\d+(\.\d+)?%", "<n>%"),
        ]
        .into_iter()
        .filter_map(|(re, to)| Regex::new(re).ok().map(|re| (re, to)))
        .collect()
    })
}

/// `text` with times, URLs with ports, loopback ports, hex ids and percentages replaced by placeholders, and
/// line ends made `\n`.
pub fn normalise(text: &str) -> String {
    let mut text = text.replace("\r\n", "\n");
    for (re, to) in rules() {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in re.find_iter(&text) {
            out.push_str(&text[last..m.start()]);
            out.push_str(to);
            last = m.end();
        }
        out.push_str(&text[last..]);
        text = out;
    }
    text
}

/// The snapshot text of a receiver's messages: each kind under a header, normalised.
pub fn snapshot_text(messages: &[&Rendered]) -> String {
    let mut out = String::new();
    for m in messages {
        let _ = writeln!(out, "--- {} ---", m.kind);
        out += &message_text(&m.kind, &m.body);
    }
    normalise(&out)
}

/// The messages of `receiver` sent in the same flush as a notification of `alert` that arrived at
/// `at_s`: for each kind, among those within a second of it, one that names the alert if any does (two
/// groups may be flushed to one receiver in the same second), else the nearest in time; in kind order.
/// Webhooks carry data, not a message a person reads: they count only for a receiver that has nothing
/// else. A copy of a message to a second endpoint of the same kind shows once.
pub fn flush<'a>(rendered: &'a [Rendered], receiver: &str, alert: &str, at_s: f64) -> Vec<&'a Rendered> {
    let is_webhook = |m: &Rendered| m.kind.split('.').next() == Some("webhook");
    let mut near: Vec<&Rendered> = rendered
        .iter()
        .filter(|m| m.receiver == receiver && (m.at_s - at_s).abs() <= NEAR_S)
        .collect();
    if near.iter().any(|m| !is_webhook(m)) {
        near.retain(|m| !is_webhook(m));
    }
    let mut kinds: Vec<&str> = near.iter().map(|m| m.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let names = |m: &Rendered| m.body.to_string().contains(alert);
    let mut out: Vec<&Rendered> = Vec::new();
    for kind in kinds {
        let of_kind = || near.iter().copied().filter(move |m| m.kind == kind);
        let Some(m) = of_kind()
            .find(|m| names(m))
            .or_else(|| of_kind().min_by(|a, b| (a.at_s - at_s).abs().total_cmp(&(b.at_s - at_s).abs())))
        else {
            continue;
        };
        // The same message sent twice (a copy to another endpoint: `slack` and `slack.2`) shows once.
        let base = |k: &str| k.split('.').next().unwrap_or(k).to_owned();
        if !out
            .iter()
            .any(|o| base(&o.kind) == base(&m.kind) && o.body == m.body)
        {
            out.push(m);
        }
    }
    out
}

/// Seconds between a notification and the messages of the same flush, at most.
const NEAR_S: f64 = 1.0;

/// The captured configurations of `plan` (`slack`, `pagerduty`, …) with no message within a second
/// of a firing notification to it at `at_s`. Alertmanager sends a flush to each of a receiver's
/// configurations on its own, so loadgen's webhook can hear of it before the others have arrived; a
/// flush with one missing cannot be compared whole.
pub fn missing<'a>(rendered: &[Rendered], plan: &'a ReceiverPlan, at_s: f64) -> Vec<&'a str> {
    plan.captured
        .iter()
        .map(|(kind, _)| kind.as_str())
        .filter(|kind| {
            !rendered
                .iter()
                .any(|m| m.receiver == plan.name && m.kind == *kind && (m.at_s - at_s).abs() <= NEAR_S)
        })
        .collect()
}

/// Lines compared at most; past it, the diff says only that the texts differ.
const MAX_LINES: usize = 2_000;
/// Lines of context around each change.
const CONTEXT: usize = 3;

/// A unified diff of `old` (named `old_name`) against `new`; empty when they are equal.
pub fn unified_diff(old_name: &str, old: &str, new_name: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        out += "(too long to show the lines that differ)\n";
        return out;
    }
    // Longest common subsequence table, from the ends.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // The edit script: (tag, line of a, line of b).
    let mut ops: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j));
            i += 1;
        } else {
            ops.push(('+', i, j));
            j += 1;
        }
    }
    if old.ends_with('\n') != new.ends_with('\n') {
        ops.push(('~', a.len(), b.len()));
    }
    // Hunks: runs of changes with CONTEXT lines around, merged when close.
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * CONTEXT + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let a_len = hunk.iter().filter(|o| o.0 == ' ' || o.0 == '-').count();
        let b_len = hunk.iter().filter(|o| o.0 == ' ' || o.0 == '+').count();
        let (a0, b0) = (hunk[0].1, hunk[0].2);
        let from = |first: usize, len: usize| if len == 0 { first } else { first + 1 };
        let _ = writeln!(
            out,
            "@@ -{},{a_len} +{},{b_len} @@",
            from(a0, a_len),
            from(b0, b_len)
        );
        for (tag, i, j) in hunk {
            match tag {
                ' ' => out += &format!(" {}\n", a[*i]),
                '-' => out += &format!("-{}\n", a[*i]),
                '+' => out += &format!("+{}\n", b[*j]),
                _ => out += "\\ the files differ in their last line end\n",
            }
        }
        k += 1;
    }
    out
}

/// How a rendered text compares with the stored one (`None`: no file yet).
pub fn compare(file: &str, stored: Option<&str>, receiver: &str, rendered: &str) -> (bool, String) {
    match stored {
        None => (
            false,
            format!("no snapshot {file} yet; write it with --update-snapshots and review it"),
        ),
        Some(stored) if normalise(stored) == rendered => (true, format!("matches {file}")),
        Some(stored) => (
            false,
            format!(
                "the message `{receiver}` rendered differs from {file}:\n{}",
                unified_diff(
                    &format!("{file} (stored)"),
                    &normalise(stored),
                    &format!("{receiver} (rendered)"),
                    rendered
                )
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn slack_and_pagerduty_read_as_on_call_reads_them() {
        let slack = json!({"channel": "#oncall", "attachments": [{"title": "[FIRING] ServiceDown",
            "title_link": "http://127.0.0.1:40123/#/alerts", "text": "down\nRunbook: https://r.example/ServiceDown\n",
            "color": "danger", "mrkdwn_in": ["text"]}]});
        assert_eq!(
            normalise(&message_text("slack.2", &slack)),
            "channel: #oncall\ntitle: [FIRING] ServiceDown\ntitle_link: <url>/#/alerts\ntext:\ndown\nRunbook: https://r.example/ServiceDown\n"
        );
        let pd = json!({"routing_key": "k", "dedup_key": "0f1e2d3c4b5a69780f1e2d3c4b5a69780f1e2d3c4b5a69780f1e2d3c4b5a6978",
            "event_action": "trigger", "payload": {"summary": "[FIRING] ServiceDown", "source": "Alertmanager",
            "severity": "critical", "custom_details": {"num_firing": "1", "firing": "started 2026-12-07 05:50:00.123 +0000 UTC"}}});
        let text = normalise(&message_text("pagerduty", &pd));
        assert!(
            text.starts_with("event_action: trigger\nsummary: [FIRING] ServiceDown\nseverity: critical\n"),
            "{text}"
        );
        assert!(text.contains("\"firing\": \"started <time>\""), "{text}");
        assert!(!text.contains("dedup_key"), "{text}");
    }

    #[test]
    fn what_changes_between_runs_is_normalised() {
        assert_eq!(
            normalise("at 2026-12-07T05:50:00.123Z from http://127.0.0.1:45321/graph id a1b2c3d4e5f60718 on localhost:9093\r\n"),
            "at <time> from <url>/graph id <id> on <host:port>\n"
        );
        assert_eq!(
            normalise("31.07% of requests, then 30%"),
            "<n>% of requests, then <n>%"
        );
        assert_eq!(
            normalise("no port https://grafana.example/d/x"),
            "no port https://grafana.example/d/x"
        );
    }

    #[test]
    fn the_flush_of_a_notification_prefers_messages_naming_its_alert() {
        let m = |at_s: f64, kind: &str, title: &str| Rendered {
            at_s,
            receiver: "pager".into(),
            kind: kind.into(),
            body: json!({ "title": title }),
        };
        let rendered = [
            m(9.7, "slack", "HighErrorRate"),
            m(10.2, "slack", "ServiceDown"),
            m(10.1, "pagerduty", "no name"),
            m(12.0, "webex", "ServiceDown"),
        ];
        let got: Vec<(&str, f64)> = flush(&rendered, "pager", "ServiceDown", 10.0)
            .iter()
            .map(|m| (m.kind.as_str(), m.at_s))
            .collect();
        assert_eq!(got, [("pagerduty", 10.1), ("slack", 10.2)]);
        let got: Vec<f64> = flush(&rendered, "pager", "Other", 10.0)
            .iter()
            .map(|m| m.at_s)
            .collect();
        assert_eq!(got, [10.1, 10.2], "nearest when none names it");
        assert!(flush(&rendered, "ticket", "ServiceDown", 10.0).is_empty());
        let hooks = [
            m(10.0, "webhook", "ServiceDown"),
            m(10.0, "webhook.2", "ServiceDown"),
        ];
        let with_slack: Vec<Rendered> = hooks.iter().cloned().chain([m(10.1, "slack", "x")]).collect();
        let kinds = |r: &[Rendered]| -> Vec<String> {
            flush(r, "pager", "ServiceDown", 10.0)
                .iter()
                .map(|m| m.kind.clone())
                .collect()
        };
        assert_eq!(kinds(&with_slack), ["slack"], "what a person reads, not the data");
        assert_eq!(
            kinds(&hooks),
            ["webhook"],
            "webhooks when there is nothing else, a copy once"
        );
        let copies = [
            m(10.0, "slack", "ServiceDown"),
            m(10.0, "slack.2", "ServiceDown"),
            m(10.0, "slack.3", "other"),
        ];
        assert_eq!(kinds(&copies), ["slack", "slack.3"], "a copy shows once");
    }

    #[test]
    fn a_changed_character_shows_as_a_diff() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\ni\n";
        assert_eq!(
            unified_diff("old", old, "new", new),
            "--- old\n+++ new\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
        assert_eq!(unified_diff("old", old, "new", old), "");
        assert_eq!(
            unified_diff("old", "", "new", "x\n"),
            "--- old\n+++ new\n@@ -0,0 +1,1 @@\n+x\n\\ the files differ in their last line end\n"
        );
        let (same, detail) = compare("s.txt", Some("title: T\n"), "pager", "title: T\n");
        assert!(same, "{detail}");
        let (same, detail) = compare("s.txt", Some("title: T\n"), "pager", "title: t\n");
        assert!(!same);
        assert!(detail.starts_with("the message `pager` rendered differs from s.txt:\n--- s.txt (stored)\n+++ pager (rendered)\n"), "{detail}");
        assert!(detail.contains("-title: T\n+title: t\n"), "{detail}");
        let (same, detail) = compare("s.txt", None, "pager", "x");
        assert!(!same && detail.contains("--update-snapshots"), "{detail}");
    }
}

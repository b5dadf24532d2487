//! A user's own Alertmanager configuration (`--alertmanager-config FILE`), rewritten so that the
//! private Alertmanager keeps its routing tree, inhibit rules, time intervals and templates, while every
//! receiver's endpoint points at loadgen's receiver ([`crate::alerts::notify`]) on a path that names the
//! receiver and the kind: `/receivers/<name>/<kind>`. The real Alertmanager then renders the real
//! templates, and what on-call would read reaches loadgen instead of a chat or a pager.
//!
//! Every receiver also gets one webhook of loadgen's own (`/receivers/<name>/loadgen`), which says which
//! alerts the receiver was notified of, grouped as Alertmanager grouped them.
//!
//! Receivers that do not speak HTTP to a configurable URL (email, Pushover, WeChat, SNS) are removed
//! from the copy and listed as not captured: nothing leaves the machine. This module rewrites text; it
//! starts nothing but `amtool check-config`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The receiver kinds captured, with the field of each that holds the endpoint and the fields that
/// would point elsewhere (read from a file) and are removed.
const CAPTURED: [(&str, &str, &[&str]); 9] = [
    ("webhook", "url", &["url_file"]),
    ("slack", "api_url", &["api_url_file"]),
    ("pagerduty", "url", &[]),
    ("opsgenie", "api_url", &[]),
    ("victorops", "api_url", &[]),
    ("discord", "webhook_url", &["webhook_url_file"]),
    ("webex", "api_url", &[]),
    ("telegram", "api_url", &[]),
    // Alertmanager 0.26 and later; older ones refuse the key, and `amtool check-config` says so.
    ("msteams", "webhook_url", &["webhook_url_file"]),
];

/// The path segment of loadgen's own webhook on every receiver.
pub const OWN_KIND: &str = "loadgen";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: String },
    #[error("{file}: cannot read it: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}, as loadgen rewrote it: amtool check-config refused it:\n{output}")]
    Refused { file: String, output: String },
    #[error("cannot run amtool (install it: `apt-get install prometheus-alertmanager`): {0}")]
    NoAmtool(std::io::Error),
}

/// One receiver of the configuration and where its notifications go now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReceiverPlan {
    pub name: String,
    /// `kind` (e.g. `slack`, `slack.2` for the second) and the path loadgen receives it on.
    pub captured: Vec<(String, String)>,
    /// Kinds removed from the copy (e.g. `email`), never sent.
    pub not_captured: Vec<String>,
}

/// The rewritten configuration.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The configuration for the private Alertmanager, as JSON (which Alertmanager reads as YAML).
    pub text: String,
    pub receivers: Vec<ReceiverPlan>,
}

/// Percent-encodes a receiver name for a path segment.
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a path segment made by [`segment`] (or by anyone else); `None` when it is not UTF-8.
pub fn unsegment(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where `path` (`/receivers/<name>/<kind>[/…]`) was sent from: receiver name and kind.
pub fn parse_path(path: &str) -> Option<(String, String)> {
    let mut parts = path.strip_prefix("/receivers/")?.split('/');
    let name = unsegment(parts.next().filter(|p| !p.is_empty())?)?;
    let kind = parts.next().filter(|p| !p.is_empty())?.to_owned();
    Some((name, kind))
}

fn invalid(file: &str, problem: impl Into<String>) -> RoutingError {
    RoutingError::Invalid {
        file: file.to_owned(),
        problem: problem.into(),
    }
}

/// Removes proxies from an `http_config`: the copy talks to loopback only.
fn no_proxy(config: &mut Map<String, Value>) {
    if let Some(Value::Object(http)) = config.get_mut("http_config") {
        for key in [
            "proxy_url",
            "proxy_from_environment",
            "proxy_connect_header",
            "no_proxy",
        ] {
            http.remove(key);
        }
    }
}

/// Rewrites `text` (the configuration read from `file`, whose directory `dir` relative template paths
/// are resolved against) so that every receiver posts to `base` (`http://127.0.0.1:PORT`).
pub fn rewrite(text: &str, file: &str, dir: &Path, base: &str) -> Result<Rewritten, RoutingError> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| invalid(file, e.to_string()))?;
    let Value::Object(mut doc) = doc else {
        return Err(invalid(file, "expected a mapping at the top"));
    };
    if !matches!(doc.get("route"), Some(Value::Object(_))) {
        return Err(invalid(file, "no `route` mapping"));
    }
    if let Some(Value::Object(global)) = doc.get_mut("global") {
        no_proxy(global);
    }
    if let Some(templates) = doc.get_mut("templates") {
        let Value::Array(list) = templates else {
            return Err(invalid(file, "`templates`: expected a list of file globs"));
        };
        for (i, t) in list.iter_mut().enumerate() {
            let Value::String(path) = t else {
                return Err(invalid(file, format!("`templates[{i}]`: expected a file glob")));
            };
            if Path::new(path.as_str()).is_relative() {
                *path = dir.join(path.as_str()).display().to_string();
            }
        }
    }
    let Some(Value::Array(receivers)) = doc.get_mut("receivers") else {
        return Err(invalid(file, "no `receivers` list"));
    };
    let mut plans = Vec::with_capacity(receivers.len());
    for (i, r) in receivers.iter_mut().enumerate() {
        let Value::Object(r) = r else {
            return Err(invalid(file, format!("`receivers[{i}]`: expected a mapping")));
        };
        let Some(name) = r.get("name").and_then(Value::as_str).map(str::to_owned) else {
            return Err(invalid(file, format!("`receivers[{i}]` has no `name`")));
        };
        let at = |kind: &str| format!("{base}/receivers/{}/{kind}", segment(&name));
        let mut plan = ReceiverPlan {
            name: name.clone(),
            captured: Vec::new(),
            not_captured: Vec::new(),
        };
        let keys: Vec<String> = r.keys().filter(|k| k.ends_with("_configs")).cloned().collect();
        for key in keys {
            let kind = key.trim_end_matches("_configs");
            let Some(&(_, field, remove)) = CAPTURED.iter().find(|(k, _, _)| *k == kind) else {
                plan.not_captured.push(kind.to_owned());
                r.remove(&key);
                continue;
            };
            let Some(Value::Array(configs)) = r.get_mut(&key) else {
                return Err(invalid(file, format!("`receivers[{i}].{key}`: expected a list")));
            };
            for (j, c) in configs.iter_mut().enumerate() {
                let Value::Object(c) = c else {
                    return Err(invalid(
                        file,
                        format!("`receivers[{i}].{key}[{j}]`: expected a mapping"),
                    ));
                };
                let label = if j == 0 {
                    kind.to_owned()
                } else {
                    format!("{kind}.{}", j + 1)
                };
                // Alertmanager appends its own paths to Opsgenie's and VictorOps' base URLs.
                let url = if matches!(kind, "opsgenie" | "victorops") {
                    at(&label) + "/"
                } else {
                    at(&label)
                };
                for key in remove {
                    c.remove(*key);
                }
                no_proxy(c);
                c.insert(field.to_owned(), Value::String(url));
                plan.captured
                    .push((label.clone(), format!("/receivers/{}/{label}", segment(&name))));
            }
        }
        let own = json!({ "url": at(OWN_KIND), "send_resolved": true });
        match r.get_mut("webhook_configs") {
            Some(Value::Array(list)) => list.push(own),
            _ => {
                r.insert("webhook_configs".into(), Value::Array(vec![own]));
            }
        }
        plans.push(plan);
    }
    let text = serde_json::to_string_pretty(&Value::Object(doc)).map_err(|e| invalid(file, e.to_string()))?;
    Ok(Rewritten {
        text,
        receivers: plans,
    })
}

/// Reads `path` and rewrites it ([`rewrite`]).
pub fn load(path: &Path, base: &str) -> Result<Rewritten, RoutingError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RoutingError::Read {
        file: file.clone(),
        source,
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    rewrite(&text, &file, &dir, base)
}

/// Checks a rewritten configuration with `amtool check-config` (written into `dir`).
pub fn check(rewritten: &Rewritten, file: &str, dir: &Path) -> Result<(), RoutingError> {
    let path = dir.join("alertmanager-check.yml");
    std::fs::write(&path, &rewritten.text).map_err(|source| RoutingError::Read {
        file: path.display().to_string(),
        source,
    })?;
    let out = std::process::Command::new("amtool")
        .arg("check-config")
        .arg(&path)
        .output()
        .map_err(RoutingError::NoAmtool);
    let _ = std::fs::remove_file(&path);
    let out = out?;
    if out.status.success() {
        return Ok(());
    }
    let output = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Err(RoutingError::Refused {
        file: file.to_owned(),
        output: output.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"
global:
  http_config: { proxy_url: "http://proxy.corp:3128" }
templates: ["templates/*.tmpl", "/etc/am/abs.tmpl"]
route:
  receiver: ticket
  routes:
    - matchers: ['severity="page"']
      receiver: pager
receivers:
  - name: pager
    slack_configs:
      - api_url: "https://hooks.slack.com/services/T/B/X"
        title: '{{ template "slack.title" . }}'
      - api_url_file: /secret
    pagerduty_configs:
      - routing_key: abc
    email_configs:
      - to: oncall@example.com
  - name: "ticket queue"
    opsgenie_configs:
      - api_key: k
        http_config: { proxy_url: "http://proxy.corp:3128" }
inhibit_rules:
  - source_matchers: ['alertname="ServiceDown"']
    target_matchers: ['alertname="HighErrorRate"']
    equal: [job]
"#;

    #[test]
    fn every_http_receiver_points_at_loadgen_and_the_rest_is_kept() {
        let r = rewrite(USER, "am.yml", Path::new("/conf"), "http://127.0.0.1:9").unwrap();
        let doc: Value = serde_json::from_str(&r.text).unwrap();
        let user: Value = serde_norway::from_str(USER).unwrap();
        assert_eq!(doc["route"], user["route"]);
        assert_eq!(doc["inhibit_rules"], user["inhibit_rules"]);
        assert_eq!(
            doc["templates"],
            json!(["/conf/templates/*.tmpl", "/etc/am/abs.tmpl"])
        );
        assert!(doc["global"]["http_config"].get("proxy_url").is_none());
        let pager = &doc["receivers"][0];
        assert_eq!(
            pager["slack_configs"][0]["api_url"],
            "http://127.0.0.1:9/receivers/pager/slack"
        );
        assert_eq!(
            pager["slack_configs"][0]["title"],
            user["receivers"][0]["slack_configs"][0]["title"]
        );
        assert_eq!(
            pager["slack_configs"][1],
            json!({ "api_url": "http://127.0.0.1:9/receivers/pager/slack.2" })
        );
        assert_eq!(
            pager["pagerduty_configs"][0]["url"],
            "http://127.0.0.1:9/receivers/pager/pagerduty"
        );
        assert!(pager.get("email_configs").is_none(), "never sent");
        assert_eq!(
            pager["webhook_configs"],
            json!([{ "url": "http://127.0.0.1:9/receivers/pager/loadgen", "send_resolved": true }])
        );
        let ticket = &doc["receivers"][1];
        assert_eq!(
            ticket["opsgenie_configs"][0]["api_url"],
            "http://127.0.0.1:9/receivers/ticket%20queue/opsgenie/"
        );
        assert!(ticket["opsgenie_configs"][0]["http_config"]
            .get("proxy_url")
            .is_none());
        assert_eq!(
            r.receivers[0],
            ReceiverPlan {
                name: "pager".into(),
                // In the order of the keys (sorted), then of the list.
                captured: vec![
                    ("pagerduty".into(), "/receivers/pager/pagerduty".into()),
                    ("slack".into(), "/receivers/pager/slack".into()),
                    ("slack.2".into(), "/receivers/pager/slack.2".into()),
                ],
                not_captured: vec!["email".into()],
            }
        );
    }

    #[test]
    fn paths_name_the_receiver_and_the_kind() {
        assert_eq!(
            parse_path("/receivers/ticket%20queue/opsgenie/v2/alerts"),
            Some(("ticket queue".into(), "opsgenie".into()))
        );
        assert_eq!(
            parse_path("/receivers/pager/slack"),
            Some(("pager".into(), "slack".into()))
        );
        assert_eq!(parse_path("/alerts"), None);
        assert_eq!(parse_path("/receivers//slack"), None);
        assert_eq!(parse_path("/receivers/pager"), None);
        assert_eq!(parse_path("/receivers/%ff/slack"), None);
        assert_eq!(
            parse_path("/receivers/50%/slack"),
            Some(("50%".into(), "slack".into()))
        );
        for name in ["a b/c", "ünï", "%41"] {
            assert_eq!(unsegment(&segment(name)).as_deref(), Some(name));
        }
    }

    #[test]
    fn bad_files_are_named_with_the_field() {
        for (text, expected) in [
            ("- a\n", "am.yml: expected a mapping"),
            ("receivers: []\n", "am.yml: no `route`"),
            ("route: {receiver: x}\n", "no `receivers`"),
            (
                "route: {receiver: x}\nreceivers: [{url: y}]\n",
                "`receivers[0]` has no `name`",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, slack_configs: 3}]\n",
                "`receivers[0].slack_configs`: expected a list",
            ),
            (
                "route: {receiver: x}\ntemplates: a\nreceivers: []\n",
                "`templates`",
            ),
            ("route: [\n", "am.yml:"),
        ] {
            let e = rewrite(text, "am.yml", Path::new("/"), "http://x")
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }
}

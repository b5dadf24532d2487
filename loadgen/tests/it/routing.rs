//! A user's own Alertmanager configuration (`--alertmanager-config`) run by Debian's real Alertmanager:
//! routing by severity to a Slack + PagerDuty receiver and a ticket receiver, an inhibition, and a
//! template file, with every receiver's endpoint rewritten to loadgen's receiver. Alerts are posted to
//! Alertmanager's API, so the test needs no Prometheus; about 10 seconds (the configuration's own
//! `group_wait` of 1s). Needs `prometheus-alertmanager` (`scripts/test.sh` installs it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use loadgen::alerts::alertmanager::LocalAlertmanager;
use loadgen::alerts::notify::{serve, Inbox, Received};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::support::scenario_file;

/// The on-call team's configuration: pages to Slack and PagerDuty, the rest to a ticket channel,
/// ServiceDown inhibiting the error alert of the same job, and a Slack template in a file beside it.
pub const CONFIG: &str = r##"
templates: ["templates/*.tmpl"]
route:
  receiver: ticket
  group_by: [alertname, job]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="page"']
      receiver: pager
receivers:
  - name: pager
    slack_configs:
      - api_url: "https://hooks.slack.invalid/services/T/B/X"
        channel: "#oncall"
        title: '{{ template "team.title" . }}'
        text: '{{ template "team.text" . }}'
    pagerduty_configs:
      - routing_key: "0123456789abcdef0123456789abcdef"
        description: '{{ template "team.title" . }}'
    email_configs:
      - to: oncall@example.invalid
        smarthost: "smtp.example.invalid:25"
        from: am@example.invalid
  - name: ticket
    slack_configs:
      - api_url: "https://hooks.slack.invalid/services/T/B/Y"
        channel: "#tickets"
        title: '{{ template "team.title" . }}'
        text: '{{ template "team.text" . }}'
inhibit_rules:
  - source_matchers: ['alertname="ServiceDown"']
    target_matchers: ['alertname=~"HighErrorRate|HighLatency"']
    equal: [job]
"##;

pub const TEMPLATE: &str = r#"{{ define "team.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} on {{ .CommonLabels.job }}{{ end }}
{{ define "team.text" }}{{ range .Alerts }}{{ .Annotations.summary }}
Runbook: https://runbooks.example/{{ .Labels.alertname }}
{{ end }}{{ end }}
"#;

/// Writes the configuration and its template into a fresh directory; the configuration's path.
pub fn config_dir(name: &str, config: &str, template: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-it-routing-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/team.tmpl"), template).unwrap();
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A receiver on a free loopback port and its base URL.
async fn receiver() -> (String, Inbox, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inbox = Inbox::new(Instant::now());
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve(listener, inbox.clone(), stop_rx));
    (format!("http://{addr}"), inbox, stop)
}

/// Posts `body` to `path` of `addr` and returns the status line and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// Fires `alerts` (alertname, severity) on job `checkout` through Alertmanager's API.
pub fn fire(am: SocketAddr, alerts: &[(&str, &str)]) {
    let body: Vec<String> = alerts
        .iter()
        .map(|(name, severity)| {
            format!(
                r#"{{"labels":{{"alertname":"{name}","job":"checkout","severity":"{severity}"}},"annotations":{{"summary":"{name} summary"}}}}"#
            )
        })
        .collect();
    let answer = http(am, "POST", "/api/v2/alerts", &format!("[{}]", body.join(",")));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Waits (at most `limit`) until `done` holds for what was received.
async fn wait_until(inbox: &Inbox, limit: Duration, done: impl Fn(&Received) -> bool) -> Received {
    let deadline = Instant::now() + limit;
    loop {
        let r = inbox.snapshot();
        if done(&r) || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_pagerduty_receivers_are_captured_with_their_rendered_text() {
    assert!(
        loadgen::alerts::alertmanager::binary().is_some(),
        "Alertmanager is needed: apt-get install -y prometheus-alertmanager"
    );
    let path = config_dir("capture", CONFIG, TEMPLATE);
    let (base, inbox, _stop) = receiver().await;
    let rewritten = loadgen::alerts::routing::load(&path, &base).unwrap();
    assert_eq!(rewritten.receivers[0].not_captured, ["email"]);
    let am = LocalAlertmanager::start_config(rewritten).await.unwrap();
    let am_addr: SocketAddr = am.addr.parse().unwrap();
    fire(
        am_addr,
        &[
            ("ServiceDown", "page"),
            ("HighErrorRate", "page"),
            ("DiskFilling", "ticket"),
        ],
    );

    let got = wait_until(&inbox, Duration::from_secs(20), |r| {
        let kinds = |who: &str| r.rendered.iter().filter(|m| m.receiver == who).count();
        kinds("pager") >= 2 && kinds("ticket") >= 1
    })
    .await;
    let find = |receiver: &str, kind: &str| {
        got.rendered
            .iter()
            .find(|m| m.receiver == receiver && m.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} message from {receiver}: {got:#?}"))
    };
    let slack = &find("pager", "slack").body;
    assert_eq!(slack["channel"], "#oncall");
    assert_eq!(
        slack["attachments"][0]["title"],
        "[FIRING] ServiceDown on checkout"
    );
    assert_eq!(
        slack["attachments"][0]["text"],
        "ServiceDown summary\nRunbook: https://runbooks.example/ServiceDown\n"
    );
    let pd = &find("pager", "pagerduty").body;
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["routing_key"], "0123456789abcdef0123456789abcdef");
    assert_eq!(pd["payload"]["summary"], "[FIRING] ServiceDown on checkout");
    let ticket = &find("ticket", "slack").body;
    assert_eq!(ticket["channel"], "#tickets");
    assert_eq!(
        ticket["attachments"][0]["title"],
        "[FIRING] DiskFilling on checkout"
    );

    // Which alerts each receiver was notified of, from loadgen's own webhook on it.
    let notified: Vec<(String, String)> = got
        .notifications
        .iter()
        .flat_map(|n| {
            n.alerts
                .iter()
                .map(move |a| (n.receiver.clone(), a.alert.clone()))
        })
        .collect();
    assert!(
        notified.contains(&("pager".into(), "ServiceDown".into())),
        "{notified:?}"
    );
    assert!(
        notified.contains(&("ticket".into(), "DiskFilling".into())),
        "{notified:?}"
    );
    assert!(
        !notified.iter().any(|(_, a)| a == "HighErrorRate"),
        "HighErrorRate is inhibited by ServiceDown: {notified:?}"
    );
    assert!(
        !got.rendered
            .iter()
            .any(|m| m.body.to_string().contains("HighErrorRate")),
        "{got:#?}"
    );
    assert_eq!(got.rejected, 0, "{:?}", got.first_rejection);
    drop(am);
}

fn scenario() -> PathBuf {
    scenario_file(
        "routing-refused",
        r#"
name = "routing-refused"
[[mix]]
path = "/"
[[phases]]
name = "only"
duration = "1s"
rate = { shape = "constant", rps = 5 }
"#,
    )
}

fn run_with(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--quiet"])
        .arg(scenario())
        .arg("--alertmanager-config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_configuration_amtool_refuses_stops_the_run_before_it_starts() {
    // A route to a receiver that does not exist: YAML that parses, a configuration that does not.
    let bad = CONFIG.replace("receiver: pager\nreceivers:", "receiver: pagr\nreceivers:");
    assert_ne!(bad, CONFIG);
    let path = config_dir("refused", &bad, TEMPLATE);
    let (code, stderr) = run_with(&path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--alertmanager-config"), "{stderr}");
    assert!(stderr.contains("amtool check-config refused it"), "{stderr}");
    assert!(stderr.contains("pagr"), "names the receiver: {stderr}");
    assert!(!stderr.contains("sending"), "nothing ran: {stderr}");

    let (code, stderr) = run_with(Path::new("/nonexistent/alertmanager.yml"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/alertmanager.yml: cannot read it"),
        "{stderr}"
    );

    // The good one passes the check (the run then goes ahead; nothing here expects alerts).
    let path = config_dir("accepted", CONFIG, TEMPLATE);
    let (code, stderr) = run_with(&path);
    assert_eq!(code, Some(0), "{stderr}");
}

const OUTAGE: &str = r#"
name = "routed"
[[mix]]
path = "/"
[[phases]]
name = "outage"
duration = "30s"
rate = { shape = "constant", rps = 1 }
[phases.expect]
notified = [{ alert = "ServiceDown", receiver = "pager", notify_within = "25s" }]
inhibited = ["HighErrorRate"]
not_notified = [{ alert = "DiskFilling", receiver = "pager" }]
"#;

/// Runs Debian's Alertmanager with `config`, fires the three alerts, and judges the routing checks of
/// [`OUTAGE`] on what loadgen's receiver and Alertmanager's API saw: (alert column, verdict, detail).
async fn judge_real(config: &str, name: &str) -> Vec<(String, loadgen::shared::Verdict, String)> {
    judge_real_with(config, TEMPLATE, name).await.0
}

/// [`judge_real`] with a template of its own, and what was received.
async fn judge_real_with(
    config: &str,
    template: &str,
    name: &str,
) -> (Vec<(String, loadgen::shared::Verdict, String)>, Received) {
    use loadgen::alerts::amstate::{self, AmStates};
    use std::sync::{Arc, Mutex};

    let path = config_dir(name, config, template);
    let (base, inbox, _stop) = receiver().await;
    let rewritten = loadgen::alerts::routing::load(&path, &base).unwrap();
    let integrations: Vec<(String, usize)> = rewritten
        .receivers
        .iter()
        .map(|r| (r.name.clone(), r.captured.len()))
        .collect();
    let am = LocalAlertmanager::start_config(rewritten).await.unwrap();
    let start = Instant::now();
    inbox.restart(start);
    let scope = Arc::new(loadgen::alerts::scope::Scope::private("checkout", "unused:1"));
    let states = Arc::new(Mutex::new(AmStates::default()));
    let (stop_polls, stop_rx) = watch::channel(false);
    let api = loadgen::client::Api::new(
        &am.url,
        &loadgen::client::Options::default(),
        &loadgen::client::Auth::None,
    )
    .unwrap();
    let polls = tokio::spawn(amstate::watch(api, scope, start, Arc::clone(&states), stop_rx));
    fire(
        am.addr.parse().unwrap(),
        &[
            ("ServiceDown", "page"),
            ("HighErrorRate", "page"),
            ("DiskFilling", "ticket"),
        ],
    );
    let got = wait_until(&inbox, Duration::from_secs(20), |r| {
        let alerts: Vec<&str> = r
            .notifications
            .iter()
            .flat_map(|n| n.alerts.iter().map(|a| a.alert.as_str()))
            .collect();
        // Alertmanager sends a flush to each of a receiver's integrations on its own, so loadgen's
        // webhook can hear of it before the Slack or PagerDuty message arrives: wait for all of them.
        let all_rendered = integrations.iter().all(|(name, kinds)| {
            let flushes = r.notifications.iter().filter(|n| &n.receiver == name).count();
            let rendered = r.rendered.iter().filter(|m| &m.receiver == name).count();
            rendered >= flushes * kinds
        });
        alerts.contains(&"ServiceDown") && alerts.contains(&"DiskFilling") && all_rendered
    })
    .await;
    // Two more polls of the API after the notifications, so the inhibition has been seen.
    tokio::time::sleep(amstate::POLL * 2).await;
    let _ = stop_polls.send(true);
    let _ = polls.await;
    let states = states.lock().unwrap().clone();
    let scenario = loadgen::scenario::parse(OUTAGE, "routed.toml").unwrap();
    let timeline = loadgen::shared::Timeline {
        phases: vec![(Duration::ZERO, Duration::from_secs(30))],
        faults: vec![],
        ..Default::default()
    };
    drop(am);
    let checks = loadgen::alerts::routed::check(&scenario, &timeline, &got.notifications, Some(&states))
        .into_iter()
        .map(|c| (c.alert, c.verdict, c.detail))
        .collect();
    (checks, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_checks_judge_what_a_real_alertmanager_routed_and_inhibited() {
    use loadgen::shared::Verdict;
    assert!(
        loadgen::alerts::alertmanager::binary().is_some(),
        "Alertmanager is needed: apt-get install -y prometheus-alertmanager"
    );
    let checks = judge_real(CONFIG, "judged").await;
    assert_eq!(checks.len(), 3, "{checks:#?}");
    for (alert, verdict, detail) in &checks {
        assert_eq!(*verdict, Verdict::Pass, "{alert}: {detail}");
    }
    let inhibited = &checks[1];
    assert_eq!(inhibited.0, "HighErrorRate");
    assert!(
        inhibited.2.starts_with("inhibited by ServiceDown from "),
        "{}",
        inhibited.2
    );

    // One changed matcher in the route: the page goes to the ticket queue, and the check names both.
    let changed = CONFIG.replace(r#"severity="page""#, r#"severity="critical""#);
    assert_ne!(changed, CONFIG);
    let checks = judge_real(&changed, "changed").await;
    let routed = &checks[0];
    assert_eq!(routed.0, "ServiceDown → pager");
    assert_eq!(routed.1, Verdict::Fail, "{}", routed.2);
    assert_eq!(routed.2, "not notified to `pager`: it reached `ticket` instead");
}

/// The snapshot of the pager's first page in `got`.
fn pager_snapshot(got: &Received) -> String {
    use loadgen::alerts::snapshot;
    let page = got
        .notifications
        .iter()
        .find(|n| n.receiver == "pager")
        .expect("a notification to the pager");
    let messages = snapshot::flush(&got.rendered, "pager", "ServiceDown", page.at_s);
    assert_eq!(messages.len(), 2, "Slack and PagerDuty: {got:#?}");
    snapshot::snapshot_text(&messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_template_character_fails_the_snapshot_with_a_diff() {
    use loadgen::alerts::snapshot;
    assert!(
        loadgen::alerts::alertmanager::binary().is_some(),
        "Alertmanager is needed: apt-get install -y prometheus-alertmanager"
    );
    let stored_path = crate::support::repo_dir().join("loadgen/tests/snapshots/pager.txt");
    let (_, got) = judge_real_with(CONFIG, TEMPLATE, "snapshot").await;
    let text = pager_snapshot(&got);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&stored_path, &text).unwrap();
    }
    let stored = std::fs::read_to_string(&stored_path).unwrap();
    let (same, detail) = snapshot::compare("pager.txt", Some(&stored), "pager", &text);
    assert!(same, "{detail}");

    let changed = TEMPLATE.replace("Runbook:", "Runbook;");
    assert_ne!(changed, TEMPLATE);
    let (_, got) = judge_real_with(CONFIG, &changed, "snapshot-changed").await;
    let (same, detail) = snapshot::compare("pager.txt", Some(&stored), "pager", &pager_snapshot(&got));
    assert!(!same);
    assert!(
        detail.starts_with("the message `pager` rendered differs from pager.txt:\n--- pager.txt (stored)\n+++ pager (rendered)\n@@ "),
        "{detail}"
    );
    assert!(
        detail.contains("\n-Runbook: https://runbooks.example/ServiceDown\n+Runbook; https://runbooks.example/ServiceDown\n"),
        "{detail}"
    );
}

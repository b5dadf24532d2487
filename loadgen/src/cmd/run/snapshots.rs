//! The `snapshot` checks of a run: the message each receiver rendered for a `notified` alert,
//! compared with the stored file (relative to the scenario file), or written with
//! `--update-snapshots`. The comparison is [`crate::alerts::snapshot`]'s; this reads and writes files.

use std::path::Path;

use crate::alerts::notify::{Notification, Rendered};
use crate::alerts::routed::{arrow, first_to, SNAPSHOT};
use crate::alerts::routing::ReceiverPlan;
use crate::alerts::snapshot;
use crate::alerts::AlertCheck;
use crate::scenario::Scenario;
use crate::shared::{Timeline, Verdict};

/// One check per `notified` entry with a `snapshot`.
pub(super) fn check(
    scenario: &Scenario,
    timeline: &Timeline,
    notifications: &[Notification],
    rendered: &[Rendered],
    receivers: &[ReceiverPlan],
    dir: &Path,
    update: bool,
) -> Vec<AlertCheck> {
    let mut checks = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate().take(timeline.phases.len()) {
        for n in &phase.expect.notified {
            let Some(file) = &n.snapshot else {
                continue;
            };
            let label = arrow(&n.alert, &n.receiver);
            let (verdict, detail) = match first_to(notifications, timeline, i, &n.alert, &n.receiver) {
                None => (
                    Verdict::NotVerified,
                    format!("no notification to `{}` to compare", n.receiver),
                ),
                Some(m) => {
                    let messages = snapshot::flush(rendered, &n.receiver, &n.alert, m.at_s);
                    let missing = receivers
                        .iter()
                        .find(|r| r.name == n.receiver)
                        .map(|plan| snapshot::missing(rendered, plan, m.at_s))
                        .unwrap_or_default();
                    if !missing.is_empty() {
                        let kinds: Vec<String> = missing.iter().map(|k| format!("`{k}`")).collect();
                        (
                            Verdict::NotVerified,
                            format!(
                                "`{}` was notified at {:.1}s, but no {} message of that flush had \
                                 arrived when the run ended, so it cannot be compared whole",
                                n.receiver,
                                m.at_s,
                                kinds.join(" or ")
                            ),
                        )
                    } else if messages.is_empty() {
                        (
                            Verdict::NotVerified,
                            format!(
                                "no message rendered by `{}` was captured (only the receivers of \
                                 --alertmanager-config are)",
                                n.receiver
                            ),
                        )
                    } else {
                        let text = snapshot::snapshot_text(&messages);
                        let path = dir.join(file);
                        if update {
                            write(&path, &text)
                        } else {
                            let stored = std::fs::read_to_string(&path).ok();
                            let (same, detail) =
                                snapshot::compare(file, stored.as_deref(), &n.receiver, &text);
                            (Verdict::holds(same), detail)
                        }
                    }
                }
            };
            checks.push(AlertCheck::unmade(
                &phase.name,
                &label,
                SNAPSHOT,
                verdict,
                &detail,
            ));
        }
    }
    checks
}

fn write(path: &Path, text: &str) -> (Verdict, String) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text));
    match written {
        Ok(()) => (
            Verdict::Skipped,
            format!("written to {} (--update-snapshots): review it", path.display()),
        ),
        Err(e) => (
            Verdict::NotVerified,
            format!("cannot write {}: {e}", path.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::alerts::notify::{NotifiedAlert, Status};

    const SCENARIO: &str = r#"
name = "outage"
[[mix]]
path = "/"
[[phases]]
name = "outage"
duration = "60s"
rate = { shape = "constant", rps = 1 }
expect = { notified = [{ alert = "ServiceDown", receiver = "pager", snapshot = "snaps/outage/pager.txt" }] }
"#;

    #[test]
    fn snapshots_are_written_on_request_then_compared() {
        let scenario = crate::scenario::parse(SCENARIO, "outage.toml").unwrap();
        let timeline = Timeline {
            phases: vec![(Duration::ZERO, Duration::from_secs(60))],
            faults: vec![],
            ..Timeline::default()
        };
        let page = Notification {
            at_s: 20.0,
            receiver: "pager".into(),
            group_key: "{}".into(),
            status: Status::Firing,
            alerts: vec![NotifiedAlert {
                alert: "ServiceDown".into(),
                status: Status::Firing,
                labels: [("alertname".to_owned(), "ServiceDown".to_owned())].into(),
                starts_at: String::new(),
                ends_at: String::new(),
            }],
            truncated_alerts: 0,
        };
        let slack = |title: &str| Rendered {
            at_s: 20.1,
            receiver: "pager".into(),
            kind: "slack".into(),
            body: json!({ "attachments": [{ "title": title }] }),
        };
        let dir = std::env::temp_dir().join(format!("loadgen-snapshots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let run = |title: &str, update: bool| {
            let c = check(
                &scenario,
                &timeline,
                std::slice::from_ref(&page),
                &[slack(title)],
                &[],
                &dir,
                update,
            );
            assert_eq!(c.len(), 1);
            (c[0].verdict, c[0].detail.clone())
        };
        let (v, detail) = run("ServiceDown", false);
        assert_eq!(v, Verdict::Fail, "no file yet: {detail}");
        assert_eq!(run("ServiceDown", true).0, Verdict::Skipped);
        assert_eq!(
            std::fs::read_to_string(dir.join("snaps/outage/pager.txt")).unwrap(),
            "--- slack ---\ntitle: ServiceDown\n"
        );
        assert_eq!(run("ServiceDown", false).0, Verdict::Pass);
        let (v, detail) = run("ServiceD0wn", false);
        assert_eq!(v, Verdict::Fail);
        assert!(
            detail.contains("-title: ServiceDown\n+title: ServiceD0wn\n"),
            "{detail}"
        );
        let none = check(&scenario, &timeline, &[], &[], &[], &dir, false);
        assert_eq!(none[0].verdict, Verdict::NotVerified);

        // The pager sends to Slack and PagerDuty; with PagerDuty's message still on its way the
        // flush is not compared, nor written.
        let plan = ReceiverPlan {
            name: "pager".into(),
            captured: vec![
                ("slack".into(), "/receivers/pager/slack".into()),
                ("pagerduty".into(), "/receivers/pager/pagerduty".into()),
            ],
            not_captured: vec![],
        };
        let partial = |update: bool| {
            check(
                &scenario,
                &timeline,
                std::slice::from_ref(&page),
                &[slack("ServiceDown")],
                std::slice::from_ref(&plan),
                &dir,
                update,
            )
        };
        for update in [false, true] {
            let c = partial(update);
            assert_eq!(c[0].verdict, Verdict::NotVerified, "{}", c[0].detail);
            assert_eq!(
                c[0].detail,
                "`pager` was notified at 20.0s, but no `pagerduty` message of that flush had arrived \
                 when the run ended, so it cannot be compared whole"
            );
        }
        let pd = Rendered {
            kind: "pagerduty".into(),
            body: json!({ "event_action": "trigger", "payload": { "summary": "ServiceDown" } }),
            ..slack("ServiceDown")
        };
        let whole = check(
            &scenario,
            &timeline,
            std::slice::from_ref(&page),
            &[slack("ServiceDown"), pd],
            std::slice::from_ref(&plan),
            &dir,
            false,
        );
        assert_eq!(
            whole[0].verdict,
            Verdict::Fail,
            "the stored file has Slack's only"
        );
        assert!(
            whole[0].detail.contains("+--- pagerduty ---"),
            "{}",
            whole[0].detail
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

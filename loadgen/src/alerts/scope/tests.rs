use crate::shared::Verdict;
use std::collections::BTreeMap;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn matcher_lists_parse_with_or_without_braces() {
    let m = parse_matchers(r#"job="api""#).unwrap();
    assert_eq!(m.to_string(), r#"{job="api"}"#);
    let m =
        parse_matchers(r#" { job = 'api' , instance=~`10\.0\..*`, env!="dev", zone!~"eu.*", } "#).unwrap();
    assert_eq!(
        m.to_string(),
        r#"{job="api", instance=~"10\\.0\\..*", env!="dev", zone!~"eu.*"}"#
    );
    assert!(m.0[1].matches("10.0.3.4:80"));
    assert!(!m.0[1].matches("110.0.3.4:80"), "regexes are anchored");
    assert!(m.0[3].matches("us-east"));
    assert!(!m.0[3].matches("eu-west"));
    let m = parse_matchers(r#"job="a\"b\\c""#).unwrap();
    assert_eq!(m.0[0].value, r#"a"b\c"#);
}

#[test]
fn bad_matcher_lists_say_where_and_what() {
    for (text, expected) in [
        ("", "no label matcher given"),
        ("{}", "no label matcher given"),
        (
            "job",
            "at column 4: expected an operator (=, !=, =~, !~) after `job`, found the end",
        ),
        (r#"job=api"#, "at column 5: expected a quoted value"),
        (r#"job="api"#, "at column 5: this quoted value is not closed"),
        (
            r#"job="api" instance="x""#,
            "at column 11: expected `,` between matchers, found `i`",
        ),
        (
            r#"{job="api""#,
            "at column 11: expected `,` or the closing `}`, found the end",
        ),
        (r#"{job="api"} x"#, "unexpected text after the closing `}`"),
        (r#"1job="api""#, "at column 1: expected a label name"),
        (r#"job=~"(""#, "`job=~\"(\"`: not a valid regular expression"),
        (r#"job!"x""#, "at column 5: expected `!=` or `!~`"),
        (r#"job="\q""#, "unknown escape"),
        (r#"HighErrorRate{job="x"}"#, "at column 14: expected an operator"),
    ] {
        let e = parse_matchers(text).unwrap_err();
        assert!(e.contains(expected), "{text:?}: {e}");
    }
}

#[test]
fn the_target_scope_tolerates_labels_that_aggregation_dropped() {
    let scope = Scope::private("target-app", "127.0.0.1:4000");
    // HighErrorRate is `sum by (job)`: no instance.
    assert!(scope.matches(&labels(&[("alertname", "HighErrorRate"), ("job", "target-app")])));
    // ServiceDown keeps both.
    assert!(scope.matches(&labels(&[("job", "target-app"), ("instance", "127.0.0.1:4000")])));
    assert!(!scope.matches(&labels(&[("job", "target-app"), ("instance", "127.0.0.1:4001")])));
    assert!(!scope.matches(&labels(&[("job", "other")])));
    // An alert about nothing in particular points at no target.
    assert!(!scope.matches(&labels(&[("alertname", "Watchdog")])));
}

#[test]
fn alert_match_is_taken_literally() {
    let scope = Scope::from_flag(&parse_matchers(r#"job="api", instance="h:1""#).unwrap());
    assert!(scope.matches(&labels(&[("job", "api"), ("instance", "h:1")])));
    assert!(
        !scope.matches(&labels(&[("job", "api")])),
        "a missing label is empty"
    );
    let scope = Scope::from_flag(&parse_matchers(r#"job="api", team="""#).unwrap());
    assert!(scope.matches(&labels(&[("job", "api")])));
    let anything = Scope::from_flag(&parse_matchers(r#"job=~".*""#).unwrap());
    assert!(anything.matches(&labels(&[("alertname", "Watchdog")])));
    assert_eq!(
        anything.relevant(&labels(&[("job", "x"), ("severity", "page")])),
        labels(&[("job", "x")])
    );
}

#[test]
fn a_scope_with_a_problem_matches_nothing_and_leaves_every_check_not_verified() {
    let mut scope = Scope::private("a", "b");
    scope.problem = Some("not found".into());
    assert!(!scope.matches(&labels(&[("job", "a")])));
    let check = crate::alerts::AlertCheck::unmade(
        "baseline",
        "HighErrorRate",
        "inactive",
        Verdict::Pass,
        "stayed inactive",
    );
    let mut checks = vec![check.clone()];
    unverify_checks(&Scope::private("a", "b"), &mut checks);
    assert_eq!(checks[0].verdict, Verdict::Pass, "no problem, nothing changed");
    unverify_checks(&scope, &mut checks);
    assert_eq!(checks[0].verdict, Verdict::NotVerified);
    assert!(checks[0].detail.starts_with("not checked: "));
}

fn target(job: &str, host: &str, port: u16) -> ScrapeTarget {
    ScrapeTarget {
        job: job.into(),
        instance: format!("{host}:{port}"),
        host: host.into(),
        port,
    }
}

#[test]
fn targets_are_found_by_address_then_loopback_then_a_unique_port() {
    let targets = vec![
        target("target-app", "target-app", 8080),
        target("downstream", "downstream", 8081),
        target("shop", "127.0.0.1", 9000),
        target("node", "10.0.0.5", 9100),
        target("node", "10.0.0.6", 9100),
    ];
    let (found, note) = find(&targets, "10.0.0.5", 9100);
    assert_eq!(found, vec![&targets[3]]);
    assert!(note.is_none());
    let (found, note) = find(&targets, "localhost", 9000);
    assert_eq!(found, vec![&targets[2]]);
    assert!(note.is_none());
    let (found, note) = find(&targets, "localhost", 8080);
    assert_eq!(found, vec![&targets[0]]);
    assert!(note.unwrap().contains("only one on port 8080"));
    assert!(
        find(&targets, "localhost", 9100).0.is_empty(),
        "two targets on that port"
    );
    assert!(
        find(&targets, "10.0.0.7", 8080).0.is_empty(),
        "not a loopback host"
    );
    assert!(find(&targets, "localhost", 1).0.is_empty());
}

#[test]
fn the_targets_answer_is_read() {
    let body = br#"{"status":"success","data":{"activeTargets":[
        {"labels":{"instance":"127.0.0.1:9","job":"x"},"scrapeUrl":"http://127.0.0.1:9/metrics"},
        {"labels":{"instance":"web","job":"y"},"scrapeUrl":"https://[::1]/metrics"}],"droppedTargets":[]}}"#;
    let t = parse_targets(body).unwrap();
    assert_eq!(t[0], target("x", "127.0.0.1", 9));
    assert_eq!(
        (t[1].host.as_str(), t[1].port, t[1].instance.as_str()),
        ("::1", 443, "web")
    );
    assert!(parse_targets(b"{}")
        .unwrap_err()
        .contains("not a Prometheus targets answer"));
    let text = not_found("http://p", "localhost", 1, &t);
    assert!(
        text.contains("localhost:1") && text.contains("127.0.0.1:9 (job \"x\")"),
        "{text}"
    );
}

#[test]
fn the_summary_shows_what_counted_and_what_did_not() {
    let scope = Scope::private("shop", "127.0.0.1:4000");
    let mut seen = Seen::default();
    let state = crate::shared::State::Firing;
    seen.note(
        true,
        "HighErrorRate",
        labels(&[("job", "shop")]),
        crate::shared::State::Pending,
    );
    seen.note(true, "HighErrorRate", labels(&[("job", "shop")]), state);
    seen.note(false, "HighErrorRate", labels(&[("job", "noisy")]), state);
    let report = seen.report(&scope);
    assert_eq!(report.matched.len(), 1, "one label set, its most severe state");
    let mut out = Vec::new();
    write_text(&report, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "  scope: {job=\"shop\", instance=\"127.0.0.1:4000\"} (the target's job and instance in the private Prometheus)\n\
         \x20 counted: HighErrorRate{job=\"shop\"} firing\n\
         \x20 not counted (outside the scope): HighErrorRate{job=\"noisy\"} firing\n"
    );
}

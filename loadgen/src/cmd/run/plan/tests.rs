use std::time::Duration;

use super::{PlanError, RunPlan, Target};
use crate::client::{Auth, Protocol};
use crate::cmd::cli::run_args as args;
use crate::schedule::Shard;

const SCENARIO: &str = r#"
name = "plan"
seed = 3
[defaults]
timeout = "2s"
max_in_flight = 32
[[mix]]
path = "/"
[[phases]]
name = "calm"
duration = "5s"
rate = { shape = "constant", rps = 10 }
"#;

fn plan(flags: &[&str]) -> Result<RunPlan, Vec<PlanError>> {
    let scenario = crate::scenario::parse(SCENARIO, "s.toml").expect("valid scenario");
    RunPlan::new(&args(flags), scenario)
}

fn errors(flags: &[&str]) -> Vec<PlanError> {
    match plan(flags) {
        Ok(p) => panic!("accepted {flags:?}: {p:?}"),
        Err(e) => e,
    }
}

/// The flags the errors name, in order.
fn flags(errors: &[PlanError]) -> Vec<&'static str> {
    errors.iter().map(|e| e.flag).collect()
}

#[test]
fn the_plan_holds_what_the_options_and_the_scenario_say() {
    let p = plan(&[]).unwrap();
    assert_eq!(p.target, Target::Embedded { logs: None });
    assert_eq!(p.shard, Shard::WHOLE);
    assert_eq!(p.scenario.seed, 3);
    assert_eq!(p.peers.target.protocol, Protocol::Http1);
    assert_eq!(
        p.peers.target.max_idle, 32,
        "one idle connection per in-flight slot"
    );
    // The drain never outlasts the scenario's request timeout.
    assert_eq!(p.drain, Duration::from_secs(2));
    assert!(p.alerts.prometheus.is_none() && matches!(p.alerts.auth, Auth::None));

    let p = plan(&[
        "--target",
        "https://api.example:8443/v1/",
        "--http2",
        "--seed",
        "11",
        "--shard",
        "1/3",
        "--drain",
        "500ms",
        "--prometheus",
        "http://prom:9090/",
        "--prometheus-basic-auth",
        "me:pw",
        "--json",
        "r.json",
        "--html",
        "r.html",
    ])
    .unwrap();
    assert_eq!(p.target, Target::Url("https://api.example:8443/v1".into()));
    assert_eq!(p.peers.target.protocol, Protocol::Http2);
    assert_eq!(p.scenario.seed, 11);
    assert_eq!(p.shard, Shard::new(1, 3).unwrap());
    assert_eq!(p.drain, Duration::from_millis(500));
    assert_eq!(p.alerts.prometheus.as_deref(), Some("http://prom:9090"));
    assert!(matches!(&p.alerts.auth, Auth::Basic(pair) if pair == "me:pw"));
    assert_eq!(p.outputs.json.as_deref(), Some(std::path::Path::new("r.json")));
    // The target's protocol reaches the target only; the chaos API on the same server keeps ALPN.
    assert_eq!(p.peers.prometheus.protocol, Protocol::Http1);
    assert_eq!(p.peers.chaos.protocol, Protocol::Http2);
}

#[test]
fn each_peer_has_its_own_protocol_and_tls() {
    let p = plan(&[
        "--http2-prior-knowledge",
        "--insecure",
        "--cacert",
        "target-ca.pem",
        "--prometheus",
        "https://prom:9090",
        "--prometheus-cacert",
        "prom-ca.pem",
    ])
    .unwrap();
    assert_eq!(p.peers.target.protocol, Protocol::Http2PriorKnowledge);
    assert_eq!(
        p.peers.chaos.protocol,
        Protocol::Http1,
        "h2c is for the load only"
    );
    assert_eq!(p.peers.prometheus.protocol, Protocol::Http1);
    assert!(p.peers.target.tls.insecure && !p.peers.prometheus.tls.insecure);
    assert_eq!(p.peers.chaos.tls.cacert, p.peers.target.tls.cacert);
    assert_eq!(
        p.peers.prometheus.tls.cacert.as_deref(),
        Some(std::path::Path::new("prom-ca.pem"))
    );
}

#[test]
fn bad_urls_name_their_flag_and_value() {
    let e = errors(&["--target", "ftp://example"]);
    assert_eq!(flags(&e), ["--target"]);
    assert_eq!(
        e[0].to_string(),
        "--target ftp://example: expected an http or https URL such as http://localhost:8080"
    );
    let e = errors(&["--prometheus", "localhost:9090"]);
    assert_eq!(flags(&e), ["--prometheus"]);
    assert!(
        e[0].to_string().starts_with("--prometheus localhost:9090: "),
        "{}",
        e[0]
    );
    assert!(e[0].problem.contains("http://localhost:9090"), "{}", e[0]);
}

#[test]
fn the_protocol_must_fit_the_targets_scheme() {
    let e = errors(&["--http2"]);
    assert_eq!(flags(&e), ["--http2"]);
    assert!(
        e[0].problem.contains("the embedded target is cleartext"),
        "{}",
        e[0]
    );
    assert!(
        e[0].problem.contains("--http2-prior-knowledge"),
        "says what to use: {}",
        e[0]
    );
    let e = errors(&["--target", "http://127.0.0.1:8080", "--http2"]);
    assert_eq!(flags(&e), ["--http2"]);
    let e = errors(&["--target", "https://127.0.0.1:8443", "--http2-prior-knowledge"]);
    assert_eq!(flags(&e), ["--http2-prior-knowledge"]);
    assert!(e[0].problem.contains("use --http2"), "{}", e[0]);
    assert!(
        plan(&["--http2-prior-knowledge"]).is_ok(),
        "h2c to the embedded target"
    );
}

#[test]
fn options_for_another_setup_are_refused() {
    let e = errors(&["--target", "http://127.0.0.1:8080", "--target-logs", "t.jsonl"]);
    assert_eq!(flags(&e), ["--target-logs"]);
    assert!(e[0].problem.contains("--target"), "{}", e[0]);
    for extra in [
        &["--prometheus", "http://127.0.0.1:9090"][..],
        &["--target", "http://127.0.0.1:8080"][..],
    ] {
        let mut given = vec!["--alertmanager", "127.0.0.1:9093"];
        given.extend_from_slice(extra);
        let e = errors(&given);
        assert_eq!(flags(&e), ["--alertmanager"], "{given:?}");
        assert!(
            e[0].to_string()
                .starts_with("--alertmanager 127.0.0.1:9093: only"),
            "{}",
            e[0]
        );
    }
    assert!(
        plan(&["--alertmanager", "127.0.0.1:9093"]).is_ok(),
        "beside the private Prometheus"
    );
}

#[test]
fn outputs_that_would_collide_or_cannot_be_written_are_refused() {
    let e = errors(&["--json", "same.out", "--html", "same.out"]);
    assert_eq!(flags(&e), ["--html"]);
    assert!(e[0].problem.contains("--json"), "{}", e[0]);
    let e = errors(&[
        "--json",
        "/no/such/dir/r.json",
        "--target-logs",
        "/no/such/dir/t.jsonl",
    ]);
    assert_eq!(flags(&e), ["--target-logs", "--json"]);
    assert!(e[1].problem.contains("/no/such/dir"), "{}", e[1]);
    let e = errors(&[
        "--metrics-addr",
        "127.0.0.1:9464",
        "--notify-listen",
        "127.0.0.1:9464",
    ]);
    assert_eq!(flags(&e), ["--notify-listen"]);
    assert!(
        plan(&["--metrics-addr", "127.0.0.1:0", "--notify-listen", "127.0.0.1:0"]).is_ok(),
        "port 0 picks two ports"
    );
    let e = errors(&["--rules", "/no/such/rules"]);
    assert_eq!(flags(&e), ["--rules"]);
}

#[test]
fn a_secret_is_named_never_repeated() {
    let e = errors(&["--prometheus-basic-auth", "s3cret-no-colon"]);
    assert_eq!(flags(&e), ["--prometheus-basic-auth"]);
    assert!(!e[0].to_string().contains("s3cret"), "{}", e[0]);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let e = errors(&[
        "--target",
        "ftp://x",
        "--http2",
        "--target-logs",
        "t.jsonl",
        "--prometheus",
        "nope",
        "--alertmanager",
        "127.0.0.1:9093",
        "--json",
        "a",
        "--html",
        "a",
    ]);
    assert_eq!(
        flags(&e),
        [
            "--target",
            "--target-logs",
            "--prometheus",
            "--alertmanager",
            "--html"
        ]
    );
}

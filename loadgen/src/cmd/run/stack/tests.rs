use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Stack, StackError};
use crate::cmd::cli::run_args as args;

/// A stack directory holding `files` (name, text), removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str, files: &[(&str, &str)]) -> Dir {
        let dir = std::env::temp_dir().join(format!("loadgen-stack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (file, text) in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository's own stack, with a `.env` beside a copy of its files.
fn repo_stack(name: &str, env: &str) -> Dir {
    let stack = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stack");
    let compose = std::fs::read_to_string(stack.join("docker-compose.yml")).unwrap();
    let am = std::fs::read_to_string(stack.join("alertmanager/alertmanager.yml")).unwrap();
    Dir::new(
        name,
        &[
            ("docker-compose.yml", &compose),
            ("alertmanager/alertmanager.yml", &am),
            (".env", env),
        ],
    )
}

#[test]
fn the_repository_stack_gives_its_published_addresses_and_the_token_of_its_env() {
    let dir = repo_stack("repo", "GRAFANA_ADMIN_PASSWORD=x\nCHAOS_TOKEN=s3cret\n");
    let stack = Stack::read(&dir.0, true).unwrap();
    assert_eq!(stack.target, "http://127.0.0.1:8080");
    assert_eq!(stack.prometheus, "http://127.0.0.1:9090");
    assert_eq!(stack.alertmanager, "http://127.0.0.1:9093");
    assert_eq!(stack.chaos_token, "s3cret");
    assert_eq!(stack.notify_listen, "0.0.0.0:9097".parse::<SocketAddr>().unwrap());

    let mut a = args(&["--stack", dir.0.to_str().unwrap()]);
    let given = stack.apply(&mut a);
    assert_eq!(
        given,
        [
            "--target",
            "--chaos-token",
            "--prometheus",
            "--notify-listen",
            "--alertmanager-api"
        ]
    );
    assert_eq!(a.alertmanager_api.as_deref(), Some("http://127.0.0.1:9093"));
    assert_eq!(a.target.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(a.prometheus.as_deref(), Some("http://127.0.0.1:9090"));
    assert_eq!(a.chaos_token.as_deref(), Some("s3cret"));
    assert_eq!(a.notify_listen, Some(stack.notify_listen));
    let line = stack.describe(&given);
    assert!(
        line.contains("inhibitions asked of http://127.0.0.1:9093") && !line.contains("s3cret"),
        "{line}"
    );
}

#[test]
fn a_flag_given_wins_over_the_stack() {
    let dir = repo_stack("flags", "CHAOS_TOKEN=from-env-file\n");
    let stack = Stack::read(&dir.0, true).unwrap();
    let mut a = args(&[
        "--stack",
        "--target",
        "http://127.0.0.1:18080",
        "--prometheus",
        "http://127.0.0.1:19090",
        "--chaos-token",
        "from-flag",
        "--notify-listen",
        "172.17.0.1:9097",
        "--alertmanager-api",
        "http://127.0.0.1:19093",
    ]);
    assert_eq!(
        a.stack,
        Some(PathBuf::from("stack")),
        "--stack alone means ./stack"
    );
    assert!(stack.apply(&mut a).is_empty());
    assert_eq!(a.target.as_deref(), Some("http://127.0.0.1:18080"));
    assert_eq!(a.prometheus.as_deref(), Some("http://127.0.0.1:19090"));
    assert_eq!(a.chaos_token.as_deref(), Some("from-flag"));
    assert_eq!(a.notify_listen, Some("172.17.0.1:9097".parse().unwrap()));
    assert_eq!(a.alertmanager_api.as_deref(), Some("http://127.0.0.1:19093"));

    // One flag given, the rest from the stack.
    let mut a = args(&["--chaos-token", "from-flag"]);
    assert_eq!(
        stack.apply(&mut a),
        [
            "--target",
            "--prometheus",
            "--notify-listen",
            "--alertmanager-api"
        ]
    );
    assert_eq!(a.chaos_token.as_deref(), Some("from-flag"));
}

#[test]
fn without_alert_checks_the_stack_gives_no_prometheus_and_no_listener() {
    let dir = repo_stack("no-alerts", "CHAOS_TOKEN=t\n");
    let stack = Stack::read(&dir.0, true).unwrap();
    let mut a = args(&["--no-alerts"]);
    assert_eq!(stack.apply(&mut a), ["--target", "--chaos-token"]);
    assert_eq!((a.prometheus, a.notify_listen), (None, None));
    let mut a = args(&["--no-notifications"]);
    assert_eq!(stack.apply(&mut a), ["--target", "--chaos-token", "--prometheus"]);
    assert_eq!((a.notify_listen, a.alertmanager_api), (None, None));
}

#[test]
fn a_missing_env_file_or_token_is_named() {
    let stack = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stack");
    let dir = Dir::new(
        "no-env",
        &[
            (
                "docker-compose.yml",
                &std::fs::read_to_string(stack.join("docker-compose.yml")).unwrap(),
            ),
            (
                "alertmanager/alertmanager.yml",
                &std::fs::read_to_string(stack.join("alertmanager/alertmanager.yml")).unwrap(),
            ),
        ],
    );
    let e = Stack::read(&dir.0, true).unwrap_err();
    assert!(matches!(e, StackError::Missing { file: ".env", .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(".env") && text.contains(".env.example"), "{text}");
    // A token on the command line needs no .env.
    assert!(Stack::read(&dir.0, false).is_ok());

    let dir = repo_stack("empty-token", "CHAOS_TOKEN=\nGRAFANA_ADMIN_PASSWORD=x\n");
    let e = Stack::read(&dir.0, true).unwrap_err();
    assert!(matches!(e, StackError::NoToken { .. }), "{e:?}");
    assert!(e.to_string().contains("CHAOS_TOKEN"), "{e}");
}

#[test]
fn a_directory_without_a_compose_file_is_not_a_stack() {
    let dir = Dir::new("empty", &[(".env", "CHAOS_TOKEN=t\n")]);
    let e = Stack::read(&dir.0, true).unwrap_err();
    assert!(
        matches!(
            e,
            StackError::Missing {
                file: "docker-compose.yml",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn ports_are_read_as_compose_writes_them() {
    let compose = r#"
services:
  target-app: { ports: ["127.0.0.1:18080:8080"] }
  prometheus: { ports: ["19090:9090/tcp"] }
  alertmanager:
    ports:
      - target: 9093
        published: "19093"
        host_ip: 127.0.0.1
"#;
    let am = "receivers:\n  - webhook_configs:\n      # - url: http://host.docker.internal:1/alerts\n      \
              - url: \"http://host.docker.internal:19097/alerts\"\n";
    let dir = Dir::new(
        "ports",
        &[
            ("docker-compose.yml", compose),
            ("alertmanager/alertmanager.yml", am),
            (".env", "# a comment\nCHAOS_TOKEN=\"quoted value\"\n"),
        ],
    );
    let stack = Stack::read(&dir.0, true).unwrap();
    assert_eq!(stack.target, "http://127.0.0.1:18080");
    assert_eq!(
        stack.prometheus, "http://127.0.0.1:19090",
        "every interface is reached on loopback"
    );
    assert_eq!(stack.alertmanager, "http://127.0.0.1:19093");
    assert_eq!(
        stack.notify_listen.port(),
        19097,
        "a commented-out url does not count"
    );
    assert_eq!(stack.chaos_token, "quoted value");
}

#[test]
fn a_service_without_a_published_port_is_named() {
    let dir = Dir::new(
        "unpublished",
        &[
            (
                "docker-compose.yml",
                "services:\n  target-app: { ports: [\"127.0.0.1:1:8080\"] }\n  prometheus: {}\n",
            ),
            (".env", "CHAOS_TOKEN=t\n"),
        ],
    );
    let e = Stack::read(&dir.0, true).unwrap_err().to_string();
    assert!(e.contains("prometheus publishes no port"), "{e}");
}

#[tokio::test]
async fn a_stack_that_does_not_answer_is_named_before_the_run() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listening = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listening.local_addr().unwrap();
    let stack = Stack {
        dir: PathBuf::from("stack"),
        target: format!("http://{free}"),
        prometheus: format!("http://{up}"),
        alertmanager: "http://127.0.0.1:9".to_owned(),
        chaos_token: "t".to_owned(),
        notify_listen: "0.0.0.0:9097".parse().unwrap(),
    };
    let mut a = args(&[]);
    stack.apply(&mut a);
    let e = stack.check_up(&a, Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(
            e,
            StackError::Down {
                service: "target-app",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("docker compose up -d"), "{e}");

    // The target given by a flag is not the stack's to check; the stack's Prometheus answers.
    let mut a = args(&["--target", "http://127.0.0.1:1"]);
    stack.apply(&mut a);
    stack.check_up(&a, Duration::from_secs(5)).await.unwrap();
}

//! The command line: `run`, `validate`, `plan`, `coverage`, `schema` and `merge`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Scenario-driven load and fault generator that checks alerts fire.
///
/// Every expectation ends PASS, FAIL or NOT VERIFIED. Exit codes: 0 every expectation was observed to
/// hold; 1 an expectation was observed to fail; 2 bad scenario file or usage; 3 the run could not be
/// carried out (the chaos API unreachable or refusing the faults); 4 none failed, but one or more are
/// NOT VERIFIED (Prometheus unreachable or not installed, no request completed); 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario against a target (by default, an embedded target-app and its downstream).
    Run(Box<RunArgs>),
    /// Check scenario files and report every problem with its position.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show a scenario's timeline, rate chart, faults and expectations without sending anything;
    /// with `--predict`, also when each alert would fire.
    Plan {
        /// Scenario file.
        file: PathBuf,
        #[command(flatten)]
        predict: crate::cmd::predict::PlanPredict,
    },
    /// List every alerting rule against every scenario: expected, predicted to fire, or neither.
    Coverage(crate::cmd::predict::CoverageArgs),
    /// Print the JSON schema of scenario files, for editors.
    Schema,
    /// Combine the JSON reports of the shards of one scenario (`run --shard i/N`) into one report.
    Merge(MergeArgs),
}

/// Options of `loadgen merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// JSON reports written by `loadgen run --shard i/N --json FILE`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Write the merged JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the merged HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// No summary on stdout.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of `loadgen run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Scenario file (without one, `--rps` starts free play).
    #[arg(required_unless_present = "rps")]
    pub file: Option<PathBuf>,

    /// Free play, without a scenario: one phase sending `GET /` at RPS requests per second, for up to
    /// 24 h, until stopped (Ctrl-C, or `stop` from `--control`, which steers it meanwhile). `--record`
    /// makes it a scenario afterwards.
    #[arg(long, value_name = "RPS", conflicts_with = "file")]
    pub rps: Option<f64>,

    /// Base URL of a running target (e.g. http://localhost:8080). Without it, the target-app and its
    /// downstream are started embedded on loopback ports.
    #[arg(long)]
    pub target: Option<String>,

    /// The bundled stack, started with `docker compose up -d` in DIR (`stack` when no DIR is given):
    /// its target-app and Prometheus at their published ports, the chaos token from DIR/.env, and a
    /// listener on the port its Alertmanager notifies (`host.docker.internal` in
    /// DIR/alertmanager/alertmanager.yml), each unless its own flag gives it. Refused with a reason
    /// when a file is missing or the stack does not answer.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = crate::cmd::run::stack::DEFAULT_DIR)]
    pub stack: Option<PathBuf>,

    /// Bearer token for the target's chaos API.
    #[arg(long, env = "CHAOS_TOKEN", hide_env_values = true)]
    pub chaos_token: Option<String>,

    /// Trust the CA certificates in FILE (PEM) for https, beside the system's trust store.
    #[arg(long, value_name = "FILE", help_heading = "TLS and HTTP")]
    pub cacert: Option<PathBuf>,

    /// Client certificate chain (PEM), for servers that require one (mutual TLS). Needs --key.
    #[arg(long, value_name = "FILE", requires = "key", help_heading = "TLS and HTTP")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of the --cert certificate.
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS and HTTP")]
    pub key: Option<PathBuf>,

    /// Do not verify server certificates (a warning is printed at start).
    #[arg(long, short = 'k', help_heading = "TLS and HTTP")]
    pub insecure: bool,

    /// Offer HTTP/2 by ALPN (https targets); the server may still choose HTTP/1.1. Requests share
    /// one connection, as many at once as the server allows.
    #[arg(long, conflicts_with = "http2_prior_knowledge", help_heading = "TLS and HTTP")]
    pub http2: bool,

    /// Speak HTTP/2 without negotiation (h2c) to a cleartext http:// target.
    #[arg(long, help_heading = "TLS and HTTP")]
    pub http2_prior_knowledge: bool,

    /// Open loop: `precise` wakes on the OS clock at each send time (tens of microseconds late),
    /// at most once every 500 µs, sending all that is due; `timer` on the async runtime's
    /// millisecond timer (up to 1 ms late).
    #[arg(long, value_enum, default_value_t = crate::engine::Pacing::Precise)]
    pub pacing: crate::engine::Pacing,

    /// Keep-alive connections idle longer than this are not reused. Keep it below the server's own
    /// idle timeout (requests written just as a server closes an idle connection fail).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "900ms", help_heading = "TLS and HTTP")]
    pub idle_timeout: std::time::Duration,

    /// After Ctrl-C, SIGTERM or the last phase, how long requests in flight may still finish; the
    /// rest are cancelled (counted as `cancelled`). Never more than the scenario's request timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub drain: std::time::Duration,

    /// Replace the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Prometheus to ask about alerts (e.g. http://localhost:9090). Without it, when the scenario
    /// expects alerts, a private Prometheus is started if one is installed.
    #[arg(long)]
    pub prometheus: Option<String>,

    /// Count only alerts whose labels satisfy these PromQL label matchers, e.g. `job="my-service"` or
    /// `job="api", instance=~"10\\.0\\..*"`. By default an alert counts when its `job` and `instance`
    /// are those Prometheus' targets give the target's host and port.
    #[arg(long, value_name = "MATCHERS")]
    pub alert_match: Option<crate::alerts::scope::Matchers>,

    /// Bearer token for --prometheus (better given in the environment than on the command line).
    #[arg(long, env = "PROMETHEUS_TOKEN", hide_env_values = true)]
    pub prometheus_token: Option<String>,

    /// Basic auth for --prometheus, as `USER:PASSWORD`.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "PROMETHEUS_BASIC_AUTH",
        hide_env_values = true,
        conflicts_with = "prometheus_token"
    )]
    pub prometheus_basic_auth: Option<String>,

    /// CA certificate (PEM) that signs --prometheus's certificate, when it is https and not signed by
    /// a system root. The target's TLS flags never apply to Prometheus.
    #[arg(long, value_name = "FILE")]
    pub prometheus_cacert: Option<PathBuf>,

    /// Do not verify --prometheus's certificate.
    #[arg(long)]
    pub prometheus_insecure: bool,

    /// Do not check the scenario's alert expectations: they are listed as SKIPPED and do not stand in
    /// the way of exit code 0. Without it, an alert expectation that cannot be checked (no
    /// Prometheus, Prometheus unreachable) is NOT VERIFIED and the run exits 4.
    #[arg(long, conflicts_with_all = ["prometheus", "alert_match", "alertmanager", "alertmanager_config", "rules"])]
    pub no_alerts: bool,

    /// Do not check the scenario's `alerts_notified` expectations: they are listed as SKIPPED and do
    /// not stand in the way of exit code 0.
    #[arg(long)]
    pub no_notifications: bool,

    /// Alertmanager (`host:port`) that the private Prometheus sends its alerts to, instead of a
    /// private one.
    #[arg(long, value_name = "HOST:PORT")]
    pub alertmanager: Option<String>,

    /// Run the private Alertmanager with this configuration (routing tree, inhibit rules, time
    /// intervals, templates) instead of the stack's, every HTTP receiver's endpoint pointed at
    /// loadgen, which captures what each receiver would send on `/receivers/<name>/<kind>`. Email and
    /// other receivers without an HTTP endpoint are removed and listed as not captured. Checked with
    /// `amtool check-config` first.
    #[arg(long, value_name = "FILE")]
    pub alertmanager_config: Option<PathBuf>,

    /// Ask this Alertmanager's API (e.g. `http://127.0.0.1:9093`) every second during the run which
    /// alerts it holds and which it inhibits, for the `inhibited` and `not_notified` checks, when
    /// loadgen runs no Alertmanager of its own (`--stack` gives the stack's).
    #[arg(long, value_name = "URL")]
    pub alertmanager_api: Option<String>,

    /// Write the message each receiver rendered to the scenario's `snapshot` files instead of
    /// comparing it with them (those checks are then SKIPPED); review the files and commit them.
    #[arg(long)]
    pub update_snapshots: bool,

    /// Receive Alertmanager's webhook notifications here (e.g. `0.0.0.0:9097`, path `/alerts`) and
    /// time each one. A private Alertmanager gets a loopback receiver of its own without it.
    #[arg(long, value_name = "ADDR")]
    pub notify_listen: Option<std::net::SocketAddr>,

    /// Rule files (`*.yml`) for the private Prometheus, instead of the stack's.
    #[arg(long)]
    pub rules: Option<PathBuf>,

    /// Run only slice I of N of the schedule (`I/N`, from 0).
    #[arg(long, value_name = "I/N", value_parser = str::parse::<crate::schedule::Shard>)]
    pub shard: Option<crate::schedule::Shard>,

    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the HTML report here: one self-contained page with charts and tables.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Write the embedded target's JSON logs here.
    #[arg(long, value_name = "FILE")]
    pub target_logs: Option<PathBuf>,

    /// Most bytes read from one answer, at most 1073741824 (1 GiB); the rest is counted as
    /// `body_too_large`.
    #[arg(long, value_name = "BYTES", default_value_t = crate::client::DEFAULT_BODY_CAP, value_parser = parse_body_cap)]
    pub body_cap: usize,

    /// Serve the generator's own metrics (Prometheus text) at `http://ADDR/metrics` while running,
    /// e.g. `127.0.0.1:9464`, or `0.0.0.0:9464` for a Prometheus on another host.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Keep serving `/metrics` this long after the reports are written (e.g. `15s`), so a last scrape
    /// sees the final counts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "metrics_addr")]
    pub metrics_linger: Option<std::time::Duration>,

    /// Steer the run live: the console page at `http://ADDR/` and a JSON API (`/api/state`,
    /// `/api/control`) change the rate, pause, end or extend phases and switch faults. Without a
    /// value, 127.0.0.1:7070. An address beyond loopback needs a token (`LOADGEN_CONTROL_TOKEN`).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7070")]
    pub control: Option<std::net::SocketAddr>,

    /// Bearer token every control request must carry; required when `--control` listens beyond
    /// loopback.
    #[arg(long, env = "LOADGEN_CONTROL_TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,

    /// Write the run as driven to FILE: a scenario whose phases are split at every live change, with
    /// the same seed, rates and faults, that replays the run.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// No live panel: a plain progress line every 5 s on stderr instead (as when stderr is not a
    /// terminal), then the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A duration of at most a year ([`target_app::duration::MAX`]).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    target_app::duration::parse(text).map_err(|e| e.to_string())
}

/// Largest `--body-cap`: each request in flight may hold this much.
pub const MAX_BODY_CAP: usize = 1 << 30;

fn parse_body_cap(text: &str) -> Result<usize, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a whole number of bytes".to_owned());
    }
    text.parse::<usize>()
        .ok()
        .filter(|n| *n <= MAX_BODY_CAP)
        .ok_or_else(|| format!("at most {MAX_BODY_CAP} bytes (1 GiB)"))
}

/// The options of `loadgen run s.toml FLAGS…`, for tests of what reads them.
#[cfg(test)]
pub(crate) fn run_args(flags: &[&str]) -> RunArgs {
    let argv = ["loadgen", "run", "s.toml"]
        .into_iter()
        .chain(flags.iter().copied());
    match Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{e}"))
        .command
    {
        Command::Run(args) => *args,
        other => panic!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use proptest::prelude::*;

    use super::{Cli, Command};
    use crate::schedule::Shard;

    fn shard(value: &str) -> Result<Option<Shard>, clap::Error> {
        let cli = Cli::try_parse_from(["loadgen", "run", "s.toml", "--shard", value])?;
        match cli.command {
            Command::Run(args) => Ok(args.shard),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shard_is_parsed_by_the_command_line() {
        assert_eq!(shard("2/4").unwrap(), Shard::new(2, 4));
        for bad in ["4/4", "2", "a/4"] {
            let e = shard(bad).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            let text = e.to_string();
            assert!(
                text.contains("--shard") && text.contains(&format!("invalid shard `{bad}`")),
                "{text}"
            );
        }
        let cli = Cli::try_parse_from(["loadgen", "run", "s.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Run(args) if args.shard.is_none()));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Sizes and durations at the edges (0, 1, u64::MAX, past u128, negative, any text): each is
        /// refused or within its maximum.
        #[test]
        fn flag_values_are_refused_or_within_the_maxima(
            number in prop_oneof![
                Just("0".to_owned()),
                Just("1".to_owned()),
                Just("-1".to_owned()),
                Just(u64::MAX.to_string()),
                Just((super::MAX_BODY_CAP + 1).to_string()),
                "[0-9]{1,60}",
                any::<u64>().prop_map(|n| n.to_string()),
                any::<String>(),
            ],
            unit in prop::sample::select(vec!["", "ms", "s", "m", "h"]),
        ) {
            if let Ok(size) = super::parse_body_cap(&number) {
                prop_assert!(size <= super::MAX_BODY_CAP, "{number}");
            }
            if let Ok(d) = super::parse_duration(&format!("{number}{unit}")) {
                prop_assert!(d <= target_app::duration::MAX, "{number}{unit}");
            }
        }
    }

    fn run_error(args: &[&str]) -> String {
        let mut argv = vec!["loadgen", "run", "s.toml"];
        argv.extend_from_slice(args);
        let e = Cli::try_parse_from(argv).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{args:?}");
        e.to_string()
    }

    #[test]
    fn durations_and_sizes_past_their_maxima_are_refused() {
        for flag in ["--drain", "--idle-timeout"] {
            for value in ["18446744073709551615s", "8761h", "99999999999999999999999ms"] {
                let text = run_error(&[flag, value]);
                assert!(
                    text.contains(flag) && text.contains("at most 8760h"),
                    "{flag} {value}: {text}"
                );
            }
        }
        let text = run_error(&[
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "18446744073709551615s",
        ]);
        assert!(
            text.contains("--metrics-linger") && text.contains("at most 8760h"),
            "{text}"
        );
        for value in ["1073741825", "18446744073709551616"] {
            let text = run_error(&["--body-cap", value]);
            assert!(
                text.contains("--body-cap") && text.contains("at most 1073741824"),
                "{text}"
            );
        }
        let text = run_error(&["--body-cap=-1"]);
        assert!(text.contains("--body-cap"), "{text}");
        let cli = Cli::try_parse_from([
            "loadgen",
            "run",
            "s.toml",
            "--drain",
            "8760h",
            "--body-cap",
            "1073741824",
        ])
        .unwrap();
        match cli.command {
            Command::Run(args) => {
                assert_eq!(args.drain, target_app::duration::MAX);
                assert_eq!(args.body_cap, super::MAX_BODY_CAP);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alert_match_is_validated_by_the_command_line() {
        let cli = Cli::try_parse_from(["loadgen", "run", "s.toml", "--alert-match", r#"job="api""#]).unwrap();
        match cli.command {
            Command::Run(args) => assert_eq!(args.alert_match.unwrap().to_string(), r#"{job="api"}"#),
            other => panic!("{other:?}"),
        }
        let e = Cli::try_parse_from(["loadgen", "run", "s.toml", "--alert-match", "job=api"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("--alert-match") && text.contains("at column 5: expected a quoted value"),
            "{text}"
        );
    }
}

//! The command line: `run`, `validate`, `plan`, `coverage`, `schema` and `merge`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Scenario-driven load and fault generator that checks alerts fire.
///
/// Exit codes: 0 every expectation held; 1 an expectation failed; 2 bad scenario file or usage;
/// 3 the run could not be carried out (target or chaos API unreachable); 130 interrupted.
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
        predict: crate::predict::cmd::PlanPredict,
    },
    /// List every alerting rule against every scenario: expected, predicted to fire, or neither.
    Coverage(crate::predict::cmd::CoverageArgs),
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
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file.
    pub file: PathBuf,

    /// Base URL of a running target (e.g. http://localhost:8080). Without it, the target-app and its
    /// downstream are started embedded on loopback ports.
    #[arg(long)]
    pub target: Option<String>,

    /// Bearer token for the target's chaos API.
    #[arg(long, env = "CHAOS_TOKEN", hide_env_values = true)]
    pub chaos_token: Option<String>,

    /// Replace the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Prometheus to ask about alerts (e.g. http://localhost:9090). Without it, when the scenario
    /// expects alerts, a private Prometheus is started if one is installed.
    #[arg(long)]
    pub prometheus: Option<String>,

    /// Alertmanager (`host:port`) that the private Prometheus sends its alerts to.
    #[arg(long, value_name = "HOST:PORT")]
    pub alertmanager: Option<String>,

    /// Rule files (`*.yml`) for the private Prometheus, instead of the stack's.
    #[arg(long)]
    pub rules: Option<PathBuf>,

    /// Run only slice I of N of the schedule (`I/N`, from 0).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the HTML report here: one self-contained page with charts and tables.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Write the embedded target's JSON logs here.
    #[arg(long, value_name = "FILE")]
    pub target_logs: Option<PathBuf>,

    /// Most bytes read from one answer; the rest is counted as `body_too_large`.
    #[arg(long, default_value_t = crate::client::DEFAULT_BODY_CAP)]
    pub body_cap: usize,

    /// Serve the generator's own metrics (Prometheus text) at `http://ADDR/metrics` while running,
    /// e.g. `127.0.0.1:9464`, or `0.0.0.0:9464` for a Prometheus on another host.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Keep serving `/metrics` this long after the reports are written (e.g. `15s`), so a last scrape
    /// sees the final counts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "metrics_addr")]
    pub metrics_linger: Option<std::time::Duration>,

    /// No live panel: a plain progress line every 5 s on stderr instead (as when stderr is not a
    /// terminal), then the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    target_app::duration::parse(text).map_err(|e| e.to_string())
}

//! The command line: `run`, `validate`, `plan` and `schema`.

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
    /// Show a scenario's timeline, rate chart, faults and expectations without sending anything.
    Plan {
        /// Scenario file.
        file: PathBuf,
    },
    /// Print the JSON schema of scenario files, for editors.
    Schema,
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

    /// Write the embedded target's JSON logs here.
    #[arg(long, value_name = "FILE")]
    pub target_logs: Option<PathBuf>,

    /// Most bytes read from one answer; the rest is counted as `body_too_large`.
    #[arg(long, default_value_t = crate::client::DEFAULT_BODY_CAP)]
    pub body_cap: usize,

    /// No progress display; only the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

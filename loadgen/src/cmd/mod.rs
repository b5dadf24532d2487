//! The subcommands, from parsed arguments to an exit code: the command line ([`cli`]), one file per
//! subcommand ([`run`], [`validate`], [`plan`], [`coverage`], [`merge`]; `schema` is one line here),
//! what the predicting ones share ([`predict`]), and the exit codes ([`exit`]). Printing to the
//! terminal and choosing exit codes happen here and nowhere below.

pub mod cli;
pub mod coverage;
pub mod exit;
pub mod merge;
pub mod plan;
pub mod predict;
pub mod run;
pub mod validate;

use tokio::sync::watch;

use crate::scenario;
use cli::{Cli, Command};
use exit::EXIT_PASS;

/// Runs the command; `stop` turns true when the user asks to stop.
pub async fn main(cli: Cli, stop: watch::Receiver<bool>) -> u8 {
    match cli.command {
        Command::Run(args) => run::run_command(&args, stop).await,
        Command::Validate { files } => validate::validate(&files),
        Command::Plan { file, predict } => plan::plan(&file, &predict),
        Command::Coverage(args) => coverage::coverage(&args),
        Command::Merge(args) => merge::merge(&args),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scenario::json_schema()).unwrap_or_default()
            );
            EXIT_PASS
        }
    }
}

/// Loads and checks the scenario at `path`, printing every problem; the exit code when it is bad.
pub(crate) fn load(path: &std::path::Path) -> Result<scenario::Scenario, u8> {
    let s = scenario::load(path).map_err(|d| {
        eprint!("{d}");
        exit::EXIT_USAGE
    })?;
    crate::schedule::check_size(&s).map_err(|problem| {
        eprintln!("error: {problem}\n  --> {}", path.display());
        exit::EXIT_USAGE
    })?;
    Ok(s)
}

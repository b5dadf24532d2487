use std::process::ExitCode;

use clap::Parser;
use target_app::telemetry::logs;

#[tokio::main]
async fn main() -> ExitCode {
    let config = target_app::Config::parse();
    let logs = logs::init(Box::new(std::io::stdout()));
    let result = target_app::run(config).await;
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "target-app failed");
            eprintln!("target-app: {e:#}");
            ExitCode::FAILURE
        }
    };
    drop(logs);
    code
}

use std::process::ExitCode;

use clap::Parser;
use target_app::telemetry::logs;

// Spans are allocated on request threads and freed on the exporter's. Beside glibc's malloc, pinned, this
// allocator served about half again as many requests per CPU-second with all signals on, and about a
// quarter more with telemetry off (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = target_app::Config::parse();
    let logs = logs::open(Box::new(std::io::stdout()));
    let result = target_app::run(config, &logs).await;
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

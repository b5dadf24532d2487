use std::process::ExitCode;

use clap::Parser;
use loadgen::cmd::cli::Cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // On one core (e.g. pinned with taskset), tasks are woken and run on the thread that drives I/O
    // rather than handed to a worker thread.
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut runtime = if one_core {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("loadgen: cannot start the async runtime: {e}");
            ExitCode::from(loadgen::cmd::exit::EXIT_RUN_ERROR)
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        eprintln!(
            "\nloadgen: stopping: finishing in-flight requests and clearing faults (Ctrl-C again to cut \
             the drain short)"
        );
        let _ = stop_tx.send(true);
        stop_signal().await;
        // Sent again, the same stop cuts the drain short: requests in flight are cancelled at once,
        // and the faults are still cleared and the reports written.
        eprintln!(
            "loadgen: cutting the drain short: cancelling requests in flight, clearing faults (Ctrl-C \
             again to quit at once)"
        );
        let _ = stop_tx.send(true);
        stop_signal().await;
        eprintln!("loadgen: quitting at once");
        loadgen::control::keys::restore();
        #[allow(
            clippy::exit,
            reason = "a third Ctrl-C must end the process whatever the run is doing; the private \
                      Prometheus and Alertmanager die with it (PR_SET_PDEATHSIG)"
        )]
        std::process::exit(130);
    });
    let code = loadgen::cmd::main(cli, stop_rx).await;
    ExitCode::from(code)
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

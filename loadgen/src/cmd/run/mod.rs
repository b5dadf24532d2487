//! One invocation of loadgen, from parsed arguments to an exit code. `loadgen run` loads the scenario,
//! fills in what `--stack` gives ([`stack`]: the bundled stack's addresses and chaos token), checks it
//! with the options into a [`RunPlan`] ([`plan`]), and [`run`] carries the plan out: sets up
//! the target and (when alerts are expected) Prometheus (`alerting`), runs the engine beside the
//! recorder, the live displays and the alert watcher, then writes the reports. Printing to the
//! terminal happens here and nowhere below; exit codes are chosen here only.

mod alerting;
pub mod embedded;
pub mod plan;
mod snapshots;
pub mod stack;

use std::io::Write;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::chaos::ChaosClient;
use crate::client::{BadTarget, Client};
use crate::cmd::cli::RunArgs;
use crate::cmd::exit::{EXIT_INTERRUPTED, EXIT_RUN_ERROR, EXIT_USAGE};
use crate::cmd::run::embedded::Embedded;
use crate::engine::stats::Recorder;
use crate::engine::{Ending, Engine, EngineError};
use crate::report::{self, Summary};
use alerting::{Alerting, Receiver};
pub use plan::{RunPlan, Target};

/// `loadgen run`: loads the scenario, checks the options against it, runs the plan.
pub async fn run_command(args: &RunArgs, cancel: watch::Receiver<bool>) -> u8 {
    let scenario = match crate::cmd::load(&args.file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut args = args.clone();
    let stack = match &args.stack {
        Some(dir) => match stack::Stack::read(dir, args.chaos_token.is_none()) {
            Ok(stack) => {
                let given = stack.apply(&mut args);
                Some((stack, given))
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                return EXIT_USAGE;
            }
        },
        None => None,
    };
    let plan = match RunPlan::new(&args, scenario) {
        Ok(plan) => plan,
        Err(errors) => {
            for e in errors {
                eprintln!("loadgen: {e}");
            }
            return EXIT_USAGE;
        }
    };
    if let Some((stack, given)) = stack {
        if let Err(e) = stack.check_up(&args, std::time::Duration::from_secs(3)).await {
            eprintln!("loadgen: {e}");
            return EXIT_RUN_ERROR;
        }
        eprintln!("loadgen: {}", stack.describe(&given));
    }
    exit_code(&run(plan, cancel).await)
}

/// The exit code of a run's result.
pub fn exit_code(result: &Result<Summary, RunError>) -> u8 {
    match result {
        Err(e) => e.exit_code(),
        Ok(summary) if summary.interrupted() => EXIT_INTERRUPTED,
        Ok(summary) => crate::cmd::exit::of_verdict(summary.result),
    }
}

/// Why a run could not be carried out, or not to its end. Each was told on stderr when it happened.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listening address given on the command line could not be bound.
    #[error("{flag} {addr}: {source}")]
    Bind {
        flag: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("--target-logs {}: {source}", path.display())]
    TargetLogs {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The embedded target did not start.
    #[error(transparent)]
    Embedded(#[from] crate::cmd::run::embedded::EmbedError),
    /// The target cannot be spoken to with these options (TLS files, protocol).
    #[error(transparent)]
    Target(BadTarget),
    /// `--prometheus` cannot be spoken to with these options.
    #[error("--prometheus: {0}")]
    Prometheus(BadTarget),
    /// The recorder failed: no statistics were kept.
    #[error("the recorder failed, no statistics were kept: {0}")]
    Recorder(tokio::task::JoinError),
    /// The engine stopped (faults could not be applied); the reports of what ran were written.
    #[error("{source}")]
    Engine {
        source: EngineError,
        summary: Box<Summary>,
    },
    /// A report could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl RunError {
    /// [`EXIT_USAGE`] for what the options caused, [`EXIT_RUN_ERROR`] for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Bind { .. }
            | RunError::TargetLogs { .. }
            | RunError::Target(_)
            | RunError::Prometheus(_) => EXIT_USAGE,
            RunError::Embedded(_) | RunError::Recorder(_) | RunError::Engine { .. } | RunError::Write(_) => {
                EXIT_RUN_ERROR
            }
        }
    }
}

/// Tells `e` on stderr and hands it back.
fn told(e: RunError) -> RunError {
    eprintln!("loadgen: {e}");
    e
}

/// Binds `addr`, given as `flag`, if given.
async fn bind(
    flag: &'static str,
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<TcpListener>, RunError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(source) => Err(told(RunError::Bind { flag, addr, source })),
    }
}

/// Carries out `plan`: binds its listeners, starts or finds the target and what checks the alerts,
/// runs the engine beside the recorder, the live displays and the alert watcher, then prints the
/// summary and writes the reports. `cancel` turning true stops the run: requests in flight drain, the
/// faults are cleared and the reports are still written (the summary then says `interrupted`).
///
/// Every problem is told on stderr as it is met; the error returned says which one ended the run.
pub async fn run(plan: RunPlan, cancel: watch::Receiver<bool>) -> Result<Summary, RunError> {
    let scenario = plan.scenario.clone();
    if plan.peers.target.tls.insecure {
        eprintln!("loadgen: warning: --insecure: server certificates are not verified");
    }

    // Bound before anything starts, so a busy port is a usage error, not a surprise mid-run.
    let metrics_listener = bind("--metrics-addr", plan.outputs.metrics_addr).await?;
    if let Some(bound) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok()) {
        // Told even with --quiet: with port 0 this is the only way to learn the port.
        eprintln!("loadgen: metrics at http://{bound}/metrics");
    }
    let receiver = bind("--notify-listen", plan.alerts.notify_listen)
        .await?
        .map(Receiver::new);
    if let Some(r) = &receiver {
        // Told even with --quiet: with port 0 this is the only way to learn the port.
        eprintln!("loadgen: notifications received at {}", r.webhook());
    }

    // The target: given, or embedded. The embedded target's log writer lives until the end, so its
    // last lines are flushed.
    let mut embedded = None;
    let mut target_logs = None;
    let target_url = match &plan.target {
        Target::Url(url) => {
            if !is_loopback_url(url) {
                eprintln!(
                    "loadgen: sending scenario {} ({}, {} phases) to {url}{}",
                    scenario.name,
                    target_app::duration::format(scenario.duration()),
                    scenario.phases.len(),
                    if scenario.phases.iter().any(|p| !p.chaos.is_empty()) {
                        ", and applying its faults there"
                    } else {
                        ""
                    }
                );
            }
            url.clone()
        }
        Target::Embedded { logs } => {
            if let Some(path) = logs {
                match std::fs::File::create(path) {
                    Ok(f) => target_logs = Some(target_app::telemetry::logs::init(Box::new(f))),
                    Err(source) => {
                        return Err(told(RunError::TargetLogs {
                            path: path.clone(),
                            source,
                        }))
                    }
                }
            }
            let e = Embedded::start(|_| {}).await.map_err(|e| told(e.into()))?;
            let url = e.url();
            embedded = Some(e);
            url
        }
    };

    // The clients and the alert checks, set up before the load starts so that bad TLS files are a
    // usage error.
    let clients = Client::new(&target_url, &plan.peers.target).and_then(|c| {
        let chaos = ChaosClient::new(&target_url, plan.chaos_token.as_deref(), &plan.peers.chaos)?;
        Ok((Arc::new(c), chaos))
    });
    let alerting = match clients {
        Ok(clients) => Alerting::start(&plan, &target_url, embedded.as_ref(), receiver)
            .await
            .map(|alerting| (clients, alerting))
            .map_err(RunError::Prometheus),
        Err(e) => Err(RunError::Target(e)),
    };
    let ((client, chaos), mut alerting) = match alerting {
        Ok(set) => set,
        Err(e) => {
            let e = told(e);
            if let Some(embedded) = embedded {
                embedded.stop().await;
            }
            return Err(e);
        }
    };

    // The run: the engine publishes its position, the recorder merges it with its counts into the
    // one snapshot that the panel, the metrics endpoint and the alert watcher read.
    // The watcher's first answer is taken just before the run starts, so its first instant is known.
    let watcher = match alerting.checked.clone() {
        Some((api, scope)) => Some(crate::alerts::watch::Watcher::start(api, scope).await),
        None => None,
    };
    let start = Instant::now();
    if let Some(r) = &alerting.receiver {
        r.inbox.restart(start);
    }
    alerting.watch_alertmanager(start, &plan.alerts);
    let (position, position_rx) = watch::channel(crate::shared::Position::default());
    let (snapshot, snapshot_rx) = crate::shared::snapshot::channel();
    let sink = crate::engine::stats::Sink::new();
    let mix_sizes: Vec<usize> = scenario.phases.iter().map(|p| p.mix.requests().len()).collect();
    let recorder = Recorder::new(&mix_sizes, start, scenario.duration());
    let recorder = tokio::spawn(recorder.run(sink.clone(), position_rx, snapshot.clone()));
    let watcher = watcher.map(|w| tokio::spawn(w.run(start, snapshot.clone())));
    let progress = tokio::spawn(crate::report::live::show(
        crate::report::live::Sources {
            scenario: scenario.clone(),
            shard: plan.shard,
            snapshot: snapshot_rx.clone(),
            predicted: alerting.predicted(),
            notified: alerting.receiver.as_ref().map(|r| r.inbox.clone()),
            start,
            stop: cancel.clone(),
        },
        crate::report::live::Style::detect(plan.outputs.quiet),
    ));
    let (metrics_stop, metrics_stop_rx) = watch::channel(false);
    let metrics_server = metrics_listener.map(|listener| {
        let sources = crate::report::exporter::Sources {
            scenario: scenario.clone(),
            shard: plan.shard,
            snapshot: snapshot_rx.clone(),
        };
        tokio::spawn(crate::report::exporter::serve(listener, sources, metrics_stop_rx))
    });
    let engine = Engine {
        scenario: scenario.clone(),
        client: client.clone(),
        chaos: Some(chaos),
        shard: plan.shard,
        starts: crate::schedule::PhaseStarts::new(&scenario),
        samples: sink,
        stop: cancel.clone(),
        position,
        start,
        drain: plan.drain,
        pacing: plan.pacing,
    };
    // The recorder ends once the engine has returned and dropped its position channel.
    let (result, timeline) = engine.run().await;
    let stats = recorder.await.map_err(|e| told(RunError::Recorder(e)))?;
    let _ = progress.await;
    if let Some(why) = client.tls_failure() {
        eprintln!("loadgen: {why}");
    }
    let watched = match watcher {
        Some(w) => Some(w.await.unwrap_or_default()),
        None => None,
    };
    let alert_report = alerting.finish(&plan, watched, &timeline);
    if let Some(e) = embedded {
        e.stop().await;
    }
    drop(target_logs);

    let ending = match &result {
        Ok(ending) => *ending,
        Err(e) => {
            eprintln!("loadgen: {e}");
            Ending::Interrupted
        }
    };
    let summary = report::summarize(
        &scenario,
        &target_url,
        plan.shard,
        &stats,
        &timeline,
        ending,
        alert_report,
    );
    let mut out = std::io::stdout().lock();
    let _ = report::write_text(&summary, &mut out);
    let _ = out.flush();
    write_reports(
        &summary,
        plan.outputs.json.as_deref(),
        plan.outputs.html.as_deref(),
    )
    .map_err(|e| told(e.into()))?;
    if let Some(server) = metrics_server {
        if let Some(linger) = plan.outputs.metrics_linger {
            let mut cancel = cancel.clone();
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                _ = cancel.wait_for(|s| *s) => {}
            }
        }
        let _ = metrics_stop.send(true);
        let _ = server.await;
    }
    match result {
        Ok(_) => Ok(summary),
        Err(source) => Err(RunError::Engine {
            source,
            summary: Box::new(summary),
        }),
    }
}

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: std::path::PathBuf,
    pub source: std::io::Error,
}

/// Writes the JSON and HTML reports that were asked for.
pub fn write_reports(
    summary: &Summary,
    json: Option<&std::path::Path>,
    html: Option<&std::path::Path>,
) -> Result<(), WriteError> {
    let write = |path: &std::path::Path,
                 f: &dyn Fn(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>| {
        let written = std::fs::File::create(path).and_then(|file| {
            let mut w = std::io::BufWriter::new(file);
            f(&mut w)?;
            w.flush()
        });
        written.map_err(|source| WriteError {
            path: path.to_owned(),
            source,
        })
    };
    if let Some(path) = json {
        write(path, &|w| report::write_json(summary, w))?;
    }
    if let Some(path) = html {
        write(path, &|w| crate::report::html::write_html(summary, w))?;
    }
    Ok(())
}

fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

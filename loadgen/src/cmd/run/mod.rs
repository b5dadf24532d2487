//! One invocation of loadgen, from parsed arguments to an exit code. `loadgen run` loads the scenario,
//! fills in what `--stack` gives ([`stack`]: the bundled stack's addresses and chaos token), checks it
//! with the options into a [`RunPlan`] ([`plan`]), and [`run`] carries the plan out: sets up
//! the target and (when alerts are expected) Prometheus (`alerting`), runs the engine beside the
//! recorder, the live displays and the alert watcher, then writes the reports. Printing to the
//! terminal happens here and nowhere below; exit codes are chosen here only.

mod alerting;
pub mod embedded;
pub mod free;
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
    let (scenario, source) = match (&args.file, args.rps) {
        (Some(file), _) => match crate::cmd::load(file) {
            Ok(s) => (s, std::fs::read_to_string(file).unwrap_or_default()),
            Err(code) => return code,
        },
        (None, rps) => match free::scenario(rps.unwrap_or(0.0), args.seed) {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("loadgen: {e}");
                return EXIT_USAGE;
            }
        },
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
        Ok(mut plan) => {
            plan.source = source;
            plan
        }
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
    let control_listener = bind("--control", plan.outputs.control.as_ref().map(|c| c.addr)).await?;
    if let Some(bound) = control_listener.as_ref().and_then(|l| l.local_addr().ok()) {
        // Told even with --quiet: with port 0 this is the only way to learn the port.
        eprintln!("loadgen: control at http://{bound}/");
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
    // Phases extended live run past the scenario's length: the series keeps room for that.
    let horizon = match &control_listener {
        Some(_) => scenario
            .duration()
            .saturating_add(crate::shared::control::MAX_EXTEND),
        None => scenario.duration(),
    };
    let recorder = Recorder::new(&mix_sizes, start, horizon);
    let recorder = tokio::spawn(recorder.run(sink.clone(), position_rx, snapshot.clone()));
    let watcher = watcher.map(|w| tokio::spawn(w.run(start, snapshot.clone())));
    let (control, steer) = crate::shared::control::channel();
    let style = crate::report::live::Style::detect(plan.outputs.quiet);
    // Keys steer the run under the panel, when stdin is a terminal too.
    let cbreak = match style {
        crate::report::live::Style::Panel => crate::control::keys::cbreak(),
        crate::report::live::Style::Lines => None,
    };
    let keys_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keys = cbreak.as_ref().map(|_| {
        let (steer, done) = (steer.clone(), keys_done.clone());
        let handle = tokio::runtime::Handle::current();
        std::thread::spawn(move || crate::control::keys::read(steer, handle, done))
    });
    let steered = control_listener.is_some() || keys.is_some();
    // After each change the alerts are predicted again from the schedule as it then stands, in the
    // background; the latest plan wins.
    let (predicted_tx, predicted_rx) = watch::channel(alerting.predicted());
    let (planned_tx, mut planned_rx) = watch::channel(scenario.clone());
    let replan = (steered && alerting.predicts()).then(|| {
        let rules = plan.alerts.rules.clone();
        let private = plan.alerts.prometheus.is_none();
        tokio::spawn(async move {
            while planned_rx.changed().await.is_ok() {
                let planned = planned_rx.borrow_and_update().clone();
                let predicted = crate::alerts::predict::live::start(planned, rules.as_deref(), private).await;
                if let Ok(p) = predicted {
                    predicted_tx.send_replace(p.transitions);
                }
            }
        })
    });
    let progress = tokio::spawn(crate::report::live::show(
        crate::report::live::Sources {
            scenario: scenario.clone(),
            shard: plan.shard,
            snapshot: snapshot_rx.clone(),
            predicted: predicted_rx.clone(),
            notified: alerting.receiver.as_ref().map(|r| r.inbox.clone()),
            start,
            stop: cancel.clone(),
            steering: steered.then(|| steer.state.clone()),
            keys: keys.is_some(),
        },
        style,
    ));
    let (metrics_stop, metrics_stop_rx) = watch::channel(false);
    let metrics_server = metrics_listener.map(|listener| {
        let sources = crate::report::exporter::Sources {
            scenario: scenario.clone(),
            shard: plan.shard,
            snapshot: snapshot_rx.clone(),
            steering: steered.then(|| steer.state.clone()),
        };
        tokio::spawn(crate::report::exporter::serve(
            listener,
            sources,
            metrics_stop_rx.clone(),
        ))
    });
    let control_server = control_listener.map(|listener| {
        let sources = crate::control::Sources {
            steer: steer.clone(),
            snapshot: snapshot_rx.clone(),
            scenario: scenario.clone(),
            start,
            token: plan.outputs.control.as_ref().and_then(|c| c.token.clone()),
            predicted: predicted_rx.clone(),
        };
        tokio::spawn(crate::control::serve(listener, sources, metrics_stop_rx.clone()))
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
        control: steered.then_some(control),
        planned: steered.then_some(planned_tx),
    };
    drop(steer);
    // The recorder ends once the engine has returned and dropped its position channel.
    let (result, timeline, driven) = engine.run_driven().await;
    if let Some(replan) = replan {
        replan.abort();
    }
    keys_done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(keys) = keys {
        let _ = keys.join();
    }
    drop(cbreak);
    let stats = recorder.await.map_err(|e| told(RunError::Recorder(e)))?;
    let _ = progress.await;
    if let Some(why) = client.tls_failure() {
        eprintln!("loadgen: {why}");
    }
    let watched = match watcher {
        Some(w) => Some(w.await.unwrap_or_default()),
        None => None,
    };
    alerting.settle().await;
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
    let mut summary = report::summarize(
        &scenario,
        &target_url,
        plan.shard,
        &stats,
        &timeline,
        ending,
        alert_report,
    );
    if !timeline.changes.is_empty() {
        // The rate asked for is the pieces', not the scenario's.
        let pieces = crate::scenario::Scenario {
            phases: driven.pieces.clone(),
            ..(*scenario).clone()
        };
        let spans = crate::shared::Timeline {
            phases: timeline.pieces.clone(),
            ..crate::shared::Timeline::default()
        };
        summary.intended = report::intended_rate(&pieces, &spans, plan.shard);
    }
    let mut out = std::io::stdout().lock();
    let _ = report::write_text(&summary, &mut out);
    let _ = out.flush();
    write_reports(
        &summary,
        plan.outputs.json.as_deref(),
        plan.outputs.html.as_deref(),
    )
    .map_err(|e| told(e.into()))?;
    if let Some(path) = &plan.outputs.record {
        let written = crate::report::record::scenario_toml(&plan.source, &scenario, &driven)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(path, text));
        if let Err(source) = written {
            return Err(told(RunError::Write(WriteError {
                path: path.clone(),
                source,
            })));
        }
        eprintln!("loadgen: the run as driven is in {}", path.display());
    }
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
    let _ = metrics_stop.send(true);
    if let Some(server) = control_server {
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

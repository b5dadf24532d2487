//! One invocation of loadgen, from parsed arguments to an exit code: loads the scenario, sets up the
//! target and (when alerts are expected) Prometheus, runs the engine beside the recorder, progress and
//! alert watcher, then writes the reports. Printing to the terminal happens here and nowhere below.

use std::io::Write;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::alerts::{self, AlertReport};
use crate::chaos_client::ChaosClient;
use crate::cli::{Cli, Command, MergeArgs, RunArgs};
use crate::client::{self, Api, Auth, Client, Protocol};
use crate::engine::{Ending, Engine, EngineError};
use crate::prometheus::LocalPrometheus;
use crate::report;
use crate::scenario::{self, Scenario};
use crate::schedule::Shard;
use crate::scope::Scope;
use crate::stats::Recorder;
use crate::target::Embedded;

/// Every expectation held.
pub const EXIT_PASS: u8 = 0;
/// An expectation failed.
pub const EXIT_FAIL: u8 = 1;
/// Bad scenario file or bad usage.
pub const EXIT_USAGE: u8 = 2;
/// The run could not be carried out.
pub const EXIT_RUN_ERROR: u8 = 3;
/// Stopped by SIGINT or SIGTERM (after writing what it had).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs the command; `stop` turns true when the user asks to stop.
pub async fn main(cli: Cli, stop: watch::Receiver<bool>) -> u8 {
    match cli.command {
        Command::Run(args) => run(*args, stop).await,
        Command::Validate { files } => validate(&files),
        Command::Plan { file, predict } => crate::predict::cmd::plan(&file, &predict),
        Command::Coverage(args) => crate::predict::cmd::coverage(&args),
        Command::Merge(args) => merge(&args),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scenario::json_schema()).unwrap_or_default()
            );
            EXIT_PASS
        }
    }
}

fn load(path: &std::path::Path) -> Result<Scenario, u8> {
    scenario::load(path).map_err(|d| {
        eprint!("{d}");
        EXIT_USAGE
    })
}

fn validate(files: &[std::path::PathBuf]) -> u8 {
    let mut code = EXIT_PASS;
    for f in files {
        match scenario::load(f) {
            Ok(s) => {
                println!(
                    "{}: ok ({} phases, {})",
                    f.display(),
                    s.phases.len(),
                    target_app::duration::format(s.duration())
                );
                crate::predict::cmd::validate_warnings(f, &s);
            }
            Err(d) => {
                eprint!("{d}");
                code = EXIT_USAGE;
            }
        }
    }
    code
}

/// `loadgen merge`.
fn merge(args: &MergeArgs) -> u8 {
    let mut reports = Vec::with_capacity(args.files.len());
    for path in &args.files {
        match crate::merge::read(path) {
            Ok(r) => reports.push((path.clone(), r)),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let merged = match crate::merge::merge(&reports) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return EXIT_USAGE;
        }
    };
    for w in &merged.warnings {
        eprintln!("loadgen: {w}");
    }
    let summary = merged.summary;
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        let _ = report::write_text(&summary, &mut out);
        let _ = out.flush();
    }
    if let Err(code) = write_reports(&summary, args.json.as_deref(), args.html.as_deref()) {
        return code;
    }
    if summary.passed {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}

/// `loadgen run`.
pub async fn run(args: RunArgs, stop: watch::Receiver<bool>) -> u8 {
    let mut scenario = match load(&args.file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let shard = args.shard.unwrap_or(Shard::WHOLE);
    let scenario = Arc::new(scenario);
    let options = client_options(&args, scenario.defaults.max_in_flight.get() as usize);
    if args.insecure {
        eprintln!("loadgen: warning: --insecure: server certificates are not verified");
    }

    // Bound before anything starts, so a busy port is a usage error, not a surprise mid-run.
    let metrics_listener = match args.metrics_addr {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                // Told even with --quiet: with port 0 this is the only way to learn the port.
                if let Ok(bound) = l.local_addr() {
                    eprintln!("loadgen: metrics at http://{bound}/metrics");
                }
                Some(l)
            }
            Err(e) => {
                eprintln!("loadgen: --metrics-addr {addr}: {e}");
                return EXIT_USAGE;
            }
        },
        None => None,
    };

    let notify_listener = match args.notify_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("loadgen: --notify-listen {addr}: {e}");
                return EXIT_USAGE;
            }
        },
        None => None,
    };
    let mut receiver = notify_listener.map(Receiver::new);
    if let Some(r) = &receiver {
        // Told even with --quiet: with port 0 this is the only way to learn the port.
        eprintln!("loadgen: notifications received at {}", r.webhook);
    }

    // The target: given, or embedded. The embedded target's log writer lives until the end, so its
    // last lines are flushed.
    let mut embedded = None;
    let mut target_logs = None;
    let target_url = match &args.target {
        Some(url) => {
            if let Err(problem) = check_target_url(url) {
                eprintln!("loadgen: --target {url}: {problem}");
                return EXIT_USAGE;
            }
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
            url.trim_end_matches('/').to_owned()
        }
        None => {
            target_logs = match &args.target_logs {
                Some(path) => match std::fs::File::create(path) {
                    Ok(f) => Some(target_app::telemetry::logs::init(Box::new(f))),
                    Err(e) => {
                        eprintln!("loadgen: --target-logs {}: {e}", path.display());
                        return EXIT_USAGE;
                    }
                },
                None => None,
            };
            match Embedded::start(|_| {}).await {
                Ok(e) => {
                    let url = e.url();
                    embedded = Some(e);
                    url
                }
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    return EXIT_RUN_ERROR;
                }
            }
        }
    };

    // The clients, built before anything else starts so that bad TLS files are a usage error.
    let clients = Client::new(&target_url, &options).and_then(|c| {
        let chaos = ChaosClient::new(&target_url, args.chaos_token.as_deref(), &options)?;
        Ok((Arc::new(c), chaos))
    });
    let (client, chaos) = match clients {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            if let Some(e) = embedded {
                e.stop().await;
            }
            return EXIT_USAGE;
        }
    };

    // The alerts predicted for the Prometheus that will be asked, made before it and the load start
    // so promtool competes with neither (a few seconds).
    let wants_alerts = scenario.phases.iter().any(|p| p.expect.has_alerts());
    let prediction = if wants_alerts || args.prometheus.is_some() {
        if !args.quiet {
            eprintln!("loadgen: predicting the alerts (promtool)");
        }
        let private = args.prometheus.is_none();
        Some(crate::predict::live::start(scenario.clone(), args.rules.as_deref(), private).await)
    } else {
        None
    };
    let predicted = crate::predict::live::transitions(&prediction);

    // Prometheus, when alerts are expected, and beside a private one a private Alertmanager.
    let mut local_prometheus = None;
    let mut local_alertmanager = None;
    let mut alerts_skipped = None;
    let mut notifications_skipped = None;
    let prometheus_url = match (&args.prometheus, wants_alerts, &embedded) {
        (Some(url), _, _) => Some(url.trim_end_matches('/').to_owned()),
        (None, true, Some(e)) => {
            let mut alertmanager = args.alertmanager.clone();
            if alertmanager.is_none() && crate::prometheus::installed() {
                match start_alertmanager(&mut receiver).await {
                    Ok(am) => {
                        if !args.quiet {
                            eprintln!(
                                "loadgen: notifications go through a private Alertmanager at {} with the \
                                 stack's routing",
                                am.url
                            );
                        }
                        alertmanager = Some(am.addr.clone());
                        local_alertmanager = Some(am);
                    }
                    Err(e) => notifications_skipped = Some(format!("notification checks skipped: {e}")),
                }
            }
            match LocalPrometheus::start(
                &[("target-app", e.app), ("downstream", e.downstream)],
                args.rules.as_deref(),
                alertmanager.as_deref(),
            )
            .await
            {
                Ok(p) => {
                    let url = p.url.clone();
                    if !args.quiet {
                        eprintln!(
                            "loadgen: alert checks use a private Prometheus at {url} with the stack's rules"
                        );
                    }
                    local_prometheus = Some(p);
                    Some(url)
                }
                Err(e) => {
                    alerts_skipped = Some(format!("alert checks skipped: {e}"));
                    None
                }
            }
        }
        (None, true, None) => {
            alerts_skipped = Some("alert checks skipped: no --prometheus given for this target".to_owned());
            None
        }
        (None, false, _) => None,
    };
    // Which alerts count for this run, decided before it starts (a bad URL is reported below).
    let scope = match prometheus_url
        .as_deref()
        .map(|url| Api::new(url, &options, &prometheus_auth(&args)))
    {
        Some(Ok(api)) => {
            let private = local_prometheus.is_some();
            Some(Arc::new(
                alert_scope(&args, &api, &target_url, &embedded, private).await,
            ))
        }
        _ => None,
    };
    if let Some(note) = &alerts_skipped {
        eprintln!("loadgen: {note}");
    }
    let wants_notified = scenario
        .phases
        .iter()
        .any(|p| !p.expect.alerts_notified.is_empty());
    if prometheus_url.is_some() && receiver.is_none() && notifications_skipped.is_none() && wants_notified {
        notifications_skipped =
            Some("notification checks skipped: no --notify-listen given for this Alertmanager".to_owned());
    }
    if prometheus_url.is_none() {
        notifications_skipped = None;
    }
    if let Some(note) = &notifications_skipped {
        eprintln!("loadgen: {note}");
    }
    let alertmanager_name = local_alertmanager
        .as_ref()
        .map_or_else(|| "external".to_owned(), |am| am.url.clone());

    // The run.
    let start = Instant::now();
    if let Some(r) = &receiver {
        r.inbox.restart(start);
    }
    let (position, position_rx) = watch::channel(crate::engine::Position::default());
    let (snapshot, snapshot_rx) = crate::snapshot::channel();
    let sink = crate::stats::Sink::new();
    let mix_sizes: Vec<usize> = scenario.phases.iter().map(|p| p.mix.requests().len()).collect();
    let recorder = Recorder::new(&mix_sizes, start, scenario.duration());
    let recorder = tokio::spawn(recorder.run(sink.clone(), position_rx, snapshot.clone()));
    let prometheus_api = match prometheus_url
        .as_deref()
        .map(|url| Api::new(url, &options, &prometheus_auth(&args)))
    {
        None => None,
        Some(Ok(api)) => Some(Arc::new(api)),
        Some(Err(e)) => {
            eprintln!("loadgen: --prometheus: {e}");
            if let Some(e) = embedded {
                e.stop().await;
            }
            return EXIT_USAGE;
        }
    };
    let watcher = prometheus_api
        .clone()
        .zip(scope.clone())
        .map(|(api, scope)| tokio::spawn(alerts::watch(api, scope, start, snapshot.clone())));
    let progress = tokio::spawn(crate::progress::show(
        crate::progress::Sources {
            scenario: scenario.clone(),
            shard,
            snapshot: snapshot_rx.clone(),
            predicted,
            notified: receiver.as_ref().map(|r| r.inbox.clone()),
            start,
            stop: stop.clone(),
        },
        crate::progress::Style::detect(args.quiet),
    ));
    let (metrics_stop, metrics_stop_rx) = watch::channel(false);
    let metrics_server = metrics_listener.map(|listener| {
        let sources = crate::exporter::Sources {
            scenario: scenario.clone(),
            shard,
            snapshot: snapshot_rx.clone(),
        };
        tokio::spawn(crate::exporter::serve(listener, sources, metrics_stop_rx))
    });
    let engine = Engine {
        scenario: scenario.clone(),
        client: client.clone(),
        chaos: Some(chaos),
        shard,
        starts: crate::schedule::PhaseStarts::new(&scenario),
        samples: sink,
        stop: stop.clone(),
        position,
        start,
        drain: args.drain.min(scenario.defaults.timeout),
        pacing: args.pacing,
    };
    // The recorder ends once the engine has returned and dropped its position channel.
    let (result, timeline) = engine.run().await;
    let stats = match recorder.await {
        Ok(stats) => stats,
        Err(e) => {
            // The statistics are lost; say so rather than print an empty report as if nothing ran.
            eprintln!("loadgen: the recorder failed, no statistics were kept: {e}");
            return EXIT_RUN_ERROR;
        }
    };
    let _ = progress.await;
    if let Some(why) = client.tls_failure() {
        eprintln!("loadgen: {why}");
    }
    let received = match receiver {
        Some(r) => Some((r.stop(), r.webhook)),
        None => None,
    };
    let alert_report = match watcher {
        Some(w) => {
            let watched = w.await.unwrap_or_default();
            let mut checks = alerts::check(&scenario, &timeline, &watched.transitions);
            let delivery = received.zip(scope.as_ref()).map(|((received, webhook), scope)| {
                let scoped = crate::delivery::in_scope(&received.notifications, scope);
                checks.extend(crate::delivery::check(&scenario, &timeline, &scoped));
                crate::delivery::delivery(
                    &scenario,
                    &timeline,
                    &watched.transitions,
                    received,
                    &scoped,
                    alertmanager_name,
                    webhook,
                )
            });
            if let Some(why) = &watched.first_failure {
                eprintln!(
                    "loadgen: {} of the polls of Prometheus failed; the first: {why}",
                    watched.failed_polls
                );
            }
            Some(AlertReport {
                prometheus: prometheus_url.clone().unwrap_or_default(),
                checks,
                transitions: watched.transitions,
                scope: Some(watched.scope),
                failed_polls: watched.failed_polls,
                delivery,
                notifications_skipped,
            })
        }
        None => None,
    };
    let mut alert_report = alert_report;
    if let (Some(report), Some(scope)) = (alert_report.as_mut(), &scope) {
        crate::scope::fail_checks(scope, &mut report.checks);
    }
    if let (Some(report), Some(Ok(p))) = (alert_report.as_mut(), prediction) {
        crate::predict::live::annotate(report, &scenario, p);
    }
    drop(local_prometheus);
    drop(local_alertmanager);
    if let Some(e) = embedded {
        e.stop().await;
    }
    drop(target_logs);

    let (ending, run_error) = match result {
        Ok(ending) => (ending, None),
        Err(e) => {
            eprintln!("loadgen: {e}");
            (Ending::Interrupted, Some(e))
        }
    };
    let mut summary = report::summarize(
        &scenario,
        &target_url,
        shard,
        &stats,
        &timeline,
        ending,
        alert_report,
    );
    summary.alerts_skipped = alerts_skipped;
    let mut out = std::io::stdout().lock();
    let _ = report::write_text(&summary, &mut out);
    let _ = out.flush();
    if let Err(code) = write_reports(&summary, args.json.as_deref(), args.html.as_deref()) {
        return code;
    }
    if let Some(server) = metrics_server {
        if let Some(linger) = args.metrics_linger {
            let mut stop = stop.clone();
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
        let _ = metrics_stop.send(true);
        let _ = server.await;
    }
    match (run_error, ending, summary.passed) {
        (Some(EngineError::Chaos { .. }), _, _) => EXIT_RUN_ERROR,
        (None, Ending::Interrupted, _) => EXIT_INTERRUPTED,
        (None, _, true) => EXIT_PASS,
        (None, _, false) => EXIT_FAIL,
    }
}

/// loadgen's webhook receiver, serving while the run goes on.
struct Receiver {
    inbox: crate::notify::Inbox,
    /// Where Alertmanager reaches it (a loopback address when it listens on all of them).
    webhook: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    fn new(listener: tokio::net::TcpListener) -> Receiver {
        let mut addr = listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let inbox = crate::notify::Inbox::new(Instant::now());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(crate::notify::serve(listener, inbox.clone(), stop_rx));
        Receiver {
            inbox,
            webhook: format!("http://{addr}/alerts"),
            stop,
            task,
        }
    }

    /// Stops serving and returns what was received.
    fn stop(&self) -> crate::notify::Received {
        let _ = self.stop.send(true);
        self.task.abort();
        self.inbox.snapshot()
    }
}

/// A private Alertmanager delivering to `receiver` (one on a free loopback port if none listens yet).
async fn start_alertmanager(
    receiver: &mut Option<Receiver>,
) -> Result<crate::alertmanager::LocalAlertmanager, crate::alertmanager::AmError> {
    if crate::alertmanager::binary().is_none() {
        return Err(crate::alertmanager::AmError::NotInstalled);
    }
    if receiver.is_none() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(crate::alertmanager::AmError::Listen)?;
        *receiver = Some(Receiver::new(listener));
    }
    let webhook = receiver.as_ref().map(|r| r.webhook.clone()).unwrap_or_default();
    crate::alertmanager::LocalAlertmanager::start(&webhook).await
}

/// Writes the JSON and HTML reports that were asked for.
pub fn write_reports(
    summary: &report::Summary,
    json: Option<&std::path::Path>,
    html: Option<&std::path::Path>,
) -> Result<(), u8> {
    let write = |path: &std::path::Path,
                 f: &dyn Fn(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>| {
        let written = std::fs::File::create(path).and_then(|file| {
            let mut w = std::io::BufWriter::new(file);
            f(&mut w)?;
            w.flush()
        });
        written.map_err(|e| {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            EXIT_RUN_ERROR
        })
    };
    if let Some(path) = json {
        write(path, &|w| report::write_json(summary, w))?;
    }
    if let Some(path) = html {
        write(path, &|w| crate::html::write_html(summary, w))?;
    }
    Ok(())
}

fn check_target_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "not a URL (expected e.g. http://localhost:8080)")?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err("expected an http or https URL such as http://localhost:8080"),
    }
}

/// How to speak to the target, from the command line.
fn client_options(args: &RunArgs, max_idle: usize) -> client::Options {
    client::Options {
        body_cap: args.body_cap,
        max_idle,
        idle_timeout: args.idle_timeout,
        protocol: if args.http2_prior_knowledge {
            Protocol::Http2PriorKnowledge
        } else if args.http2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        },
        tls: client::tls::TlsOptions {
            cacert: args.cacert.clone(),
            cert: args.cert.clone(),
            key: args.key.clone(),
            insecure: args.insecure,
        },
    }
}

/// How long a Prometheus may take to list the target among its scrape targets.
const SCOPE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The alerts that count for this run: `--alert-match`; the private Prometheus' own job for the
/// embedded target; otherwise the job and instance Prometheus' targets give the target's address.
async fn alert_scope(
    args: &RunArgs,
    api: &Api,
    target_url: &str,
    embedded: &Option<Embedded>,
    private: bool,
) -> Scope {
    let scope = match (&args.alert_match, embedded) {
        (Some(matchers), _) => Scope::from_flag(matchers),
        (None, Some(e)) if private => Scope::private("target-app", &e.app.to_string()),
        (None, _) => {
            crate::scope::from_targets(api, target_url, SCOPE_WAIT, |why| {
                eprintln!("loadgen: waiting up to {SCOPE_WAIT:?} for Prometheus to list the target: {why}");
            })
            .await
        }
    };
    match &scope.problem {
        Some(problem) => eprintln!("loadgen: warning: every alert check will fail: {problem}"),
        None if !args.quiet => eprintln!(
            "loadgen: alerts count for this run when their labels match {}",
            scope.describe().join(" or ")
        ),
        None => {}
    }
    if let Some(note) = &scope.note {
        eprintln!("loadgen: note: {note}");
    }
    scope
}

/// Credentials for `--prometheus`.
fn prometheus_auth(args: &RunArgs) -> Auth {
    match (&args.prometheus_token, &args.prometheus_basic_auth) {
        (Some(token), _) => Auth::Bearer(token.clone()),
        (None, Some(pair)) => Auth::Basic(pair.clone()),
        (None, None) => Auth::None,
    }
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

//! The plan of one run: the scenario and every `loadgen run` option, checked together once, before
//! anything is bound, started or sent. [`RunPlan::new`] reports every problem it finds, each naming
//! the flag at fault; a plan that exists is one [`crate::cmd::run`] can carry out.
//!
//! Nothing here touches the network or the file system beyond asking whether a path exists.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::alerts::scope::Matchers;
use crate::client::{self, Auth, Protocol};
use crate::cmd::cli::RunArgs;
use crate::engine::Pacing;
use crate::scenario::Scenario;
use crate::schedule::Shard;

/// Everything one run needs to know, checked.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The scenario, with `--seed` applied.
    pub scenario: Arc<Scenario>,
    /// The scenario file's text, which `--record` keeps (empty when not read from a file).
    pub source: String,
    /// The slice of the schedule this run sends.
    pub shard: Shard,
    pub target: Target,
    /// How to speak to each peer: the target, its chaos API and Prometheus.
    pub peers: Peers,
    /// Bearer token for the target's chaos API.
    pub chaos_token: Option<String>,
    /// How the open-loop pacer waits for each deadline.
    pub pacing: Pacing,
    /// How long requests in flight may still finish after the last phase or a stop; never more
    /// than the scenario's request timeout.
    pub drain: Duration,
    pub alerts: AlertOptions,
    pub outputs: Outputs,
}

impl Peers {
    fn new(args: &RunArgs, protocol: Protocol, max_idle: usize) -> Peers {
        let target = client::Options {
            body_cap: args.body_cap,
            max_idle,
            idle_timeout: args.idle_timeout,
            protocol,
            tls: client::tls::TlsOptions {
                cacert: args.cacert.clone(),
                cert: args.cert.clone(),
                key: args.key.clone(),
                insecure: args.insecure,
                cacert_flag: client::tls::CaFlag::Cacert,
            },
        };
        let chaos = client::Options {
            protocol: match protocol {
                Protocol::Http2 => Protocol::Http2,
                Protocol::Http1 | Protocol::Http2PriorKnowledge => Protocol::Http1,
            },
            ..target.clone()
        };
        let prometheus = client::Options {
            idle_timeout: args.idle_timeout,
            tls: client::tls::TlsOptions {
                cacert: args.prometheus_cacert.clone(),
                insecure: args.prometheus_insecure,
                cacert_flag: client::tls::CaFlag::PrometheusCacert,
                ..client::tls::TlsOptions::default()
            },
            ..client::Options::default()
        };
        Peers {
            target,
            chaos,
            prometheus,
        }
    }
}

/// Each peer's own client settings, so that the target's protocol and TLS flags reach the target only.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The target: every protocol and TLS flag (`--http2`, `--http2-prior-knowledge`, `--cacert`,
    /// `--cert`, `--key`, `--insecure`), idle connections, body cap.
    pub target: client::Options,
    /// The target's chaos API: on the same server, so the same TLS settings (CA, client certificate);
    /// HTTP/1.1 in the clear, and over TLS HTTP/2 only when the server chooses it by ALPN.
    pub chaos: client::Options,
    /// Prometheus: HTTP/1.1, its own CA (`--prometheus-cacert`) and verification
    /// (`--prometheus-insecure`).
    pub prometheus: client::Options,
}

/// Where the load goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A running target, by its base URL (http or https, without a trailing `/`).
    Url(String),
    /// The target-app and its downstream, started on loopback ports for the run; their JSON logs go
    /// to `logs` when given.
    Embedded { logs: Option<PathBuf> },
}

/// How alerts are checked.
#[derive(Debug, Clone)]
pub struct AlertOptions {
    /// The Prometheus to ask (without a trailing `/`); without it, a private one is started for the
    /// embedded target when the scenario expects alerts.
    pub prometheus: Option<String>,
    /// Credentials for `prometheus`.
    pub auth: Auth,
    /// Rule files for the private Prometheus and the predictions, instead of the stack's.
    pub rules: Option<PathBuf>,
    /// The Alertmanager (`host:port`) the private Prometheus sends to, instead of a private one.
    pub alertmanager: Option<String>,
    /// Where loadgen's webhook receiver listens.
    pub notify_listen: Option<SocketAddr>,
    /// The user's Alertmanager configuration for the private Alertmanager, instead of the stack's
    /// (checked with amtool when the plan is made).
    pub alertmanager_config: Option<PathBuf>,
    /// An Alertmanager whose API is asked about inhibitions when loadgen runs none (without a trailing
    /// `/`).
    pub alertmanager_api: Option<String>,
    /// `--update-snapshots`: rendered messages are written to the `snapshot` files, not compared.
    pub update_snapshots: bool,
    /// Where `snapshot` paths start: the scenario file's directory.
    pub snapshot_dir: PathBuf,
    /// Which alerts count for the run, when not found from the target.
    pub alert_match: Option<Matchers>,
    /// `--no-alerts`: alert expectations are skipped by request.
    pub skip_alerts: bool,
    /// `--no-notifications`: `alerts_notified` expectations are skipped by request.
    pub skip_notifications: bool,
}

/// What the run writes and serves besides the summary on stdout.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    /// Plain progress lines instead of the live panel.
    pub quiet: bool,
    /// Where the generator's own `/metrics` is served.
    pub metrics_addr: Option<SocketAddr>,
    /// How long `/metrics` is still served after the reports are written.
    pub metrics_linger: Option<Duration>,
    /// Where live control listens, and the token it asks for.
    pub control: Option<ControlPlan>,
    /// Where the run as driven is written, as a scenario.
    pub record: Option<PathBuf>,
}

/// `--control`: where, and the bearer token (always set off loopback).
#[derive(Debug, Clone)]
pub struct ControlPlan {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

/// One thing wrong with the options of a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}{}: {problem}", value.as_ref().map(|v| format!(" {v}")).unwrap_or_default())]
pub struct PlanError {
    /// The flag at fault, e.g. `--target`.
    pub flag: &'static str,
    /// The value given to it, when it helps to repeat it.
    pub value: Option<String>,
    /// What is wrong, and what to write instead.
    pub problem: String,
}

impl PlanError {
    fn new(flag: &'static str, value: Option<String>, problem: impl Into<String>) -> PlanError {
        PlanError {
            flag,
            value,
            problem: problem.into(),
        }
    }
}

impl RunPlan {
    /// The plan of running `scenario` with `args`, or every problem found in them.
    pub fn new(args: &RunArgs, mut scenario: Scenario) -> Result<RunPlan, Vec<PlanError>> {
        let mut errors = Vec::new();
        if let Some(seed) = args.seed {
            scenario.seed = seed;
        }
        let protocol = if args.http2_prior_knowledge {
            Protocol::Http2PriorKnowledge
        } else if args.http2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        };

        let mut target_ok = true;
        let target = match &args.target {
            Some(url) => {
                if let Err(problem) = check_url(url, "http://localhost:8080") {
                    errors.push(PlanError::new("--target", Some(url.clone()), problem));
                    target_ok = false;
                }
                if let Some(logs) = &args.target_logs {
                    errors.push(PlanError::new(
                        "--target-logs",
                        Some(logs.display().to_string()),
                        "only the embedded target writes its logs here; a target given with --target \
                         keeps its own (drop one of the two)",
                    ));
                }
                Target::Url(url.trim_end_matches('/').to_owned())
            }
            None => {
                if let Some(logs) = &args.target_logs {
                    check_parent(&mut errors, "--target-logs", logs);
                }
                Target::Embedded {
                    logs: args.target_logs.clone(),
                }
            }
        };
        let https = match &target {
            Target::Url(url) => url.starts_with("https://"),
            Target::Embedded { .. } => false,
        };
        let shown = match &target {
            Target::Url(url) => format!("the target {url}"),
            Target::Embedded { .. } => "the embedded target".to_owned(),
        };
        match protocol {
            _ if !target_ok => {}
            Protocol::Http2 if !https => errors.push(PlanError::new(
                "--http2",
                None,
                format!(
                    "negotiates HTTP/2 over TLS, and {shown} is cleartext http; use \
                     --http2-prior-knowledge for h2c"
                ),
            )),
            Protocol::Http2PriorKnowledge if https => errors.push(PlanError::new(
                "--http2-prior-knowledge",
                None,
                format!("is for cleartext (http://) targets, and {shown} is https; use --http2"),
            )),
            _ => {}
        }

        if let Some(url) = &args.prometheus {
            if let Err(problem) = check_url(url, "http://localhost:9090") {
                errors.push(PlanError::new("--prometheus", Some(url.clone()), problem));
            }
        }
        if let Some(am) = &args.alertmanager {
            let private = args.prometheus.is_none() && matches!(target, Target::Embedded { .. });
            if !private {
                errors.push(PlanError::new(
                    "--alertmanager",
                    Some(am.clone()),
                    "only loadgen's private Prometheus (for the embedded target, without --prometheus \
                     or --target) sends alerts to it; configure the Alertmanager of the Prometheus you \
                     give instead",
                ));
            }
        }
        if let Some(path) = &args.alertmanager_config {
            let value = Some(path.display().to_string());
            let private = args.prometheus.is_none() && matches!(target, Target::Embedded { .. });
            if !private || args.alertmanager.is_some() {
                errors.push(PlanError::new(
                    "--alertmanager-config",
                    value,
                    "only loadgen's private Alertmanager (for the embedded target, without --prometheus, \
                     --target or --alertmanager) runs a configuration given here",
                ));
            } else if let Err(e) = check_alertmanager_config(path) {
                errors.push(PlanError::new("--alertmanager-config", value, e.to_string()));
            }
        }
        if let Some(url) = &args.alertmanager_api {
            if let Err(problem) = check_url(url, "http://localhost:9093") {
                errors.push(PlanError::new("--alertmanager-api", Some(url.clone()), problem));
            }
        }
        if let Some(pair) = &args.prometheus_basic_auth {
            if !pair.contains(':') {
                // The value is a secret: named, never repeated.
                errors.push(PlanError::new(
                    "--prometheus-basic-auth",
                    None,
                    "expected USER:PASSWORD (no `:` in the value given)",
                ));
            }
        }
        if let Some(rules) = &args.rules {
            if !rules.exists() {
                errors.push(PlanError::new(
                    "--rules",
                    Some(rules.display().to_string()),
                    "no such file or directory (expected rule files, *.yml, or a directory of them)",
                ));
            }
        }

        for (flag, path) in [("--json", &args.json), ("--html", &args.html)] {
            if let Some(path) = path {
                check_parent(&mut errors, flag, path);
            }
        }
        if let (Some(json), Some(html)) = (&args.json, &args.html) {
            if json == html {
                errors.push(PlanError::new(
                    "--html",
                    Some(html.display().to_string()),
                    "the same file as --json: one report would overwrite the other",
                ));
            }
        }
        if let (Some(metrics), Some(notify)) = (args.metrics_addr, args.notify_listen) {
            if metrics == notify && metrics.port() != 0 {
                errors.push(PlanError::new(
                    "--notify-listen",
                    Some(notify.to_string()),
                    "the same address as --metrics-addr: give each its own port",
                ));
            }
        }

        if let Some(addr) = args.control {
            if !addr.ip().is_loopback() && args.control_token.as_deref().is_none_or(str::is_empty) {
                errors.push(PlanError::new(
                    "--control",
                    Some(addr.to_string()),
                    format!(
                        "listens beyond loopback, so anyone who can reach it could steer the run: set a \
                         token in {} (sent as `Authorization: Bearer …`), or listen on 127.0.0.1",
                        crate::control::TOKEN_ENV
                    ),
                ));
            }
            for (flag, other) in [
                ("--metrics-addr", args.metrics_addr),
                ("--notify-listen", args.notify_listen),
            ] {
                if other == Some(addr) && addr.port() != 0 {
                    errors.push(PlanError::new(
                        "--control",
                        Some(addr.to_string()),
                        format!("the same address as {flag}: give each its own port"),
                    ));
                }
            }
        }
        if let Some(path) = &args.record {
            check_parent(&mut errors, "--record", path);
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let drain = args.drain.min(scenario.defaults.timeout);
        let max_idle = scenario.defaults.max_in_flight.get() as usize;
        Ok(RunPlan {
            scenario: Arc::new(scenario),
            source: String::new(),
            shard: args.shard.unwrap_or(Shard::WHOLE),
            target,
            peers: Peers::new(args, protocol, max_idle),
            chaos_token: args.chaos_token.clone(),
            pacing: args.pacing,
            drain,
            alerts: AlertOptions {
                prometheus: args
                    .prometheus
                    .as_deref()
                    .map(|u| u.trim_end_matches('/').to_owned()),
                auth: match (&args.prometheus_token, &args.prometheus_basic_auth) {
                    (Some(token), _) => Auth::Bearer(token.clone()),
                    (None, Some(pair)) => Auth::Basic(pair.clone()),
                    (None, None) => Auth::None,
                },
                rules: args.rules.clone(),
                alertmanager: args.alertmanager.clone(),
                notify_listen: args.notify_listen,
                alertmanager_config: args.alertmanager_config.clone(),
                alertmanager_api: args
                    .alertmanager_api
                    .as_deref()
                    .map(|u| u.trim_end_matches('/').to_owned()),
                update_snapshots: args.update_snapshots,
                snapshot_dir: match args.file.as_deref().and_then(Path::parent) {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                },
                alert_match: args.alert_match.clone(),
                skip_alerts: args.no_alerts,
                skip_notifications: args.no_alerts || args.no_notifications,
            },
            outputs: Outputs {
                json: args.json.clone(),
                html: args.html.clone(),
                quiet: args.quiet,
                metrics_addr: args.metrics_addr,
                metrics_linger: args.metrics_linger,
                control: args.control.map(|addr| ControlPlan {
                    addr,
                    token: args.control_token.clone().filter(|t| !t.is_empty()),
                }),
                record: args.record.clone(),
            },
        })
    }

    /// Whether some phase expects alerts.
    pub fn wants_alerts(&self) -> bool {
        self.scenario.phases.iter().any(|p| p.expect.has_alerts())
    }

    /// Whether some phase expects notifications.
    pub fn wants_notified(&self) -> bool {
        self.scenario
            .phases
            .iter()
            .any(|p| !p.expect.alerts_notified.is_empty() || p.expect.has_routing())
    }
}

/// Reads, rewrites and checks (amtool) a user's Alertmanager configuration, so that a bad one is a
/// usage error before anything starts.
fn check_alertmanager_config(path: &Path) -> Result<(), crate::alerts::routing::RoutingError> {
    let rewritten = crate::alerts::routing::load(path, "http://127.0.0.1:9")?;
    let dir = std::env::temp_dir().join(format!(
        "loadgen-amcheck-{}-{}",
        std::process::id(),
        crate::alerts::prometheus::unique()
    ));
    std::fs::create_dir_all(&dir).map_err(|source| crate::alerts::routing::RoutingError::Read {
        file: dir.display().to_string(),
        source,
    })?;
    let checked = crate::alerts::routing::check(&rewritten, &path.display().to_string(), &dir);
    let _ = std::fs::remove_dir_all(&dir);
    checked
}

/// Whether `url` is an http or https URL with a host.
fn check_url(url: &str, example: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("not a URL (expected e.g. {example})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(format!("expected an http or https URL such as {example}")),
    }
}

/// A file to be written at `path` needs its directory to exist.
fn check_parent(errors: &mut Vec<PlanError>, flag: &'static str, path: &Path) {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => return,
    };
    if !dir.is_dir() {
        errors.push(PlanError::new(
            flag,
            Some(path.display().to_string()),
            format!("no directory {} to write it in", dir.display()),
        ));
    }
}

#[cfg(test)]
mod tests;

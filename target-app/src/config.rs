//! Settings of one service instance, from the command line and the standard environment variables.
//!
//! The same struct configures the binary (`clap` parses it, flags first, then the standard `OTEL_*`
//! variables) and an embedded instance (built from values by [`Config::embedded`], which never reads the
//! process's arguments or environment). It only holds values; nothing else in the crate reads the
//! environment, so an embedded instance is configured by its embedder alone.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::route::Role;

/// Whether telemetry is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TelemetryMode {
    /// Metrics, traces, logs and (if configured) profiles.
    On,
    /// Nothing recorded: the bare service, to measure what instrumentation costs.
    Off,
}

/// The service under test: an HTTP service with metrics, traces, JSON logs, profiles and a chaos API.
#[derive(Debug, Clone, Parser)]
#[command(name = "target-app", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "LISTEN_ADDR")]
    pub listen: SocketAddr,

    /// Which service to be: the app under test, or the downstream it calls.
    #[arg(long, value_enum, default_value = "app")]
    pub role: Role,

    /// Base URL of the downstream service (app role).
    #[arg(long, default_value = DEFAULT_DOWNSTREAM_URL, env = "DOWNSTREAM_URL")]
    pub downstream_url: String,

    /// `service.name` of traces and logs [default: target-app, or downstream for that role].
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,

    /// Requests served at once before answering 503 (probes, metrics and the admin API are exempt).
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENCY)]
    pub max_concurrency: usize,

    /// Bearer token required to change faults. Without one, only loopback peers may change them.
    #[arg(long, env = "CHAOS_TOKEN", hide_env_values = true)]
    pub chaos_token: Option<String>,

    /// OTLP/HTTP endpoint for traces (and logs with --otlp-logs), e.g. http://localhost:4318.
    /// Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// OTLP/HTTP URL for traces, used as given (e.g. http://localhost:4318/v1/traces); overrides
    /// --otlp-endpoint for traces.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,

    /// OTLP/HTTP URL for logs, used as given; overrides --otlp-endpoint for logs.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")]
    pub otlp_logs_endpoint: Option<String>,

    /// Extra resource attributes of traces and logs, `key=value,key=value`.
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES")]
    pub resource_attributes: Option<String>,

    /// Trace sampler: always_on, always_off, traceidratio, parentbased_always_on,
    /// parentbased_always_off or parentbased_traceidratio [default: parentbased_always_on].
    #[arg(long, env = "OTEL_TRACES_SAMPLER")]
    pub traces_sampler: Option<String>,

    /// Argument of the ratio samplers: the share of traces kept, 0.0-1.0 [default: 1.0].
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG")]
    pub traces_sampler_arg: Option<String>,

    /// Also export logs over OTLP (they always go to stdout as JSON).
    #[arg(long, env = "OTLP_LOGS")]
    pub otlp_logs: bool,

    /// Pyroscope server to push CPU profiles to, e.g. http://localhost:4040. Off when unset.
    #[arg(long, env = "PYROSCOPE_SERVER_ADDRESS")]
    pub pyroscope_url: Option<String>,

    /// How often profiles are pushed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub profile_interval: Duration,

    /// Record telemetry, or run bare.
    #[arg(long, value_enum, default_value = "on")]
    pub telemetry: TelemetryMode,

    /// On SIGINT or SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Longest time to wait for a client to send its request headers.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Timeout of each call to the downstream service.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub downstream_timeout: Duration,
}

const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_DOWNSTREAM_URL: &str = "http://127.0.0.1:8081";
const DEFAULT_MAX_CONCURRENCY: usize = 512;
const DEFAULT_PROFILE_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DOWNSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

impl Config {
    /// Defaults for an instance embedded in another program, before its listener is known: built from
    /// values alone (no arguments, no environment), with every export off until the embedder sets it.
    pub fn embedded(role: Role) -> Config {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("the default address is valid"),
            role,
            downstream_url: DEFAULT_DOWNSTREAM_URL.to_owned(),
            service_name: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            chaos_token: None,
            otlp_endpoint: None,
            otlp_traces_endpoint: None,
            otlp_logs_endpoint: None,
            otlp_logs: false,
            resource_attributes: None,
            traces_sampler: None,
            traces_sampler_arg: None,
            pyroscope_url: None,
            profile_interval: DEFAULT_PROFILE_INTERVAL,
            telemetry: TelemetryMode::On,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            downstream_timeout: DEFAULT_DOWNSTREAM_TIMEOUT,
        }
    }

    /// `service.name` of this instance.
    pub fn service_name(&self) -> String {
        self.service_name
            .clone()
            .unwrap_or_else(|| self.role.service_name().to_owned())
    }

    /// Whether telemetry is recorded.
    pub fn telemetry_enabled(&self) -> bool {
        self.telemetry == TelemetryMode::On
    }

    /// The URL traces are exported to, if any: the traces endpoint as given, or `/v1/traces` under the
    /// base endpoint.
    pub fn traces_url(&self) -> Option<String> {
        signal_url(&self.otlp_traces_endpoint, &self.otlp_endpoint, "/v1/traces")
    }

    /// The URL logs are exported to, if log export is on.
    pub fn logs_url(&self) -> Option<String> {
        if !self.otlp_logs {
            return None;
        }
        signal_url(&self.otlp_logs_endpoint, &self.otlp_endpoint, "/v1/logs")
    }
}

/// The signal's own URL, else the base endpoint joined with the signal's path (unless it already ends so).
fn signal_url(own: &Option<String>, base: &Option<String>, path: &str) -> Option<String> {
    if let Some(url) = own.as_deref().filter(|u| !u.is_empty()) {
        return Some(url.to_owned());
    }
    let base = base.as_deref().filter(|u| !u.is_empty())?.trim_end_matches('/');
    Some(if base.ends_with(path) {
        base.to_owned()
    } else {
        format!("{base}{path}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Config::command().debug_assert();
    }

    #[test]
    fn embedded_matches_the_command_line_defaults() {
        let parsed = Config::try_parse_from(["target-app"]).unwrap();
        let embedded = Config::embedded(Role::App);
        // Compared through Debug, every field; skipped only when this process's environment sets one
        // of the variables the command line reads.
        let read = [
            "LISTEN_ADDR",
            "DOWNSTREAM_URL",
            "CHAOS_TOKEN",
            "OTLP_LOGS",
            "PYROSCOPE_SERVER_ADDRESS",
        ];
        if std::env::vars().all(|(k, _)| !k.starts_with("OTEL_") && !read.contains(&k.as_str())) {
            assert_eq!(format!("{parsed:?}"), format!("{embedded:?}"));
        }
    }

    #[test]
    fn signal_urls() {
        let mut c = Config::embedded(Role::App);
        assert_eq!(c.traces_url(), None);
        c.otlp_endpoint = Some("http://h:4318/".into());
        c.otlp_logs = true;
        assert_eq!(c.traces_url().as_deref(), Some("http://h:4318/v1/traces"));
        assert_eq!(c.logs_url().as_deref(), Some("http://h:4318/v1/logs"));
        c.otlp_traces_endpoint = Some("http://t/custom".into());
        assert_eq!(c.traces_url().as_deref(), Some("http://t/custom"));
    }

    #[test]
    fn embedded_roles_have_their_names() {
        assert_eq!(Config::embedded(Role::Downstream).service_name(), "downstream");
        assert_eq!(Config::embedded(Role::App).service_name(), "target-app");
    }
}

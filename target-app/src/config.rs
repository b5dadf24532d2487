//! Settings of one service instance, from the command line and the standard environment variables.
//!
//! The same struct configures the binary (`clap` parses it) and an embedded instance (built with
//! [`Config::embedded`]); it only holds values, it opens nothing.

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
    #[arg(long, default_value = "0.0.0.0:8080", env = "LISTEN_ADDR")]
    pub listen: SocketAddr,

    /// Which service to be: the app under test, or the downstream it calls.
    #[arg(long, value_enum, default_value = "app")]
    pub role: Role,

    /// Base URL of the downstream service (app role).
    #[arg(long, default_value = "http://127.0.0.1:8081", env = "DOWNSTREAM_URL")]
    pub downstream_url: String,

    /// `service.name` of traces and logs [default: target-app, or downstream for that role].
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,

    /// Requests served at once before answering 503 (probes, metrics and the admin API are exempt).
    #[arg(long, default_value_t = 512)]
    pub max_concurrency: usize,

    /// Bearer token required to change faults. Without one, only loopback peers may change them.
    #[arg(long, env = "CHAOS_TOKEN", hide_env_values = true)]
    pub chaos_token: Option<String>,

    /// OTLP/HTTP endpoint for traces (and logs with --otlp-logs), e.g. http://localhost:4318.
    /// Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

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

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

impl Config {
    /// Defaults for an instance embedded in another program, before its listener is known.
    pub fn embedded(role: Role) -> Config {
        let mut config = Config::parse_from(["target-app"]);
        config.role = role;
        // Embedded instances ignore the environment's endpoints unless told otherwise by the embedder.
        config.otlp_endpoint = None;
        config.pyroscope_url = None;
        config.service_name = None;
        config.chaos_token = None;
        config
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

    /// The OTLP endpoint to export to, if any: the flag, or a signal-specific standard variable.
    pub fn otlp_endpoint(&self) -> Option<String> {
        self.otlp_endpoint
            .clone()
            .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").ok())
    }
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
    fn embedded_roles_have_their_names() {
        assert_eq!(Config::embedded(Role::Downstream).service_name(), "downstream");
        assert_eq!(Config::embedded(Role::App).service_name(), "target-app");
    }
}

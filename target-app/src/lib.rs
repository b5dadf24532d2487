//! `target-app`: the service under test, instrumented with metrics, traces, logs and profiles, with a
//! runtime chaos API. The same library runs as the app and as its downstream, and can be embedded.
//!
//! # Layout
//! - [`config`]: settings from the command line and `OTEL_*` variables, or from values when embedded.
//! - [`server`]: the accept loop, outages, drain; [`serve`] is the entry point.
//! - [`app`]: the request path as layers: shed → telemetry → chaos → handler.
//! - [`handlers`], [`admin`], [`downstream`], [`work`]: the endpoints and what they call.
//! - [`state`], [`exchange`], [`error`]: what those share: an instance's state, the connection, body
//!   and answer of one request, and why serving fails.
//! - [`chaos`]: fault format, validation, and the state that applies faults.
//! - [`telemetry`] (one instance's logs, traces, metrics and profiles, one value to shut down),
//!   [`metrics`] (with the `process_*` metrics): the four signals.
//! - [`route`], [`duration`]: routes by template; `90s`-style durations shared with scenario files.

pub mod admin;
pub mod app;
pub mod chaos;
pub mod config;
pub mod downstream;
pub mod duration;
pub mod error;
pub mod exchange;
pub mod handlers;
pub mod metrics;
pub mod route;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod work;

pub use config::Config;
pub use error::ServeError;
pub use route::Role;
pub use server::{serve, serve_app};

/// Runs the service as a process: binds, serves until SIGINT or SIGTERM, drains, flushes. The instance's
/// dispatcher becomes the process's default; with telemetry off (or if it cannot), `logs`' default
/// subscriber is installed instead, for the lines written outside the instance.
pub async fn run(config: Config, logs: &telemetry::logs::LogGuard) -> anyhow::Result<()> {
    use anyhow::Context as _;

    let app = match state::App::new(config) {
        Ok(app) => std::sync::Arc::new(app),
        Err(e) => {
            logs.install_default(None);
            return Err(e.into());
        }
    };
    if !app.telemetry.make_process_default() {
        logs.install_default(Some(app.telemetry.service.clone()));
    }
    let config = &app.config;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        addr = %addr,
        role = config.role.name(),
        otlp = config.traces_url().unwrap_or_else(|| "off".into()),
        profiles = config.pyroscope_url.clone().unwrap_or_else(|| "off".into()),
        "listening"
    );
    let result = server::serve_app(listener, app, shutdown_signal()).await;
    tracing::info!("stopped");
    result.map_err(Into::into)
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}

//! Telemetry of one service instance: its tracer, its OTLP logger and its metrics, set up together and
//! shut down together, in order. Process-wide parts (the JSON log subscriber, the profiler) live in
//! [`logs`] and [`profiles`] and are started once by whoever owns the process.
//!
//! Traces are always created (so log lines carry trace ids); they are exported only when an OTLP
//! endpoint is configured. The exporters run on their own threads with bounded queues: a dead or slow
//! collector costs a warning from the SDK, never a stalled request.

pub mod logs;
pub mod profiles;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{LogExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::Config;
use crate::metrics::Metrics;
use logs::ServiceScope;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP {signal} exporter for {endpoint}: {source}")]
    Exporter {
        signal: &'static str,
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The tracer, logger and metrics of one service instance.
pub struct Telemetry {
    /// Whether spans, logs and metrics are recorded at all (off for the bare-throughput benchmark).
    pub enabled: bool,
    pub tracer: SdkTracer,
    pub scope: ServiceScope,
    pub metrics: Arc<Metrics>,
    tracer_provider: SdkTracerProvider,
    logger_provider: Option<SdkLoggerProvider>,
}

impl Telemetry {
    /// Builds the instance's providers from `config` and the standard `OTEL_*` variables.
    pub fn new(config: &Config) -> Result<Self, TelemetryError> {
        let service_name = config.service_name();
        let resource = Resource::builder()
            .with_service_name(service_name.clone())
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.role", format!("{:?}", config.role).to_lowercase()),
            ])
            .build();

        let endpoint = config.otlp_endpoint();
        let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
        if let (true, Some(endpoint)) = (config.telemetry_enabled(), &endpoint) {
            tracer_builder = tracer_builder.with_batch_exporter(span_exporter(endpoint)?);
        }
        let tracer_provider = tracer_builder.build();
        let tracer = tracer_provider.tracer("target-app");

        let logger_provider = match (&endpoint, config.otlp_logs && config.telemetry_enabled()) {
            (Some(endpoint), true) => Some(
                SdkLoggerProvider::builder()
                    .with_resource(resource)
                    .with_batch_exporter(log_exporter(endpoint)?)
                    .build(),
            ),
            _ => None,
        };
        let logger = logger_provider.as_ref().map(|p| {
            use opentelemetry::logs::LoggerProvider as _;
            p.logger("target-app")
        });

        Ok(Telemetry {
            enabled: config.telemetry_enabled(),
            tracer: tracer.clone(),
            scope: ServiceScope {
                name: service_name.into(),
                logger,
                tracer,
            },
            metrics: Arc::new(Metrics::new(config.telemetry_enabled())),
            tracer_provider,
            logger_provider,
        })
    }

    /// Flushes and stops the exporters: traces first, then logs (which may describe the last spans).
    /// Blocks; call it from a blocking context.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.tracer_provider.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "trace export did not flush cleanly");
        }
        if let Some(p) = &self.logger_provider {
            if let Err(e) = p.shutdown_with_timeout(timeout) {
                tracing::warn!(error = %e, "log export did not flush cleanly");
            }
        }
    }
}

/// Joins an OTLP base endpoint and a signal path, unless the endpoint already names one.
fn signal_url(endpoint: &str, path: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(path) {
        base.to_owned()
    } else {
        format!("{base}{path}")
    }
}

fn span_exporter(endpoint: &str) -> Result<SpanExporter, TelemetryError> {
    let url = signal_url(endpoint, "/v1/traces");
    SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|source| TelemetryError::Exporter {
            signal: "trace",
            endpoint: url,
            source,
        })
}

fn log_exporter(endpoint: &str) -> Result<LogExporter, TelemetryError> {
    let url = signal_url(endpoint, "/v1/logs");
    LogExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|source| TelemetryError::Exporter {
            signal: "log",
            endpoint: url,
            source,
        })
}

//! Telemetry of one service instance, set up from its [`Config`] in one place and shut down through one
//! value: logs, traces, metrics and (when configured) profiles.
//!
//! Spans are `tracing` spans exported through `tracing-opentelemetry`; JSON log lines read their trace and
//! span ids from the span they were written in. Each instance has its own `tracing` dispatcher (its own
//! tracer, resource and `service.name`), which the request path installs around every request, so an app
//! and its downstream embedded in one process keep their identities; a process serving one instance makes
//! it the default instead ([`Telemetry::make_process_default`]). The process-wide JSON log output is
//! opened by [`logs::init`] or [`logs::open`]; this module never reads the environment (the binary's
//! `Config` already has).
//!
//! Exporters run on their own threads with bounded queues: a dead or slow collector costs a warning,
//! never a stalled request. [`Telemetry::shutdown`] flushes traces, then logs (which may
//! describe the last spans), then profiles.

pub mod logs;
pub mod otlp;
pub mod profiles;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{LogExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

use crate::config::Config;
use crate::metrics::Metrics;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP {signal} exporter for {endpoint}: {source}")]
    Exporter {
        signal: &'static str,
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot build the OTLP trace exporter for {endpoint}: {reason}")]
    TraceExporter { endpoint: String, reason: String },
    #[error("traces sampler (--traces-sampler / OTEL_TRACES_SAMPLER): {0}")]
    Sampler(String),
    #[error("resource attributes (--resource-attributes / OTEL_RESOURCE_ATTRIBUTES): {0}")]
    ResourceAttributes(String),
}

/// The telemetry of one service instance. Dropping it without [`Telemetry::shutdown`] loses what is
/// still queued.
pub struct Telemetry {
    /// Whether anything is recorded at all (off for the bare-throughput benchmark).
    pub enabled: bool,
    /// `service.name` of this instance.
    pub service: Arc<str>,
    pub metrics: Arc<Metrics>,
    dispatch: Dispatch,
    tracer_provider: Option<SdkTracerProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    profiler: Mutex<Option<Arc<profiles::Profiler>>>,
    /// Span profiles: whether CPU work is tagged with its root span's id.
    profiling: bool,
    /// Whether `dispatch` is the process's default dispatcher (see [`Telemetry::make_process_default`]).
    process_default: AtomicBool,
}

impl Telemetry {
    /// Builds the instance's tracer, logger, metrics and profiler from `config` alone.
    pub fn new(config: &Config) -> Result<Self, TelemetryError> {
        let service: Arc<str> = config.service_name().into();
        let metrics = Arc::new(Metrics::new(config.telemetry_enabled()));
        if !config.telemetry_enabled() {
            return Ok(Telemetry {
                enabled: false,
                service,
                metrics,
                dispatch: Dispatch::none(),
                tracer_provider: None,
                logger_provider: None,
                profiler: Mutex::new(None),
                profiling: false,
                process_default: AtomicBool::new(false),
            });
        }
        let role = config.role.name();
        let mut attributes = vec![
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.role", role),
        ];
        if let Some(text) = &config.resource_attributes {
            attributes.extend(parse_resource_attributes(text)?);
        }
        let resource = Resource::builder_empty()
            .with_attributes(attributes)
            .with_service_name(service.to_string())
            .build();

        let mut traces = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(config)?);
        if let Some(url) = config.traces_url() {
            traces = traces.with_span_processor(span_batcher(url)?);
        }
        let tracer_provider = traces.build();
        let tracer = tracer_provider.tracer("target-app");

        let logger_provider = match config.logs_url() {
            Some(url) => Some(
                SdkLoggerProvider::builder()
                    .with_resource(resource)
                    .with_batch_exporter(log_exporter(url)?)
                    .build(),
            ),
            None => None,
        };
        let logger = logger_provider.as_ref().map(|p| {
            use opentelemetry::logs::LoggerProvider as _;
            p.logger("target-app")
        });

        // Events become log lines, never span events: a request's log lines are found by its ids.
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.is_span()));
        let (json, json_dispatch) = logs::instance_layer(service.clone(), logger);
        let subscriber = tracing_subscriber::registry()
            .with(logs::filter())
            .with(spans)
            .with(json);
        let dispatch = Dispatch::new(subscriber);
        let _ = json_dispatch.set(dispatch.downgrade());

        let profiler = match &config.pyroscope_url {
            Some(url) => match profiles::start(url, &service, role, config.profile_interval) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::dispatcher::with_default(&dispatch, || {
                        tracing::warn!(error = %e, url = url.as_str(), "profiling disabled: the profiler did not start");
                    });
                    None
                }
            },
            None => None,
        };

        Ok(Telemetry {
            enabled: true,
            service,
            metrics,
            dispatch,
            tracer_provider: Some(tracer_provider),
            logger_provider,
            profiling: profiler.is_some(),
            profiler: Mutex::new(profiler.map(Arc::new)),
            process_default: AtomicBool::new(false),
        })
    }

    /// The instance's `tracing` dispatcher: spans and events made under it belong to this service.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Makes the instance's dispatcher the process's default, for a process that serves only this
    /// instance (the binary; not loadgen, which embeds two). Requests then run without setting their
    /// dispatcher around every poll, and every `tracing` call takes its fast path (no thread-local
    /// look-up): about 1.5% of the CPU per request on `/` (docs/benchmarks.md). False, and nothing
    /// changes, when telemetry is off or the process already has a default.
    pub fn make_process_default(&self) -> bool {
        let made = self.enabled && tracing::dispatcher::set_global_default(self.dispatch.clone()).is_ok();
        self.process_default.store(made, Ordering::Relaxed);
        made
    }

    /// Whether the instance's dispatcher is the process's default.
    pub fn is_process_default(&self) -> bool {
        self.process_default.load(Ordering::Relaxed)
    }

    /// Whether CPU work is being profiled, so root spans carry `pyroscope.profile.id`.
    pub fn profiling(&self) -> bool {
        self.profiling
    }

    /// Runs `work` on this thread with its CPU samples labelled with the root span's profile id, when
    /// profiling is on.
    pub fn profiled<R>(&self, profile_id: Option<&profiles::ProfileId>, work: impl FnOnce() -> R) -> R {
        let profiler = self.profiler.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (Some(profiler), Some(id)) = (profiler, profile_id) else {
            return work();
        };
        let _tags = profiler.tag_thread(id);
        work()
    }

    /// Flushes and stops the exporters: traces first, then logs, then profiles. Blocks; call it from a
    /// blocking context.
    pub fn shutdown(&self, timeout: Duration) {
        if let Some(p) = &self.tracer_provider {
            if let Err(e) = p.shutdown_with_timeout(timeout) {
                tracing::warn!(error = %e, "trace export did not flush cleanly");
            }
        }
        if let Some(p) = &self.logger_provider {
            if let Err(e) = p.shutdown_with_timeout(timeout) {
                tracing::warn!(error = %e, "log export did not flush cleanly");
            }
        }
        let profiler = self.profiler.lock().unwrap_or_else(|e| e.into_inner()).take();
        match profiler.map(Arc::try_unwrap) {
            Some(Ok(p)) => p.stop(),
            Some(Err(_)) => tracing::warn!("profiler still in use at shutdown; its last profile is lost"),
            None => {}
        }
    }
}

/// The sampler named by the standard variables' values (default: parent-based, always on).
fn sampler(config: &Config) -> Result<Sampler, TelemetryError> {
    let ratio = match config.traces_sampler_arg.as_deref() {
        None | Some("") => 1.0,
        Some(text) => match text.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                return Err(TelemetryError::Sampler(format!(
                    "the ratio (--traces-sampler-arg / OTEL_TRACES_SAMPLER_ARG) must be a number from 0.0 to 1.0, got `{text}`"
                )))
            }
        },
    };
    let parent = |root| Sampler::ParentBased(Box::new(root));
    Ok(
        match config
            .traces_sampler
            .as_deref()
            .unwrap_or("parentbased_always_on")
        {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio),
            "parentbased_always_on" | "" => parent(Sampler::AlwaysOn),
            "parentbased_always_off" => parent(Sampler::AlwaysOff),
            "parentbased_traceidratio" => parent(Sampler::TraceIdRatioBased(ratio)),
            other => {
                return Err(TelemetryError::Sampler(format!(
                "unknown sampler `{other}`; use always_on, always_off, traceidratio, parentbased_always_on, \
parentbased_always_off or parentbased_traceidratio"
            )))
            }
        },
    )
}

/// `key=value,key=value` (values percent-decoded as the specification says), every bad pair named.
fn parse_resource_attributes(text: &str) -> Result<Vec<KeyValue>, TelemetryError> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, pair) in text.split(',').enumerate().filter(|(_, p)| !p.trim().is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push(KeyValue::new(k.trim().to_owned(), percent_decode(v.trim())))
            }
            _ => bad.push(format!("pair {} `{pair}` is not key=value", i + 1)),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(TelemetryError::ResourceAttributes(bad.join("; ")))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Spans per export request, and most spans held while waiting. Every export is one HTTP request with
/// its own fixed cost on the exporter's thread; at the SDK's 512 a busy instance sent dozens a second.
/// The queue holds four batches, so a slow collector is absorbed before spans are dropped. A batch that
/// does not fill goes out after the SDK's default delay.
const EXPORT_BATCH: usize = 2048;
const EXPORT_QUEUE: usize = 4 * EXPORT_BATCH;
const EXPORT_DELAY: Duration = Duration::from_secs(5);

fn span_batcher(url: String) -> Result<otlp::SpanBatcher, TelemetryError> {
    let failed = |reason: String| TelemetryError::TraceExporter {
        endpoint: url.clone(),
        reason,
    };
    let exporter = otlp::TraceExporter::new(url.clone(), Duration::from_secs(5)).map_err(failed)?;
    let settings = otlp::BatchSettings {
        batch: EXPORT_BATCH,
        queue: EXPORT_QUEUE,
        delay: EXPORT_DELAY,
    };
    otlp::SpanBatcher::new(exporter, settings)
        .map_err(|e| failed(format!("cannot start the export thread: {e}")))
}

fn log_exporter(url: String) -> Result<LogExporter, TelemetryError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_are_parsed_and_bad_pairs_named() {
        let kvs = parse_resource_attributes("deployment.environment=work%20shop, team=sre").unwrap();
        assert_eq!(kvs[0].value.as_str(), "work shop");
        assert_eq!(kvs[1].key.as_str(), "team");
        let err = parse_resource_attributes("a=1,oops,=2").unwrap_err().to_string();
        assert!(
            err.contains("pair 2 `oops`") && err.contains("pair 3 `=2`"),
            "{err}"
        );
    }

    #[test]
    fn samplers_by_name() {
        let mut c = Config::embedded(crate::Role::App);
        assert!(matches!(sampler(&c).unwrap(), Sampler::ParentBased(_)));
        c.traces_sampler = Some("traceidratio".into());
        c.traces_sampler_arg = Some("0.25".into());
        assert!(matches!(sampler(&c).unwrap(), Sampler::TraceIdRatioBased(r) if r == 0.25));
        c.traces_sampler_arg = Some("2".into());
        assert!(sampler(&c).is_err());
        c.traces_sampler = Some("sometimes".into());
        c.traces_sampler_arg = None;
        assert!(sampler(&c).unwrap_err().to_string().contains("`sometimes`"));
    }
}

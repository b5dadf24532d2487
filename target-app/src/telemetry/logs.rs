//! JSON logs: one object a line, with the trace and span ids of the span each line was written in.
//!
//! [`init`] opens the process's output (stdout for the binary, a file for an embedding program): a bounded
//! buffer that a writer thread empties every 20 ms, so a slow terminal never stalls a request; when the
//! buffer is full a line is dropped and counted rather than blocking. It also installs the process's
//! default subscriber for lines written outside any service (start-up, shutdown). Each service instance
//! adds an [`instance_layer`] to its own subscriber: its lines carry its `service` name and the ids of the
//! current `tracing` span as `tracing-opentelemetry` assigned them, and go to its OTLP logger when log
//! export is on.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceFlags, TraceId};
use opentelemetry_sdk::logs::SdkLogger;
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The process's log output, once [`init`] has opened it.
static OUTPUT: RwLock<Option<Arc<LineBuffer>>> = RwLock::new(None);

/// Keeps the writer thread alive; dropping it flushes every queued line.
pub struct LogGuard {
    buffer: Arc<LineBuffer>,
    writer: Option<JoinHandle<()>>,
}

impl LogGuard {
    /// Lines dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.buffer.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let mut output = OUTPUT.write().unwrap_or_else(|e| e.into_inner());
        if output.as_ref().is_some_and(|b| Arc::ptr_eq(b, &self.buffer)) {
            *output = None;
        }
        drop(output);
        self.buffer.closed.store(true, Ordering::Relaxed);
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

/// Lines waiting for the writer. Requests append under a short lock; the writer swaps the buffer out
/// every few milliseconds, so writing a line costs no system call and no thread wake-up.
struct LineBuffer {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    closed: AtomicBool,
}

/// Most bytes held for the writer; past this, lines are dropped and counted.
const MAX_BUFFERED: usize = 8 * 1024 * 1024;

/// How often the writer writes what has accumulated.
const WRITE_EVERY: Duration = Duration::from_millis(20);

/// Filter applied when `RUST_LOG` is not set: the exporters' own clients and the profiler's per-push
/// chatter stay out of the logs they would otherwise feed.
pub const DEFAULT_FILTER: &str =
    "info,hyper=warn,hyper_util=warn,reqwest=warn,opentelemetry=warn,opentelemetry_sdk=warn,\
opentelemetry_otlp=warn,opentelemetry-otlp=warn,Pyroscope=warn,pyroscope=warn";

/// The level filter of every subscriber: `RUST_LOG`, or [`DEFAULT_FILTER`].
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// The JSON layer of one service instance: lines carry `service` and span ids, and go to the process's
/// output (if [`init`] opened one) and to `logger` (if log export is on).
/// The returned cell must be given the subscriber's dispatcher once it is built: span ids are read
/// through it (a layer cannot ask for the current dispatcher while it is handling an event).
pub fn instance_layer(
    service: Arc<str>,
    logger: Option<SdkLogger>,
) -> (JsonLayer, Arc<OnceLock<WeakDispatch>>) {
    let dispatch = Arc::new(OnceLock::new());
    let layer = JsonLayer {
        buffer: OUTPUT.read().unwrap_or_else(|e| e.into_inner()).clone(),
        service: Some(service),
        logger,
        dispatch: Some(dispatch.clone()),
    };
    (layer, dispatch)
}

/// Opens the process's log output on `out` and installs the default subscriber for lines written
/// outside any service instance.
pub fn init(out: Box<dyn std::io::Write + Send>) -> LogGuard {
    let buffer = Arc::new(LineBuffer {
        lines: Mutex::new(Vec::with_capacity(64 * 1024)),
        dropped: AtomicU64::new(0),
        closed: AtomicBool::new(false),
    });
    let shared = buffer.clone();
    let writer = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(&shared, out))
        .expect("spawn log writer thread");
    *OUTPUT.write().unwrap_or_else(|e| e.into_inner()) = Some(buffer.clone());
    let layer = JsonLayer {
        buffer: Some(buffer.clone()),
        service: None,
        logger: None,
        dispatch: None,
    };
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(layer)
        .try_init();
    LogGuard {
        buffer,
        writer: Some(writer),
    }
}

fn write_lines(buffer: &LineBuffer, out: Box<dyn std::io::Write + Send>) {
    let mut out = out;
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let closed = buffer.closed.load(Ordering::Relaxed);
        std::mem::swap(
            &mut batch,
            &mut *buffer.lines.lock().unwrap_or_else(|e| e.into_inner()),
        );
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
        }
        if closed {
            return;
        }
        std::thread::park_timeout(WRITE_EVERY);
    }
}

/// Formats events as JSON lines; see the module documentation.
pub struct JsonLayer {
    buffer: Option<Arc<LineBuffer>>,
    service: Option<Arc<str>>,
    logger: Option<SdkLogger>,
    /// The subscriber this layer belongs to, when its spans have OpenTelemetry ids to print.
    dispatch: Option<Arc<OnceLock<WeakDispatch>>>,
}

type Ids = (TraceId, SpanId, TraceFlags);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if self.buffer.is_none() && self.logger.is_none() {
            return;
        }
        let meta = event.metadata();
        let level = meta.level();
        let ids = match self.dispatch.as_ref().and_then(|d| d.get()) {
            Some(dispatch) => ctx
                .event_span(event)
                .and_then(|span| span_ids(&span.id(), dispatch)),
            None => None,
        };
        let mut fields = JsonFields {
            keep_pairs: self.logger.is_some(),
            ..JsonFields::default()
        };
        event.record(&mut fields);

        if let Some(buffer) = &self.buffer {
            LINE.with(|cell| match cell.try_borrow_mut() {
                Ok(mut line) => {
                    line.clear();
                    self.format_line(&mut line, meta, *level, &fields, ids);
                    push(buffer, &line);
                }
                // An event raised while formatting another one on this thread: use a fresh buffer.
                Err(_) => {
                    let mut line = String::with_capacity(256);
                    self.format_line(&mut line, meta, *level, &fields, ids);
                    push(buffer, &line);
                }
            });
        }
        if let Some(logger) = &self.logger {
            emit_otlp(logger, *level, &fields, ids);
        }
    }
}

/// The OpenTelemetry ids of a `tracing` span of `dispatch`, if it has valid ones.
fn span_ids(id: &tracing::span::Id, dispatch: &WeakDispatch) -> Option<Ids> {
    let dispatch = dispatch.upgrade()?;
    let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id(), sc.span_id(), sc.trace_flags()))
}

thread_local! {
    /// Each thread formats its lines in one reused buffer.
    static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
}

impl JsonLayer {
    fn format_line(
        &self,
        line: &mut String,
        meta: &tracing::Metadata<'_>,
        level: Level,
        fields: &JsonFields,
        ids: Option<Ids>,
    ) {
        line.push_str("{\"timestamp\":\"");
        rfc3339(SystemTime::now(), line);
        let _ = write!(line, "\",\"level\":\"{}\"", level_name(level));
        line.push_str(",\"message\":");
        push_json_str(line, &fields.message);
        if let Some((trace_id, span_id, _)) = ids {
            let _ = write!(line, ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"");
        }
        if let Some(name) = &self.service {
            line.push_str(",\"service\":");
            push_json_str(line, name);
        }
        line.push_str(&fields.rest);
        line.push_str(",\"target\":");
        push_json_str(line, meta.target());
        line.push_str("}\n");
    }
}

fn push(buffer: &LineBuffer, line: &str) {
    let mut lines = buffer.lines.lock().unwrap_or_else(|e| e.into_inner());
    if lines.len() + line.len() <= MAX_BUFFERED {
        lines.extend_from_slice(line.as_bytes());
    } else {
        drop(lines);
        buffer.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn emit_otlp(logger: &SdkLogger, level: Level, fields: &JsonFields, ids: Option<Ids>) {
    let mut record = logger.create_log_record();
    record.set_timestamp(SystemTime::now());
    record.set_severity_number(match level {
        Level::ERROR => Severity::Error,
        Level::WARN => Severity::Warn,
        Level::INFO => Severity::Info,
        Level::DEBUG => Severity::Debug,
        Level::TRACE => Severity::Trace,
    });
    record.set_severity_text(level_name(level));
    record.set_body(AnyValue::from(fields.message.clone()));
    for (key, value) in &fields.pairs {
        record.add_attribute(key.clone(), value.clone());
    }
    if let Some((trace_id, span_id, flags)) = ids {
        record.set_trace_context(trace_id, span_id, Some(flags));
    }
    logger.emit(record);
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// The event's fields: `message` apart, the rest pre-rendered as `,"key":value` and kept as pairs
/// for the OTLP record.
#[derive(Default)]
struct JsonFields {
    message: String,
    rest: String,
    /// Whether to keep `pairs` (only when an OTLP logger will receive them).
    keep_pairs: bool,
    pairs: Vec<(String, AnyValue)>,
}

impl JsonFields {
    fn key(&mut self, field: &Field) {
        self.rest.push(',');
        push_json_str(&mut self.rest, field.name());
        self.rest.push(':');
    }

    fn pair(&mut self, field: &Field, value: impl FnOnce() -> AnyValue) {
        if self.keep_pairs {
            self.pairs.push((field.name().to_owned(), value()));
        }
    }
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
            return;
        }
        self.key(field);
        push_json_str(&mut self.rest, value);
        self.pair(field, || AnyValue::from(value.to_owned()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
        self.pair(field, || AnyValue::from(value as i64));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
        self.pair(field, || AnyValue::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.rest, "{value}");
        } else {
            self.rest.push_str("null");
        }
        self.pair(field, || AnyValue::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
        self.pair(field, || AnyValue::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && !self.keep_pairs {
            // The common case: format the message straight into its buffer, no intermediate string.
            let _ = write!(self.message, "{value:?}");
            return;
        }
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `t` as RFC 3339 UTC with milliseconds, e.g. `2026-11-24T01:55:04.123Z`.
pub fn rfc3339(t: SystemTime, out: &mut String) {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        since.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        let mut s = String::new();
        rfc3339(
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_485_304_123),
            &mut s,
        );
        assert_eq!(s, "2026-11-24T01:55:04.123Z");
        s.clear();
        rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400), &mut s);
        assert_eq!(s, "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn escapes_json() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, r#""a\"b\\c\nd\u0001""#);
        assert!(serde_json::from_str::<String>(&s).is_ok());
    }
}

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
use tracing_subscriber::filter::Targets;
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

/// Targets whose lines never go out as OTLP log records: the SDK and the HTTP clients that export
/// them, and the profiler. Each export would otherwise add records to the next one (with `RUST_LOG=trace`,
/// more than it sends).
const EXPORT_CHATTER: [&str; 7] = [
    "opentelemetry",
    "hyper",
    "h2",
    "reqwest",
    "tower",
    "Pyroscope",
    "pyroscope",
];

/// Filter applied when `RUST_LOG` is not set: the exporters' own clients and the profiler's per-push
/// chatter stay out of the logs they would otherwise feed.
pub const DEFAULT_FILTER: &str =
    "info,hyper=warn,hyper_util=warn,reqwest=warn,opentelemetry=warn,opentelemetry_sdk=warn,\
opentelemetry_otlp=warn,opentelemetry-otlp=warn,Pyroscope=warn,pyroscope=warn";

/// The level filter of every subscriber: `RUST_LOG`, or [`DEFAULT_FILTER`].
///
/// Directives that name only targets and levels (the default, and the usual `RUST_LOG`) become a static
/// [`Targets`] filter, decided once per call site. Directives on spans or fields need [`EnvFilter`],
/// which also follows every span's entries and exits, a cost on each request's spans.
pub fn filter<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let directives = match directives.trim() {
        "" => DEFAULT_FILTER,
        text => text,
    };
    match parse_filter(directives) {
        Filter::Static(targets) => targets,
        Filter::Spans(env) => env,
    }
}

/// A parsed `RUST_LOG`.
enum Filter {
    Static(Box<Targets>),
    Spans(Box<EnvFilter>),
}

/// `directives` as the cheapest filter that understands them; the default when neither does.
fn parse_filter(directives: &str) -> Filter {
    // `Targets` would read `target[span]` as an odd target name rather than refuse it.
    let names_spans = directives.contains(['[', '{']);
    if !names_spans {
        if let Ok(targets) = directives.parse::<Targets>() {
            return Filter::Static(Box::new(targets));
        }
    }
    match EnvFilter::try_new(directives) {
        Ok(env) => Filter::Spans(Box::new(env)),
        Err(_) => Filter::Static(Box::new(
            DEFAULT_FILTER
                .parse::<Targets>()
                .expect("the default filter is valid"),
        )),
    }
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
    let guard = open(out);
    guard.install_default(None);
    guard
}

/// Opens the process's log output on `out` without installing a default subscriber: for a process that
/// serves one instance, whose dispatcher becomes the default
/// ([`Telemetry::make_process_default`](super::Telemetry::make_process_default)), or else
/// [`LogGuard::install_default`].
pub fn open(out: Box<dyn std::io::Write + Send>) -> LogGuard {
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
    LogGuard {
        buffer,
        writer: Some(writer),
    }
}

impl LogGuard {
    /// Installs the process's default subscriber, for lines written outside any service instance
    /// (naming `service` on each, when the process is one); nothing when a default is already
    /// installed.
    pub fn install_default(&self, service: Option<Arc<str>>) {
        let layer = JsonLayer {
            buffer: Some(self.buffer.clone()),
            service,
            logger: None,
            dispatch: None,
        };
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(layer)
            .try_init();
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

/// The OpenTelemetry ids of a span: trace, span, flags.
pub type Ids = (TraceId, SpanId, TraceFlags);

thread_local! {
    /// Ids of a span handed over by [`with_span_ids`], by the `tracing` id of that span.
    static KNOWN_IDS: std::cell::Cell<Option<(u64, Option<Ids>)>> = const { std::cell::Cell::new(None) };
}

/// Runs `write` with the OpenTelemetry ids of `span` known to this thread's log lines: a line whose
/// explicit parent is `span` takes them from here instead of looking the span up again. `ids` must be
/// those of `span` (its context as `tracing-opentelemetry` reports it); `span` is alive for the whole
/// call, so its `tracing` id names no other span meanwhile.
pub fn with_span_ids<R>(span: &tracing::Span, ids: Option<Ids>, write: impl FnOnce() -> R) -> R {
    let Some(id) = span.id() else {
        return write();
    };
    let before = KNOWN_IDS.replace(Some((id.into_u64(), ids)));
    let out = write();
    KNOWN_IDS.set(before);
    out
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if self.buffer.is_none() && self.logger.is_none() {
            return;
        }
        let meta = event.metadata();
        let level = *meta.level();
        let ids = match self.dispatch.as_ref().and_then(|d| d.get()) {
            Some(dispatch) => match (event.parent(), KNOWN_IDS.get()) {
                (Some(parent), Some((known, ids))) if parent.into_u64() == known => ids,
                _ => ctx
                    .event_span(event)
                    .and_then(|span| span_ids(&span.id(), dispatch)),
            },
            None => None,
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.write_event(&mut scratch, event, meta, level, ids),
            // An event raised while formatting another one on this thread: use fresh buffers.
            Err(_) => self.write_event(&mut Scratch::default(), event, meta, level, ids),
        });
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

/// Buffers one thread reuses for every line it writes, so a line costs no allocation once they have
/// grown to fit.
#[derive(Default)]
struct Scratch {
    line: String,
    fields: JsonFields,
    /// The last whole second formatted, and its text up to the fraction (`2026-11-24T01:55:04.`).
    second: (u64, String),
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        line: String::with_capacity(512),
        fields: JsonFields {
            message: String::with_capacity(64),
            rest: String::with_capacity(256),
            ..JsonFields::default()
        },
        second: (u64::MAX, String::with_capacity(24)),
    });
}

impl JsonLayer {
    fn write_event(
        &self,
        scratch: &mut Scratch,
        event: &Event<'_>,
        meta: &tracing::Metadata<'_>,
        level: Level,
        ids: Option<Ids>,
    ) {
        let Scratch { line, fields, second } = scratch;
        fields.clear(self.logger.is_some());
        event.record(fields);
        if let Some(buffer) = &self.buffer {
            line.clear();
            self.format_line(line, second, meta, level, fields, ids);
            push(buffer, line);
        }
        if let Some(logger) = &self.logger {
            if !EXPORT_CHATTER.iter().any(|t| meta.target().starts_with(t)) {
                emit_otlp(logger, level, fields, ids);
            }
        }
    }

    fn format_line(
        &self,
        line: &mut String,
        second: &mut (u64, String),
        meta: &tracing::Metadata<'_>,
        level: Level,
        fields: &JsonFields,
        ids: Option<Ids>,
    ) {
        line.push_str("{\"timestamp\":\"");
        timestamp(SystemTime::now(), second, line);
        line.push_str("\",\"level\":\"");
        line.push_str(level_name(level));
        line.push_str("\",\"message\":");
        push_json_str(line, &fields.message);
        if let Some((trace_id, span_id, _)) = ids {
            line.push_str(",\"trace_id\":\"");
            push_hex(line, &trace_id.to_bytes());
            line.push_str("\",\"span_id\":\"");
            push_hex(line, &span_id.to_bytes());
            line.push('"');
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

/// Appends `bytes` as lower-case hex, as W3C and OpenTelemetry print ids.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
}

/// Appends `value` in decimal without going through `fmt`.
fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out.push(*d as char);
    }
}

/// Appends `value` as JSON: the same text as `{value}` (`null` when not finite). Values with at most three
/// decimals, such as durations in milliseconds to the microsecond, are written without the shortest-float
/// algorithm, which was a sixth of an access line's cost.
fn push_f64(out: &mut String, value: f64) {
    if !value.is_finite() {
        out.push_str("null");
        return;
    }
    let thousandths = (value * 1000.0).round();
    // Below 1e12 thousandths, neighbouring doubles are far closer than 0.001 apart, so when `k / 1000`
    // is exactly `value`, `k` with its decimal point is the shortest text that reads back as `value`.
    if thousandths.abs() < 1e12 && thousandths / 1000.0 == value {
        let k = thousandths.abs() as u64;
        if value.is_sign_negative() {
            out.push('-');
        }
        push_u64(out, k / 1000);
        let mut frac = k % 1000;
        if frac != 0 {
            out.push('.');
            let mut digits = 3;
            while frac % 10 == 0 {
                frac /= 10;
                digits -= 1;
            }
            let start = out.len();
            push_u64(out, frac);
            for _ in 0..digits - (out.len() - start) {
                out.insert(start, '0');
            }
        }
        return;
    }
    let _ = write!(out, "{value}");
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
    /// Empties the fields for the next event, keeping their buffers.
    fn clear(&mut self, keep_pairs: bool) {
        self.message.clear();
        self.rest.clear();
        self.pairs.clear();
        self.keep_pairs = keep_pairs;
    }

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
            self.message.push_str(value);
            return;
        }
        self.key(field);
        push_json_str(&mut self.rest, value);
        self.pair(field, || AnyValue::from(value.to_owned()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        push_u64(&mut self.rest, value);
        self.pair(field, || AnyValue::from(value as i64));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        if value < 0 {
            self.rest.push('-');
        }
        push_u64(&mut self.rest, value.unsigned_abs());
        self.pair(field, || AnyValue::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        push_f64(&mut self.rest, value);
        self.pair(field, || AnyValue::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.rest.push_str(if value { "true" } else { "false" });
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

/// Appends `s` as a JSON string literal. Runs of characters that need no escape are copied whole.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    // Most strings need no escape; a branch-free scan over the whole string tells so faster than the
    // byte-by-byte loop below.
    let clean = !bytes
        .iter()
        .fold(false, |dirty, &b| dirty | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if clean {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b if b < 0x20 => "",
            _ => continue,
        };
        // Every byte that needs an escape is ASCII, so `start..i` falls on character boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `t` as RFC 3339 UTC with milliseconds, e.g. `2026-11-24T01:55:04.123Z`.
pub fn rfc3339(t: SystemTime, out: &mut String) {
    timestamp(t, &mut (u64::MAX, String::new()), out);
}

/// Appends `t` as [`rfc3339`] does. The text up to the fraction is kept in `second` and formatted again
/// only when the second changes.
fn timestamp(t: SystemTime, second: &mut (u64, String), out: &mut String) {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    if second.0 != secs {
        second.1.clear();
        rfc3339_seconds(secs, &mut second.1);
        second.0 = secs;
    }
    out.push_str(&second.1);
    let ms = since.subsec_millis();
    for d in [ms / 100, ms / 10 % 10, ms % 10] {
        out.push(char::from(b'0' + d as u8));
    }
    out.push('Z');
}

/// Appends `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS.` (UTC).
fn rfc3339_seconds(secs: u64, out: &mut String) {
    let secs = secs as i64;
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
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        let mut cache = (u64::MAX, String::new());
        let mut s = String::new();
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_485_304_123);
        timestamp(t, &mut cache, &mut s);
        assert_eq!(s, "2026-11-24T01:55:04.123Z");
        // The same second again, from the cached text.
        s.clear();
        timestamp(t + Duration::from_millis(805), &mut cache, &mut s);
        assert_eq!(s, "2026-11-24T01:55:04.928Z");
        s.clear();
        timestamp(t + Duration::from_millis(877), &mut cache, &mut s);
        assert_eq!(s, "2026-11-24T01:55:05.000Z");
        s.clear();
        timestamp(
            SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_007),
            &mut cache,
            &mut s,
        );
        assert_eq!(s, "2000-02-29T00:00:00.007Z");
    }

    #[test]
    fn formats_numbers_and_ids() {
        let mut s = String::new();
        for v in [0, 7, 10, 429, 18_446_744_073_709_551_615] {
            s.clear();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        s.clear();
        push_hex(&mut s, &SpanId::from(0x00f0_0d00_dead_beef).to_bytes());
        assert_eq!(s, format!("{}", SpanId::from(0x00f0_0d00_dead_beef)));
        s.clear();
        let trace = TraceId::from(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        push_hex(&mut s, &trace.to_bytes());
        assert_eq!(s, format!("{trace}"));
    }

    #[test]
    fn target_directives_are_static_and_span_directives_are_not() {
        let Filter::Static(default) = parse_filter(DEFAULT_FILTER) else {
            panic!("the default filter names only targets");
        };
        assert!(default.would_enable("target_app::app", &Level::INFO));
        assert!(!default.would_enable("hyper_util::client", &Level::INFO));
        assert!(default.would_enable("opentelemetry_sdk", &Level::WARN));
        let Filter::Static(custom) = parse_filter("warn,target_app=debug") else {
            panic!("target directives need no span tracking");
        };
        assert!(custom.would_enable("target_app::app", &Level::DEBUG));
        assert!(!custom.would_enable("loadgen", &Level::INFO));
        assert!(matches!(
            parse_filter("info,target_app[request]=debug"),
            Filter::Spans(_)
        ));
        // Neither syntax: the default, never a panic.
        let Filter::Static(fallback) = parse_filter("info,[=") else {
            panic!("a bad filter falls back to the default");
        };
        assert!(!fallback.would_enable("reqwest", &Level::INFO));
    }

    #[test]
    fn formats_floats_as_display_does() {
        let mut s = String::new();
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            0.001,
            0.0005,
            1.234,
            12.3456,
            999.999,
            1e9,
            1.5e12,
            1e20,
            1e-7,
            0.1 + 0.2,
            f64::MIN_POSITIVE,
            f64::MAX,
            -2.0625,
        ];
        values.extend((0..20_000u64).map(|us| us as f64 / 1000.0));
        values.extend((0..2_000u64).map(|ns| ns as f64 / 1_000_000.0 + 3.0));
        for v in values {
            s.clear();
            push_f64(&mut s, v);
            assert_eq!(s, format!("{v}"), "{v:?}");
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            s.clear();
            push_f64(&mut s, v);
            assert_eq!(s, "null");
        }
    }

    #[test]
    fn escapes_json() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, r#""a\"b\\c\nd\u0001""#);
        assert!(serde_json::from_str::<String>(&s).is_ok());
        for text in ["", "plain", "ünï\tcödé \u{7f} ✓\"", "\u{1f}x\r\n"] {
            s.clear();
            push_json_str(&mut s, text);
            assert_eq!(serde_json::from_str::<String>(&s).unwrap(), text, "{s}");
        }
    }
}

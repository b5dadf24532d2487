//! OTLP/HTTP span export: each span is encoded into protobuf as it ends, on the thread that ended it,
//! into the pending batch, and a thread of the exporter's own posts each batch to `/v1/traces`.
//!
//! `opentelemetry-otlp` first converts every span into owned protobuf structs (a `Vec` for each id, a
//! `String` for each attribute key and value), then encodes them, then frees them all; on a busy
//! instance that was the exporter thread's largest cost. The SDK's batch processor also moves each
//! span's record through a channel to its thread, and frees it there. Here a span's record is encoded
//! where it ends and freed there, and only bytes wait for export. The wire format is the same
//! `ExportTraceServiceRequest` (`application/x-protobuf`); the tests decode it with the official
//! generated types. This module encodes and posts; it never decides what a span contains.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

/// Posts encoded batches to an OTLP/HTTP collector.
pub struct TraceExporter {
    url: String,
    timeout: Duration,
    client: Mutex<Option<reqwest::blocking::Client>>,
}

impl std::fmt::Debug for TraceExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceExporter")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Attempts per batch when the collector answers 429, 502, 503 or 504 or cannot be reached.
const ATTEMPTS: u32 = 3;

impl TraceExporter {
    /// An exporter posting to `url` (the full `/v1/traces` URL), each attempt bounded by `timeout`.
    pub fn new(url: String, timeout: Duration) -> Result<Self, String> {
        // reqwest's blocking client owns a runtime that must not be created inside another runtime's
        // context, and the app's telemetry is set up from async code.
        let client = std::thread::Builder::new()
            .name("otlp-client-init".into())
            .spawn(move || reqwest::blocking::Client::builder().timeout(timeout).build())
            .map_err(|e| format!("cannot start a thread for the HTTP client: {e}"))?
            .join()
            .map_err(|_| "the thread building the HTTP client panicked".to_owned())?
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(TraceExporter {
            url,
            timeout,
            client: Mutex::new(Some(client)),
        })
    }

    /// Lets the HTTP client go; later posts fail as shut down.
    fn close(&self) {
        self.client.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn post(&self, body: &bytes::Bytes) -> OTelSdkResult {
        let client = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(OTelSdkError::AlreadyShutdown)?;
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = client
                .post(&self.url)
                .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                .body(reqwest::blocking::Body::from(body.clone()))
                .send();
            let retry = match &sent {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => matches!(resp.status().as_u16(), 429 | 502 | 503 | 504),
                Err(e) => e.is_connect() || e.is_timeout(),
            };
            let backoff = Duration::from_millis(100 << attempt);
            if !retry || attempt >= ATTEMPTS || Instant::now() + backoff >= deadline {
                let why = match sent {
                    Ok(resp) => format!("HTTP {}", resp.status()),
                    Err(e) => e.to_string(),
                };
                return Err(OTelSdkError::InternalFailure(format!(
                    "OTLP trace export to {} failed after {attempt} attempt(s): {why}",
                    self.url
                )));
            }
            std::thread::sleep(backoff);
        }
    }
}

/// When to post: as soon as `batch` spans wait, every `delay`, and at a flush. A request holds every
/// span waiting when the export thread wakes (at most `queue`).
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub batch: usize,
    pub queue: usize,
    pub delay: Duration,
}

/// The span processor: see the module documentation. Past `queue` spans waiting, spans are dropped
/// and counted, and the export thread warns with the count.
pub struct SpanBatcher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SpanBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBatcher")
            .field("exporter", &self.shared.exporter)
            .finish_non_exhaustive()
    }
}

struct Shared {
    exporter: TraceExporter,
    settings: BatchSettings,
    pending: Mutex<Pending>,
    /// Wakes the export thread: a batch is full, or the processor is closing.
    wake: Condvar,
    closed: AtomicBool,
    dropped: AtomicU64,
    /// Times the export thread began to wait (counted under the pending lock, which the wait releases).
    waits: AtomicU64,
    /// Held through each export, so that a flush and the thread never post at once.
    outgoing: Mutex<Outgoing>,
}

/// What an export works with, kept between exports so that encoding allocates (almost) nothing.
#[derive(Default)]
struct Outgoing {
    /// The batch being posted; swapped with the pending one.
    taken: Pending,
    body: Vec<u8>,
    scratch: Vec<u8>,
    /// The encoded `Resource` message of this instance, set by the provider.
    resource: Vec<u8>,
    schema_url: String,
    /// Dropped spans already warned about.
    dropped_told: u64,
}

/// Spans encoded as they ended, by instrumentation scope in order of first appearance: each scope's
/// bytes are whole `Span` messages, each with its `ScopeSpans.spans` tag, ready to be framed.
#[derive(Default)]
struct Pending {
    scopes: Vec<(InstrumentationScope, Vec<u8>)>,
    spans: usize,
}

impl Pending {
    /// Appends one encoded span (tag included) under `scope`.
    fn push(&mut self, scope: &InstrumentationScope, encoded: &[u8]) {
        match self.scopes.iter_mut().find(|(s, _)| s == scope) {
            Some((_, bytes)) => bytes.extend_from_slice(encoded),
            None => self.scopes.push((scope.clone(), encoded.to_vec())),
        }
        self.spans += 1;
    }

    /// Empties it, keeping each scope's buffer for the next batch.
    fn clear(&mut self) {
        for (_, bytes) in &mut self.scopes {
            bytes.clear();
        }
        self.spans = 0;
    }
}

thread_local! {
    /// The span being encoded, on the thread that ended it.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl SpanBatcher {
    /// A processor posting through `exporter`; starts its export thread.
    pub fn new(exporter: TraceExporter, settings: BatchSettings) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            exporter,
            settings,
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            outgoing: Mutex::new(Outgoing::default()),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("otlp-spans".into())
                .spawn(move || shared.run())?
        };
        Ok(SpanBatcher {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl Shared {
    /// The export thread: posts whenever a batch is full, every `delay`, and once more when closing.
    fn run(&self) {
        loop {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            self.waits.fetch_add(1, Ordering::Relaxed);
            let (pending, _) = self
                .wake
                .wait_timeout_while(pending, self.settings.delay, |p| {
                    p.spans < self.settings.batch && !self.closed.load(Ordering::Relaxed)
                })
                .unwrap_or_else(|e| e.into_inner());
            drop(pending);
            let closing = self.closed.load(Ordering::Relaxed);
            if let Err(e) = self.export() {
                tracing::warn!(error = %e, "span export failed");
            }
            if closing {
                return;
            }
        }
    }

    /// Posts every pending span.
    fn export(&self) -> OTelSdkResult {
        let mut out = self.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        let out = &mut *out;
        std::mem::swap(
            &mut out.taken,
            &mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()),
        );
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > out.dropped_told {
            tracing::warn!(
                dropped = dropped - out.dropped_told,
                queue = self.settings.queue,
                "span export queue full: spans dropped"
            );
            out.dropped_told = dropped;
        }
        if out.taken.spans == 0 {
            return Ok(());
        }
        encode_request(
            &mut out.body,
            &mut out.scratch,
            &out.resource,
            &out.schema_url,
            &out.taken,
        );
        out.taken.clear();
        let body = bytes::Bytes::from(std::mem::take(&mut out.body));
        let result = self.exporter.post(&body);
        // The body's memory comes back for the next batch once the client has let go of it: a fresh
        // allocation of this size each time cost a page fault per 4 KiB.
        if let Ok(reused) = body.try_into_mut() {
            out.body = Vec::from(reused);
        }
        result
    }
}

impl SpanProcessor for SpanBatcher {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() || self.shared.closed.load(Ordering::Relaxed) {
            return;
        }
        let shared = &*self.shared;
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            message(&mut scratch, 2, |out| encode_span(out, &span));
            let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.spans >= shared.settings.queue {
                drop(pending);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            pending.push(&span.instrumentation_scope, &scratch);
            if pending.spans == shared.settings.batch {
                shared.wake.notify_one();
            }
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.shared.export()
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(thread) = thread else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        {
            // Set under the lock the thread waits with, so that its wake-up is not missed.
            let _pending = self.shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.closed.store(true, Ordering::Relaxed);
            self.shared.wake.notify_one();
        }
        // The thread exports what is pending as its last act.
        let _ = thread.join();
        self.shared.exporter.close();
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut out = self.shared.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        out.resource = encode_resource(resource);
        out.schema_url = resource.schema_url().unwrap_or_default().to_owned();
    }
}

/// The content of a `Resource` message: its attributes.
fn encode_resource(resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in resource.iter() {
        message(&mut out, 1, |out| key_value(out, key.as_str(), value));
    }
    out
}

/// Writes `ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource, scope_spans }] }`
/// into `body`, one `ScopeSpans` per instrumentation scope that has spans. Every length is known before
/// the spans are copied, so they are copied once. `scratch` holds the small parts meanwhile.
fn encode_request(
    body: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    resource: &[u8],
    schema_url: &str,
    pending: &Pending,
) {
    // Each `ScopeSpans` is its scope (field 1), its spans, its schema URL (field 3): the first and last
    // are encoded into `scratch` first, to be measured.
    scratch.clear();
    let mut parts = Vec::with_capacity(pending.scopes.len());
    let mut resource_spans = 0;
    for (scope, spans) in pending.scopes.iter().filter(|(_, spans)| !spans.is_empty()) {
        let start = scratch.len();
        message(scratch, 1, |out| instrumentation_scope(out, scope));
        let head = start..scratch.len();
        string_field(scratch, 3, scope.schema_url().unwrap_or_default());
        let tail = head.end..scratch.len();
        let length = head.len() + spans.len() + tail.len();
        resource_spans += 1 + varint_len(length) + length;
        parts.push((head, spans, tail, length));
    }
    let fields_start = scratch.len();
    bytes_field(scratch, 1, resource);
    let resource_field = fields_start..scratch.len();
    string_field(scratch, 3, schema_url);
    let schema_field = resource_field.end..scratch.len();
    resource_spans += resource_field.len() + schema_field.len();

    body.clear();
    body.reserve(1 + varint_len(resource_spans) + resource_spans);
    tag(body, 1, LEN);
    varint(body, resource_spans as u64);
    body.extend_from_slice(&scratch[resource_field]);
    for (head, spans, tail, length) in parts {
        tag(body, 2, LEN);
        varint(body, length as u64);
        body.extend_from_slice(&scratch[head]);
        body.extend_from_slice(spans);
        body.extend_from_slice(&scratch[tail]);
    }
    body.extend_from_slice(&scratch[schema_field]);
}

/// Bytes `varint` writes for `v`.
fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - (v | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn instrumentation_scope(out: &mut Vec<u8>, scope: &InstrumentationScope) {
    string_field(out, 1, scope.name());
    string_field(out, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        message(out, 3, |out| key_value(out, kv.key.as_str(), &kv.value));
    }
}

/// `opentelemetry.proto.trace.v1.Span`, fields in the order the specification numbers them.
fn encode_span(out: &mut Vec<u8>, data: &SpanData) {
    let cx = &data.span_context;
    bytes_field(out, 1, &cx.trace_id().to_bytes());
    bytes_field(out, 2, &cx.span_id().to_bytes());
    let state = cx.trace_state().header();
    string_field(out, 3, &state);
    if data.parent_span_id != SpanId::INVALID {
        bytes_field(out, 4, &data.parent_span_id.to_bytes());
    }
    string_field(out, 5, &data.name);
    let kind: u64 = match data.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    varint_field(out, 6, kind);
    fixed64_field(out, 7, unix_nanos(data.start_time));
    fixed64_field(out, 8, unix_nanos(data.end_time));
    for kv in &data.attributes {
        message(out, 9, |out| key_value(out, kv.key.as_str(), &kv.value));
    }
    varint_field(out, 10, u64::from(data.dropped_attributes_count));
    for event in data.events.iter() {
        message(out, 11, |out| {
            fixed64_field(out, 1, unix_nanos(event.timestamp));
            string_field(out, 2, &event.name);
            for kv in &event.attributes {
                message(out, 3, |out| key_value(out, kv.key.as_str(), &kv.value));
            }
            varint_field(out, 4, u64::from(event.dropped_attributes_count));
        });
    }
    varint_field(out, 12, u64::from(data.events.dropped_count));
    for link in data.links.iter() {
        message(out, 13, |out| {
            let cx = &link.span_context;
            bytes_field(out, 1, &cx.trace_id().to_bytes());
            bytes_field(out, 2, &cx.span_id().to_bytes());
            string_field(out, 3, &cx.trace_state().header());
            for kv in &link.attributes {
                message(out, 4, |out| key_value(out, kv.key.as_str(), &kv.value));
            }
            varint_field(out, 5, u64::from(link.dropped_attributes_count));
            fixed32_field(out, 6, span_flags(cx.is_remote(), cx.trace_flags().to_u8()));
        });
    }
    varint_field(out, 14, u64::from(data.links.dropped_count));
    message(out, 15, |out| match &data.status {
        Status::Unset => {}
        Status::Ok => varint_field(out, 3, 1),
        Status::Error { description } => {
            string_field(out, 2, description);
            varint_field(out, 3, 2);
        }
    });
    fixed32_field(
        out,
        16,
        span_flags(data.parent_span_is_remote, cx.trace_flags().to_u8()),
    );
}

/// `SpanFlags`: the W3C trace flags, plus whether the parent's remoteness is known (always) and is remote.
fn span_flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `KeyValue { key = 1, value = 2 }`.
fn key_value(out: &mut Vec<u8>, key: &str, value: &Value) {
    string_field(out, 1, key);
    message(out, 2, |out| any_value(out, value));
}

/// `AnyValue`: one of string (1), bool (2), int (3), double (4), array (5). Every field is written even
/// when zero, since which one is present is the value's type.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => {
            tag(out, 1, LEN);
            len_prefixed(out, s.as_str().as_bytes());
        }
        Value::Bool(b) => {
            tag(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::I64(i) => {
            tag(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            tag(out, 4, I64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Array(array) => message(out, 5, |out| match array {
            Array::Bool(v) => v
                .iter()
                .for_each(|b| message(out, 1, |out| any_value(out, &Value::Bool(*b)))),
            Array::I64(v) => v
                .iter()
                .for_each(|i| message(out, 1, |out| any_value(out, &Value::I64(*i)))),
            Array::F64(v) => v
                .iter()
                .for_each(|f| message(out, 1, |out| any_value(out, &Value::F64(*f)))),
            Array::String(v) => v.iter().for_each(|s| {
                message(out, 1, |out| {
                    tag(out, 1, LEN);
                    len_prefixed(out, s.as_str().as_bytes());
                })
            }),
            other => {
                let text = Value::Array(other.clone()).to_string();
                message(out, 1, |out| {
                    tag(out, 1, LEN);
                    len_prefixed(out, text.as_bytes());
                })
            }
        }),
        other => {
            tag(out, 1, LEN);
            len_prefixed(out, other.to_string().as_bytes());
        }
    }
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A `string` field, left out when empty (proto3 default).
fn string_field(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes_field(out, field, s.as_bytes());
}

/// A `bytes` or embedded-message field, left out when empty.
fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        tag(out, field, LEN);
        len_prefixed(out, bytes);
    }
}

/// A varint field, left out when zero.
fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, VARINT);
        varint(out, v);
    }
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, I64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32_field(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        tag(out, field, I32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// An embedded message written by `write`, always present (even empty). Its length is not known
/// before it is written, so it is written after the tag with a one-byte length, which is moved right
/// when the message turns out to be 128 bytes or longer.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    let at = out.len();
    out.push(0);
    write(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
        return;
    }
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let mut v = len as u64;
    while v >= 0x80 {
        prefix[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    prefix[n] = v as u8;
    out.splice(at..=at, prefix[..=n].iter().copied());
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry::{KeyValue, StringValue};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn context(trace: u128, span: u64, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        )
    }

    fn span(id: u64, scope: &InstrumentationScope) -> SpanData {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_795_485_304_123_456_789);
        SpanData {
            span_context: context(0xabc, id, false),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("work"),
            start_time: t0,
            end_time: t0 + Duration::from_micros(1500),
            attributes: vec![KeyValue::new("k", "v")],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }

    /// Every kind of field the exporter writes, decoded by the official generated types, equals what
    /// `opentelemetry-otlp`'s own conversion builds from the same spans.
    #[test]
    fn encodes_what_the_official_conversion_builds() {
        let resource = Resource::builder_empty()
            .with_service_name("target-app")
            .with_attributes([
                KeyValue::new("service.version", "0.1.0"),
                KeyValue::new("deployment.count", 3_i64),
            ])
            .build();
        let app = InstrumentationScope::builder("target-app").build();
        let other = InstrumentationScope::builder("other")
            .with_version("1.2")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("scope.attr", true)])
            .build();

        let mut server = span(1, &app);
        server.span_kind = SpanKind::Server;
        server.parent_span_id = SpanId::from(99);
        server.parent_span_is_remote = true;
        server.name = Cow::Owned("GET /checkout".to_owned());
        server.attributes = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 503_i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("retried", false),
            KeyValue::new("zero", 0_i64),
            // Longer than 127 bytes: its length takes two bytes.
            KeyValue::new("long", "x".repeat(300)),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -2, 0]))),
            KeyValue::new("flags", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![0.5, 0.0]))),
            KeyValue::new(
                "names",
                Value::Array(Array::String(vec![StringValue::from("a"), StringValue::from("")])),
            ),
        ];
        server.dropped_attributes_count = 2;
        server.status = Status::error("HTTP 503");
        server.events.events.push(Event::new(
            "chaos.fault",
            server.start_time + Duration::from_micros(10),
            vec![KeyValue::new("chaos.fault", "error")],
            1,
        ));
        server.events.dropped_count = 4;
        server.links.links.push(Link::new(
            context(0xdef, 7, true),
            vec![KeyValue::new("why", "batch")],
            0,
        ));

        let mut ok = span(2, &other);
        ok.parent_span_id = SpanId::from(1);
        ok.span_kind = SpanKind::Client;
        ok.status = Status::Ok;
        let mut consumer = span(3, &app);
        consumer.span_kind = SpanKind::Consumer;
        consumer.attributes.clear();
        let producer = SpanData {
            span_kind: SpanKind::Producer,
            ..span(4, &other)
        };
        let batch = vec![server, ok, consumer, producer];

        // As the processor does: each span encoded on its own as it ends, then the batch framed.
        let mut pending = Pending::default();
        for data in &batch {
            let mut encoded = Vec::new();
            message(&mut encoded, 2, |out| encode_span(out, data));
            pending.push(&data.instrumentation_scope, &encoded);
        }
        let (mut body, mut scratch) = (Vec::new(), Vec::new());
        encode_request(&mut body, &mut scratch, &encode_resource(&resource), "", &pending);
        let ours = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
        let official = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch.clone(), &(&resource).into()),
        };
        assert_eq!(ours, official);
        assert_eq!(ours.resource_spans[0].scope_spans.len(), 2);

        // The buffers are reused: a second batch encodes the same way.
        encode_request(&mut body, &mut scratch, &encode_resource(&resource), "", &pending);
        let again = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
        assert_eq!(again, official);

        // A scope left without spans after a batch is not framed at all.
        pending.clear();
        let mut encoded = Vec::new();
        message(&mut encoded, 2, |out| encode_span(out, &batch[1]));
        pending.push(&batch[1].instrumentation_scope, &encoded);
        encode_request(&mut body, &mut scratch, &encode_resource(&resource), "", &pending);
        let one = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
        let official = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(vec![batch[1].clone()], &(&resource).into()),
        };
        assert_eq!(one, official);
    }

    #[test]
    fn varint_lengths() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            usize::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v as u64);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }

    /// A collector on loopback that answers 200 to every POST and keeps each body.
    fn collector() -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    loop {
                        let mut length = 0;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        let _ = tx.send(body);
                        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    }
                });
            }
        });
        (url, rx)
    }

    #[test]
    fn a_full_batch_goes_out_at_once_and_what_is_left_at_shutdown() {
        let (url, bodies) = collector();
        let exporter = TraceExporter::new(url, Duration::from_secs(5)).unwrap();
        // A delay no test waits out: only a full batch, or the shutdown, sends.
        let settings = BatchSettings {
            batch: 2,
            queue: 10,
            delay: Duration::from_secs(3600),
        };
        let batcher = SpanBatcher::new(exporter, settings).unwrap();
        let scope = InstrumentationScope::builder("target-app").build();
        // Once the thread has begun to wait, only the full batch's wake-up can send before the delay.
        for _ in 0..10_000 {
            if batcher.shared.waits.load(Ordering::Relaxed) > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            batcher.shared.waits.load(Ordering::Relaxed),
            1,
            "the export thread is waiting"
        );
        for id in 1..=3 {
            batcher.on_end(span(id, &scope));
        }
        let ids = |body: Vec<u8>| -> Vec<Vec<u8>> {
            let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
            req.resource_spans[0].scope_spans[0]
                .spans
                .iter()
                .map(|s| s.span_id.clone())
                .collect()
        };
        // The batch is full at span 2; the thread posts what waits when it wakes (2 or 3 spans).
        let mut posted = ids(bodies
            .recv_timeout(Duration::from_secs(30))
            .expect("the full batch was posted"));
        assert!(posted.len() >= 2, "{posted:?}");
        batcher.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
        if posted.len() < 3 {
            posted.extend(ids(bodies
                .recv_timeout(Duration::from_secs(30))
                .expect("the rest was posted at shutdown")));
        }
        let expected: Vec<Vec<u8>> = (1u64..=3).map(|id| id.to_be_bytes().to_vec()).collect();
        assert_eq!(posted, expected, "each span posted once, in order");
        assert!(bodies.try_recv().is_err(), "nothing else was posted");
        assert!(matches!(
            batcher.shutdown_with_timeout(Duration::from_secs(5)),
            Err(OTelSdkError::AlreadyShutdown)
        ));
    }

    #[test]
    fn past_the_queue_spans_are_dropped_and_counted() {
        // Nothing listens here, and nothing is sent before the shutdown: every span waits.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exporter = TraceExporter::new(
            format!("http://127.0.0.1:{port}/v1/traces"),
            Duration::from_secs(5),
        )
        .unwrap();
        let settings = BatchSettings {
            batch: 100,
            queue: 3,
            delay: Duration::from_secs(3600),
        };
        let batcher = SpanBatcher::new(exporter, settings).unwrap();
        let scope = InstrumentationScope::builder("target-app").build();
        for id in 1..=5 {
            batcher.on_end(span(id, &scope));
        }
        let mut unsampled = span(6, &scope);
        unsampled.span_context = SpanContext::new(
            TraceId::from(0xabc_u128),
            SpanId::from(6),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        batcher.on_end(unsampled);
        assert_eq!(batcher.shared.pending.lock().unwrap().spans, 3);
        assert_eq!(batcher.shared.dropped.load(Ordering::Relaxed), 2);
        // The collector is gone: the last export fails, and the shutdown still ends.
        batcher.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(batcher.shared.pending.lock().unwrap().spans, 0);
    }
}

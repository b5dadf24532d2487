//! What the real binary sends: OTLP traces and logs decoded from protobuf, JSON log lines from stdout,
//! and Pyroscope pushes decoded down to pprof function names.

use std::io::Read;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;

use crate::support::{get, receiver, Proc};

struct Span {
    service: String,
    resource: Vec<(String, String)>,
    attributes: Vec<(String, String)>,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    status: i32,
    /// Names of the span's events.
    events: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn service_of(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Bodies the receiver was sent on `path`.
fn posted(receiver: &crate::support::Receiver, path: &str) -> Vec<bytes::Bytes> {
    receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, _, b)| b.clone())
        .collect()
}

fn decode_spans(bodies: &[bytes::Bytes]) -> Vec<Span> {
    let mut spans = Vec::new();
    for body in bodies {
        let req = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP trace protobuf");
        for rs in req.resource_spans {
            let service = service_of(rs.resource.as_ref());
            let resource = rs
                .resource
                .as_ref()
                .map(|r| pairs(&r.attributes))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(Span {
                        service: service.clone(),
                        resource: resource.clone(),
                        attributes: pairs(&s.attributes),
                        name: s.name,
                        kind: s.kind,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        status: s.status.map(|st| st.code).unwrap_or(0),
                        events: s.events.into_iter().map(|e| e.name).collect(),
                    });
                }
            }
        }
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_external_request_is_one_trace_across_both_services() {
    let otlp = receiver().await;
    let endpoint = format!("http://{}", otlp.addr);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=ci,team=sre%20tools",
        ),
    ];
    let mut downstream = Proc::start(&["--role", "downstream", "--otlp-logs"], &env);
    let down_url = format!("http://{}", downstream.addr);
    let mut app = Proc::start(&["--downstream-url", &down_url, "--otlp-logs"], &env);

    assert_eq!(get(&app.url("/external")).await.status, 200);
    assert_eq!(get(&app.url("/error?type=500")).await.status, 500);
    app.signal("TERM");
    downstream.signal("TERM");
    assert!(app.wait(Duration::from_secs(15)).success());
    assert!(downstream.wait(Duration::from_secs(15)).success());

    let received = otlp.received.lock().unwrap().clone();
    let trace_bodies = posted(&otlp, "/v1/traces");
    for (path, headers, _) in &received {
        assert_eq!(headers["content-type"], "application/x-protobuf", "{path}");
    }
    let spans = decode_spans(&trace_bodies);
    let server = spans
        .iter()
        .find(|s| s.service == "target-app" && s.name == "GET /external" && s.kind == SpanKind::Server as i32)
        .expect("the app's server span");
    let client = spans
        .iter()
        .find(|s| {
            s.service == "target-app" && s.kind == SpanKind::Client as i32 && s.trace_id == server.trace_id
        })
        .expect("the app's client span for the downstream call");
    assert_eq!(
        client.parent, server.span_id,
        "client span is a child of the server span"
    );
    let remote = spans
        .iter()
        .find(|s| {
            s.service == "downstream" && s.kind == SpanKind::Server as i32 && s.trace_id == server.trace_id
        })
        .expect("the downstream's server span, in the same trace");
    assert_eq!(
        remote.parent, client.span_id,
        "W3C trace context links the client span to the downstream"
    );
    assert_eq!(remote.name, "GET /api/data");
    assert!(
        server
            .resource
            .contains(&("deployment.environment".to_owned(), "ci".to_owned()))
            && remote
                .resource
                .contains(&("team".to_owned(), "sre tools".to_owned())),
        "OTEL_RESOURCE_ATTRIBUTES reach the resource: {:?}",
        server.resource
    );
    assert_eq!(server.attr("http.route"), Some("/external"));
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    assert_eq!(client.attr("peer.service"), Some("downstream"));
    assert!(
        spans
            .iter()
            .any(|s| s.service == "downstream" && s.parent == remote.span_id && s.name == "data.lookup"),
        "internal work has child spans"
    );
    let failed = spans
        .iter()
        .find(|s| s.name == "GET /error")
        .expect("span of the failed request");
    assert_eq!(
        failed.status,
        StatusCode::Error as i32,
        "5xx marks the span as an error"
    );
    // Log lines are log lines only: the access line written in a request's span is not also copied
    // into the exported span as an event.
    for span in [server, failed, remote] {
        assert!(
            span.events.is_empty(),
            "{} of {} carries events {:?}",
            span.name,
            span.service,
            span.events
        );
    }

    // JSON logs on stdout carry the same trace id, in both services.
    let app_lines = app.json_lines();
    let access = app_lines
        .iter()
        .find(|l| l["message"] == "request completed" && l["route"] == "/external")
        .expect("access log line of /external");
    assert_eq!(access["trace_id"], server.trace_id.as_str());
    assert_eq!(access["span_id"], server.span_id.as_str());
    assert_eq!(access["status"], 200);
    for field in [
        "timestamp",
        "level",
        "message",
        "trace_id",
        "span_id",
        "route",
        "status",
        "duration_ms",
    ] {
        assert!(!access[field].is_null(), "access log has {field}: {access}");
    }
    let error_line = app_lines
        .iter()
        .find(|l| l["route"] == "/error")
        .expect("access log of /error");
    assert_eq!(error_line["level"], "error", "5xx are logged at error level");
    let remote_access = downstream
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "request completed" && l["route"] == "/api/data")
        .expect("the downstream's access log line");
    assert_eq!(remote_access["service"], "downstream");
    assert_eq!(
        (
            remote_access["trace_id"].as_str(),
            remote_access["span_id"].as_str()
        ),
        (Some(server.trace_id.as_str()), Some(remote.span_id.as_str())),
        "the downstream's log line carries the ids of the span it was written in"
    );

    // OTLP logs carry the trace context too.
    let log_bodies = posted(&otlp, "/v1/logs");
    let mut log_ids = Vec::new();
    for body in &log_bodies {
        let req = ExportLogsServiceRequest::decode(body.as_ref()).expect("OTLP logs protobuf");
        for rl in req.resource_logs {
            let service = service_of(rl.resource.as_ref());
            for sl in rl.scope_logs {
                log_ids.extend(
                    sl.log_records
                        .iter()
                        .map(|r| (service.clone(), hex(&r.trace_id), hex(&r.span_id))),
                );
            }
        }
    }
    for (service, span) in [("target-app", server), ("downstream", remote)] {
        assert!(
            log_ids.contains(&(service.to_owned(), span.trace_id.clone(), span.span_id.clone())),
            "an OTLP log record of {service} carries the ids of its server span"
        );
    }
}

/// With every target's lines on (`RUST_LOG=trace`) and OTLP log export on, what the SDK and the HTTP
/// stacks say stays on stdout: every OTLP log record is a line of target-app's own, so an export never
/// adds records to the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporters_own_lines_are_never_exported_as_log_records() {
    let otlp = receiver().await;
    let endpoint = format!("http://{}", otlp.addr);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let mut app = Proc::start(&["--otlp-logs"], &env);
    for _ in 0..3 {
        assert_eq!(get(&app.url("/")).await.status, 200);
    }
    app.signal("TERM");
    assert!(app.wait(Duration::from_secs(15)).success());

    let lines = app.json_lines();
    let target = |l: &serde_json::Value| l["target"].as_str().unwrap_or_default().to_owned();
    assert!(
        lines.iter().any(|l| target(l).starts_with("hyper")),
        "RUST_LOG=trace puts the HTTP stack's lines on stdout"
    );
    let own: std::collections::HashSet<String> = lines
        .iter()
        .filter(|l| target(l).starts_with("target_app"))
        .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut records = Vec::new();
    for body in posted(&otlp, "/v1/logs") {
        let req = ExportLogsServiceRequest::decode(body.as_ref()).expect("OTLP logs protobuf");
        for rl in req.resource_logs {
            for sl in rl.scope_logs {
                records.extend(sl.log_records.iter().map(|r| text(r.body.as_ref())));
            }
        }
    }
    assert_eq!(
        records.iter().filter(|b| *b == "request completed").count(),
        3,
        "{records:?}"
    );
    for record in &records {
        assert!(
            own.contains(record),
            "OTLP log record {record:?} is not a line of target-app's own"
        );
    }
}

/// Both roles in one process (as loadgen embeds them): each keeps its own `service.name`, and the
/// trace links across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_pair_keeps_two_service_names_in_one_trace() {
    let otlp = receiver().await;
    let endpoint = format!("http://{}", otlp.addr);
    let (app, downstream) = crate::support::spawn_pair(move |c| {
        c.otlp_endpoint = Some(endpoint.clone());
    })
    .await;
    assert_eq!(get(&app.url("/external")).await.status, 200);
    assert_eq!(get(&app.url("/health")).await.status, 200);
    app.stop().await;
    downstream.stop().await;

    let bodies = posted(&otlp, "/v1/traces");
    let spans = decode_spans(&bodies);
    let server = spans
        .iter()
        .find(|s| s.name == "GET /external")
        .expect("the app's server span");
    assert_eq!(server.service, "target-app");
    assert_eq!(server.parent, "", "the app's server span is a root");
    let client = spans
        .iter()
        .find(|s| s.parent == server.span_id && s.kind == SpanKind::Client as i32)
        .expect("client span under the server span");
    assert_eq!(client.service, "target-app");
    let remote = spans
        .iter()
        .find(|s| s.parent == client.span_id)
        .expect("the downstream's span under the client span");
    assert_eq!(remote.service, "downstream");
    assert_eq!(remote.trace_id, server.trace_id);
    let lookup = spans
        .iter()
        .find(|s| s.parent == remote.span_id)
        .expect("the downstream's internal span");
    assert_eq!(
        (lookup.name.as_str(), lookup.service.as_str()),
        ("data.lookup", "downstream")
    );
}

/// A standalone process honours OTEL_TRACES_SAMPLER: always_off exports no spans, yet log lines keep ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_sampler_from_the_environment() {
    let otlp = receiver().await;
    let endpoint = format!("http://{}", otlp.addr);
    let mut app = Proc::start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ],
    );
    assert_eq!(get(&app.url("/")).await.status, 200);
    app.signal("TERM");
    assert!(app.wait(Duration::from_secs(15)).success());
    let bodies = posted(&otlp, "/v1/traces");
    assert!(decode_spans(&bodies).is_empty(), "no span is exported");
    let line = app
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "request completed")
        .expect("access line");
    assert!(line["trace_id"].is_string(), "{line}");
}

// Minimal Pyroscope push and pprof messages, enough to read function names.
#[derive(Clone, PartialEq, Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    series: Vec<RawProfileSeries>,
}

#[derive(Clone, PartialEq, Message)]
struct RawProfileSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<LabelPair>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<RawSample>,
}

#[derive(Clone, PartialEq, Message)]
struct LabelPair {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct RawSample {
    #[prost(bytes = "vec", tag = "1")]
    raw_profile: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Profile {
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<PprofLabel>,
}

#[derive(Clone, PartialEq, Message)]
struct PprofLabel {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
}

fn gunzip_if_needed(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    } else {
        bytes.to_vec()
    }
}

/// One CPU sample: its pprof labels and the function names of its stack.
struct CpuSample {
    labels: Vec<(String, String)>,
    functions: Vec<String>,
}

impl CpuSample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Profiles of `/generate-load` reach Pyroscope with readable function names, and the samples taken
/// while a request's work ran carry its root span's profile id, as the root span says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_carry_the_profile_id_of_their_root_span() {
    let pyroscope = receiver().await;
    let otlp = receiver().await;
    let server = format!("http://{}", pyroscope.addr);
    let endpoint = format!("http://{}", otlp.addr);
    let mut app = Proc::start(
        &["--profile-interval", "2s"],
        &[
            ("PYROSCOPE_SERVER_ADDRESS", server.as_str()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ],
    );
    for _ in 0..15 {
        assert_eq!(get(&app.url("/generate-load?ms=200")).await.status, 200);
    }
    assert_eq!(get(&app.url("/")).await.status, 200);
    app.signal("TERM");
    assert!(app.wait(Duration::from_secs(20)).success());

    let received = pyroscope.received.lock().unwrap().clone();
    assert!(!received.is_empty(), "at least one push");
    let mut samples = Vec::new();
    let mut series_labels = Vec::new();
    for (path, headers, body) in &received {
        assert_eq!(path, "/push.v1.PusherService/Push");
        assert_eq!(headers["content-encoding"], "gzip");
        let push = PushRequest::decode(gunzip_if_needed(body).as_slice()).expect("PushRequest protobuf");
        assert_eq!(push.series.len(), 1, "one series per push, whatever the spans");
        for series in push.series {
            series_labels.extend(series.labels.iter().map(|l| format!("{}={}", l.name, l.value)));
            for s in series.samples {
                let profile =
                    Profile::decode(gunzip_if_needed(&s.raw_profile).as_slice()).expect("pprof protobuf");
                let string = |i: i64| profile.string_table.get(i as usize).cloned().unwrap_or_default();
                let function = |id: u64| {
                    profile
                        .function
                        .iter()
                        .find(|f| f.id == id)
                        .map(|f| string(f.name))
                        .unwrap_or_default()
                };
                for sample in &profile.sample {
                    let functions = sample
                        .location_id
                        .iter()
                        .filter_map(|id| profile.location.iter().find(|l| l.id == *id))
                        .flat_map(|l| l.line.iter().map(|line| function(line.function_id)))
                        .collect();
                    let labels = sample
                        .label
                        .iter()
                        .map(|l| (string(l.key), string(l.str)))
                        .collect();
                    samples.push(CpuSample { labels, functions });
                }
            }
        }
    }
    assert!(
        series_labels.iter().any(|l| l == "service_name=target-app"),
        "{series_labels:?}"
    );
    assert!(series_labels.iter().any(|l| l == "role=app"), "{series_labels:?}");
    assert!(
        !series_labels.iter().any(|l| l.starts_with("span_id=")),
        "span ids are sample labels, never series labels"
    );
    let named = [
        "parse_catalog",
        "price_baskets",
        "rank_recommendations",
        "render_report",
    ];
    let does_work = |s: &CpuSample| s.functions.iter().any(|f| named.iter().any(|n| f.contains(n)));
    assert!(
        samples.iter().any(does_work),
        "a /generate-load function appears in the profile"
    );

    let bodies = posted(&otlp, "/v1/traces");
    let spans = decode_spans(&bodies);
    let roots: Vec<&Span> = spans.iter().filter(|s| s.name == "GET /generate-load").collect();
    assert_eq!(roots.len(), 15);
    for root in &roots {
        assert_eq!(root.parent, "");
        assert_eq!(
            root.attr("pyroscope.profile.id"),
            Some(root.span_id.as_str()),
            "the root span names its profile by its own id"
        );
    }
    // Only spans whose samples carry their id say they have a profile: the index's work is not
    // labelled, so its span offers none (Grafana's "Profiles for this span" would open empty).
    let index = spans.iter().find(|s| s.name == "GET /").expect("span of GET /");
    assert_eq!(index.attr("pyroscope.profile.id"), None);
    let claiming: Vec<&Span> = spans
        .iter()
        .filter(|s| s.attr("pyroscope.profile.id").is_some())
        .collect();
    assert_eq!(
        claiming.len(),
        roots.len(),
        "only the /generate-load spans claim a profile"
    );

    let tagged: Vec<&CpuSample> = samples.iter().filter(|s| s.label("span_id").is_some()).collect();
    for sample in &tagged {
        let id = sample.label("span_id").unwrap();
        assert!(
            roots.iter().any(|r| r.span_id == id),
            "sample labelled span_id={id}, which is no root span"
        );
        if does_work(sample) {
            assert_eq!(sample.label("span_name"), Some("GET /generate-load"));
        }
    }
    for root in &roots {
        assert!(
            tagged
                .iter()
                .any(|s| s.label("span_id") == Some(root.span_id.as_str())),
            "span {} claims a profile, and no sample carries its id",
            root.span_id
        );
    }
    let linked = tagged.iter().filter(|s| does_work(s)).count();
    assert!(
        linked > 0,
        "the request's CPU samples carry its profile id ({} samples, {} tagged)",
        samples.len(),
        tagged.len()
    );
}

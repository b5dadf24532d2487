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
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    status: i32,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

fn decode_spans(bodies: &[bytes::Bytes]) -> Vec<Span> {
    let mut spans = Vec::new();
    for body in bodies {
        let req = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP trace protobuf");
        for rs in req.resource_spans {
            let service = service_of(rs.resource.as_ref());
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: s.name,
                        kind: s.kind,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        status: s.status.map(|st| st.code).unwrap_or(0),
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
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
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
    let trace_bodies: Vec<_> = received
        .iter()
        .filter(|(p, _, _)| p == "/v1/traces")
        .map(|(_, _, b)| b.clone())
        .collect();
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
    assert!(
        downstream
            .json_lines()
            .iter()
            .any(|l| l["trace_id"] == server.trace_id.as_str() && l["service"] == "downstream"),
        "the downstream's log line carries the caller's trace id"
    );

    // OTLP logs carry the trace context too.
    let log_bodies: Vec<_> = received
        .iter()
        .filter(|(p, _, _)| p == "/v1/logs")
        .map(|(_, _, b)| b.clone())
        .collect();
    let mut log_trace_ids = Vec::new();
    for body in &log_bodies {
        let req = ExportLogsServiceRequest::decode(body.as_ref()).expect("OTLP logs protobuf");
        for rl in req.resource_logs {
            for sl in rl.scope_logs {
                log_trace_ids.extend(sl.log_records.iter().map(|r| hex(&r.trace_id)));
            }
        }
    }
    assert!(
        log_trace_ids.contains(&server.trace_id),
        "an OTLP log record of the request carries its trace id"
    );
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
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_reach_pyroscope_with_named_functions() {
    let pyroscope = receiver().await;
    let server = format!("http://{}", pyroscope.addr);
    let mut app = Proc::start(
        &["--profile-interval", "2s"],
        &[("PYROSCOPE_SERVER_ADDRESS", server.as_str())],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        assert_eq!(get(&app.url("/generate-load?ms=200")).await.status, 200);
    }
    app.signal("TERM");
    assert!(app.wait(Duration::from_secs(20)).success());

    let received = pyroscope.received.lock().unwrap().clone();
    assert!(!received.is_empty(), "at least one push");
    let mut functions = Vec::new();
    let mut labels = Vec::new();
    for (path, headers, body) in &received {
        assert_eq!(path, "/push.v1.PusherService/Push");
        assert_eq!(headers["content-encoding"], "gzip");
        let push = PushRequest::decode(gunzip_if_needed(body).as_slice()).expect("PushRequest protobuf");
        for series in push.series {
            labels.extend(series.labels.iter().map(|l| format!("{}={}", l.name, l.value)));
            for s in series.samples {
                let profile =
                    Profile::decode(gunzip_if_needed(&s.raw_profile).as_slice()).expect("pprof protobuf");
                functions.extend(
                    profile
                        .function
                        .iter()
                        .filter_map(|f| profile.string_table.get(f.name as usize))
                        .cloned(),
                );
            }
        }
    }
    assert!(
        labels.iter().any(|l| l == "service_name=target-app"),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l == "role=app"), "{labels:?}");
    let named = [
        "parse_catalog",
        "price_baskets",
        "rank_recommendations",
        "render_report",
    ];
    assert!(
        functions.iter().any(|f| named.iter().any(|n| f.contains(n))),
        "a /generate-load function appears in the profile; got {} functions, e.g. {:?}",
        functions.len(),
        functions.iter().take(20).collect::<Vec<_>>()
    );
}

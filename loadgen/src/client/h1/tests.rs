//! A worker's own connection against scripted servers on loopback: every way an HTTP/1.1 answer can be
//! framed, the server's ways of ending a connection, and answers that are not HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::{Input, INPUT_FIRST, INPUT_MOST};
use crate::client::{Client, Options, Own, Response, Version};
use crate::scenario::Request;
use crate::shared::outcome::Class;

/// What the scripted server does after writing an answer.
#[derive(Clone, Copy)]
enum Then {
    Keep,
    Close,
    /// Resets the connection (RST) instead of answering the next request.
    ResetNext,
}

struct Reply {
    bytes: &'static [u8],
    then: Then,
}

/// A server on loopback answering each request with what `script` gives for (connection number,
/// request number on that connection). Counts the connections; keeps every request's bytes.
struct Scripted {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Scripted {
    async fn start(script: fn(usize, usize) -> Reply) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let conn = count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for n in 0.. {
                        // One request: its head, and a body of its content-length.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        while buf.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        }
                        seen.lock()
                            .unwrap()
                            .push(buf.drain(..head_end + length).collect());
                        let reply = script(conn, n);
                        if socket.write_all(reply.bytes).await.is_err() {
                            return;
                        }
                        match reply.then {
                            Then::Keep => {}
                            Then::Close => return,
                            Then::ResetNext => {
                                let _ = socket.set_zero_linger();
                                let mut chunk = [0u8; 4096];
                                let _ = socket.read(&mut chunk).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Scripted {
            url,
            connections,
            requests,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn get(path: &str) -> Request {
    request(Method::GET, path, None)
}

fn request(method: Method, path: &str, body: Option<&'static [u8]>) -> Request {
    Request {
        name: format!("{method} {path}"),
        method,
        path_and_query: path.parse().unwrap(),
        headers: HeaderMap::new(),
        body: body.map(Bytes::from_static),
        weight: 1.try_into().unwrap(),
    }
}

fn client(url: &str, body_cap: usize) -> Client {
    let options = Options {
        body_cap,
        ..Options::default()
    };
    Client::new(url, &options).unwrap()
}

async fn send(client: &Client, own: &mut Own, req: &Request) -> Response {
    client
        .send_own(own, req, Instant::now() + Duration::from_secs(10))
        .await
}

fn keep(bytes: &'static [u8]) -> Reply {
    Reply {
        bytes,
        then: Then::Keep,
    }
}

#[tokio::test]
async fn answers_with_a_length_share_one_connection() {
    let server = Scripted::start(|_, _| keep(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")).await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..3 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status, r.bytes), (Class::Ok, Some(200), 5));
        assert_eq!(r.version, Some(Version::Http1));
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn chunked_answers_are_counted_through_extensions_and_trailers() {
    let server = Scripted::start(|_, _| {
        keep(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status, r.bytes), (Class::Http5xx, Some(503), 14));
    }
    assert_eq!(
        server.connections(),
        1,
        "the connection is reused after the trailers"
    );
}

#[tokio::test]
async fn an_answer_ended_by_close_is_read_to_the_end_and_not_reused() {
    let server = Scripted::start(|_, _| Reply {
        bytes: b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
        then: Then::Close,
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.bytes, r.resent), (Class::Ok, 13, false));
    }
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn connection_close_is_honoured_without_an_error() {
    // The server says it closes after every second answer, as nginx does at keepalive_requests.
    let server = Scripted::start(|_, n| {
        if n == 1 {
            Reply {
                bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                then: Then::Close,
            }
        } else {
            keep(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        }
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..6 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.resent), (Class::Ok, false));
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced_without_a_resend() {
    let server = Scripted::start(|_, _| Reply {
        bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        then: Then::Close,
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..3 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.resent), (Class::Ok, false));
        // Long enough for the close to arrive and for the connection to be checked before reuse.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn informational_answers_are_skipped_and_bodiless_ones_read_no_body() {
    let server = Scripted::start(|_, n| match n {
        0 => keep(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
        1 => keep(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        2 => keep(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
        _ => keep(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.status, r.bytes), (Some(200), 3));
    let r = send(&client, &mut own, &request(Method::HEAD, "/", None)).await;
    assert_eq!((r.class, r.status, r.bytes), (Class::Ok, Some(200), 0));
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.status, r.bytes), (Some(204), 0));
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.status, r.bytes), (Some(304), 0));
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn bodies_past_the_cap_are_cut_off_and_the_connection_dropped() {
    let server = Scripted::start(|conn, _| {
        if conn % 2 == 0 {
            keep(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")
        } else {
            keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n")
        }
    })
    .await;
    let client = client(&server.url, 10);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status, r.bytes), (Class::BodyTooLarge, Some(200), 10));
    }
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn answers_that_are_not_http_are_protocol_errors() {
    let server = Scripted::start(|_, n| match n {
        0 => keep(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
        1 => keep(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
        2 => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        _ => keep(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..4 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status), (Class::Protocol, None));
    }
    assert_eq!(
        server.connections(),
        4,
        "a connection that spoke nonsense is not reused"
    );
}

#[tokio::test]
async fn chunk_sizes_that_add_up_past_64_bits_are_protocol_errors() {
    let server = Scripted::start(|conn, _| match conn {
        0 => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nfffffffffffffffd\r\n"),
        1 => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n"),
        // One chunk of 2^64 - 1 bytes is a size, just far past the cap.
        _ => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"),
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status), (Class::Protocol, None));
    }
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!(
        (r.class, r.status, r.bytes),
        (Class::BodyTooLarge, Some(200), 1024)
    );
    assert_eq!(server.connections(), 3, "no connection is reused after either");
}

#[tokio::test]
async fn a_close_or_reset_before_the_answer_ends_is_counted_not_resent() {
    let server = Scripted::start(|conn, _| match conn {
        0 => Reply {
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            then: Then::Close,
        },
        _ => Reply {
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            then: Then::ResetNext,
        },
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.class, r.status, r.resent), (Class::Closed, None, false));
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!(r.class, Class::Ok);
    let r = send(&client, &mut own, &get("/")).await;
    assert!(matches!(r.class, Class::Reset | Class::Closed), "{:?}", r.class);
    assert!(!r.resent);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn requests_are_written_as_the_scenario_says() {
    let server = Scripted::start(|_, _| keep(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")).await;
    let client = client(&format!("{}/base/", server.url), 1024);
    let mut own = Own::default();
    let mut post = request(Method::POST, "/orders?id=7", Some(b"{\"n\":1}"));
    post.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    post.headers.insert("x-run", HeaderValue::from_static("workshop"));
    let r = send(&client, &mut own, &post).await;
    assert_eq!((r.class, r.status, r.bytes), (Class::Ok, Some(201), 0));
    let r = send(&client, &mut own, &request(Method::PUT, "/empty", None)).await;
    assert_eq!(r.status, Some(201));
    let seen = server.requests.lock().unwrap().clone();
    let host = server.url.trim_start_matches("http://");
    assert_eq!(
        String::from_utf8(seen[0].clone()).unwrap(),
        format!(
            "POST /base/orders?id=7 HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             x-run: workshop\r\ncontent-length: 7\r\n\r\n{{\"n\":1}}"
        )
    );
    assert_eq!(
        String::from_utf8(seen[1].clone()).unwrap(),
        format!("PUT /base/empty HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\n\r\n")
    );
}

#[tokio::test]
async fn a_refused_connection_is_classified_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client(&url, 1024);
    let mut own = Own::default();
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.class, r.status, r.handshake), (Class::Connect, None, None));
}

/// A server that reads only each request's head, answers 413 and closes without reading the body
/// (so the kernel resets the connection), after holding it for `linger`. Counts the heads it read.
async fn refusing_server(linger: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(AtomicUsize::new(0));
    let count = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                tokio::time::sleep(linger).await;
            });
        }
    });
    (url, heads)
}

const BIG: &[u8] = &[b'x'; 16 << 20];

#[tokio::test]
async fn a_request_the_server_refused_part_way_is_never_sent_twice() {
    // The server resets at once: whatever loadgen saw, each request arrived once.
    let (url, heads) = refusing_server(Duration::ZERO).await;
    let client = client(&url, 1024);
    let mut own = Own::default();
    let post = request(Method::POST, "/upload", Some(BIG));
    for _ in 0..5 {
        let r = send(&client, &mut own, &post).await;
        assert!(!r.resent, "{r:?}");
        assert!(
            matches!(r.class, Class::Http4xx | Class::Reset | Class::Closed),
            "{r:?}"
        );
    }
    assert_eq!(
        heads.load(Ordering::SeqCst),
        5,
        "each request reached the server once"
    );
}

#[tokio::test]
async fn an_answer_that_comes_while_the_body_is_written_is_what_the_request_got() {
    let (url, heads) = refusing_server(Duration::from_secs(5)).await;
    let client = client(&url, 1024);
    let mut own = Own::default();
    let post = request(Method::POST, "/upload", Some(BIG));
    for _ in 0..3 {
        let r = send(&client, &mut own, &post).await;
        assert_eq!(
            (r.class, r.status, r.resent),
            (Class::Http4xx, Some(413), false),
            "{r:?}"
        );
    }
    assert_eq!(heads.load(Ordering::SeqCst), 3);
}

mod decode {
    use proptest::prelude::*;

    use crate::client::decode_answer;
    use crate::shared::outcome::Class;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_give_an_answer_or_a_class_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_answer(&bytes, false, 1 << 20);
            let _ = decode_answer(&bytes, true, 0);
        }

        #[test]
        fn a_framed_answer_is_counted_to_the_byte(status in prop_oneof![200u16..204, 205u16..304, 305u16..600], body in prop::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..512) {
            let mut framed = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            framed.extend_from_slice(&body);
            prop_assert_eq!(decode_answer(&framed, false, 1 << 20), Ok((status, body.len() as u64)));
            let mut chunked = format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            for part in body.chunks(chunk) {
                chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                chunked.extend_from_slice(part);
                chunked.extend_from_slice(b"\r\n");
            }
            chunked.extend_from_slice(b"0\r\n\r\n");
            prop_assert_eq!(decode_answer(&chunked, false, 1 << 20), Ok((status, body.len() as u64)));
        }

        #[test]
        fn extreme_lengths_are_protocol_errors_or_short_answers(n in prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(1u64 << 63), any::<u64>()]) {
            let length = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\nabc");
            let got = decode_answer(length.as_bytes(), false, 1 << 20);
            prop_assert!(matches!(got, Err(Class::Closed | Class::Protocol | Class::BodyTooLarge)) || got == Ok((200, 3)), "{got:?}");
            let chunk = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\nabc");
            let got = decode_answer(chunk.as_bytes(), false, 1 << 20);
            prop_assert!(got.is_err(), "{got:?}");
        }
    }
}

/// Ten thousand connections cost what their answers need: the input buffer starts at 1 KiB for a
/// small answer and doubles, up to 64 KiB, only while reads fill it.
#[tokio::test]
async fn the_input_buffer_starts_small_and_grows_only_while_reads_fill_it() {
    let mut input = Input::default();
    let small = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
    input.fill(&mut &small[..]).await.unwrap();
    assert_eq!(input.data.capacity(), INPUT_FIRST);
    input.clear();
    input.fill(&mut &small[..]).await.unwrap();
    assert_eq!(
        input.data.capacity(),
        INPUT_FIRST,
        "an answer that fits does not grow it"
    );
    input.clear();
    let body = vec![b'x'; 300 * 1024];
    input.skip(&mut &body[..], body.len() as u64).await.unwrap();
    assert_eq!(
        input.data.capacity(),
        INPUT_MOST,
        "a large body grows it to the most"
    );
}

/// A closed-loop worker holds its request's future for as long as its connection lives: the rare
/// paths (connecting, HTTP/2 through the pool) are boxed so that it stays small. Ten thousand
/// workers kept 5 KiB each before.
#[tokio::test]
async fn a_request_on_an_own_connection_is_a_small_future() {
    let client = client("http://127.0.0.1:9", 1024);
    let mut own = Own::default();
    let req = get("/");
    let future = client.send_own(&mut own, &req, Instant::now());
    let size = std::mem::size_of_val(&future);
    // 696 bytes in a debug build, 1568 with the connect not boxed. (A whole worker, in a release
    // build: 920 bytes, 4992 with neither boxed.)
    assert!(size < 1024, "{size} bytes");
}

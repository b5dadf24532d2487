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

/// Sends `req` on `own`'s connection; with `ticked`, on a connection of the open loop's set (no
/// lease is held, so its driver reads the answers).
async fn send_on(client: &Client, own: &mut Own, req: &Request, ticked: bool) -> Response {
    client
        .send_on(own, req, Instant::now() + Duration::from_secs(10), ticked)
        .await
}

fn keep(bytes: &'static [u8]) -> Reply {
    Reply {
        bytes,
        then: Then::Keep,
    }
}

/// Every exchange, on a worker's own connection.
mod own {
    use super::*;

    async fn send(client: &Client, own: &mut Own, req: &Request) -> Response {
        send_on(client, own, req, false).await
    }

    include!("exchanges.rs");
}

/// Every exchange again, on connections of the open loop's set: read and written outside the
/// reactor, with the set's events for readiness.
#[cfg(target_os = "linux")]
mod ticked {
    use super::*;

    async fn send(client: &Client, own: &mut Own, req: &Request) -> Response {
        send_on(client, own, req, true).await
    }

    include!("exchanges.rs");
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

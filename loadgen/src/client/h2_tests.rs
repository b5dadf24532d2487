//! The shared HTTP/2 connection against a server scripted frame by frame on loopback (h2c by prior
//! knowledge): which streams a server's GOAWAY or REFUSED_STREAM leaves unprocessed, and so may go out
//! again, and which it may have processed, and so never do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::client::{Client, Options, Protocol, Response};
use crate::scenario::Request;
use crate::shared::outcome::Class;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const NO_ERROR: u32 = 0;
const REFUSED_STREAM: u32 = 7;
/// HPACK: the static table's `:status: 200`.
const STATUS_200: &[u8] = &[0x88];

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `200` with the body `ok\n`.
fn answer(stream: u32) -> Vec<u8> {
    let mut out = frame(HEADERS, END_HEADERS, stream, STATUS_200);
    out.extend(frame(DATA, END_STREAM, stream, b"ok\n"));
    out
}

/// What the first connection does once two requests (streams 1 and 3) are open on it. Later
/// connections answer every request at once.
#[derive(Clone, Copy)]
enum First {
    /// GOAWAY naming `last` as the last stream processed, `200` on stream 1, then the connection
    /// closes: stream 3 is never answered.
    GoAwayThenClose { last: u32 },
    /// REFUSED_STREAM on stream 3, `200` on stream 1; the connection stays open.
    Refuse3,
}

/// A server on loopback that keeps the streams every connection opened, in order.
struct Scripted {
    url: String,
    streams: Arc<Mutex<Vec<Vec<u32>>>>,
}

impl Scripted {
    async fn start(first: First) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let streams = Arc::new(Mutex::new(Vec::new()));
        let seen = streams.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let conn = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Vec::new());
                    seen.len() - 1
                };
                let script = (conn == 0).then_some(first);
                tokio::spawn(serve(socket, script, seen.clone(), conn));
            }
        });
        Scripted { url, streams }
    }

    fn streams(&self) -> Vec<Vec<u32>> {
        self.streams.lock().unwrap().clone()
    }
}

async fn serve(mut socket: TcpStream, script: Option<First>, seen: Arc<Mutex<Vec<Vec<u32>>>>, conn: usize) {
    let mut preface = [0u8; 24];
    if socket.read_exact(&mut preface).await.is_err() {
        return;
    }
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    if socket.write_all(&frame(SETTINGS, 0, 0, &[])).await.is_err() {
        return;
    }
    let mut open = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if socket.read_exact(&mut head).await.is_err() {
            return;
        }
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; length];
        if socket.read_exact(&mut payload).await.is_err() {
            return;
        }
        let reply = match kind {
            SETTINGS if flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
            HEADERS => {
                seen.lock().unwrap()[conn].push(stream);
                open.push(stream);
                match script {
                    None => answer(stream),
                    Some(_) if open.len() < 2 => continue,
                    Some(First::GoAwayThenClose { last }) => {
                        let mut goaway = last.to_be_bytes().to_vec();
                        goaway.extend_from_slice(&NO_ERROR.to_be_bytes());
                        let mut out = frame(GOAWAY, 0, 0, &goaway);
                        out.extend(answer(1));
                        let _ = socket.write_all(&out).await;
                        return;
                    }
                    Some(First::Refuse3) => {
                        let mut out = frame(RST_STREAM, 0, 3, &REFUSED_STREAM.to_be_bytes());
                        out.extend(answer(1));
                        out
                    }
                }
            }
            _ => continue,
        };
        if socket.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn client(url: &str) -> Client {
    let options = Options {
        protocol: Protocol::Http2PriorKnowledge,
        ..Options::default()
    };
    Client::new(url, &options).unwrap()
}

/// Two requests at once on the shared connection: streams 1 and 3 of the first one.
async fn two_at_once(client: &Client) -> [Response; 2] {
    let req = Request {
        name: "GET /".into(),
        method: Method::GET,
        path_and_query: "/".parse().unwrap(),
        headers: HeaderMap::new(),
        body: None,
        weight: 1.try_into().unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let (a, b) = tokio::join!(client.send(&req, deadline), client.send(&req, deadline));
    [a, b]
}

#[tokio::test]
async fn a_stream_above_the_goaways_last_stream_id_is_sent_again_on_a_new_connection() {
    let server = Scripted::start(First::GoAwayThenClose { last: 1 }).await;
    let client = client(&server.url);
    let answers = two_at_once(&client).await;
    for r in &answers {
        assert_eq!((r.class, r.status, r.bytes), (Class::Ok, Some(200), 3), "{r:?}");
    }
    assert_eq!(answers.iter().filter(|r| r.resent).count(), 1, "{answers:?}");
    // Stream 3 was not processed, so it went out once more; stream 1 only once.
    assert_eq!(server.streams(), vec![vec![1, 3], vec![1]]);
}

#[tokio::test]
async fn a_stream_the_goaway_says_may_have_been_processed_is_never_sent_again() {
    // The GOAWAY names stream 3 as processed, then the connection closes before its answer: the
    // server may have acted on it, so it counts as failed rather than going out twice.
    let server = Scripted::start(First::GoAwayThenClose { last: 3 }).await;
    let client = client(&server.url);
    let answers = two_at_once(&client).await;
    let ok = answers.iter().filter(|r| r.class == Class::Ok).count();
    let failed: Vec<_> = answers.iter().filter(|r| r.class.is_error()).collect();
    assert_eq!((ok, failed.len()), (1, 1), "{answers:?}");
    assert!(
        matches!(failed[0].class, Class::Reset | Class::Closed),
        "{answers:?}"
    );
    assert!(answers.iter().all(|r| !r.resent), "{answers:?}");
    assert_eq!(server.streams(), vec![vec![1, 3]]);
}

#[tokio::test]
async fn a_refused_stream_is_sent_again_on_a_new_connection() {
    let server = Scripted::start(First::Refuse3).await;
    let client = client(&server.url);
    let answers = two_at_once(&client).await;
    for r in &answers {
        assert_eq!((r.class, r.status), (Class::Ok, Some(200)), "{r:?}");
    }
    assert_eq!(answers.iter().filter(|r| r.resent).count(), 1, "{answers:?}");
    assert_eq!(server.streams(), vec![vec![1, 3], vec![1]]);
}

//! The HTTP client of every request loadgen sends: the scenario's requests to the target, and the
//! calls to the chaos API and Prometheus. http or https (rustls), HTTP/1.1 or HTTP/2, a small
//! connection pool of its own, a timeout per request counted from its intended send time, and a cap on
//! how much of each answer is read.
//!
//! The pool holds idle HTTP/1.1 connections to the one target (most recently used first) and, for
//! HTTP/2, one shared connection whose streams the requests share (the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` bounds them; more wait for a stream). There is no routing by host
//! and no background reaping; that is what makes it cheaper than a general client.
//!
//! It never invents an error, and never sends a request twice that the server may have processed. A
//! request is sent again, on a fresh connection, only when hyper hands it back unsent (the pooled
//! connection closed before any byte of it was written); it is then counted once, as what the new
//! attempt got. Idle connections older than the idle timeout, or than the idle time after which this
//! server was seen closing them, are not reused. HTTP/2 is spoken with `h2` directly, so that a
//! stream the server refused unprocessed (REFUSED_STREAM, or above the last stream id of its GOAWAY)
//! is told apart from one it may have processed, and only the first is sent again.
//!
//! A closed-loop worker does not use the pool: over HTTP/1.1 it keeps a connection of its own, spoken
//! directly on the socket (module `h1`) under the same rules ([`Client::send_own`]). The open loop's
//! HTTP/1.1 requests go on such connections too, taken from a list of the client's own; on Linux,
//! over cleartext, their answers are read at the precise pacer's wake-ups and timed by the kernel's
//! receive timestamps (module `h1::tick`).

mod api;
pub mod chaos;
mod conn;
mod h1;
#[cfg(test)]
mod h2_tests;
pub mod tls;

pub use h1::decode_answer;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::uri::Authority;
use http::{HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use tokio::time::Instant;

pub use api::{Api, Auth};
pub use conn::{BadTarget, Protocol};
use conn::{ConnectFailure, Endpoint, Sender, H2};
#[cfg(target_os = "linux")]
pub use h1::tick::Lease;
use h1::Failed;
pub use h1::Own;
use tls::TlsOptions;

use crate::scenario::Request;
use crate::shared::outcome::{classify_error, Class};

/// Default cap on the bytes read from one answer.
pub const DEFAULT_BODY_CAP: usize = 1024 * 1024;

/// Idle connections older than this are closed rather than reused. Below a second, because servers
/// close idle connections after as little as one (`keepalive_timeout 1s`), and a request written just
/// as the server closes may have reached it, so it can neither be resent nor blamed on the client.
/// Above it, one connection per request costs little.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_millis(900);

/// A server seen closing a connection idle for less than this is not taken as a keep-alive policy
/// (an outage or a restart closes connections too).
const SHORTEST_LEARNED_IDLE: Duration = Duration::from_millis(250);

/// Attempts per request: the first, and resends of a request handed back unsent.
const ATTEMPTS: usize = 3;

/// How to speak to the target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most bytes read from one answer.
    pub body_cap: usize,
    /// Most idle HTTP/1.1 connections kept.
    pub max_idle: usize,
    /// Idle connections older than this are not reused.
    pub idle_timeout: Duration,
    /// HTTP/1.1, HTTP/2 by ALPN, or h2c by prior knowledge.
    pub protocol: Protocol,
    /// Certificates and verification, for https.
    pub tls: TlsOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            body_cap: DEFAULT_BODY_CAP,
            max_idle: 64,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            protocol: Protocol::Http1,
            tls: TlsOptions::default(),
        }
    }
}

/// What one request produced.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub class: Class,
    /// The status, when an answer came.
    pub status: Option<u16>,
    /// Body bytes read.
    pub bytes: u64,
    /// The protocol the answer came in.
    pub version: Option<Version>,
    /// Time spent opening a connection (TCP and TLS) for this request, when it needed a new one.
    pub handshake: Option<Duration>,
    /// Whether the request was handed back unsent and sent again on a fresh connection.
    pub resent: bool,
    /// When the answer's last bytes arrived, by the kernel's receive timestamp, on connections
    /// whose answers may be read a little after they arrive (the open loop's); `None` elsewhere:
    /// the answer ended when it was read.
    pub received: Option<Instant>,
}

impl Response {
    fn answered(status: u16, version: Version) -> Response {
        Response {
            class: Class::of_status(status),
            status: Some(status),
            bytes: 0,
            version: Some(version),
            handshake: None,
            resent: false,
            received: None,
        }
    }

    /// The attempt's outcome once its body was read: the body, `None` past `cap`, or how reading
    /// it failed.
    fn with_body(mut self, body: Result<Option<Bytes>, Class>, cap: usize) -> Attempt {
        match body {
            Ok(Some(body)) => {
                self.bytes = body.len() as u64;
                Attempt::Answered(self, body)
            }
            Ok(None) => {
                self.class = Class::BodyTooLarge;
                self.bytes = cap as u64;
                Attempt::Answered(self, Bytes::new())
            }
            Err(class) => {
                self.class = class;
                Attempt::Answered(self, Bytes::new())
            }
        }
    }

    fn failed(class: Class) -> Response {
        Response {
            class,
            status: None,
            bytes: 0,
            version: None,
            handshake: None,
            resent: false,
            received: None,
        }
    }
}

/// How one attempt at a request ended.
enum Attempt {
    /// An answer came (its body read, or how reading it failed).
    Answered(Response, Bytes),
    /// The server did not process it (never written, or an HTTP/2 stream it refused): it may go out
    /// again. The class it counts as when it cannot.
    Unprocessed(Class),
    /// Failed where the server may have acted on it.
    Failed(Class),
}

/// The HTTP version an answer came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
}

impl Version {
    /// Every version, in report order.
    pub const ALL: [Version; 2] = [Version::Http1, Version::Http2];

    /// As written in reports.
    pub fn name(self) -> &'static str {
        match self {
            Version::Http1 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
        }
    }

    /// Position in [`Version::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A call that did not get an answer (see [`Client::call`]).
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct CallError {
    pub class: Class,
    pub detail: String,
}

/// Sends requests to one target.
pub struct Client {
    endpoint: Endpoint,
    host: HeaderValue,
    /// `host` as an HTTP/2 `:authority`.
    authority: Authority,
    /// Path prefix of the target URL, without a trailing slash.
    prefix: String,
    body_cap: usize,
    max_idle: usize,
    idle_timeout: Duration,
    /// Oldest first: reused from the back, expired from the front.
    idle: Mutex<VecDeque<Idle>>,
    shared_h2: Mutex<SharedH2>,
    /// Shortest idle time after which the server was seen closing a connection, in nanoseconds
    /// (`u64::MAX`: never seen).
    server_idle_nanos: AtomicU64,
    /// The first TLS failure, told once to the user.
    tls_failure: Mutex<Option<String>>,
    /// Held while an HTTP/2 connection is being opened, so that requests arriving meanwhile wait
    /// for it and share it instead of each opening their own.
    h2_connecting: tokio::sync::Mutex<()>,
    /// Whether the server answered HTTP/2 when offered (`None` until a connection tells).
    speaks_h2: Mutex<Option<bool>>,
    wants_h2: bool,
    /// HTTP/1.1 requests sent one by one (the open loop's) take a connection of the client's own
    /// from here, as a closed-loop worker keeps its one, and give it back when its answer ended
    /// cleanly: most recently used first, at most `max_idle` kept.
    owns: Mutex<Vec<Own>>,
    /// The set the open loop's plain HTTP/1.1 connections are in, made with the first of them
    /// (`None` in it: TLS, HTTP/2, or no epoll).
    #[cfg(target_os = "linux")]
    ticker: std::sync::OnceLock<Option<h1::tick::Ticker>>,
}

/// The HTTP/2 connection requests share, numbered so that one that refused a stream is not taken
/// again for it.
#[derive(Default)]
struct SharedH2 {
    sender: Option<H2>,
    /// How many shared connections were opened; the number of the current one.
    generation: u64,
}

struct Idle {
    sender: http1::SendRequest<Full<Bytes>>,
    since: Instant,
}

impl Client {
    /// A client for `base` (e.g. `https://api.example:8443/v1`).
    pub fn new(base: &str, options: &Options) -> Result<Client, BadTarget> {
        let (endpoint, host, prefix) = Endpoint::new(base, options)?;
        let authority = Authority::try_from(host.as_bytes()).map_err(|_| BadTarget::Url(base.to_owned()))?;
        Ok(Client {
            endpoint,
            host,
            authority,
            prefix,
            body_cap: options.body_cap,
            max_idle: options.max_idle,
            idle_timeout: options.idle_timeout,
            idle: Mutex::new(VecDeque::new()),
            shared_h2: Mutex::new(SharedH2::default()),
            server_idle_nanos: AtomicU64::new(u64::MAX),
            tls_failure: Mutex::new(None),
            h2_connecting: tokio::sync::Mutex::new(()),
            speaks_h2: Mutex::new(None),
            wants_h2: options.protocol != Protocol::Http1,
            owns: Mutex::new(Vec::new()),
            #[cfg(target_os = "linux")]
            ticker: std::sync::OnceLock::new(),
        })
    }

    /// The first TLS failure seen, in words, if any.
    pub fn tls_failure(&self) -> Option<String> {
        self.tls_failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends `req`, giving up at `deadline`. Over HTTP/1.1 on a connection of the client's own (as
    /// [`Client::send_own`], with the same rules for reuse and resending); over HTTP/2, or when
    /// HTTP/2 was asked for, through the pool.
    pub async fn send(&self, req: &Request, deadline: Instant) -> Response {
        if !self.wants_h2 {
            let taken = self.owns.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut own = taken.unwrap_or_default();
            let response = self.send_on(&mut own, req, deadline, true).await;
            self.keep(own);
            return response;
        }
        self.send_pooled(req, deadline).await
    }

    /// Keeps `own` for the next request when its connection can carry one.
    fn keep(&self, own: Own) {
        if own.has_conn() {
            let mut owns = self.owns.lock().unwrap_or_else(|e| e.into_inner());
            if owns.len() < self.max_idle {
                owns.push(own);
            }
        }
    }

    /// Opens up to `n` HTTP/1.1 connections (at most `max_idle`) before they are needed, so that the
    /// first requests of an open loop wait for no handshake; returns how many opened. Nothing for
    /// HTTP/2, whose one connection opens with the first request.
    pub async fn warm(&self, n: usize) -> usize {
        if self.wants_h2 {
            return 0;
        }
        let n = n.min(self.max_idle);
        let opened = join_all((0..n).map(|_| async {
            let begun = Instant::now();
            self.open(true).await.map(|s| (s, begun.elapsed()))
        }))
        .await;
        let mut count = 0;
        for (stream, handshake) in opened.into_iter().flatten() {
            self.keep(Own::opened(stream, handshake));
            count += 1;
        }
        count
    }

    /// Sends `req` through the pool of hyper connections, giving up at `deadline`.
    async fn send_pooled(&self, req: &Request, deadline: Instant) -> Response {
        let target = if self.prefix.is_empty() {
            req.path_and_query.as_str().to_owned()
        } else {
            format!("{}{}", self.prefix, req.path_and_query)
        };
        let build = || {
            let mut builder = http::Request::builder()
                .method(req.method.clone())
                .uri(target.as_str());
            if let Some(headers) = builder.headers_mut() {
                headers.reserve(req.headers.len() + 1);
                headers.insert(HOST, self.host.clone());
                for (name, value) in &req.headers {
                    headers.append(name, value.clone());
                }
            }
            builder.body(req.body.clone().unwrap_or_default())
        };
        let mut handshake = None;
        let exchange = self.exchange(build, self.body_cap, &mut handshake);
        let mut response = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok((r, _))) => r,
            Ok(Err(class)) => Response::failed(class),
            Err(_) => Response::failed(Class::Timeout),
        };
        response.handshake = handshake;
        response
    }

    /// Sends `req` on the connection `own` keeps (opening one when it has none that is usable),
    /// giving up at `deadline`. For one closed-loop worker: no pool, no connection task. HTTP/2
    /// targets share the pool's connection instead.
    pub async fn send_own(&self, own: &mut Own, req: &Request, deadline: Instant) -> Response {
        self.send_on(own, req, deadline, false).await
    }

    /// A lease on the set of the open loop's connections, for a pacer that reads their answers
    /// at its own wake-ups (see `h1::tick`); `None` when they are not in one.
    #[cfg(target_os = "linux")]
    pub fn lease(&self) -> Option<h1::tick::Lease> {
        self.ticker().map(h1::tick::Ticker::lease)
    }

    #[cfg(target_os = "linux")]
    fn ticker(&self) -> Option<&h1::tick::Ticker> {
        self.ticker
            .get_or_init(|| {
                (!self.wants_h2 && !self.endpoint.is_tls())
                    .then(|| h1::tick::Ticker::new().ok())
                    .flatten()
            })
            .as_ref()
    }

    /// Opens a connection; `ticked`, in the open loop's set when there is one.
    async fn open(&self, ticked: bool) -> Result<h1::Stream, ConnectFailure> {
        #[cfg(target_os = "linux")]
        if let Some(ticker) = ticked.then(|| self.ticker()).flatten() {
            return self.endpoint.open_ticked(ticker).await;
        }
        let _ = ticked;
        self.endpoint.open().await
    }

    /// [`Client::send_own`], on a connection of the open loop's set when `ticked`.
    async fn send_on(&self, own: &mut Own, req: &Request, deadline: Instant, ticked: bool) -> Response {
        if self.wants_h2 {
            // Boxed, as the connect below: a worker's future is kept as small as its common path
            // (one per connection, ten thousand of them).
            return Box::pin(self.send_pooled(req, deadline)).await;
        }
        // A connection opened ahead of its first request: that request reports its handshake.
        let mut handshake = own.take_handshake();
        let mut timer = own.take_timer(deadline);
        let mut response = tokio::select! {
            biased;
            r = self.exchange_own(own, req, &mut handshake, ticked) => r,
            () = timer.as_mut() => Response::failed(Class::Timeout),
        };
        own.put_timer(timer);
        response.handshake = handshake;
        response
    }

    async fn exchange_own(
        &self,
        own: &mut Own,
        req: &Request,
        handshake: &mut Option<Duration>,
        ticked: bool,
    ) -> Response {
        own.encode(req, &self.prefix, self.host.as_bytes());
        let mut resent = false;
        let class = 'attempts: {
            for attempt in 0..ATTEMPTS {
                let stream = match own.take_conn(self.idle_limit()) {
                    Some(stream) => stream,
                    None => {
                        let begun = Instant::now();
                        match Box::pin(self.open(ticked)).await {
                            Ok(stream) => {
                                *handshake = Some(handshake.unwrap_or_default() + begun.elapsed());
                                stream
                            }
                            Err(f) => break 'attempts self.connect_failed(f),
                        }
                    }
                };
                match own
                    .exchange(stream, req.method == Method::HEAD, self.body_cap)
                    .await
                {
                    Ok(answer) => {
                        return Response {
                            class: if answer.too_large {
                                Class::BodyTooLarge
                            } else {
                                Class::of_status(answer.status)
                            },
                            status: Some(answer.status),
                            bytes: answer.bytes,
                            version: Some(Version::Http1),
                            handshake: None,
                            resent,
                            received: answer.received,
                        }
                    }
                    // Not one byte taken by the server (a request cut short cannot have been acted
                    // on either): the connection was closed under it.
                    Err(Failed::Unsent) if attempt + 1 < ATTEMPTS => resent = true,
                    Err(Failed::Unsent) => break 'attempts Class::Reset,
                    Err(Failed::Class(class)) => break 'attempts class,
                }
            }
            Class::Closed
        };
        Response {
            resent,
            ..Response::failed(class)
        }
    }

    /// One call to an API on this target (the chaos API, Prometheus): `path` with `headers` and
    /// `body`, giving up after `limit`. The answer's status and body (up to the body cap).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        limit: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let uri = format!("{}{path}", self.prefix);
        let build = || {
            let mut builder = http::Request::builder().method(method.clone()).uri(uri.as_str());
            if let Some(h) = builder.headers_mut() {
                h.insert(HOST, self.host.clone());
                for (name, value) in headers {
                    h.append(name, value.clone());
                }
            }
            builder.body(body.clone())
        };
        let mut handshake = None;
        let failed = |class: Class| CallError {
            class,
            detail: match (class, self.tls_failure()) {
                (Class::Tls, Some(why)) => why,
                (Class::Timeout, _) => format!("no answer within {limit:?}"),
                _ => format!("request failed ({})", class.name()),
            },
        };
        match tokio::time::timeout(limit, self.exchange(build, self.body_cap, &mut handshake)).await {
            Ok(Ok((r, body))) => match r.status {
                Some(status) if r.class != Class::BodyTooLarge => Ok((
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body,
                )),
                _ => Err(failed(r.class)),
            },
            Ok(Err(class)) => Err(failed(class)),
            Err(_) => Err(failed(Class::Timeout)),
        }
    }

    /// Sends the request `build` makes, sending it again on a fresh connection when the server did
    /// not process it. The response and the body read.
    async fn exchange<F>(
        &self,
        build: F,
        body_cap: usize,
        handshake: &mut Option<Duration>,
    ) -> Result<(Response, Bytes), Class>
    where
        F: Fn() -> http::Result<http::Request<Bytes>>,
    {
        let mut resent = false;
        let mut fresh_only = false;
        let mut refused_by = None;
        for attempt in 0..ATTEMPTS {
            let request = build().map_err(|_| Class::Other)?;
            let (sender, idle_age, generation) = self.checkout(fresh_only, refused_by, handshake).await?;
            let outcome = match sender {
                Sender::H1(sender) => self.attempt_h1(sender, request, idle_age, body_cap).await,
                Sender::H2(h2) => self.attempt_h2(&h2, request, body_cap).await,
            };
            match outcome {
                Attempt::Answered(mut response, body) => {
                    response.resent = resent;
                    return Ok((response, body));
                }
                // Not the server's failure, so sent again elsewhere.
                Attempt::Unprocessed(_) if attempt + 1 < ATTEMPTS => {
                    resent = true;
                    fresh_only = true;
                    refused_by = generation;
                }
                Attempt::Unprocessed(class) | Attempt::Failed(class) => return Err(class),
            }
        }
        Err(Class::Closed)
    }

    /// One attempt over HTTP/1.1; the connection goes back to the pool once its answer is read.
    async fn attempt_h1(
        &self,
        mut sender: http1::SendRequest<Full<Bytes>>,
        request: http::Request<Bytes>,
        idle_age: Option<Duration>,
        body_cap: usize,
    ) -> Attempt {
        let answer = match sender.try_send_request(request.map(Full::new)).await {
            Ok(answer) => answer,
            Err(mut e) => {
                let class = classify_error(e.error());
                // Never written: the connection was closed under it.
                if e.take_message().is_some() {
                    return Attempt::Unprocessed(class);
                }
                if let (Some(age), Class::Closed | Class::Reset) = (idle_age, class) {
                    // Written just as the server closed the idle connection: it may have reached
                    // the server, so it counts; but the server's idle limit is now known.
                    self.learn_server_idle(age);
                }
                return Attempt::Failed(class);
            }
        };
        let response = Response::answered(answer.status().as_u16(), Version::Http1);
        let body = match Limited::new(answer.into_body(), body_cap).collect().await {
            Ok(body) => {
                self.give_back(Sender::H1(sender));
                Ok(Some(body.to_bytes()))
            }
            // The rest of the body is never read: this connection cannot be reused.
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Ok(None),
            Err(e) => Err(classify_error(e.as_ref())),
        };
        response.with_body(body, body_cap)
    }

    /// One attempt over HTTP/2, on a stream of `h2`.
    async fn attempt_h2(&self, h2: &H2, request: http::Request<Bytes>, body_cap: usize) -> Attempt {
        let (mut parts, body) = request.into_parts();
        // As hyper does: a body's length, and `0` for methods whose requests have a payload.
        let payload = !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::CONNECT
        );
        if (!body.is_empty() || payload) && !parts.headers.contains_key(CONTENT_LENGTH) {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let request = self.h2_request(parts);
        let end_of_stream = body.is_empty();
        let mut send = match h2.send.clone().ready().await {
            Ok(send) => send,
            Err(e) => {
                h2.going_away();
                return Attempt::Unprocessed(classify_error(&e));
            }
        };
        let (answer, mut stream) = match send.send_request(request, end_of_stream) {
            Ok(opened) => opened,
            // The connection is going away or gone: no stream was opened.
            Err(e) if e.is_go_away() || e.is_io() => {
                h2.going_away();
                return Attempt::Unprocessed(classify_error(&e));
            }
            Err(e) => return Attempt::Failed(classify_error(&e)),
        };
        if !end_of_stream {
            // Flow control queues what does not fit yet; a failure ends the stream, and its answer
            // tells how.
            let _ = stream.send_data(body, true);
        }
        let answer = match answer.await {
            Ok(answer) => answer,
            Err(e) if refused_stream(&e) => {
                if e.is_go_away() {
                    h2.going_away();
                }
                return Attempt::Unprocessed(classify_error(&e));
            }
            Err(e) => return Attempt::Failed(classify_error(&e)),
        };
        let response = Response::answered(answer.status().as_u16(), Version::Http2);
        // Past the cap, dropping the rest resets the stream; the connection goes on.
        let body = read_h2_body(answer.into_body(), body_cap).await;
        response.with_body(body.map_err(|e| classify_error(&e)), body_cap)
    }

    /// The request as HTTP/2 sends it: scheme and authority as pseudo-headers (the authority from
    /// its last `Host`), without the connection-specific headers HTTP/2 forbids (RFC 9113, 8.2.2).
    fn h2_request(&self, mut parts: http::request::Parts) -> http::Request<()> {
        let host = parts.headers.get_all(HOST).iter().next_back().cloned();
        parts.headers.remove(HOST);
        for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
            parts.headers.remove(name);
        }
        parts.headers.remove("keep-alive");
        parts.headers.remove("proxy-connection");
        if parts.headers.get(TE).is_some_and(|te| te != "trailers") {
            parts.headers.remove(TE);
        }
        let authority = match host {
            Some(host) if host != self.host => Authority::try_from(host.as_bytes()).ok(),
            _ => Some(self.authority.clone()),
        };
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(self.endpoint.scheme());
        uri.authority = authority;
        parts.uri = Uri::from_parts(uri).unwrap_or_default();
        http::Request::from_parts(parts, ())
    }

    /// A connection to send on: the shared HTTP/2 one, an idle HTTP/1.1 one that is still usable
    /// (with how long it was idle), or a new one (always, with `fresh_only`, except for a shared
    /// HTTP/2 one other than `refused_by`). The time a new one took goes to `handshake`. For HTTP/2,
    /// the shared connection's number.
    async fn checkout(
        &self,
        fresh_only: bool,
        refused_by: Option<u64>,
        handshake: &mut Option<Duration>,
    ) -> Result<(Sender, Option<Duration>, Option<u64>), Class> {
        if !fresh_only {
            if let Some((shared, generation)) = self.shared_h2(refused_by) {
                return Ok((Sender::H2(shared), None, Some(generation)));
            }
            if let Some((sender, age)) = self.idle_connection() {
                return Ok((Sender::H1(sender), Some(age), None));
            }
        }
        // HTTP/2 (or not known yet): one connection at a time, then share it.
        let speaks_h2 = *self.speaks_h2.lock().unwrap_or_else(|e| e.into_inner());
        let _gate = match (self.wants_h2, speaks_h2) {
            (true, None | Some(true)) => {
                let gate = self.h2_connecting.lock().await;
                if let Some((shared, generation)) = self.shared_h2(refused_by) {
                    return Ok((Sender::H2(shared), None, Some(generation)));
                }
                Some(gate)
            }
            _ => None,
        };
        let begun = Instant::now();
        let sender = self
            .endpoint
            .connect()
            .await
            .map_err(|f| self.connect_failed(f))?;
        *handshake = Some(handshake.unwrap_or_default() + begun.elapsed());
        *self.speaks_h2.lock().unwrap_or_else(|e| e.into_inner()) = Some(matches!(sender, Sender::H2(_)));
        let mut generation = None;
        if let Sender::H2(h2) = &sender {
            let mut shared = self.shared_h2.lock().unwrap_or_else(|e| e.into_inner());
            shared.sender = Some(h2.clone());
            shared.generation += 1;
            generation = Some(shared.generation);
        }
        Ok((sender, None, generation))
    }

    /// The class of a connection that could not be opened; the first TLS failure is kept to be told.
    fn connect_failed(&self, failure: ConnectFailure) -> Class {
        if let Some(why) = failure.tls {
            let mut first = self.tls_failure.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(why);
        }
        failure.class
    }

    /// The shared HTTP/2 connection and its number, while it is open and is not `refused_by`.
    fn shared_h2(&self, refused_by: Option<u64>) -> Option<(H2, u64)> {
        let shared = self.shared_h2.lock().unwrap_or_else(|e| e.into_inner());
        if refused_by == Some(shared.generation) {
            return None;
        }
        let sender = shared.sender.as_ref().filter(|s| !s.is_closed())?;
        Some((sender.clone(), shared.generation))
    }

    /// The server closed a connection that had been idle for `age`: stay short of that from now on.
    fn learn_server_idle(&self, age: Duration) {
        if age >= SHORTEST_LEARNED_IDLE {
            let margin = (age * 9) / 10;
            self.server_idle_nanos
                .fetch_min(margin.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// How long a connection may have been idle and still be reused.
    fn idle_limit(&self) -> Duration {
        self.idle_timeout.min(Duration::from_nanos(
            self.server_idle_nanos.load(Ordering::Relaxed),
        ))
    }

    /// The most recently used idle connection that is open, ready, and not idle for too long.
    fn idle_connection(&self) -> Option<(http1::SendRequest<Full<Bytes>>, Duration)> {
        let limit = self.idle_limit();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(entry) = idle.pop_back() {
            let age = entry.since.elapsed();
            if entry.sender.is_closed() {
                // Closed by the server while idle: its keep-alive policy.
                self.learn_server_idle(age);
                continue;
            }
            if age < limit && entry.sender.is_ready() {
                return Some((entry.sender, age));
            }
        }
        None
    }

    fn give_back(&self, sender: Sender) {
        let Sender::H1(sender) = sender else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        let limit = self.idle_limit();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Connections past the idle limit are never reused: close them now rather than keep their
        // buffers (a burst can open up to `max_in_flight` of them).
        while idle.front().is_some_and(|oldest| oldest.since.elapsed() >= limit) {
            idle.pop_front();
        }
        if idle.len() < self.max_idle {
            idle.push_back(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }
}

/// Whether `err` is an HTTP/2 stream the server did not process: refused (`REFUSED_STREAM`), or
/// above the last stream id of its GOAWAY (as when nginx closes a connection after
/// `keepalive_requests` streams; `h2` gives a GOAWAY's error only to those). Either may be sent
/// again (RFC 9113, section 8.7).
fn refused_stream(err: &h2::Error) -> bool {
    err.is_remote()
        && (err.is_go_away() || (err.is_reset() && err.reason() == Some(h2::Reason::REFUSED_STREAM)))
}

/// Reads an HTTP/2 answer's body, giving its flow-control window back as it goes; `None` past `cap`
/// bytes.
async fn read_h2_body(mut body: h2::RecvStream, cap: usize) -> Result<Option<Bytes>, h2::Error> {
    // One chunk is kept as it came; only a body of several is copied into one buffer.
    let mut first = Bytes::new();
    let mut joined = BytesMut::new();
    let mut len = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        len += chunk.len();
        if len > cap {
            return Ok(None);
        }
        if len == chunk.len() {
            first = chunk;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(&first);
            }
            joined.extend_from_slice(&chunk);
        }
    }
    Ok(Some(if joined.is_empty() { first } else { joined.freeze() }))
}

/// Polls every future of `futures` together until all are done; their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, slot) in pending.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

//! A closed-loop worker's own HTTP/1.1 connection, spoken directly on the socket: the request
//! written in one call, the answer's head parsed in place with `httparse`, its body counted and
//! dropped. No connection task, no channel and no allocation per request; this is what lets one
//! core keep up with the target in a closed loop.
//!
//! It follows the pool's rules: a connection idle past the idle limit is not reused, one the server
//! closed while idle is replaced without a word, and a request is sent again on a fresh connection
//! only when not one byte of it was taken by the stream. Anything read short of a complete answer is
//! the server's doing and is classified, never retried. A request too large for one write is written
//! watching for an answer: a server may answer early (413, 431) and close without reading the rest,
//! and that answer is what the request got.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::client::TlsStream;

use crate::scenario::Request;
use crate::shared::outcome::{classify_error, Class};

/// Most bytes of an answer's head (status line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// Most headers in an answer's head.
const MAX_HEADERS: usize = 100;

/// Most bytes of a chunked body's trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// A connection's input buffer at first: the head of a small answer and its body fit, so ten
/// thousand connections hold 10 MiB of buffers, not 160.
const INPUT_FIRST: usize = 1024;

/// The most the input buffer grows to, doubling each time a read fills all of it: larger bodies are
/// read through it this much at a time.
const INPUT_MOST: usize = 64 * 1024;

/// A connection idle for longer than this is checked for a close by the server before it is used.
const PROBE_AFTER: Duration = Duration::from_millis(1);

/// An open connection: plain TCP or TLS, or plain TCP whose answers are read when the pacer wakes.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    #[cfg(target_os = "linux")]
    Tick(tick::TickStream),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(target_os = "linux")]
            Stream::Tick(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(target_os = "linux")]
            Stream::Tick(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(target_os = "linux")]
            Stream::Tick(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(target_os = "linux")]
            Stream::Tick(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Stream {
    /// Whether the server closed (or reset) this idle connection. Only plain connections can tell
    /// without reading; a TLS one is assumed open (a close then shows as a failed write or read).
    fn closed_while_idle(&self) -> bool {
        let s = match self {
            Stream::Plain(s) => s,
            Stream::Tls(_) => return false,
            #[cfg(target_os = "linux")]
            Stream::Tick(s) => return s.closed_while_idle(),
        };
        let mut byte = [0u8; 1];
        match s.try_read(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            // End of stream, an error, or bytes nobody asked for: not usable.
            _ => true,
        }
    }

    /// Marks the start of an exchange on it.
    fn begin(&mut self) {
        #[cfg(target_os = "linux")]
        if let Stream::Tick(s) = self {
            s.expect_answer();
        }
    }

    /// When the last bytes read arrived, by the kernel's clock, where the stream knows.
    fn received(&self) -> Option<Instant> {
        match self {
            #[cfg(target_os = "linux")]
            Stream::Tick(s) => s.received(),
            _ => None,
        }
    }
}

/// What a closed-loop worker keeps between its requests: its connection, its buffers and its timer.
#[derive(Default)]
pub struct Own {
    conn: Option<Conn>,
    /// Reset to each request's deadline; a later deadline only moves its expiry, without taking it
    /// out of the runtime's timer wheel and putting it back.
    timer: Option<Pin<Box<Sleep>>>,
    /// The request being sent, as written on the wire.
    out: Vec<u8>,
    input: Input,
    /// The handshake of a connection opened ahead of its first request, reported with that request.
    handshake: Option<Duration>,
}

struct Conn {
    stream: Stream,
    /// When its last answer ended.
    idle_since: Instant,
}

/// What an exchange on a connection came to.
pub(super) struct Answer {
    pub status: u16,
    /// Body bytes read (at most the cap).
    pub bytes: u64,
    /// The body went past the cap; the rest was not read.
    pub too_large: bool,
    /// When its last bytes arrived, by the kernel's clock, where the stream knows (see [`tick`]).
    pub received: Option<Instant>,
}

/// Why an exchange did not give an answer.
pub(super) enum Failed {
    /// Writing the request failed before the stream took one byte of it, so it may be sent again.
    Unsent,
    /// Anything after: counted as this class.
    Class(Class),
}

impl Own {
    /// The timer, set to `deadline` (given back with [`Own::put_timer`]).
    pub(super) fn take_timer(&mut self, deadline: Instant) -> Pin<Box<Sleep>> {
        match self.timer.take() {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    pub(super) fn put_timer(&mut self, timer: Pin<Box<Sleep>>) {
        self.timer = Some(timer);
    }

    /// A worker's state around a connection just opened ahead of its first request, in `handshake`.
    pub(super) fn opened(stream: Stream, handshake: Duration) -> Own {
        Own {
            conn: Some(Conn {
                stream,
                idle_since: Instant::now(),
            }),
            handshake: Some(handshake),
            ..Own::default()
        }
    }

    /// The handshake of the connection opened ahead, once: its first request reports it.
    pub(super) fn take_handshake(&mut self) -> Option<Duration> {
        self.handshake.take()
    }

    /// Whether it keeps a connection for the next request.
    pub(super) fn has_conn(&self) -> bool {
        self.conn.is_some()
    }

    /// The connection to send on, if it is still usable: not idle for `limit` or more and, when idle
    /// for a while, not closed by the server meanwhile.
    pub(super) fn take_conn(&mut self, limit: Duration) -> Option<Stream> {
        let conn = self.conn.take()?;
        let idle = conn.idle_since.elapsed();
        if idle >= limit || (idle >= PROBE_AFTER && conn.stream.closed_while_idle()) {
            return None;
        }
        Some(conn.stream)
    }

    /// Writes `request` in HTTP/1.1 to `out`, with `host` unless the request has its own.
    pub(super) fn encode(&mut self, request: &Request, prefix: &str, host: &[u8]) {
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(request.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(request.path_and_query.as_str().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !request.headers.contains_key(HOST) {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &request.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let body = request.body.as_deref().unwrap_or_default();
        let expects_body = matches!(request.method, Method::POST | Method::PUT | Method::PATCH);
        if (!body.is_empty() || expects_body) && !request.headers.contains_key(CONTENT_LENGTH) {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// Sends the encoded request on `stream` and reads the answer. The connection is kept for the
    /// next request when the answer ended cleanly and the server did not ask to close it.
    pub(super) async fn exchange(
        &mut self,
        mut stream: Stream,
        head_request: bool,
        body_cap: usize,
    ) -> Result<Answer, Failed> {
        self.input.clear();
        stream.begin();
        let written = write_watching(&mut stream, &self.out, &mut self.input).await;
        let whole = match written {
            Written::All => true,
            Written::Answered => false,
            Written::Failed { sent: 0, .. } => return Err(Failed::Unsent),
            // Part of the request went: the server may have acted on it, and may have answered
            // before it closed. Its answer, if one came whole, is what the request got.
            Written::Failed { error, .. } => {
                match read_answer(&mut stream, &mut self.input, head_request, body_cap).await {
                    Ok((answer, _)) => return Ok(answer),
                    Err(_) => return Err(Failed::Class(classify_error(&error))),
                }
            }
        };
        let (mut answer, reusable) = read_answer(&mut stream, &mut self.input, head_request, body_cap)
            .await
            .map_err(Failed::Class)?;
        answer.received = stream.received();
        // A request cut short by an early answer leaves the connection in the middle of it.
        let reusable = reusable && whole;
        if reusable && self.input.is_empty() {
            self.conn = Some(Conn {
                stream,
                idle_since: Instant::now(),
            });
        }
        Ok(answer)
    }
}

/// What the client makes of `bytes` as the answer to one request: the status and the body bytes
/// counted, or the class of the failure (a body past `body_cap` is `BodyTooLarge`). The answer is read from memory as it would be from a
/// connection that ends after `bytes`; a parser entry point for fuzzing and property tests.
pub fn decode_answer(bytes: &[u8], head_request: bool, body_cap: usize) -> Result<(u16, u64), Class> {
    let mut stream = bytes;
    let mut input = Input::default();
    let read = read_answer(&mut stream, &mut input, head_request, body_cap);
    let mut read = std::pin::pin!(read);
    // Reading from memory never waits, so one poll finishes it.
    match std::future::Future::poll(read.as_mut(), &mut Context::from_waker(std::task::Waker::noop())) {
        Poll::Ready(Ok((answer, _))) if answer.too_large => Err(Class::BodyTooLarge),
        Poll::Ready(result) => result.map(|(answer, _)| (answer.status, answer.bytes)),
        Poll::Pending => Err(Class::Other),
    }
}

/// How writing a request ended.
enum Written {
    /// Every byte taken by the stream.
    All,
    /// The server answered before it took the whole request; its first bytes are in the input.
    Answered,
    /// Writing failed after the stream took `sent` bytes.
    Failed { sent: usize, error: io::Error },
}

/// Writes `out` on `stream`. A request the stream takes in one write (every ordinary one) is just
/// written; a larger one is written while watching for the server's answer, which a server may send
/// before reading the whole request (and then close); its bytes go into `input`.
async fn write_watching(stream: &mut Stream, out: &[u8], input: &mut Input) -> Written {
    let mut sent = match stream.write(out).await {
        Ok(n) => n,
        Err(error) => return Written::Failed { sent: 0, error },
    };
    if sent < out.len() {
        let early = std::future::poll_fn(|cx| loop {
            let len = input.data.len();
            input.data.resize(len + 4096, 0);
            let mut buf = ReadBuf::new(&mut input.data[len..]);
            let read = Pin::new(&mut *stream).poll_read(cx, &mut buf);
            let got = buf.filled().len();
            input.data.truncate(len + got);
            match read {
                Poll::Ready(Ok(())) if got > 0 => return Poll::Ready(Ok(true)),
                Poll::Ready(Ok(())) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::ConnectionAborted)))
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            match Pin::new(&mut *stream).poll_write(cx, &out[sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero))),
                Poll::Ready(Ok(n)) => {
                    sent += n;
                    if sent == out.len() {
                        return Poll::Ready(Ok(false));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await;
        match early {
            Ok(true) => return Written::Answered,
            Ok(false) => {}
            Err(error) => return Written::Failed { sent, error },
        }
    }
    match stream.flush().await {
        Ok(()) => Written::All,
        Err(error) => Written::Failed { sent, error },
    }
}

/// Bytes read from the connection and not yet parsed.
#[derive(Default)]
struct Input {
    data: Vec<u8>,
    start: usize,
    /// The last read took all the room the buffer had.
    filled: bool,
}

impl Input {
    fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
    }

    fn is_empty(&self) -> bool {
        self.start == self.data.len()
    }

    fn unread(&self) -> &[u8] {
        &self.data[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.data.len() {
            self.clear();
        }
    }

    /// Reads more from `stream`; `Ok(0)` at the end of the stream.
    async fn fill(&mut self, stream: &mut (impl AsyncRead + Unpin)) -> Result<usize, Class> {
        if self.start > 0 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        let capacity = self.data.capacity();
        let len = self.data.len();
        if capacity == 0 {
            self.data.reserve_exact(INPUT_FIRST);
        } else if len == capacity || (self.filled && capacity < INPUT_MOST) {
            // Full, or the last read filled all the room there was: the server sends more at once
            // than the buffer holds. Double it (past the most only when a head needs it).
            let more = if capacity < INPUT_MOST {
                capacity.min(INPUT_MOST - capacity)
            } else {
                INPUT_FIRST
            };
            self.data.reserve_exact(capacity - len + more);
        }
        let room = self.data.capacity() - self.data.len();
        let n = stream
            .read_buf(&mut self.data)
            .await
            .map_err(|e| classify_error(&e))?;
        self.filled = n == room;
        Ok(n)
    }

    /// Reads past the next `n` bytes.
    async fn skip(&mut self, stream: &mut (impl AsyncRead + Unpin), mut n: u64) -> Result<(), Class> {
        while n > 0 {
            if self.is_empty() {
                self.more(stream).await?;
            }
            let k = (self.unread().len() as u64).min(n);
            self.consume(k as usize);
            n -= k;
        }
        Ok(())
    }

    /// Reads more, taking the end of the stream as a short answer.
    async fn more(&mut self, stream: &mut (impl AsyncRead + Unpin)) -> Result<(), Class> {
        match self.fill(stream).await? {
            0 => Err(Class::Closed),
            _ => Ok(()),
        }
    }
}

/// How the body of an answer is delimited.
enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// The head of an answer.
struct Head {
    status: u16,
    framing: Framing,
    /// Whether the connection may carry another request.
    keep_alive: bool,
}

/// Reads one answer (skipping informational ones). Its figures, and whether the connection can be
/// used again.
async fn read_answer(
    stream: &mut (impl AsyncRead + Unpin),
    input: &mut Input,
    head_request: bool,
    body_cap: usize,
) -> Result<(Answer, bool), Class> {
    let head = loop {
        let head = read_head(stream, input).await?;
        match head.status {
            101 => return Err(Class::Protocol),
            100..=199 => continue,
            _ => break head,
        }
    };
    let framing = if head_request || head.status == 204 || head.status == 304 {
        Framing::Length(0)
    } else {
        head.framing
    };
    let mut answer = Answer {
        status: head.status,
        bytes: 0,
        too_large: false,
        received: None,
    };
    let cap = body_cap as u64;
    let ended = match framing {
        Framing::Length(length) => {
            if length > cap {
                answer.too_large = true;
                answer.bytes = cap;
                return Ok((answer, false));
            }
            input.skip(stream, length).await?;
            answer.bytes = length;
            true
        }
        Framing::Chunked => read_chunked(stream, input, cap, &mut answer).await?,
        Framing::Close => {
            let mut total = input.unread().len() as u64;
            input.clear();
            while total <= cap {
                match input.fill(stream).await? {
                    0 => break,
                    n => total += n as u64,
                }
                input.clear();
            }
            answer.too_large = total > cap;
            answer.bytes = total.min(cap);
            false
        }
    };
    let reusable = ended && head.keep_alive && !answer.too_large;
    Ok((answer, reusable))
}

/// Reads and parses a head, leaving what follows it in `input`.
async fn read_head(stream: &mut (impl AsyncRead + Unpin), input: &mut Input) -> Result<Head, Class> {
    loop {
        if !input.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(input.unread()) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = head_of(&parsed)?;
                    input.consume(len);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(Class::Protocol),
            }
            if input.unread().len() >= MAX_HEAD {
                return Err(Class::Protocol);
            }
        }
        input.more(stream).await?;
    }
}

fn head_of(parsed: &httparse::Response<'_, '_>) -> Result<Head, Class> {
    let status = parsed.code.ok_or(Class::Protocol)?;
    let http10 = parsed.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = http10;
    for header in parsed.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Class::Protocol)?;
            if length.is_some_and(|l| l != value) {
                return Err(Class::Protocol);
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
            // Only the last coding frames the body.
            chunked = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(CONNECTION.as_str()) {
            for token in header.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::Close,
    };
    Ok(Head {
        status,
        framing,
        keep_alive: !close,
    })
}

/// Reads a chunked body, counting its data. Whether it ended cleanly (false past the cap, where
/// reading stops).
async fn read_chunked(
    stream: &mut (impl AsyncRead + Unpin),
    input: &mut Input,
    cap: u64,
    answer: &mut Answer,
) -> Result<bool, Class> {
    loop {
        let size = loop {
            match httparse::parse_chunk_size(input.unread()) {
                Ok(httparse::Status::Complete((len, size))) => {
                    input.consume(len);
                    break size;
                }
                Ok(httparse::Status::Partial) if input.unread().len() < MAX_HEAD => {
                    input.more(stream).await?
                }
                _ => return Err(Class::Protocol),
            }
        };
        if size == 0 {
            read_trailers(stream, input).await?;
            return Ok(true);
        }
        // Chunks whose sizes add up past 2^64 - 1 bytes frame no body at all.
        let total = answer.bytes.checked_add(size).ok_or(Class::Protocol)?;
        if total > cap {
            answer.too_large = true;
            answer.bytes = cap;
            return Ok(false);
        }
        input.skip(stream, size).await?;
        answer.bytes = total;
        while input.unread().len() < 2 {
            input.more(stream).await?;
        }
        if &input.unread()[..2] != b"\r\n" {
            return Err(Class::Protocol);
        }
        input.consume(2);
    }
}

/// Skips a chunked body's trailer section, up to and including the empty line that ends it.
async fn read_trailers(stream: &mut (impl AsyncRead + Unpin), input: &mut Input) -> Result<(), Class> {
    let mut seen = 0;
    loop {
        if let Some(end) = input.unread().windows(2).position(|w| w == b"\r\n") {
            input.consume(end + 2);
            if end == 0 {
                return Ok(());
            }
            seen += end + 2;
        } else {
            input.more(stream).await?;
        }
        if seen + input.unread().len() > MAX_TRAILERS {
            return Err(Class::Protocol);
        }
    }
}

#[cfg(target_os = "linux")]
pub mod tick;

#[cfg(test)]
mod tests;

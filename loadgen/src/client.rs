//! The HTTP client that sends the scenario's requests: keep-alive HTTP/1.1 connections in a small
//! pool of its own, a timeout per request counted from its intended send time, and a cap on how much of
//! each answer is read.
//!
//! The pool is a stack of idle connections to the one target: a request takes the most recently used
//! idle connection or opens a new one, and gives it back when the answer has been read. There is no
//! routing by host and no background reaping; that is what makes it cheaper than a general client.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::outcome::{classify_error, Class};
use crate::scenario::Request;

/// Default cap on the bytes read from one answer.
pub const DEFAULT_BODY_CAP: usize = 1024 * 1024;

/// How long a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What one request produced.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub class: Class,
    /// The status, when an answer came.
    pub status: Option<u16>,
    /// Body bytes read.
    pub bytes: u64,
}

impl Response {
    fn failed(class: Class) -> Response {
        Response {
            class,
            status: None,
            bytes: 0,
        }
    }
}

/// Why a target URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an http URL with a host (expected e.g. http://127.0.0.1:8080)")]
pub struct BadTarget(String);

/// Sends requests to one target.
pub struct Client {
    /// `host:port` to connect to.
    authority: String,
    host: HeaderValue,
    /// Path prefix of the target URL, without a trailing slash.
    prefix: String,
    body_cap: usize,
    max_idle: usize,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`), keeping at most `max_idle` idle connections.
    pub fn new(base: &str, body_cap: usize, max_idle: usize) -> Result<Client, BadTarget> {
        let bad = || BadTarget(base.to_owned());
        let uri: Uri = base.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Client {
            authority: format!("{}:{port}", authority.host().trim_matches(['[', ']'])),
            host: HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            body_cap,
            max_idle,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req`, giving up at `deadline`.
    pub async fn send(&self, req: &Request, deadline: Instant) -> Response {
        match tokio::time::timeout_at(deadline, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Response::failed(Class::Timeout),
        }
    }

    async fn exchange(&self, req: &Request) -> Response {
        let target = if self.prefix.is_empty() {
            req.path_and_query.as_str().to_owned()
        } else {
            format!("{}{}", self.prefix, req.path_and_query)
        };
        let mut builder = http::Request::builder().method(req.method.clone()).uri(target);
        if let Some(headers) = builder.headers_mut() {
            headers.reserve(req.headers.len() + 1);
            headers.insert(HOST, self.host.clone());
            for (name, value) in &req.headers {
                headers.append(name, value.clone());
            }
        }
        let Ok(request) = builder.body(Full::new(req.body.clone().unwrap_or_default())) else {
            return Response::failed(Class::Other);
        };
        let mut sender = match self.checkout().await {
            Ok(s) => s,
            Err(class) => return Response::failed(class),
        };
        let resp = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => return Response::failed(classify_error(&e)),
        };
        let status = resp.status().as_u16();
        let response = match Limited::new(resp.into_body(), self.body_cap).collect().await {
            Ok(body) => Response {
                class: Class::of_status(status),
                status: Some(status),
                bytes: body.to_bytes().len() as u64,
            },
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                // The rest of the body is never read: this connection cannot be reused.
                return Response {
                    class: Class::BodyTooLarge,
                    status: Some(status),
                    bytes: self.body_cap as u64,
                };
            }
            Err(e) => {
                return Response {
                    class: classify_error(e.as_ref()),
                    status: Some(status),
                    bytes: 0,
                }
            }
        };
        self.give_back(sender);
        response
    }

    /// An idle connection that is still open, or a new one.
    async fn checkout(&self) -> Result<SendRequest<Full<Bytes>>, Class> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(s) if s.is_ready() => return Ok(s),
                Some(_) => continue,
                None => break,
            }
        }
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(classify_error(&e)),
            Err(_) => return Err(Class::Timeout),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| classify_error(&e))?;
        tokio::spawn(async move {
            // Ends when the connection closes or the sender is dropped; errors surface on the request.
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }
}

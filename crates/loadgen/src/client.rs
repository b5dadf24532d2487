//! The HTTP client that sends the scenario's requests: pooled keep-alive connections, a timeout per
//! request counted from its intended send time, and a cap on how much of each answer is read.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::outcome::{classify_error, Class};
use crate::scenario::Request;

/// Default cap on the bytes read from one answer.
pub const DEFAULT_BODY_CAP: usize = 1024 * 1024;

/// What one request produced.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub class: Class,
    /// The status, when an answer came.
    pub status: Option<u16>,
    /// Body bytes read.
    pub bytes: u64,
}

/// Sends requests to one target.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
    body_cap: usize,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, body_cap: usize, max_idle: usize) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Client {
            inner,
            base: base.trim_end_matches('/').to_owned(),
            body_cap,
        }
    }

    /// Sends `req`, giving up at `deadline`.
    pub async fn send(&self, req: &Request, deadline: Instant) -> Response {
        let uri: Uri = match format!("{}{}", self.base, req.path_and_query).parse() {
            Ok(u) => u,
            Err(_) => {
                return Response {
                    class: Class::Other,
                    status: None,
                    bytes: 0,
                }
            }
        };
        let mut builder = http::Request::builder().method(req.method.clone()).uri(uri);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(req.headers.clone());
        }
        let Ok(request) = builder.body(Full::new(req.body.clone().unwrap_or_default())) else {
            return Response {
                class: Class::Other,
                status: None,
                bytes: 0,
            };
        };
        let exchange = async {
            let resp = match self.inner.request(request).await {
                Ok(r) => r,
                Err(e) => {
                    return Response {
                        class: classify_error(&e),
                        status: None,
                        bytes: 0,
                    }
                }
            };
            let status = resp.status().as_u16();
            match Limited::new(resp.into_body(), self.body_cap).collect().await {
                Ok(body) => Response {
                    class: Class::of_status(status),
                    status: Some(status),
                    bytes: body.to_bytes().len() as u64,
                },
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Response {
                    class: Class::BodyTooLarge,
                    status: Some(status),
                    bytes: self.body_cap as u64,
                },
                Err(e) => Response {
                    class: classify_error(e.as_ref()),
                    status: Some(status),
                    bytes: 0,
                },
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(r) => r,
            Err(_) => Response {
                class: Class::Timeout,
                status: None,
                bytes: 0,
            },
        }
    }
}

//! Opening one connection to the target: TCP, then TLS when the URL says https, then the HTTP/1.1 or
//! HTTP/2 handshake (HTTP/2 when ALPN chose it, or by prior knowledge on cleartext). Failures are
//! classified by the step that failed: `connect` for TCP, `tls` for the TLS handshake.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Uri};
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::h1::Stream;
use super::tls::{self, Alpn};
use super::Options;
use crate::shared::outcome::{classify_error, Class};

/// How long a new connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which HTTP to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 (over TLS, ALPN offers only `http/1.1`).
    #[default]
    Http1,
    /// HTTP/2 when the server accepts it by ALPN, else HTTP/1.1 (https targets only).
    Http2,
    /// HTTP/2 without negotiation (h2c), for cleartext targets.
    Http2PriorKnowledge,
}

/// Why a target URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BadTarget {
    #[error("`{0}` is not an http or https URL with a host (expected e.g. http://127.0.0.1:8080)")]
    Url(String),
    #[error("`{0}`: --http2 negotiates HTTP/2 over TLS; for a cleartext target use --http2-prior-knowledge")]
    Http2Cleartext(String),
    #[error("`{0}`: --http2-prior-knowledge is for cleartext (http://) targets; over https use --http2")]
    PriorKnowledgeTls(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Where and how to connect.
pub(super) struct Endpoint {
    /// `host:port` to connect to.
    authority: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    prior_knowledge: bool,
}

/// A connection's request sender.
pub(super) enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(H2),
}

/// An HTTP/2 connection that streams are opened on, spoken with `h2` directly so that a stream the
/// server refused is told apart from one it may have processed (hyper reports a GOAWAY that arrives
/// just as a stream opens as that stream's failure, whatever its id).
#[derive(Clone)]
pub(super) struct H2 {
    pub send: h2::client::SendRequest<Bytes>,
    /// Set when the connection's task ends, or a request finds it going away.
    ended: Arc<AtomicBool>,
}

impl H2 {
    /// Whether new streams can no longer be opened on it.
    pub fn is_closed(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Takes it out of use: the server is closing it.
    pub fn going_away(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }
}

/// Window sizes of an HTTP/2 connection (hyper's defaults): large enough that flow control never
/// paces a load test's answers on loopback.
const H2_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// A connection that could not be opened.
pub(super) struct ConnectFailure {
    pub class: Class,
    /// For TLS failures, what went wrong, in words.
    pub tls: Option<String>,
}

impl From<Class> for ConnectFailure {
    fn from(class: Class) -> Self {
        ConnectFailure { class, tls: None }
    }
}

impl Endpoint {
    /// The endpoint of `base`, its `Host` header and its path prefix.
    pub(super) fn new(base: &str, options: &Options) -> Result<(Endpoint, HeaderValue, String), BadTarget> {
        let bad = || BadTarget::Url(base.to_owned());
        let uri: Uri = base.parse().map_err(|_| bad())?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad()),
        };
        let authority = uri.authority().ok_or_else(bad)?;
        let host = authority.host().trim_matches(['[', ']']);
        if host.is_empty() {
            return Err(bad());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match (https, options.protocol) {
            (false, Protocol::Http2) => return Err(BadTarget::Http2Cleartext(base.to_owned())),
            (true, Protocol::Http2PriorKnowledge) => {
                return Err(BadTarget::PriorKnowledgeTls(base.to_owned()))
            }
            (false, _) => None,
            (true, protocol) => {
                let alpn = if protocol == Protocol::Http2 {
                    Alpn::Http2
                } else {
                    Alpn::Http1
                };
                let config = tls::client_config(&options.tls, alpn)?;
                let name = ServerName::try_from(host.to_owned()).map_err(|_| bad())?;
                Some((TlsConnector::from(config), name))
            }
        };
        let endpoint = Endpoint {
            authority: format!("{host}:{port}"),
            tls,
            prior_knowledge: options.protocol == Protocol::Http2PriorKnowledge,
        };
        let host_header = HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
        Ok((endpoint, host_header, uri.path().trim_end_matches('/').to_owned()))
    }

    /// The scheme requests to it are made in.
    pub(super) fn scheme(&self) -> http::uri::Scheme {
        if self.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        }
    }

    /// Opens a new connection.
    pub(super) async fn connect(&self) -> Result<Sender, ConnectFailure> {
        match self.open().await? {
            Stream::Plain(tcp) => handshake(tcp, self.prior_knowledge).await,
            Stream::Tls(tls) => {
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(*tls, h2).await
            }
            #[cfg(target_os = "linux")]
            Stream::Tick(tcp) => handshake(tcp, self.prior_knowledge).await,
        }
    }

    /// Whether connections to it speak TLS.
    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a new plain TCP stream in `ticker`'s set (cleartext targets only).
    #[cfg(target_os = "linux")]
    pub(super) async fn open_ticked(
        &self,
        ticker: &super::h1::tick::Ticker,
    ) -> Result<Stream, ConnectFailure> {
        let tcp = match self.open().await? {
            Stream::Plain(tcp) => tcp,
            other => return Ok(other),
        };
        let ticked = tcp.into_std().and_then(|tcp| ticker.stream(tcp));
        ticked.map(Stream::Tick).map_err(|e| classify_error(&e).into())
    }

    /// Opens a new stream: TCP, then TLS when the URL says https.
    pub(super) async fn open(&self) -> Result<Stream, ConnectFailure> {
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(&self.authority)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(classify_error(&e).into()),
            Err(_) => return Err(Class::Timeout.into()),
        };
        let _ = stream.set_nodelay(true);
        let Some((connector, name)) = &self.tls else {
            return Ok(Stream::Plain(stream));
        };
        match tokio::time::timeout_at(deadline, connector.connect(name.clone(), stream)).await {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => Err(ConnectFailure {
                class: Class::Tls,
                tls: Some(tls_reason(&e, &self.authority)),
            }),
            Err(_) => Err(Class::Timeout.into()),
        }
    }
}

/// The HTTP handshake on an open stream; the connection is driven by its own task.
async fn handshake<I>(io: I, h2: bool) -> Result<Sender, ConnectFailure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        let (send, conn) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| ConnectFailure::from(classify_error(&e)))?;
        let ended = Arc::new(AtomicBool::new(false));
        let ends = ended.clone();
        tokio::spawn(async move {
            // Ends when the connection closes or every sender is dropped with no stream open;
            // errors surface on the streams.
            let _ = conn.await;
            ends.store(true, Ordering::Relaxed);
        });
        Ok(Sender::H2(H2 { send, ended }))
    } else {
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ConnectFailure::from(classify_error(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Sender::H1(sender))
    }
}

/// A TLS handshake failure in words, with what to do about the common ones.
fn tls_reason(e: &std::io::Error, authority: &str) -> String {
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map_or_else(|| e.to_string(), ToString::to_string);
    let hint = if inner.contains("UnknownIssuer") || inner.contains("invalid peer certificate") {
        " (a private CA? pass it with --cacert FILE; --insecure skips verification)"
    } else if inner.contains("CertificateRequired") || inner.contains("certificate required") {
        " (the server asks for a client certificate: --cert FILE --key FILE)"
    } else {
        ""
    };
    format!("TLS handshake with {authority} failed: {inner}{hint}")
}

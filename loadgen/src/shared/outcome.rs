//! What became of one request, as a small closed set of classes.
//!
//! A failed request under load is data, not an error: it is classified here and counted by the
//! recorder. Error texts never become labels or keys.

use serde::Serialize;

/// The class of a request's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A 1xx-3xx answer.
    Ok,
    /// A 4xx answer.
    Http4xx,
    /// A 5xx answer.
    Http5xx,
    /// The connection could not be made (refused, unreachable).
    Connect,
    /// The TLS handshake failed (untrusted or wrong certificate, no common protocol, a client
    /// certificate required).
    Tls,
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection was reset by the peer.
    Reset,
    /// The connection closed before a complete answer.
    Closed,
    /// The answer was not valid HTTP.
    Protocol,
    /// The answer's body was larger than the configured cap.
    BodyTooLarge,
    /// Anything else.
    Other,
    /// Still in flight when the drain time after a stop ran out: neither a success nor the server's
    /// failure, so counted apart and not in the error ratio.
    Cancelled,
    /// The task sending it panicked: a bug in loadgen, not the server's doing, so counted apart and not
    /// in the error ratio (and said on stderr).
    Panicked,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 13] = [
        Class::Ok,
        Class::Http4xx,
        Class::Http5xx,
        Class::Connect,
        Class::Tls,
        Class::Timeout,
        Class::Reset,
        Class::Closed,
        Class::Protocol,
        Class::BodyTooLarge,
        Class::Other,
        Class::Cancelled,
        Class::Panicked,
    ];

    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> Class {
        match status {
            400..=499 => Class::Http4xx,
            500..=599 => Class::Http5xx,
            _ => Class::Ok,
        }
    }

    /// Whether this class counts as a failed request (anything but `Ok`, `Cancelled` and `Panicked`).
    pub fn is_error(self) -> bool {
        !matches!(self, Class::Ok | Class::Cancelled | Class::Panicked)
    }

    /// Name as written in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Http4xx => "http_4xx",
            Class::Http5xx => "http_5xx",
            Class::Connect => "connect",
            Class::Tls => "tls",
            Class::Timeout => "timeout",
            Class::Reset => "reset",
            Class::Closed => "closed",
            Class::Protocol => "protocol",
            Class::BodyTooLarge => "body_too_large",
            Class::Other => "other",
            Class::Cancelled => "cancelled",
            Class::Panicked => "panicked",
        }
    }

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Classifies a transport error by walking its causes for the underlying I/O or HTTP error.
pub fn classify_error(err: &(dyn std::error::Error + 'static)) -> Class {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut class = Class::Other;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                return Class::Tls;
            }
            return match io.kind() {
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable => Class::Connect,
                ConnectionReset | ConnectionAborted | BrokenPipe => Class::Reset,
                TimedOut => Class::Timeout,
                UnexpectedEof => Class::Closed,
                _ => Class::Other,
            };
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                class = Class::Closed;
            } else if h.is_parse() || h.is_parse_status() || h.is_parse_too_large() {
                class = Class::Protocol;
            } else if h.is_timeout() {
                class = Class::Timeout;
            }
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if let Some(io) = h2.get_io() {
                return classify_error(io);
            }
            // Reset or closed by the server; a violation this side detected is a protocol error.
            return if h2.is_remote() {
                Class::Reset
            } else if h2.is_library() {
                Class::Protocol
            } else {
                Class::Other
            };
        }
        if let Some(c) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if c.is_connect() && class == Class::Other {
                class = Class::Connect;
            }
        }
        cur = e.source();
    }
    class
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_io_errors_are_classified() {
        assert_eq!(Class::of_status(200), Class::Ok);
        assert_eq!(Class::of_status(404), Class::Http4xx);
        assert_eq!(Class::of_status(503), Class::Http5xx);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_error(&refused), Class::Connect);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_error(&reset), Class::Reset);
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(classify_error(&tls), Class::Tls);
        assert!(!Class::Cancelled.is_error() && Class::Tls.is_error());
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}

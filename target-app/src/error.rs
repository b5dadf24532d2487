//! Why the service cannot start or stopped abnormally ([`ServeError`]): returned both by building an
//! instance ([`crate::state::App::new`]) and by serving it ([`crate::server`]).

use std::io;
use std::net::SocketAddr;

/// Why the service stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error(transparent)]
    Downstream(#[from] crate::downstream::BadDownstreamUrl),
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(io::Error),
    #[error("cannot listen on {addr} again after an outage: {source}")]
    Rebind { addr: SocketAddr, source: io::Error },
}

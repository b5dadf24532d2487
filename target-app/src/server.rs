//! Accepting connections: the accept loop, outages, graceful drain, and connection resets.
//!
//! One port speaks HTTP/1.1 and cleartext HTTP/2 with prior knowledge (h2c), told apart by whether a
//! connection opens with the HTTP/2 preface; there is no `Upgrade: h2c` and no TLS.
//!
//! `serve` takes an already bound listener, so a test or an embedding program binds `127.0.0.1:0` and
//! passes it in. During an outage the listener is closed and every open connection dropped, so clients
//! (Prometheus included) see refused connections; the same address is bound again when it ends. This
//! module moves bytes and connections; what a request means is decided in [`crate::app`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::ServeError;
use crate::exchange::ConnInfo;
use crate::state::App;

/// Largest request head accepted; larger heads get 431 from the HTTP layer. On HTTP/2 it bounds the
/// decoded header list (`SETTINGS_MAX_HEADER_LIST_SIZE`), which `h2` answers with 431 too.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Streams one HTTP/2 connection may have open at once; past it the peer must wait. The concurrency
/// limit (`--max-concurrency`) still sheds across all connections.
pub const MAX_CONCURRENT_STREAMS: u32 = 250;

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests for at most the
/// configured drain timeout and flushes telemetry.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_app(listener, Arc::new(App::new(config)?), shutdown).await
}

/// [`serve`] with an instance already built.
pub async fn serve_app(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let result = accept_loop(&app, listener, shutdown).await;
    let telemetry_app = app.clone();
    let _ =
        tokio::task::spawn_blocking(move || telemetry_app.telemetry.shutdown(Duration::from_secs(5))).await;
    result
}

async fn accept_loop(
    app: &Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    let mut listener = Some(listener);
    let graceful = GracefulShutdown::new();
    // Bumped at each outage; every connection drops itself when it changes.
    let (kill, _) = watch::channel(0u64);
    let mut outages = app.chaos.outages();
    let http = http_builder(&app.config);
    tokio::pin!(shutdown);
    // Histogram samples wait in the recorder until drained; draining on a timer, not only on scrapes,
    // keeps memory flat when nobody scrapes.
    let mut upkeep = tokio::time::interval(Duration::from_secs(5));

    loop {
        let accepting = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            _ = upkeep.tick() => app.telemetry.metrics.upkeep(),
            changed = outages.changed() => {
                if changed.is_err() {
                    continue;
                }
                let Some(duration) = *outages.borrow_and_update() else { continue };
                tracing::warn!(addr = %addr, duration_ms = duration.as_millis() as u64, "chaos outage: listener closed");
                // Let the answer to the request that started the outage leave first.
                tokio::time::sleep(Duration::from_millis(100)).await;
                listener = None;
                kill.send_modify(|epoch| *epoch += 1);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(duration) => {}
                }
                listener = Some(rebind(addr).await?);
                app.chaos.outage_over();
                tracing::info!(addr = %addr, "chaos outage over: listening again");
            }
            accepted = accepting => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let reset = Arc::new(AtomicBool::new(false));
                let conn_info = Arc::new(ConnInfo { peer, reset: reset.clone() });
                let io = TokioIo::new(Resettable { stream, reset });
                let app = app.clone();
                let header_timeout = app.config.header_timeout;
                let spoke = Arc::new(AtomicBool::new(false));
                let service = service_fn({
                    let spoke = spoke.clone();
                    move |req| {
                        spoke.store(true, Ordering::Relaxed);
                        crate::app::handle(app.clone(), conn_info.clone(), req)
                    }
                });
                let conn = graceful.watch(http.serve_connection(io, service).into_owned());
                let mut killed = kill.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        () = first_request_within(header_timeout, &spoke, conn) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        }
    }

    drop(listener);
    let drain = app.config.drain_timeout;
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained all connections"),
        () = tokio::time::sleep(drain) => tracing::warn!(timeout_ms = drain.as_millis() as u64, "drain timed out; dropping the remaining connections"),
    }
    kill.send_modify(|epoch| *epoch += 1);
    Ok(())
}

/// The connection builder of both protocols, with the same timer. HTTP/1.1 keeps its header read
/// timeout and head size limit. An HTTP/2 connection may idle between requests (hyper's HTTP/1.1 closes
/// one idle past the header timeout), so a peer that goes away is found by pings instead: one that
/// leaves a ping unanswered for the header timeout is dropped. A drain sends HTTP/2 peers a `GOAWAY` and
/// lets their open streams finish; an outage drops HTTP/2 connections as it drops HTTP/1.1 ones, without
/// one.
fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .keep_alive_interval(config.header_timeout)
        .keep_alive_timeout(config.header_timeout);
    http
}

/// Serves `conn`, but drops it if no request has arrived `timeout` after it was accepted. hyper's header
/// read timeout only starts once the protocol is known, and the auto builder waits without limit for
/// the bytes that tell it (a silent client, or one that stalls inside the HTTP/2 preface); this deadline
/// covers that wait and the HTTP/2 handshake, as the header timeout covers a first HTTP/1.1 request.
async fn first_request_within<F: Future>(timeout: Duration, spoke: &AtomicBool, conn: F) {
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => return,
        () = tokio::time::sleep(timeout) => {}
    }
    if spoke.load(Ordering::Relaxed) {
        conn.await;
    }
}

async fn rebind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ServeError::Rebind {
        addr,
        source: last.unwrap_or_else(|| io::Error::other("no attempt made")),
    })
}

/// A TCP stream that closes with a reset (RST) instead of a FIN when asked to.
struct Resettable {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Resettable {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Resettable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Resettable {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

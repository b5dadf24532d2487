//! The small HTTP/1.1 server loadgen runs beside a load test (its `/metrics`, its Alertmanager
//! webhook): an already bound listener, a header read timeout, and an accept loop that stops when
//! `shutdown` changes.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves every connection on `listener`, each request answered by `answer`, until `shutdown` changes.
pub async fn serve<A, F>(listener: TcpListener, mut shutdown: watch::Receiver<bool>, answer: A)
where
    A: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    // Out of descriptors and similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let answer = answer.clone();
        let service = service_fn(move |req| {
            let reply = answer(req);
            async move { Ok::<_, Infallible>(reply.await) }
        });
        tokio::spawn(http.serve_connection(TokioIo::new(stream), service));
    }
}

//! Where the load goes: a running service given by URL, or the target-app and its downstream started
//! embedded, in this process, on loopback ports.

use std::net::SocketAddr;

use target_app::{Config, Role};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A target-app and downstream running in this process.
pub struct Embedded {
    /// The app's address.
    pub app: SocketAddr,
    /// The downstream's address.
    pub downstream: SocketAddr,
    stops: Vec<oneshot::Sender<()>>,
    joins: Vec<JoinHandle<Result<(), target_app::ServeError>>>,
}

/// Why the embedded target could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot bind a loopback port for the embedded {role}: {source}")]
    Bind {
        role: &'static str,
        source: std::io::Error,
    },
}

impl Embedded {
    /// Starts both services on `127.0.0.1`, on ports the system picks. `tweak` adjusts both configs
    /// (for example to export telemetry).
    pub async fn start(tweak: impl Fn(&mut Config)) -> Result<Embedded, EmbedError> {
        let bind = |role| async move {
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| EmbedError::Bind { role, source })
        };
        let down_listener = bind("downstream").await?;
        let app_listener = bind("target-app").await?;
        let downstream = down_listener.local_addr().map_err(|source| EmbedError::Bind {
            role: "downstream",
            source,
        })?;
        let app = app_listener.local_addr().map_err(|source| EmbedError::Bind {
            role: "target-app",
            source,
        })?;

        let mut down_config = Config::embedded(Role::Downstream);
        down_config.listen = downstream;
        tweak(&mut down_config);
        let mut app_config = Config::embedded(Role::App);
        app_config.listen = app;
        app_config.downstream_url = format!("http://{downstream}");
        tweak(&mut app_config);

        let mut embedded = Embedded {
            app,
            downstream,
            stops: Vec::new(),
            joins: Vec::new(),
        };
        for (listener, config) in [(down_listener, down_config), (app_listener, app_config)] {
            let (tx, rx) = oneshot::channel();
            embedded.stops.push(tx);
            embedded
                .joins
                .push(tokio::spawn(target_app::serve(listener, config, async move {
                    let _ = rx.await;
                })));
        }
        Ok(embedded)
    }

    /// Base URL of the app.
    pub fn url(&self) -> String {
        format!("http://{}", self.app)
    }

    /// Stops both services, letting in-flight requests finish (bounded by their drain timeout).
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for join in self.joins.drain(..) {
            let _ = join.await;
        }
    }
}

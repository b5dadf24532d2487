//! A private Prometheus for alert checks: started on a loopback port with the stack's own rule files,
//! scraping the embedded target every second, and stopped (its data removed) when dropped.
//!
//! The rule files are compiled into loadgen from `stack/prometheus/rules/`, so the alerts checked here
//! are exactly the ones the stack ships; `--rules DIR` points at other files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The stack's rule files, by name.
pub const STACK_RULES: &[(&str, &str)] = &[
    (
        "recording.yml",
        include_str!("../../../stack/prometheus/rules/recording.yml"),
    ),
    (
        "alerts.yml",
        include_str!("../../../stack/prometheus/rules/alerts.yml"),
    ),
];

/// Why the private Prometheus could not start.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("no `prometheus` binary on the PATH (install it: `apt-get install prometheus`)")]
    NotInstalled,
    #[error("cannot prepare the Prometheus directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot start prometheus: {0}")]
    Spawn(std::io::Error),
    #[error("prometheus did not become ready within {0:?} (its log: {1})")]
    NotReady(Duration, PathBuf),
}

/// A running private Prometheus.
pub struct LocalPrometheus {
    child: Child,
    dir: PathBuf,
    /// Its base URL.
    pub url: String,
}

/// Whether a `prometheus` binary is on the PATH.
pub fn installed() -> bool {
    on_path("prometheus")
}

/// Whether `binary` is on the PATH.
pub(crate) fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()))
        .unwrap_or(false)
}

impl LocalPrometheus {
    /// Starts Prometheus scraping `targets` (job name, address) with the stack's rules, or those in
    /// `rules_dir`.
    /// Alerts go to `alertmanager` (`host:port`) when given.
    pub async fn start(
        targets: &[(&str, SocketAddr)],
        rules_dir: Option<&Path>,
        alertmanager: Option<&str>,
    ) -> Result<Self, PromError> {
        if !installed() {
            return Err(PromError::NotInstalled);
        }
        let dir =
            std::env::temp_dir().join(format!("loadgen-prometheus-{}-{}", std::process::id(), unique()));
        let io = |source| PromError::Dir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir.join("data")).map_err(io)?;
        let rule_glob = match rules_dir {
            Some(d) => d.join("*.yml"),
            None => {
                std::fs::create_dir_all(dir.join("rules")).map_err(io)?;
                for (name, text) in STACK_RULES {
                    std::fs::write(dir.join("rules").join(name), text).map_err(io)?;
                }
                dir.join("rules").join("*.yml")
            }
        };
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 900ms\n",
        );
        config.push_str(&format!(
            "rule_files:\n  - {:?}\nscrape_configs:\n",
            rule_glob.display().to_string()
        ));
        for (job, addr) in targets {
            config.push_str(&format!(
                "  - job_name: {job:?}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
            ));
        }
        if let Some(am) = alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{am:?}]\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).map_err(io)?;
        let port = free_port().map_err(io)?;
        let log = std::fs::File::create(dir.join("prometheus.log")).map_err(io)?;
        let child = crate::alerts::child::command("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(PromError::Spawn)?;
        let prom = LocalPrometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        prom.wait_ready(Duration::from_secs(15)).await?;
        Ok(prom)
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), PromError> {
        if ready(&self.url, limit).await {
            Ok(())
        } else {
            Err(PromError::NotReady(limit, self.dir.join("prometheus.log")))
        }
    }
}

/// Whether `{url}/-/ready` answers 2xx within `limit` (Prometheus and Alertmanager both have it).
pub(crate) async fn ready(url: &str, limit: Duration) -> bool {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let Ok(uri) = format!("{url}/-/ready").parse::<http::Uri>() else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(1), client.get(uri.clone())).await {
            if resp.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl Drop for LocalPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

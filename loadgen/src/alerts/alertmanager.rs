//! A private Alertmanager beside the private Prometheus: started on a loopback port with the stack's
//! routing (`stack/alertmanager/alertmanager.yml`, compiled into loadgen like the rule files), every
//! receiver of it pointed at loadgen's own webhook ([`crate::alerts::notify`]), and stopped (its data removed)
//! when dropped.
//!
//! Only the routing is taken from the stack's file: the route tree (grouping, `group_wait`,
//! `group_interval`, `repeat_interval`), the inhibit rules and time intervals. Where the stack's receivers
//! send (a container, a chat) is replaced, so nothing leaves the machine.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::alerts::prometheus::{free_port, on_path, ready, unique};

/// The stack's Alertmanager configuration.
pub const STACK_CONFIG: &str = include_str!("../../../stack/alertmanager/alertmanager.yml");

/// The names an Alertmanager binary goes by: Debian's package, then upstream's.
pub const BINARIES: [&str; 2] = ["prometheus-alertmanager", "alertmanager"];

/// Why the private Alertmanager could not start.
#[derive(Debug, thiserror::Error)]
pub enum AmError {
    #[error(
        "no `prometheus-alertmanager` or `alertmanager` binary on the PATH (install it: \
         `apt-get install prometheus-alertmanager`)"
    )]
    NotInstalled,
    #[error("the stack's alertmanager.yml: {0}")]
    Config(String),
    #[error("{0}")]
    Routing(#[from] crate::alerts::routing::RoutingError),
    #[error("cannot prepare the Alertmanager directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot listen for its notifications on loopback: {0}")]
    Listen(std::io::Error),
    #[error("cannot start {0}: {1}")]
    Spawn(&'static str, std::io::Error),
    #[error("alertmanager did not become ready within {0:?} (its log: {1})")]
    NotReady(Duration, PathBuf),
}

/// The installed Alertmanager binary, if any.
pub fn binary() -> Option<&'static str> {
    BINARIES.into_iter().find(|b| on_path(b))
}

/// The configuration of the private Alertmanager: `stack`'s routing, with each of its receivers
/// replaced by one webhook to `webhook_url` that also announces resolutions. Written as JSON, which
/// Alertmanager reads as YAML.
pub fn private_config(stack: &str, webhook_url: &str) -> Result<String, AmError> {
    let doc: Value = serde_norway::from_str(stack).map_err(|e| AmError::Config(e.to_string()))?;
    let Value::Object(doc) = doc else {
        return Err(AmError::Config("expected a mapping at the top".into()));
    };
    let mut out = Map::new();
    match doc.get("route") {
        Some(route @ Value::Object(_)) => out.insert("route".into(), route.clone()),
        _ => return Err(AmError::Config("no `route` mapping".into())),
    };
    for key in ["inhibit_rules", "time_intervals", "mute_time_intervals"] {
        if let Some(v) = doc.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let Some(Value::Array(receivers)) = doc.get("receivers") else {
        return Err(AmError::Config("no `receivers` list".into()));
    };
    let mut ours = Vec::with_capacity(receivers.len());
    for (i, r) in receivers.iter().enumerate() {
        let Some(name) = r.get("name").and_then(Value::as_str) else {
            return Err(AmError::Config(format!("receivers[{i}] has no name")));
        };
        ours.push(json!({
            "name": name,
            "webhook_configs": [{ "url": webhook_url, "send_resolved": true }],
        }));
    }
    out.insert("receivers".into(), Value::Array(ours));
    serde_json::to_string_pretty(&Value::Object(out)).map_err(|e| AmError::Config(e.to_string()))
}

/// A running private Alertmanager.
pub struct LocalAlertmanager {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:PORT`, for Prometheus' `alerting` configuration.
    pub addr: String,
    /// Its base URL.
    pub url: String,
}

impl LocalAlertmanager {
    /// Starts Alertmanager with the stack's routing, delivering to `webhook_url`.
    pub async fn start(webhook_url: &str) -> Result<Self, AmError> {
        Self::start_config(private_config(STACK_CONFIG, webhook_url)?).await
    }

    /// Starts Alertmanager with `config` as it is (see [`crate::alerts::routing`] for a user's own,
    /// rewritten to deliver to loadgen).
    pub async fn start_config(config: String) -> Result<Self, AmError> {
        let binary = binary().ok_or(AmError::NotInstalled)?;
        let dir = std::env::temp_dir().join(format!(
            "loadgen-alertmanager-{}-{}",
            std::process::id(),
            unique()
        ));
        let io = |source| AmError::Dir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir.join("data")).map_err(io)?;
        std::fs::write(dir.join("alertmanager.yml"), config).map_err(io)?;
        let port = free_port().map_err(io)?;
        let log = std::fs::File::create(dir.join("alertmanager.log")).map_err(io)?;
        let child = crate::alerts::child::command(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No peers to gossip with.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| AmError::Spawn(binary, e))?;
        let am = LocalAlertmanager {
            child,
            addr: format!("127.0.0.1:{port}"),
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let limit = Duration::from_secs(15);
        if !ready(&am.url, limit).await {
            return Err(AmError::NotReady(limit, am.dir.join("alertmanager.log")));
        }
        Ok(am)
    }
}

impl Drop for LocalAlertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_routing_is_kept_and_every_receiver_goes_to_the_webhook() {
        let config = private_config(STACK_CONFIG, "http://127.0.0.1:9/alerts").unwrap();
        let ours: Value = serde_json::from_str(&config).unwrap();
        let stack: Value = serde_norway::from_str(STACK_CONFIG).unwrap();
        assert_eq!(ours["route"], stack["route"]);
        assert_eq!(ours["inhibit_rules"], stack["inhibit_rules"]);
        let receivers = ours["receivers"].as_array().unwrap();
        assert_eq!(receivers.len(), stack["receivers"].as_array().unwrap().len());
        for r in receivers {
            assert_eq!(
                r["webhook_configs"],
                json!([{ "url": "http://127.0.0.1:9/alerts", "send_resolved": true }])
            );
        }
        assert!(ours.get("global").is_none());
    }

    #[test]
    fn a_file_without_routing_is_refused() {
        for (text, expected) in [
            ("- a\n- b\n", "a mapping"),
            ("receivers: []\n", "no `route`"),
            ("route: {receiver: x}\n", "no `receivers`"),
            (
                "route: {receiver: x}\nreceivers: [{url: y}]\n",
                "receivers[0] has no name",
            ),
            ("route: [\n", "alertmanager.yml"),
        ] {
            let e = private_config(text, "http://x").unwrap_err().to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }
}

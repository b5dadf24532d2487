//! A private Alertmanager beside the private Prometheus: started on a loopback port with the stack's
//! configuration (`stack/alertmanager/alertmanager.yml` and its Slack template, compiled into loadgen
//! like the rule files) or the user's own (`--alertmanager-config`), every receiver of it pointed at
//! loadgen's own receiver ([`crate::alerts::notify`], rewritten by [`crate::alerts::routing`]), and
//! stopped (its data removed) when dropped.
//!
//! The routing is kept as the file says: the route tree (grouping, `group_wait`, `group_interval`,
//! `repeat_interval`), the inhibit rules, time intervals and templates. Where the receivers send (a
//! container, a chat) is replaced, so nothing leaves the machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::alerts::prometheus::{free_port, on_path, ready, unique};
use crate::alerts::routing::{rewrite, ReceiverPlan, Rewritten};

/// The stack's Alertmanager configuration.
pub const STACK_CONFIG: &str = include_str!("../../../stack/alertmanager/alertmanager.yml");
/// Its template, written beside the private copy (`templates/slack.tmpl`).
pub const STACK_TEMPLATE: &str = include_str!("../../../stack/alertmanager/templates/slack.tmpl");

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

/// The configuration of the private Alertmanager: `stack`'s, every receiver pointed at loadgen's
/// receiver at `base` (`http://127.0.0.1:PORT`), its templates looked for in `dir`.
pub fn private_config(stack: &str, base: &str, dir: &Path) -> Result<Rewritten, AmError> {
    Ok(rewrite(stack, "stack/alertmanager/alertmanager.yml", dir, base)?)
}

/// A running private Alertmanager.
pub struct LocalAlertmanager {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:PORT`, for Prometheus' `alerting` configuration.
    pub addr: String,
    /// Its base URL.
    pub url: String,
    /// Its receivers and what of each loadgen captures.
    pub receivers: Vec<ReceiverPlan>,
}

impl LocalAlertmanager {
    /// Starts Alertmanager with the stack's configuration, delivering to loadgen's receiver at `base`
    /// (`http://127.0.0.1:PORT`).
    pub async fn start(base: &str) -> Result<Self, AmError> {
        let dir = Self::dir()?;
        let io = |source| AmError::Dir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir.join("templates")).map_err(io)?;
        std::fs::write(dir.join("templates").join("slack.tmpl"), STACK_TEMPLATE).map_err(io)?;
        let config = private_config(STACK_CONFIG, base, &dir)?;
        Self::spawn(dir, config).await
    }

    /// Starts Alertmanager with `config` (see [`crate::alerts::routing`] for a user's own, rewritten to
    /// deliver to loadgen).
    pub async fn start_config(config: Rewritten) -> Result<Self, AmError> {
        Self::spawn(Self::dir()?, config).await
    }

    fn dir() -> Result<PathBuf, AmError> {
        let dir = std::env::temp_dir().join(format!(
            "loadgen-alertmanager-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(dir.join("data")).map_err(|source| AmError::Dir {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    async fn spawn(dir: PathBuf, config: Rewritten) -> Result<Self, AmError> {
        let binary = binary().ok_or(AmError::NotInstalled)?;
        let io = |source| AmError::Dir {
            path: dir.clone(),
            source,
        };
        std::fs::write(dir.join("alertmanager.yml"), config.text).map_err(io)?;
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
            receivers: config.receivers,
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
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn the_stack_routing_is_kept_and_every_receiver_goes_to_loadgen() {
        let config = private_config(STACK_CONFIG, "http://127.0.0.1:9", Path::new("/am")).unwrap();
        let ours: Value = serde_json::from_str(&config.text).unwrap();
        let stack: Value = serde_norway::from_str(STACK_CONFIG).unwrap();
        assert_eq!(ours["route"], stack["route"]);
        assert_eq!(ours["inhibit_rules"], stack["inhibit_rules"]);
        assert_eq!(ours["templates"], json!(["/am/templates/*.tmpl"]));
        let receivers = ours["receivers"].as_array().unwrap();
        assert_eq!(receivers.len(), stack["receivers"].as_array().unwrap().len());
        for r in receivers {
            let name = r["name"].as_str().unwrap();
            assert_eq!(
                r["slack_configs"][0]["api_url"],
                format!("http://127.0.0.1:9/receivers/{name}/slack")
            );
            let urls: Vec<&str> = r["webhook_configs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["url"].as_str().unwrap())
                .collect();
            assert!(
                urls.iter()
                    .all(|u| u.starts_with("http://127.0.0.1:9/receivers/")),
                "{urls:?}"
            );
            assert!(urls.contains(&format!("http://127.0.0.1:9/receivers/{name}/loadgen").as_str()));
        }
        assert_eq!(
            config
                .receivers
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["page", "ticket"]
        );
    }

    #[test]
    fn a_file_without_routing_is_refused() {
        for (text, expected) in [
            ("- a\n- b\n", "a mapping"),
            ("receivers: []\n", "no `route`"),
            ("route: {receiver: x}\n", "no `receivers`"),
            (
                "route: {receiver: x}\nreceivers: [{url: y}]\n",
                "`receivers[0]` has no `name`",
            ),
            ("route: [\n", "alertmanager.yml"),
        ] {
            let e = private_config(text, "http://x", Path::new("/"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }
}

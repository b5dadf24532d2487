//! `loadgen run --stack [DIR]`: the bundled stack's addresses and chaos token, read from its own files,
//! so one flag stands for `--target`, `--prometheus`, `--chaos-token` and `--notify-listen`.
//!
//! What enters: the stack's directory. What leaves: a [`Stack`] (every address with the file it came
//! from), folded into the run's options by [`Stack::apply`], where a flag given on the command line (or
//! `CHAOS_TOKEN` in the environment) always wins. [`Stack::check_up`] then asks whether the target and
//! Prometheus answer, so a stack that is down is named before the run, not found mid-way.
//!
//! The files read, all in DIR: `docker-compose.yml` (the host ports published for `target-app`,
//! `prometheus` and `alertmanager`), `.env` (`CHAOS_TOKEN`, which docker compose passes to both apps)
//! and `alertmanager/alertmanager.yml` (the port of the webhook at `host.docker.internal`, where the
//! stack's Alertmanager sends notifications to a loadgen on the host). Nothing here is started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::cli::RunArgs;

/// The stack directory when `--stack` is given without one (the repository's `stack/`, from its root).
pub const DEFAULT_DIR: &str = "stack";

/// What the bundled stack offers to a loadgen on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub dir: PathBuf,
    /// Base URL of the stack's target-app, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Base URL of the stack's Prometheus, e.g. `http://127.0.0.1:9090`.
    pub prometheus: String,
    /// Base URL of the stack's Alertmanager (the one its Prometheus sends to), e.g.
    /// `http://127.0.0.1:9093`: its API is asked which alerts it inhibits (`--alertmanager-api`).
    pub alertmanager: String,
    /// `CHAOS_TOKEN` from `.env`.
    pub chaos_token: String,
    /// Where to listen for the stack's Alertmanager's notifications: every interface, on the port of
    /// its `host.docker.internal` webhook (the containers reach the host through the bridge).
    pub notify_listen: SocketAddr,
}

/// Why the stack's settings could not be read: each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("--stack {}: no {file} there ({hint})", dir.display())]
    Missing {
        dir: PathBuf,
        file: &'static str,
        hint: &'static str,
    },
    #[error("--stack: cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("--stack: {}: {problem}", path.display())]
    Bad { path: PathBuf, problem: String },
    #[error(
        "--stack: CHAOS_TOKEN is not set in {} (set it there, as .env.example shows, and restart the \
         stack; or give --chaos-token)",
        path.display()
    )]
    NoToken { path: PathBuf },
    /// A service of the stack does not answer on its published port.
    #[error(
        "--stack {}: the stack's {service} does not answer at {url} ({why}); is the stack up? \
         (`docker compose up -d` in {}, then `docker compose ps`)",
        dir.display(),
        dir.display()
    )]
    Down {
        dir: PathBuf,
        service: &'static str,
        url: String,
        why: String,
    },
}

impl Stack {
    /// Reads the stack in `dir`. The chaos token is needed only when `--chaos-token` (or
    /// `CHAOS_TOKEN`) does not give it, so `.env` is read only then.
    pub fn read(dir: &Path, need_token: bool) -> Result<Stack, StackError> {
        let compose_path = dir.join("docker-compose.yml");
        let compose = read_file(
            dir,
            &compose_path,
            "docker-compose.yml",
            "not a stack directory: give --stack the stack/ folder of the repository",
        )?;
        let compose: serde_norway::Value = serde_norway::from_str(&compose).map_err(|e| StackError::Bad {
            path: compose_path.clone(),
            problem: e.to_string(),
        })?;
        let published = |service: &str| {
            published_port(&compose, service).ok_or_else(|| StackError::Bad {
                path: compose_path.clone(),
                problem: format!(
                    "service {service} publishes no port (expected e.g. \"127.0.0.1:8080:8080\")"
                ),
            })
        };
        let target = published("target-app")?;
        let prometheus = published("prometheus")?;
        let alertmanager = published("alertmanager")?;

        let am_path = dir.join("alertmanager").join("alertmanager.yml");
        let am = read_file(
            dir,
            &am_path,
            "alertmanager/alertmanager.yml",
            "the stack's Alertmanager routing",
        )?;
        let port = host_webhook_port(&am).ok_or_else(|| StackError::Bad {
            path: am_path.clone(),
            problem: "no webhook url at host.docker.internal:PORT (where loadgen on the host listens)"
                .to_owned(),
        })?;

        let chaos_token = if need_token {
            let env_path = dir.join(".env");
            let env = read_file(
                dir,
                &env_path,
                ".env",
                "copy .env.example to .env and set its secrets, then `docker compose up -d`",
            )?;
            env_value(&env, "CHAOS_TOKEN")
                .filter(|t| !t.is_empty())
                .ok_or(StackError::NoToken { path: env_path })?
        } else {
            String::new()
        };
        Ok(Stack {
            dir: dir.to_owned(),
            target: format!("http://{target}"),
            prometheus: format!("http://{prometheus}"),
            alertmanager: format!("http://{alertmanager}"),
            chaos_token,
            notify_listen: SocketAddr::from(([0, 0, 0, 0], port)),
        })
    }

    /// Fills in what `args` leaves open: a flag given (or `CHAOS_TOKEN` in the environment) wins.
    /// With `--no-alerts`, no Prometheus and no listener are added (they would conflict); with
    /// `--no-notifications`, no listener. Returns the flags the stack gave, for the start line.
    pub fn apply(&self, args: &mut RunArgs) -> Vec<&'static str> {
        let mut given = Vec::new();
        if args.target.is_none() {
            args.target = Some(self.target.clone());
            given.push("--target");
        }
        if args.chaos_token.is_none() && !self.chaos_token.is_empty() {
            args.chaos_token = Some(self.chaos_token.clone());
            given.push("--chaos-token");
        }
        if !args.no_alerts {
            if args.prometheus.is_none() {
                args.prometheus = Some(self.prometheus.clone());
                given.push("--prometheus");
            }
            if args.notify_listen.is_none() && !args.no_notifications {
                args.notify_listen = Some(self.notify_listen);
                given.push("--notify-listen");
            }
            if args.alertmanager_api.is_none() && !args.no_notifications {
                args.alertmanager_api = Some(self.alertmanager.clone());
                given.push("--alertmanager-api");
            }
        }
        given
    }

    /// One line saying what the run takes from the stack (`given`, from [`Stack::apply`]).
    pub fn describe(&self, given: &[&str]) -> String {
        let mut parts = Vec::new();
        for flag in given {
            parts.push(match *flag {
                "--target" => format!("target {}", self.target),
                "--prometheus" => format!(
                    "Prometheus {} (its Alertmanager {})",
                    self.prometheus, self.alertmanager
                ),
                "--chaos-token" => format!("chaos token from {}", self.dir.join(".env").display()),
                "--notify-listen" => format!("notifications received at {}", self.notify_listen),
                "--alertmanager-api" => format!("inhibitions asked of {}", self.alertmanager),
                other => other.to_owned(),
            });
        }
        if parts.is_empty() {
            format!(
                "--stack {}: every address given by its own flag",
                self.dir.display()
            )
        } else {
            format!("--stack {}: {}", self.dir.display(), parts.join(", "))
        }
    }

    /// Whether the stack's target and Prometheus (those `args` took from it) accept a connection
    /// within `wait`: the first that does not is named.
    pub async fn check_up(&self, args: &RunArgs, wait: Duration) -> Result<(), StackError> {
        let peers = [
            ("target-app", &self.target, &args.target),
            ("prometheus", &self.prometheus, &args.prometheus),
        ];
        for (service, url, _) in peers
            .into_iter()
            .filter(|(_, url, used)| used.as_ref() == Some(*url))
        {
            let authority = url.trim_start_matches("http://");
            let why = match tokio::time::timeout(wait, tokio::net::TcpStream::connect(authority)).await {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}", target_app::duration::format(wait)),
            };
            return Err(StackError::Down {
                dir: self.dir.clone(),
                service,
                url: url.clone(),
                why,
            });
        }
        Ok(())
    }
}

fn read_file(dir: &Path, path: &Path, file: &'static str, hint: &'static str) -> Result<String, StackError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            StackError::Missing {
                dir: dir.to_owned(),
                file,
                hint,
            }
        } else {
            StackError::Unreadable {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// The host address of `service`'s first published port (`"127.0.0.1:8080:8080"` gives
/// `127.0.0.1:8080`; a port published on every interface is reached on loopback).
fn published_port(compose: &serde_norway::Value, service: &str) -> Option<String> {
    let ports = compose
        .get("services")?
        .get(service)?
        .get("ports")?
        .as_sequence()?;
    let first = ports.first()?;
    let text = match first {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        // The long syntax: { target, published, host_ip }.
        serde_norway::Value::Mapping(_) => {
            let port = match first.get("published")? {
                serde_norway::Value::String(s) => s.clone(),
                serde_norway::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            let ip = first
                .get("host_ip")
                .and_then(|v| v.as_str())
                .unwrap_or("127.0.0.1");
            format!("{ip}:{port}:0")
        }
        _ => return None,
    };
    let text = text.split('/').next()?; // "8080:8080/tcp"
    let parts: Vec<&str> = text.rsplitn(3, ':').collect();
    let (ip, port) = match parts.as_slice() {
        [_container, port, ip] => (*ip, *port),
        [_container, port] => ("", *port),
        _ => return None,
    };
    let port: u16 = port.parse().ok()?;
    let ip = match ip.trim_matches(['[', ']']) {
        "" | "0.0.0.0" | "::" => "127.0.0.1",
        ip => ip,
    };
    Some(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

/// The port of the first webhook url at `host.docker.internal` in Alertmanager's configuration.
fn host_webhook_port(config: &str) -> Option<u16> {
    config
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let rest = &line[line.find("://host.docker.internal:")? + "://host.docker.internal:".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
}

/// The value of `key` in a docker compose `.env` file: `KEY=VALUE`, optionally quoted; the last
/// assignment wins, as in compose.
fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim())
        })
        .next_back()
        .map(|v| {
            let quoted = v.len() >= 2
                && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
            if quoted {
                v[1..v.len() - 1].to_owned()
            } else {
                // An unquoted value ends at a comment.
                v.split(" #").next().unwrap_or(v).trim().to_owned()
            }
        })
}

#[cfg(test)]
mod tests;

//! Helpers shared by the integration tests.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes `NAME.toml` into a fresh temporary directory of its own, where reports can go beside it.
pub fn scenario_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The JSON report at `path`.
pub fn read_report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("report is JSON")
}

/// Waits for `child` until `deadline`, then kills it; its status, `None` when it was killed.
pub fn wait(mut child: Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Reads the line naming loadgen's `/metrics` address from its stderr file.
pub fn metrics_addr(err: &Path, deadline: Instant) -> String {
    loop {
        let text = std::fs::read_to_string(err).unwrap_or_default();
        if let Some(rest) = text.split("loadgen: metrics at http://").nth(1) {
            return rest.split('/').next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no metrics address:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn get_metrics(addr: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = std::io::Write::write_all(
        &mut s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

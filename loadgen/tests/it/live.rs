//! The live panel on a real terminal: `loadgen run` inside a tmux pane (Debian's `tmux`;
//! `scripts/test.sh` installs it) draws the panel with the scenario, the phase and its faults, the
//! timeline, target and achieved rates, redrawn in place; Ctrl-C ends the run with exit code 130 and
//! leaves the terminal as it was (same `stty` settings, cursor visible) with the summary printed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::scenario_file;

const SCENARIO: &str = r#"
name = "live-check"
seed = 8
[[mix]]
path = "/"
[[phases]]
name = "calm"
duration = "3s"
rate = { shape = "constant", rps = 40 }
[[phases]]
name = "failing"
duration = "30s"
rate = { shape = "ramp", from = 40, to = 80 }
chaos = [{ fault = "error", status = 500, ratio = 0.5 }]
"#;

pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux on PATH (Debian package `tmux`; scripts/test.sh installs it)")
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "live"]).stdout).into_owned()
    }

    /// Waits until the screen contains `text`, returning the screen.
    pub fn wait_for(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no `{text}` on the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn the_live_panel_draws_in_place_and_ctrl_c_restores_the_terminal() {
    let file = scenario_file("live-check", SCENARIO);
    let dir = file.parent().unwrap().to_path_buf();
    let stty = |name: &str| dir.join(name);
    let script = format!(
        // The wrapping shell must outlive the Ctrl-C that is meant for loadgen.
        "trap : INT; stty -g > {before}; {bin} run {file}; echo EXITED $?; stty -g > {after}; sleep 60",
        before = stty("before").display(),
        after = stty("after").display(),
        bin = env!("CARGO_BIN_EXE_loadgen"),
        file = file.display()
    );
    let tmux = Tmux {
        socket: format!("loadgen-it-{}", std::process::id()),
    };
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "live",
        "-x",
        "100",
        "-y",
        "40",
        "-e",
        "CHAOS_TOKEN=",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );

    let screen = tmux.wait_for("phase 1/2 calm", Duration::from_secs(20));
    assert!(screen.contains("loadgen  live-check  seed 8"), "{screen}");
    assert!(screen.contains("[|calm"), "the timeline:\n{screen}");
    assert!(screen.contains("rate    target  40.0/s  achieved"), "{screen}");
    let screen = tmux.wait_for("phase 2/2 failing", Duration::from_secs(20));
    assert!(screen.contains("faults: error"), "{screen}");
    let screen = tmux.wait_for("latency last 5s  p50", Duration::from_secs(20));
    // Drawn in place: one panel on the screen, not one per second.
    assert_eq!(screen.matches("loadgen  live-check").count(), 1, "{screen}");

    let _ = tmux.run(&["send-keys", "-t", "live", "C-c"]);
    let screen = tmux.wait_for("EXITED", Duration::from_secs(30));
    assert!(screen.contains("EXITED 130"), "{screen}");
    assert!(
        screen.contains("result: NOT VERIFIED"),
        "the summary is printed, and an interrupted run verifies nothing it did not run:\n{screen}"
    );
    // The panel's last frame stays above the message about stopping, once, with no stale lines.
    assert_eq!(screen.matches("loadgen  live-check").count(), 1, "{screen}");
    assert_eq!(screen.matches("[|calm").count(), 1, "{screen}");
    let cursor = tmux.run(&["display-message", "-p", "-t", "live", "#{cursor_flag}"]);
    assert_eq!(
        String::from_utf8_lossy(&cursor.stdout).trim(),
        "1",
        "cursor visible"
    );
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&stty("after")).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!read(&stty("before")).is_empty());
    assert_eq!(
        read(&stty("before")),
        read(&stty("after")),
        "terminal settings restored"
    );
}

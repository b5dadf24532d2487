//! Keys under the live panel on a real terminal (a tmux pane): `p` pauses, `e` switches the error fault
//! on, `q` stops the run, each shown on the panel; the panel's last line lists the keys. The terminal's
//! settings (`stty -g`) are the same after the run as before, however it ends: by `q`, by SIGTERM, by
//! or by two Ctrl-C.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::live::Tmux;
use crate::support::scenario_file;

const SCENARIO: &str = r#"
name = "keys-check"
seed = 4
[[mix]]
path = "/"
[[phases]]
name = "steady"
duration = "60s"
rate = { shape = "constant", rps = 30 }
"#;

/// Runs loadgen on `scenario` in a tmux pane named `live`, saving `stty -g` before and after.
fn start(name: &str, scenario: &str) -> (Tmux, std::path::PathBuf) {
    let file = scenario_file(&format!("keys-{name}"), scenario);
    let dir = file.parent().unwrap().to_path_buf();
    for f in ["before", "after"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let script = format!(
        // The shell outlives every Ctrl-C meant for loadgen, even one that comes after loadgen is gone.
        "trap : INT TERM; stty -g > {before}; {bin} run {file}; echo EXITED $?; stty -g > {after}; \
         for i in 1 2 3 4 5 6; do sleep 10; done",
        before = dir.join("before").display(),
        after = dir.join("after").display(),
        bin = env!("CARGO_BIN_EXE_loadgen"),
        file = file.display()
    );
    let tmux = Tmux {
        socket: format!("loadgen-keys-{name}-{}", std::process::id()),
    };
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "live",
        "-x",
        "110",
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
    (tmux, dir)
}

/// The terminal settings after the run are those before it.
fn restored(dir: &Path) {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&dir.join("after")).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = read(&dir.join("before"));
    assert!(!before.is_empty());
    assert_eq!(before, read(&dir.join("after")), "terminal settings restored");
}

fn key(tmux: &Tmux, k: &str) {
    let _ = tmux.run(&["send-keys", "-t", "live", k]);
}

#[test]
fn keys_steer_the_run_and_q_restores_the_terminal() {
    let (tmux, dir) = start("q", SCENARIO);
    let screen = tmux.wait_for("keys: p pause ", Duration::from_secs(30));
    assert!(screen.contains("phase 1/1 steady"), "{screen}");
    key(&tmux, "p");
    let screen = tmux.wait_for("changed PAUSED  pause at", Duration::from_secs(10));
    assert!(screen.contains("(keys), 1 change so far"), "{screen}");
    assert!(screen.contains("rate    target   0.0/s"), "{screen}");
    key(&tmux, "e");
    let screen = tmux.wait_for("faults: error", Duration::from_secs(10));
    assert!(screen.contains("2 changes so far"), "{screen}");
    key(&tmux, "q");
    let screen = tmux.wait_for("EXITED", Duration::from_secs(30));
    assert!(screen.contains("EXITED 130"), "{screen}");
    assert!(
        screen.contains("changed live"),
        "the summary lists the changes:\n{screen}"
    );
    restored(&dir);
}

/// The pid of the process the pane's shell runs (loadgen).
fn loadgen_pid(tmux: &Tmux) -> String {
    let shell = String::from_utf8_lossy(
        &tmux
            .run(&["display-message", "-p", "-t", "live", "#{pane_pid}"])
            .stdout,
    )
    .trim()
    .to_owned();
    std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .expect("the shell runs loadgen")
        .to_owned()
}

#[test]
fn sigterm_restores_the_terminal() {
    let (tmux, dir) = start("term", SCENARIO);
    tmux.wait_for("keys: p pause ", Duration::from_secs(30));
    let pid = loadgen_pid(&tmux);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let screen = tmux.wait_for("EXITED", Duration::from_secs(30));
    assert!(screen.contains("EXITED 130"), "{screen}");
    restored(&dir);
}

#[test]
fn a_second_ctrl_c_restores_the_terminal() {
    // (A third one quits at once after restoring it too; it cannot be sent reliably while loadgen is
    // still there, so it is not tested here.) Requests to /slow take 1-3 s: the first Ctrl-C starts a
    // drain that the second cuts short.
    let (tmux, dir) = start("twice", &SCENARIO.replace("path = \"/\"", "path = \"/slow\""));
    tmux.wait_for("keys: p pause ", Duration::from_secs(30));
    key(&tmux, "C-c");
    tmux.wait_for("loadgen: stopping", Duration::from_secs(10));
    key(&tmux, "C-c");
    let screen = tmux.wait_for("EXITED", Duration::from_secs(30));
    assert!(screen.contains("EXITED 130"), "{screen}");
    assert!(screen.contains("cutting the drain short"), "{screen}");
    restored(&dir);
}

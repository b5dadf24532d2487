//! The private Prometheus and Alertmanager never outlive loadgen: not when it ends, not when a second
//! Ctrl-C makes it quit at once, not when it is killed with SIGKILL. And a Ctrl-C at the terminal (a
//! SIGINT to loadgen's whole process group) does not reach them, so the interrupted run keeps its alert
//! evidence to the end. Needs Debian's `prometheus` package; Linux only (reads /proc).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{get_metrics, metrics_addr, read_report, scenario_file, wait};

const LONG: &str = r#"
name = "long"
[[mix]]
path = "/health"
[[phases]]
name = "steady"
duration = "60s"
rate = { shape = "constant", rps = 5 }
expect = { alerts_inactive = ["HighErrorRate"] }
"#;

/// The processes whose parent is `pid`, with their names, living or not yet reaped.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            let child: u32 = stat[..open].trim().parse().unwrap();
            found.push((child, stat[open + 1..close].to_owned()));
        }
    }
    found
}

/// Whether `pid` is still a living process (a zombie waiting to be reaped is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn signal(target: &str, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), "--", target])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{name} {target}");
}

/// Starts `loadgen run` on the long scenario in a process group of its own (as a shell's foreground
/// job is), and waits until its private Prometheus has started.
#[allow(
    clippy::zombie_processes,
    reason = "the child is handed to the caller, which waits for it"
)]
fn start(name: &str, path: &str, drain: &str) -> (Child, Vec<u32>, std::path::PathBuf) {
    assert!(
        loadgen::alerts::prometheus::installed(),
        "`prometheus` is not on the PATH"
    );
    let file = scenario_file(name, &LONG.replace("/health", path));
    let json = file.with_extension("json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    command
        .arg("run")
        .arg(&file)
        .args(["--drain", drain, "--metrics-addr", "127.0.0.1:0", "--json"])
        .arg(&json)
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(file.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(file.with_extension("err")).unwrap());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().expect("start loadgen");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let kids = children_of(child.id());
        if kids.iter().any(|(_, n)| n == "prometheus")
            && std::fs::read_to_string(file.with_extension("err"))
                .unwrap_or_default()
                .contains("alerts count for this run")
        {
            let pids = kids.into_iter().map(|(p, _)| p).collect();
            return (child, pids, json);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no private Prometheus started");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "left running: {pids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkill_takes_the_children_with_it() {
    let (mut child, pids, _) = start("children-sigkill", "/health", "1s");
    child.kill().unwrap();
    child.wait().unwrap();
    all_gone(&pids);
}

#[test]
fn a_second_ctrl_c_cuts_the_drain_short_and_still_cleans_up() {
    // Requests to /slow take 1 to 3 s, and the drain may last 20 s: only a cut drain cancels them.
    let (child, pids, json) = start("children-twice", "/slow", "20s");
    let pid = child.id().to_string();
    // Stopped once requests are in flight, as loadgen's own /metrics tells.
    let err = json.with_extension("err");
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = metrics_addr(&err, deadline);
    while !get_metrics(&addr)
        .lines()
        .any(|l| l.starts_with("loadgen_in_flight ") && !l.ends_with(" 0"))
    {
        assert!(Instant::now() < deadline, "no request ever in flight");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&pid, "INT");
    while !std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("loadgen: stopping")
    {
        assert!(Instant::now() < deadline, "the first Ctrl-C was not taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&pid, "INT");
    let status = wait(child, deadline);
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(text.contains("cutting the drain short"), "{text}");
    let report = read_report(&json);
    let cancelled = report["phases"][0]["totals"]["classes"]["cancelled"].as_u64();
    assert!(
        cancelled.is_some_and(|n| n > 0),
        "{}",
        report["phases"][0]["totals"]
    );
    all_gone(&pids);
}

#[test]
fn ctrl_c_at_the_terminal_reaches_loadgen_alone_and_the_evidence_is_kept() {
    let (child, pids, json) = start("children-group", "/health", "1s");
    // Interrupted once the phase runs, as loadgen's own /metrics tells.
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = metrics_addr(&json.with_extension("err"), deadline);
    while !get_metrics(&addr).contains("loadgen_phase_info{") {
        assert!(Instant::now() < deadline, "the phase never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // What a terminal does on Ctrl-C: SIGINT to the foreground process group.
    signal(&format!("-{}", child.id()), "INT");
    let status = wait(child, Instant::now() + Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    let report = read_report(&json);
    // Prometheus answered to the end of the interrupted run: its last poll, after the drain, succeeded.
    assert_eq!(report["alerts"]["failed_polls"], 0, "{}", report["alerts"]);
    assert_eq!(
        report["alerts"]["checks"][0]["coverage"]["covered"], 1.0,
        "{}",
        report["alerts"]
    );
    all_gone(&pids);
}

#[test]
fn sigterm_drains_like_ctrl_c_and_stops_the_children() {
    let (child, pids, json) = start("children-term", "/health", "1s");
    signal(&child.id().to_string(), "TERM");
    let status = wait(child, Instant::now() + Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    assert_eq!(read_report(&json)["ending"], "interrupted");
    all_gone(&pids);
}

//! Live control of a real run against the embedded target (`--control`): the JSON API reads the state,
//! refuses a bad order with 400 naming the field (and changes nothing), applies good ones (a rate, a
//! fault switched on, the phase ended), asks for the token when one is set, and `--record` writes the
//! run as driven, a scenario that loadgen reads back with the phases split at each change.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{scenario_file, wait};

const SCENARIO: &str = r#"
name = "steered"
seed = 11

[[mix]]
path = "/"

[[phases]]
name = "steady"
duration = "60s"
rate = { shape = "constant", rps = 20 }

[[phases]]
name = "after"
duration = "1s"
rate = { shape = "constant", rps = 20 }
"#;

/// One HTTP/1.1 exchange with the control endpoint: the status code and the body as JSON (or text).
pub fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("control answers");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {raw:?}"));
    let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, value)
}

/// Starts `loadgen run` with `--control 127.0.0.1:0` and `extra`; returns it and the control address.
pub fn start(file: &std::path::Path, extra: &[&str], token: Option<&str>) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    command
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--control",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env_remove("CHAOS_TOKEN")
        .env_remove("LOADGEN_CONTROL_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        command.env("LOADGEN_CONTROL_TOKEN", t);
    }
    let mut child = command.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("loadgen: control at http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("loadgen tells where its control listens")
        .parse()
        .unwrap();
    (child, addr)
}

/// Asks for the state until `ok` holds of it (at most 100 times, 100 ms apart).
fn state_until(addr: SocketAddr, token: Option<&str>, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (status, state) = call(addr, "GET", "/api/state", token, "");
        assert_eq!(status, 200, "{state}");
        if ok(&state) {
            return state;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the state never got there");
}

#[test]
fn orders_change_the_run_and_the_recording_replays_it() {
    let file = scenario_file("control-steered", SCENARIO);
    let dir = file.parent().unwrap().to_path_buf();
    let record = dir.join("recorded.toml");
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&record);
    let (child, addr) = start(
        &file,
        &[
            "--record",
            record.to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
        ],
        None,
    );
    let state = state_until(addr, None, |s| s["phase"]["name"] == "steady");
    assert_eq!(state["target_rps"], 20.0, "{state}");

    // A bad order: 400 naming the field, and nothing changes.
    let (status, body) = call(
        addr,
        "POST",
        "/api/control",
        None,
        r#"{"action": "rate", "rps": -5}"#,
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("rps")),
        "{body}"
    );
    let (status, body) = call(
        addr,
        "POST",
        "/api/control",
        None,
        r#"{"action": "fault_on", "fault": {"fault": "error", "ratio": 0.5, "routes": ["/nowhere"]}}"#,
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("fault.routes[0]")),
        "{body}"
    );
    let (status, body) = call(addr, "POST", "/api/control", None, r#"{"action": "resume"}"#);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("action")),
        "{body}"
    );
    let (_, state) = call(addr, "GET", "/api/state", None, "");
    assert_eq!(state["changes"].as_array().map(Vec::len), Some(0), "{state}");

    // Good orders: each answered with the change made, and the state follows.
    let (status, change) = call(
        addr,
        "POST",
        "/api/control",
        None,
        r#"{"action": "rate", "rps": 40}"#,
    );
    assert_eq!(status, 200, "{change}");
    assert_eq!(change["text"], "rate 40 rps");
    let (status, change) = call(
        addr,
        "POST",
        "/api/control?source=console",
        None,
        r#"{"action": "fault_on", "fault": {"fault": "error", "status": 503, "ratio": 1.0}}"#,
    );
    assert_eq!(status, 200, "{change}");
    assert_eq!(change["source"], "console");
    let state = state_until(addr, None, |s| s["target_rps"] == 40.0);
    assert_eq!(state["faults"][0]["fault"], "error", "{state}");
    // The fault is in force on the target: its answers fail.
    state_until(addr, None, |s| s["error_ratio"].as_f64() == Some(1.0));
    let (status, _) = call(addr, "POST", "/api/control", None, r#"{"action": "end_phase"}"#);
    assert_eq!(status, 200);

    let status = wait(child, Instant::now() + Duration::from_secs(60)).expect("the run ends");
    assert!(status.success(), "{status:?}");

    // The recording: the phase split at each change, at the rates and with the faults applied.
    let text = std::fs::read_to_string(&record).expect("the recording is written");
    let recorded = loadgen::scenario::parse(&text, "recorded.toml").unwrap_or_else(|d| panic!("{d}\n{text}"));
    let names: Vec<&str> = recorded.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["steady", "steady~2", "steady~3", "after"], "{text}");
    assert_eq!(recorded.seed, 11);
    let rps = |i: usize| match &recorded.phases[i].load {
        loadgen::scenario::Load::Open {
            rate: loadgen::scenario::Rate::Constant { rps },
            ..
        } => rps.get(),
        other => panic!("{other:?}"),
    };
    assert_eq!((rps(0), rps(1), rps(2), rps(3)), (20.0, 40.0, 40.0, 40.0));
    let kinds: Vec<usize> = recorded.phases.iter().map(|p| p.chaos.len()).collect();
    assert_eq!(kinds, [0, 0, 1, 1], "{text}");
    assert!(recorded.phases[2].expect == Default::default());

    // The JSON report carries the changes.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let texts: Vec<&str> = json["changes"]
        .as_array()
        .expect("changes in the report")
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["rate 40 rps", "fault error on (ratio 1)", "end phase"],
        "{json}"
    );
}

#[test]
fn a_token_is_asked_for_when_set_and_required_beyond_loopback() {
    let file = scenario_file("control-token", SCENARIO);
    // Beyond loopback without a token: refused before anything starts, naming the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", file.to_str().unwrap(), "--quiet", "--control", "0.0.0.0:0"])
        .env_remove("LOADGEN_CONTROL_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--control 0.0.0.0:0") && stderr.contains("LOADGEN_CONTROL_TOKEN"),
        "{stderr}"
    );

    let (child, addr) = start(&file, &[], Some("s3cret"));
    let (status, body) = call(addr, "GET", "/api/state", None, "");
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (401, Some("authorization")),
        "{body}"
    );
    let (status, _) = call(
        addr,
        "POST",
        "/api/control",
        Some("wrong"),
        r#"{"action": "stop"}"#,
    );
    assert_eq!(status, 401);
    let (status, state) = call(addr, "GET", "/api/state", Some("s3cret"), "");
    assert_eq!(status, 200, "{state}");
    assert!(state["changes"].as_array().is_some_and(Vec::is_empty), "{state}");
    let (status, change) = call(
        addr,
        "POST",
        "/api/control",
        Some("s3cret"),
        r#"{"action": "stop"}"#,
    );
    assert_eq!((status, change["text"].as_str()), (200, Some("stop")), "{change}");
    let status = wait(child, Instant::now() + Duration::from_secs(60)).expect("a stop ends the run");
    assert_eq!(status.code(), Some(130), "stopped like a Ctrl-C: {status:?}");
}

/// Requests the JSON report at `path` counts in all, and per phase.
fn counts(path: &std::path::Path) -> (u64, Vec<u64>) {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let per: Vec<u64> = json["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["totals"]["requests"].as_u64().unwrap())
        .collect();
    (per.iter().sum(), per)
}

#[test]
fn free_play_runs_until_stopped_and_its_recording_replays_it() {
    let dir = scenario_file("control-free", "").parent().unwrap().to_path_buf();
    let record = dir.join("free-recorded.toml");
    let live_report = dir.join("free-live.json");
    let replay_report = dir.join("free-replay.json");
    for f in [&record, &live_report, &replay_report] {
        let _ = std::fs::remove_file(f);
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    command
        .args([
            "run",
            "--rps",
            "50",
            "--quiet",
            "--control",
            "127.0.0.1:0",
            "--seed",
            "3",
        ])
        .args([
            "--record",
            record.to_str().unwrap(),
            "--json",
            live_report.to_str().unwrap(),
        ])
        .env_remove("CHAOS_TOKEN")
        .env_remove("LOADGEN_CONTROL_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("loadgen: control at http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(30)).unwrap().parse().unwrap();
    let state = state_until(addr, None, |s| {
        s["achieved_rps"].as_f64().is_some_and(|r| r > 0.0)
    });
    assert_eq!(state["phase"]["name"], "free", "{state}");
    let (status, _) = call(
        addr,
        "POST",
        "/api/control",
        None,
        r#"{"action": "rate", "rps": 100}"#,
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = call(addr, "POST", "/api/control", None, r#"{"action": "stop"}"#);
    assert_eq!(status, 200);
    let status = wait(child, Instant::now() + Duration::from_secs(60)).expect("stop ends free play");
    assert_eq!(status.code(), Some(130), "{status:?}");

    let text = std::fs::read_to_string(&record).expect("free play is recorded");
    let recorded = loadgen::scenario::parse(&text, "r.toml").unwrap_or_else(|d| panic!("{d}\n{text}"));
    let names: Vec<&str> = recorded.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["free", "free~2"], "{text}");
    assert_eq!(recorded.seed, 3);

    // The recording replayed sends what free play sent.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            record.to_str().unwrap(),
            "--quiet",
            "--json",
            replay_report.to_str().unwrap(),
        ])
        .env_remove("CHAOS_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (live, _) = counts(&live_report);
    let (again, per) = counts(&replay_report);
    // Within 1% and two requests: at the stop, a request still waiting on the busy machine is not
    // sent live, and the recording's last piece is cut to the millisecond.
    assert!(
        live.abs_diff(again) <= 2 + again / 100,
        "live {live}, replayed {again} ({per:?})"
    );
    assert!(per[1] > per[0] / 2, "the second piece ran at 100 rps: {per:?}");
}

/// Opens the console of the run at `addr` in headless Chromium with `fragment` (`click=ID` presses
/// that button once the page has the state); the DOM after its script ran.
fn console(addr: SocketAddr, fragment: &str, profile: &std::path::Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{addr}/#{fragment}"))
        .stdin(Stdio::null())
        .output()
        .expect("chromium on PATH (Debian package `chromium`; scripts/test.sh installs it)");
    let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .map(str::to_owned)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_click_on_the_console_changes_the_run() {
    let file = scenario_file("control-console", SCENARIO);
    let dir = file.parent().unwrap().to_path_buf();
    let (child, addr) = start(&file, &[], Some("console-token"));
    state_until(addr, Some("console-token"), |s| s["phase"]["name"] == "steady");

    // The page shows the run's state.
    let dom = console(addr, "token=console-token", &dir.join("profile-view"));
    assert!(dom.contains("data-ready=\"1\""), "{dom}");
    assert!(
        dom.contains("<span id=\"phase\" class=\"big\">steady</span>"),
        "{dom}"
    );

    // Pause: the run pauses, and the change says it came from the console.
    let dom = console(
        addr,
        "token=console-token&click=pause",
        &dir.join("profile-pause"),
    );
    assert!(dom.contains("data-clicked=\"ok\""), "{dom}");
    let (_, state) = call(addr, "GET", "/api/state", Some("console-token"), "");
    assert_eq!(state["paused"], true, "{state}");
    assert_eq!(state["changes"][0]["source"], "console", "{state}");

    // The error fault's button switches it on with the ratio in its field.
    let dom = console(
        addr,
        "token=console-token&click=fault-error",
        &dir.join("profile-fault"),
    );
    assert!(dom.contains("data-clicked=\"ok\""), "{dom}");
    let (_, state) = call(addr, "GET", "/api/state", Some("console-token"), "");
    assert_eq!(state["faults"][0]["fault"], "error", "{state}");
    assert_eq!(state["faults"][0]["ratio"], 0.3, "{state}");
    // And the page shows it on, with the history of changes.
    let dom = console(addr, "token=console-token", &dir.join("profile-after"));
    assert!(
        dom.contains("id=\"fault-error\" data-kind=\"error\" class=\"on\""),
        "{dom}"
    );
    assert!(dom.contains("data-changes=\"2\""), "{dom}");

    let (status, _) = call(
        addr,
        "POST",
        "/api/control",
        Some("console-token"),
        r#"{"action": "stop"}"#,
    );
    assert_eq!(status, 200);
    let status = wait(child, Instant::now() + Duration::from_secs(60)).expect("the run ends");
    assert_eq!(status.code(), Some(130));
}

#[test]
fn the_predicted_alerts_follow_a_change() {
    // An expectation on alerts makes the run predict them (promtool, the stack's rules); with no fault
    // nothing is predicted to fire, and once an error fault is switched on the prediction, made again in
    // the background from the schedule as it now stands, has HighErrorRate going pending, then firing.
    let file = scenario_file(
        "control-predict",
        &SCENARIO.replace(
            "rate = { shape = \"constant\", rps = 20 }\n\n[[phases]]\nname = \"after\"",
            "rate = { shape = \"constant\", rps = 20 }\nexpect = { alerts_inactive = [\"HighErrorRate\"] }\n\n[[phases]]\nname = \"after\"",
        ),
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("alerts_inactive"));
    let (child, addr) = start(&file, &[], None);
    let state = state_until(addr, None, |s| s["phase"]["name"] == "steady");
    assert!(state["next_alert"].is_null(), "{state}");
    let (status, _) = call(
        addr,
        "POST",
        "/api/control",
        None,
        r#"{"action": "fault_on", "fault": {"fault": "error", "ratio": 1.0}}"#,
    );
    assert_eq!(status, 200);
    let state = state_until(addr, None, |s| s["next_alert"]["alert"] == "HighErrorRate");
    let to = state["next_alert"]["to"].as_str();
    assert!(matches!(to, Some("pending" | "firing")), "{state}");
    assert!(
        state["next_alert"]["at_s"].as_f64() > state["changes"][0]["at_s"].as_f64(),
        "{state}"
    );
    let (status, _) = call(addr, "POST", "/api/control", None, r#"{"action": "stop"}"#);
    assert_eq!(status, 200);
    let status = wait(child, Instant::now() + Duration::from_secs(60)).expect("the run ends");
    assert_eq!(status.code(), Some(130));
}

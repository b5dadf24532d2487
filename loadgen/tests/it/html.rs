//! The HTML report of a real run, opened in headless Chromium (Debian's `chromium`; `scripts/test.sh`
//! installs it): the page loads with no console error, its script runs to the end, and its charts hold
//! the run's data points (a marker per second of the series, with the JSON report's values) and phase
//! names. A screenshot is kept in `.test-artifacts/report.png`. A report with long, near-alike alert
//! names is measured in Chromium's layout at 1280 px: every name whole, nothing wider than the window
//! (`.test-artifacts/alerts.png`).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{repo_dir, scenario_file};

const SCENARIO: &str = r#"
name = "html-check"
description = "Two phases, the second with errors on /."
seed = 3

[[mix]]
path = "/"
weight = 3
[[mix]]
path = "/health"
weight = 1

[[phases]]
name = "warm-up"
duration = "2s"
rate = { shape = "ramp", from = 20, to = 60 }

[[phases]]
name = "broken"
duration = "3s"
rate = { shape = "constant", rps = 60 }
chaos = [{ fault = "error", status = 503, ratio = 0.5, routes = ["/"] }]
expect = { error_ratio = "> 0.2" }
"#;

/// Runs headless Chromium on `page` with a fresh profile; `extra` adds e.g. `--dump-dom`.
fn chromium(page: &Path, profile: &Path, extra: &[&str]) -> Output {
    Command::new("chromium")
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
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("chromium on PATH (Debian package `chromium`; scripts/test.sh installs it)")
}

/// A screenshot of `page` at `size` ("WIDTH,HEIGHT"), kept as `.test-artifacts/NAME`; its bytes.
fn screenshot(page: &Path, profile: &Path, name: &str, size: &str) -> Vec<u8> {
    let artifacts = repo_dir().join(".test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join(name);
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        page,
        profile,
        &[
            &format!("--screenshot={}", shot.display()),
            &format!("--window-size={size}"),
            "--hide-scrollbars",
        ],
    );
    assert!(console_errors(&out).is_empty(), "{:?}", console_errors(&out));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    png
}

fn console_errors(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_html_report_opens_in_chromium_with_the_runs_data_points() {
    let file = scenario_file("html-check", SCENARIO);
    let dir = file.parent().unwrap().to_path_buf();
    let (json, html) = (dir.join("report.json"), dir.join("report.html"));
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", file.to_str().unwrap(), "--quiet"])
        .args(["--json", json.to_str().unwrap(), "--html", html.to_str().unwrap()])
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 200_000, "a five-second run's page is small: {size} bytes");

    // The detector works: a page with a script error is caught.
    let bad = dir.join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><script>noSuchFunction();</script></body></html>",
    )
    .unwrap();
    let out = chromium(&bad, &dir.join("profile-bad"), &["--dump-dom"]);
    assert!(
        !console_errors(&out).is_empty(),
        "a script error must show on stderr"
    );

    let out = chromium(&html, &dir.join("profile"), &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        console_errors(&out).is_empty(),
        "console errors: {:?}",
        console_errors(&out)
    );
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's script ran to its end"
    );
    for phase in ["warm-up", "broken"] {
        assert!(dom.contains(&format!("data-phase=\"{phase}\"")), "{phase}");
    }
    // One marker per second of the series, carrying the JSON report's value.
    let series = report["series"].as_array().unwrap();
    assert!(series.len() >= 5, "{}", series.len());
    let sent_markers = dom
        .split("data-series=\"sent\"")
        .filter_map(|part| part.split("</g>").next())
        .map(|g| g.matches("<circle").count())
        .max()
        .unwrap_or(0);
    assert_eq!(sent_markers, series.len());
    for p in series {
        let marker = format!(
            "<circle data-second=\"{}\" data-value=\"{}\"",
            p["second"], p["sent"]
        );
        assert!(dom.contains(&marker), "{marker}");
    }
    // The fault window and the errors of the second phase.
    assert!(dom.contains("class=\"fault\""));
    assert!(dom.contains("data-class=\"http_5xx\""));
    assert!(dom.contains("id=\"verdict\">PASS<"));
    assert!(dom.contains("error_ratio &gt; 0.2"));

    let png = screenshot(&html, &dir.join("profile-shot"), "report.png", "1100,1700");
    assert!(png.len() > 10_000, "{} bytes", png.len());
}

/// A script that measures the page as Chromium lays it out and writes what it found into
/// `data-layout` on `<body>`: how far the page is wider than the window, the alert names as drawn, the
/// names whose box leaves the chart, and the names whose box covers a bar of the timeline.
const MEASURE: &str = "<script>(function(){\
var d=document.documentElement,svg=document.getElementById('alerts-chart'),box=svg.getBoundingClientRect();\
var names=[].slice.call(svg.querySelectorAll('text[data-alert-name]'));\
var bars=[].slice.call(svg.querySelectorAll('rect[data-alert]')).map(function(r){return r.getBoundingClientRect();});\
var hit=function(a,b){return a.left<b.right&&b.left<a.right&&a.top<b.bottom&&b.top<a.bottom;};\
var r={overflow:Math.max(d.scrollWidth,document.body.scrollWidth)-window.innerWidth,\
names:names.map(function(t){return t.textContent;}),\
clipped:names.filter(function(t){var b=t.getBoundingClientRect();return b.left<box.left||b.right>box.right;}).length,\
covering:names.filter(function(t){var b=t.getBoundingClientRect();return bars.some(function(a){return hit(a,b);});}).length};\
document.body.setAttribute('data-layout',JSON.stringify(r));})();</script>";

/// The alert timeline of a report whose alerts differ only at the end of long names, and whose scope
/// note is one long line: every name is drawn whole (never cut to an ellipsis that makes two rows
/// alike), no name leaves the chart or covers a bar, and at 1280 px the page is no wider than the
/// window. Measured in Chromium's own layout; a screenshot is kept in `.test-artifacts/alerts.png`.
#[test]
fn alert_names_are_whole_and_nothing_overflows_at_1280_px() {
    let file = scenario_file(
        "html-alerts",
        "name = \"html-alerts\"\n[[mix]]\npath = \"/\"\n[[phases]]\nname = \"burn\"\nduration = \"1s\"\n\
         rate = { shape = \"constant\", rps = 20 }\n",
    );
    let dir = file.parent().unwrap().to_path_buf();
    let json = dir.join("alerts.json");
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ])
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names = [
        "SLOErrorBudgetBurnFast",
        "SLOErrorBudgetBurnSlow",
        "HighErrorRate",
        "AVeryLongAlertNameThatAUserMightWriteForTheirOwnServiceBurnRateFast",
        "AVeryLongAlertNameThatAUserMightWriteForTheirOwnServiceBurnRateSlow",
    ];
    let mut transitions = Vec::new();
    for (i, name) in names.iter().enumerate() {
        transitions.push(serde_json::json!({"at_s": 0.1 * i as f64, "alert": name, "to": "pending"}));
        transitions.push(serde_json::json!({"at_s": 0.5, "alert": name, "to": "firing"}));
    }
    let long_note = format!(
        "alerts count when job=\"target-app\" and instance=\"{}:8080\" (found among Prometheus' scrape \
         targets: the only one on port 8080){}",
        "a-rather-long-host-name.example.internal",
        "-".repeat(180)
    );
    report["alerts"] = serde_json::json!({
        "prometheus": "http://127.0.0.1:9090",
        "scope": {
            "source": "targets",
            "matchers": [format!("job=\"target-app\", instance=\"{}\"", "x".repeat(150))],
            "note": long_note,
        },
        "transitions": transitions,
        "known": [{"from_s": 0.0, "to_s": 1.0}],
        "checks": [],
        "failed_polls": 0,
    });
    let summary: loadgen::report::Summary = serde_json::from_value(report).expect("a report with alerts");
    let mut page = Vec::new();
    loadgen::report::html::write_html(&summary, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    let html = dir.join("alerts.html");
    std::fs::write(&html, &page).unwrap();
    let measured = dir.join("alerts-measured.html");
    std::fs::write(&measured, page.replace("</body>", &format!("{MEASURE}</body>"))).unwrap();

    let out = chromium(
        &measured,
        &dir.join("profile-alerts"),
        &["--dump-dom", "--window-size=1280,900"],
    );
    assert!(console_errors(&out).is_empty(), "{:?}", console_errors(&out));
    let dom = String::from_utf8_lossy(&out.stdout);
    let layout = dom
        .split("data-layout=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the measuring script ran: {dom}"))
        .replace("&quot;", "\"");
    let layout: Value = serde_json::from_str(&layout).unwrap();
    let mut drawn: Vec<&str> = layout["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    drawn.sort_unstable();
    let mut expected = names.to_vec();
    expected.sort_unstable();
    assert_eq!(drawn, expected, "every alert name drawn whole, once");
    assert_eq!(layout["clipped"], 0, "a name leaves the chart: {layout}");
    assert_eq!(layout["covering"], 0, "a name covers a bar: {layout}");
    assert!(
        layout["overflow"].as_f64().unwrap() <= 0.0,
        "the page is wider than 1280 px: {layout}"
    );

    screenshot(&html, &dir.join("profile-alerts-shot"), "alerts.png", "1280,2000");
}

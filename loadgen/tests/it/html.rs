//! The HTML report of a real run, opened in headless Chromium (Debian's `chromium`; `scripts/test.sh`
//! installs it): the page loads with no console error, its script runs to the end, and its charts hold
//! the run's data points (a marker per second of the series, with the JSON report's values) and phase
//! names. A screenshot is kept in `.test-artifacts/report.png`.

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

    let artifacts = repo_dir().join(".test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        &html,
        &dir.join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1700",
            "--hide-scrollbars",
        ],
    );
    assert!(console_errors(&out).is_empty(), "{:?}", console_errors(&out));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

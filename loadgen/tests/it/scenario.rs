//! Scenario files end to end: golden diagnostics for bad files, and every bundled scenario validates.
//!
//! Each `tests/fail/<case>.toml` has its full expected output in `<case>.stderr` beside it. After a
//! deliberate change to the messages, regenerate them with `BLESS=1 cargo test -p loadgen --test it`
//! and review the diff.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn bad_files_give_the_golden_diagnostics() {
    let dir = crate_dir().join("tests/fail");
    let bless = std::env::var_os("BLESS").is_some_and(|v| v != "0");
    let cases = toml_files(&dir);
    assert!(
        cases.len() >= 10,
        "expected at least 10 cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy();
        let shown = format!("tests/fail/{name}");
        let text = std::fs::read_to_string(case).unwrap();
        let rendered = match loadgen::scenario::parse(&text, &shown) {
            Ok(_) => format!("{shown} unexpectedly validated\n"),
            Err(diagnostics) => diagnostics.to_string(),
        };
        let golden = case.with_extension("stderr");
        if bless {
            std::fs::write(&golden, &rendered).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if rendered != want {
            failures.push(format!("--- {}\n{want}+++ got\n{rendered}", golden.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "diagnostics differ (BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_bundled_scenario_validates() {
    let dir = crate_dir().join("../scenarios");
    let files = toml_files(&dir);
    assert!(files.len() >= 2, "no scenarios in {}", dir.display());
    for file in files {
        if let Err(e) = loadgen::scenario::load(&file) {
            panic!("{e}");
        }
    }
}

#[test]
fn a_missing_file_is_reported() {
    let e = loadgen::scenario::load("no/such/file.toml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("error: cannot read `no/such/file.toml`"),
        "{e}"
    );
}

#[test]
fn the_schema_describes_every_field() {
    let schema = loadgen::scenario::json_schema();
    let text = serde_json::to_string(&schema).unwrap();
    for needle in [
        "\"phases\"",
        "\"mix\"",
        "\"shape\"",
        "\"fault\"",
        "\"alerts_firing\"",
        "\"additionalProperties\":false",
    ] {
        assert!(text.contains(needle), "schema lacks {needle}");
    }
}

#[test]
fn the_schema_has_no_null_and_requires_phases() {
    let schema = loadgen::scenario::json_schema();
    let text = serde_json::to_string(&schema).unwrap();
    assert!(!text.contains("\"null\""), "TOML has no null");
    assert_eq!(schema["required"], serde_json::json!(["phases"]));
    assert_eq!(
        schema["$defs"]["RawRequest"]["required"],
        serde_json::json!(["path"])
    );
    assert_eq!(schema["properties"]["defaults"]["$ref"], "#/$defs/RawDefaults");
}

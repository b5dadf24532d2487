//! The layout of both crates: imports between top-level modules flow one way (no two of them import
//! each other, directly or round a loop), and every top-level module says what it is for in a `//!`
//! paragraph. Read from the source: every `crate::NAME` on a line that is not a comment is an import of
//! the module `NAME`, tests included (a test that reaches up is a loop in the test build).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo_dir;

/// For each top-level module, the modules it names, each with the first file that does.
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::NAME`s a line of code names.
fn named(line: &str) -> Vec<&str> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + "crate::".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && end > 0 {
            names.push(&after[..end]);
        }
        rest = &after[end..];
    }
    names
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            for name in named(line) {
                if name != module {
                    edges.entry(name.to_owned()).or_insert_with(|| rel.to_owned());
                }
            }
        }
    }
    graph
}

/// A loop through `from`, as the modules on it, if there is one.
fn cycle_through(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_owned(), vec![from.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flat_map(|e| e.keys()) {
            if next == from {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

/// Every loop, described with the file that makes each step.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    let mut reported = BTreeSet::new();
    for module in graph.keys() {
        let Some(path) = cycle_through(graph, module) else {
            continue;
        };
        let members: BTreeSet<&String> = path.iter().collect();
        if !reported.insert(members.into_iter().cloned().collect::<Vec<_>>()) {
            continue;
        }
        let steps: Vec<String> = path
            .iter()
            .zip(path.iter().cycle().skip(1))
            .map(|(a, b)| format!("{a} → {b} ({})", graph[a][b].display()))
            .collect();
        found.push(steps.join(", "));
    }
    found
}

fn check_crate(name: &str) -> Vec<String> {
    let src = repo_dir().join(name).join("src");
    let graph = graph(&src);
    let mut problems: Vec<String> = cycles(&graph)
        .into_iter()
        .map(|c| format!("{name}: loop: {c}"))
        .collect();
    for module in graph.keys() {
        let file = [src.join(format!("{module}.rs")), src.join(module).join("mod.rs")]
            .into_iter()
            .find(|f| f.exists())
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!(
                "{name}: {} does not start with a `//!` paragraph",
                file.display()
            ));
        }
    }
    problems
}

#[test]
fn no_two_top_level_modules_import_each_other_round_a_loop() {
    let problems: Vec<String> = ["loadgen", "target-app"]
        .into_iter()
        .flat_map(check_crate)
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_loop_finder_finds_loops() {
    let edge = |to: &str| (to.to_owned(), PathBuf::from("f.rs"));
    let mut graph = Graph::new();
    graph.insert("a".into(), [edge("b")].into());
    graph.insert("b".into(), [edge("c")].into());
    graph.insert("c".into(), [edge("d")].into());
    assert!(cycles(&graph).is_empty());
    graph.insert("d".into(), [edge("b")].into());
    assert_eq!(cycles(&graph), ["b → c (f.rs), c → d (f.rs), d → b (f.rs)"]);
    assert_eq!(
        named("use crate::alerts::judge; // crate::report"),
        ["alerts", "report"]
    );
    assert!(named("    /// see crate::report").is_empty());
    assert!(named("let x = mycrate::report;").is_empty());
}

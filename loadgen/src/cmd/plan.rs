//! `loadgen plan FILE [--predict]`: the timeline and rate chart, nothing sent; with `--predict`, when
//! each alert would go pending, firing and resolved.

use std::io::Write;
use std::path::Path;

use crate::alerts::predict::{contradictions, predict, to_json, write_timeline};
use crate::cmd::exit::{EXIT_PASS, EXIT_RUN_ERROR};
use crate::cmd::predict::{load, margin_sets, routing_config, rules, warn, warn_fragile, PlanPredict};

/// `loadgen plan FILE [--predict ...]`: the plan, then the predicted alerts.
pub fn plan(file: &Path, args: &PlanPredict) -> u8 {
    let (s, text) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = crate::report::plan::write_plan(&s, &mut out) {
        eprintln!("loadgen: cannot write the plan: {e}");
        return EXIT_RUN_ERROR;
    }
    if !args.predict {
        return EXIT_PASS;
    }
    let rules = match rules(&args.options) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let prediction = match predict(&s, &rules, args.options.scrapes()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadgen: cannot predict alerts: {e}");
            return EXIT_RUN_ERROR;
        }
    };
    let _ = writeln!(out);
    let _ = write_timeline(&s, &prediction, &mut out);
    let sets = match margin_sets(&s, &rules, args.options.scrapes(), &prediction) {
        Ok(sets) => sets,
        Err(e) => {
            eprintln!("loadgen: cannot predict alerts: {e}");
            return EXIT_RUN_ERROR;
        }
    };
    if sets.first().is_some_and(|s| !s.margins.is_empty()) {
        let _ = writeln!(out);
        let _ = crate::alerts::predict::margin::write_table(&sets, &mut out);
    }
    if args.routes.routes {
        let config = match routing_config(&args.routes) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let routes = crate::alerts::routes::routes(&rules, &prediction, &config.inhibit, |labels| {
            crate::alerts::routes::receivers(&config.file, labels)
        });
        match routes {
            Ok(routes) => {
                let _ = crate::alerts::routes::write_routes(&config.name, &routes, &mut out);
            }
            Err(e) => {
                eprintln!("loadgen: {}: {e}", config.name);
                return crate::cmd::exit::EXIT_USAGE;
            }
        }
    }
    let _ = out.flush();
    warn_fragile(file, &sets);
    warn(&contradictions(
        &s,
        &prediction,
        &file.display().to_string(),
        &text,
    ));
    if let Some(path) = &args.json {
        let mut json = to_json(&s, &prediction);
        json["margins"] = serde_json::to_value(&sets).unwrap_or_default();
        let json = serde_json::to_string_pretty(&json).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            return EXIT_RUN_ERROR;
        }
    }
    EXIT_PASS
}

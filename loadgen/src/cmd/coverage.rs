//! `loadgen coverage`: every alerting rule against every scenario, and the rules no scenario makes fire.

use std::io::Write;

use crate::alerts::predict::{contradictions, coverage, mutants, predict, Prediction};
use crate::cmd::exit::{EXIT_FAIL, EXIT_PASS, EXIT_RUN_ERROR, EXIT_USAGE};
use crate::cmd::predict::{load, margin_sets, routing_config, rules, warn_fragile, CoverageArgs};

/// `loadgen coverage`.
pub fn coverage(args: &CoverageArgs) -> u8 {
    let rules = match rules(&args.options) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut loaded = Vec::new();
    let mut bad = false;
    for f in &args.files {
        match load(f) {
            Ok((s, text)) => loaded.push((f.clone(), s, text)),
            Err(_) => bad = true,
        }
    }
    if bad {
        return EXIT_USAGE;
    }
    // One promtool process per scenario, two at a time.
    let results: Vec<Result<Prediction, crate::alerts::predict::PredictError>> =
        std::thread::scope(|scope| {
            let mut results = Vec::new();
            for chunk in loaded.chunks(2) {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|(_, s, _)| scope.spawn(|| predict(s, &rules, args.options.scrapes())))
                    .collect();
                results.extend(handles.into_iter().map(|h| h.join().expect("prediction thread")));
            }
            results
        });
    let mut items = Vec::new();
    let mut margins = Vec::new();
    for ((f, s, text), result) in loaded.into_iter().zip(results) {
        let made = result.and_then(|p| {
            let sets = margin_sets(&s, &rules, args.options.scrapes(), &p)?;
            Ok((p, sets))
        });
        match made {
            Ok((p, sets)) => {
                let file = f.display().to_string();
                let c = contradictions(&s, &p, &file, &text);
                margins.push((f.clone(), sets));
                items.push((s, file, p, c));
            }
            Err(e) => {
                eprintln!("loadgen: {}: cannot predict alerts: {e}", f.display());
                return EXIT_RUN_ERROR;
            }
        }
    }
    let matrix = coverage::build(&rules.alerts, &items);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "rules: {}; scrape and evaluation every {}",
        rules.origin,
        target_app::duration::format(args.options.interval)
    );
    let _ = coverage::write_text(&matrix, &mut out);
    let fragile: usize = margins
        .iter()
        .map(|(_, sets)| sets.iter().map(|s| s.fragile().count()).sum::<usize>())
        .sum();
    let smallest = margins
        .iter()
        .flat_map(|(f, sets)| {
            sets.iter().flat_map(move |set| {
                set.margins
                    .iter()
                    .filter(|m| m.holds)
                    .filter_map(move |m| Some((m.seconds?, set.interval_s, f, m)))
            })
        })
        .min_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((room, interval, f, m)) = smallest {
        let _ = writeln!(
            out,
            "smallest margin: {room}s at {interval}s intervals ({}: phase {} expects {} {}); {fragile} fragile",
            f.display(),
            m.phase,
            m.alert,
            m.expect
        );
    }
    let mut routes_json = None;
    if args.routes.routes {
        let config = match routing_config(&args.routes) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let mut rows = Vec::new();
        for (s, _, p, _) in &items {
            match crate::alerts::routes::routes(&rules, p, &config.inhibit, |labels| {
                crate::alerts::routes::receivers(&config.file, labels)
            }) {
                Ok(routes) => rows.push((s.name.clone(), routes)),
                Err(e) => {
                    eprintln!("loadgen: {}: {e}", config.name);
                    return EXIT_USAGE;
                }
            }
        }
        let _ = crate::alerts::routes::write_matrix(&config.name, &config.receivers, &rows, &mut out);
        routes_json = Some(serde_json::json!({
            "config": config.name,
            "receivers": config.receivers,
            "scenarios": rows
                .iter()
                .map(|(name, routes)| serde_json::json!({ "scenario": name, "routes": routes }))
                .collect::<Vec<_>>(),
        }));
    }
    let _ = out.flush();
    for (f, sets) in &margins {
        warn_fragile(f, sets);
    }
    let report = if args.mutants {
        let scenarios: Vec<(String, crate::scenario::Scenario)> = items
            .iter()
            .map(|(s, file, _, _)| (file.clone(), s.clone()))
            .collect();
        let started = std::time::Instant::now();
        match mutants::run(
            &rules,
            mutants::generate(&rules),
            &scenarios,
            args.options.scrapes(),
        )
        .and_then(|mut report| {
            if args.near_misses {
                mutants::search_near_misses(&rules, &mut report, &scenarios, args.options.scrapes())?;
            }
            Ok(report)
        }) {
            Ok(report) => {
                let _ = writeln!(out);
                let _ = mutants::write_text(&report, &mut out);
                let _ = writeln!(
                    out,
                    "\n{} mutants against {} scenarios in {:.1}s",
                    report.total,
                    scenarios.len(),
                    started.elapsed().as_secs_f64()
                );
                Some(report)
            }
            Err(e) => {
                eprintln!("loadgen: cannot evaluate the mutants: {e}");
                return EXIT_RUN_ERROR;
            }
        }
    } else {
        None
    };
    let _ = out.flush();
    if let Some(path) = &args.json {
        let mut json = serde_json::to_value(&matrix).unwrap_or_default();
        json["margins"] = serde_json::Value::Array(
            margins
                .iter()
                .map(|(f, sets)| serde_json::json!({ "file": f.display().to_string(), "sets": sets }))
                .collect(),
        );
        if let Some(report) = &report {
            json["mutants"] = serde_json::to_value(report).unwrap_or_default();
        }
        if let Some(routes) = routes_json.take() {
            json["routes"] = routes;
        }
        let json = serde_json::to_string_pretty(&json).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            return EXIT_RUN_ERROR;
        }
    }
    let below = match (args.min_score, &report) {
        (Some(min), Some(r)) if r.score < min => {
            eprintln!(
                "loadgen: mutation score {:.3} is below --min-score {min}",
                r.score
            );
            true
        }
        _ => false,
    };
    if (args.strict && (!matrix.strict_ok() || fragile > 0)) || below {
        EXIT_FAIL
    } else {
        EXIT_PASS
    }
}

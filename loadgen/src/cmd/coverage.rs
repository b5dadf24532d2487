//! `loadgen coverage`: every alerting rule against every scenario, and the rules no scenario makes fire.

use std::io::Write;

use crate::alerts::predict::{contradictions, coverage, predict, Prediction};
use crate::cmd::exit::{EXIT_FAIL, EXIT_PASS, EXIT_RUN_ERROR, EXIT_USAGE};
use crate::cmd::predict::{load, rules, CoverageArgs};

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
    for ((f, s, text), result) in loaded.into_iter().zip(results) {
        match result {
            Ok(p) => {
                let file = f.display().to_string();
                let c = contradictions(&s, &p, &file, &text);
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
    let _ = out.flush();
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&matrix).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            return EXIT_RUN_ERROR;
        }
    }
    if args.strict && !matrix.strict_ok() {
        EXIT_FAIL
    } else {
        EXIT_PASS
    }
}

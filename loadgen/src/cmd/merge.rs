//! `loadgen merge`: shard reports combined into one summary, JSON and HTML report.

use std::io::Write;

use crate::cmd::cli::MergeArgs;
use crate::cmd::exit::{EXIT_RUN_ERROR, EXIT_USAGE};
use crate::cmd::run::write_reports;
use crate::report;

/// `loadgen merge`.
pub fn merge(args: &MergeArgs) -> u8 {
    let mut reports = Vec::with_capacity(args.files.len());
    for path in &args.files {
        match crate::report::merge::read(path) {
            Ok(r) => reports.push((path.clone(), r)),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let merged = match crate::report::merge::merge(&reports) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return EXIT_USAGE;
        }
    };
    for w in &merged.warnings {
        eprintln!("loadgen: {w}");
    }
    let summary = merged.summary;
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        let _ = report::write_text(&summary, &mut out);
        let _ = out.flush();
    }
    if let Err(e) = write_reports(&summary, args.json.as_deref(), args.html.as_deref()) {
        eprintln!("loadgen: {e}");
        return EXIT_RUN_ERROR;
    }
    crate::cmd::exit::of_verdict(summary.result)
}

//! The commands that predict: `plan --predict`, the warnings of `validate`, and `coverage`. Each
//! returns an exit code; printing happens here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::alerts::predict::{
    contradictions, coverage, predict, to_json, write_timeline, Contradiction, Prediction, Rules,
};
use crate::cmd::run::{EXIT_FAIL, EXIT_PASS, EXIT_RUN_ERROR, EXIT_USAGE};
use crate::scenario::{self, Scenario};

/// Options shared by the predicting commands.
#[derive(Debug, Clone, Args)]
pub struct PredictOptions {
    /// Rule files (or directories of `*.yml`) to predict with, instead of the stack's; repeat the
    /// option or separate them with commas.
    #[arg(long, value_name = "FILES", value_delimiter = ',')]
    pub rules: Vec<PathBuf>,

    /// Scrape and evaluation interval to predict for: the stack's 5s, or 1s as loadgen's private
    /// Prometheus uses.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,

    /// When the first scrape happens, from the scenario's start: 0s for a Prometheus already running
    /// (the stack's), 5s for loadgen's private one, which starts with the run.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = target_app::duration::parse)]
    pub first_scrape: Duration,
}

impl PredictOptions {
    fn scrapes(&self) -> crate::alerts::predict::Scrapes {
        crate::alerts::predict::Scrapes {
            interval: self.interval,
            first: self.first_scrape,
        }
    }
}

/// Options of `loadgen plan` that concern predictions.
#[derive(Debug, Clone, Args)]
pub struct PlanPredict {
    /// Also predict when each alerting rule goes pending, firing and resolved (needs `promtool`).
    #[arg(long)]
    pub predict: bool,

    #[command(flatten)]
    pub options: PredictOptions,

    /// Write the prediction as JSON here.
    #[arg(long, value_name = "FILE", requires = "predict")]
    pub json: Option<PathBuf>,
}

/// Options of `loadgen coverage`.
#[derive(Debug, Clone, Args)]
pub struct CoverageArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub options: PredictOptions,

    /// Write the matrix as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Exit 1 when a rule is uncovered or a prediction contradicts an expectation.
    #[arg(long)]
    pub strict: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match target_app::duration::parse(text) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err("must be at least 100ms".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn rules(options: &PredictOptions) -> Result<Rules, u8> {
    if options.rules.is_empty() {
        return Ok(Rules::stack());
    }
    Rules::load(&options.rules).map_err(|e| {
        eprintln!("loadgen: --rules: {e}");
        EXIT_USAGE
    })
}

/// Loads a scenario and its text (for positions), or prints its diagnostics.
fn load(path: &Path) -> Result<(Scenario, String), u8> {
    let s = scenario::load(path).map_err(|d| {
        eprint!("{d}");
        EXIT_USAGE
    })?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok((s, text))
}

/// Prints each contradiction as a warning at its position.
pub fn warn(list: &[Contradiction]) {
    for c in list {
        eprintln!(
            "warning: phase `{}` expects {} {}, but the prediction disagrees\n --> {}\n  = {}",
            c.phase, c.alert, c.expect, c.at, c.predicted
        );
    }
}

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
    let _ = out.flush();
    warn(&contradictions(
        &s,
        &prediction,
        &file.display().to_string(),
        &text,
    ));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&to_json(&s, &prediction)).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            return EXIT_RUN_ERROR;
        }
    }
    EXIT_PASS
}

/// The warnings `validate` adds for a valid scenario that expects alerts: predicted with the stack's
/// rules at the stack's interval. Silent when there is nothing to check; a note when promtool is
/// missing.
pub fn validate_warnings(file: &Path, s: &Scenario) {
    if !s.phases.iter().any(|p| p.expect.has_alerts()) {
        return;
    }
    if !crate::alerts::predict::promtool::installed() {
        eprintln!(
            "{}: alert predictions skipped: no `promtool` on the PATH",
            file.display()
        );
        return;
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    match predict(s, &Rules::stack(), crate::alerts::predict::Scrapes::STACK) {
        Ok(p) => warn(&contradictions(s, &p, &file.display().to_string(), &text)),
        Err(e) => eprintln!("{}: alert predictions skipped: {e}", file.display()),
    }
}

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

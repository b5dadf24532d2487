//! The commands that predict: `plan --predict`, the warnings of `validate`, and `coverage`. Each
//! returns an exit code; printing happens here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::alerts::predict::margin::{self, MarginSet};
use crate::alerts::predict::{contradictions, predict, Contradiction, Rules};
use crate::cmd::exit::EXIT_USAGE;
use crate::scenario::Scenario;

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
    pub(crate) fn scrapes(&self) -> crate::alerts::predict::Scrapes {
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

    #[command(flatten)]
    pub routes: RoutesArgs,
}

/// Offline routing of the predicted alerts.
#[derive(Debug, Clone, Args)]
pub struct RoutesArgs {
    /// Also show which receiver each predicted alert would reach and which would be inhibited
    /// (`amtool config routes test` and the inhibit rules, on the predicted firing times).
    #[arg(long)]
    pub routes: bool,

    /// The Alertmanager configuration to route with, instead of the stack's.
    #[arg(long, value_name = "FILE", requires = "routes")]
    pub alertmanager_config: Option<PathBuf>,
}

/// An Alertmanager configuration ready for `amtool config routes test`.
pub(crate) struct RoutingConfig {
    /// The file amtool reads.
    pub file: PathBuf,
    /// What to call it in the output.
    pub name: String,
    pub inhibit: Vec<crate::alerts::routes::Inhibit>,
    /// Its receivers, in file order.
    pub receivers: Vec<String>,
    /// A directory of our own to remove afterwards (the stack's configuration written out).
    own_dir: Option<PathBuf>,
}

impl Drop for RoutingConfig {
    fn drop(&mut self) {
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The configuration of `args` (the stack's by default), read and checked; a problem is told and
/// is a usage error.
pub(crate) fn routing_config(args: &RoutesArgs) -> Result<RoutingConfig, u8> {
    use crate::alerts::alertmanager::{STACK_CONFIG, STACK_TEMPLATE};
    let (file, name, text, own_dir) = match &args.alertmanager_config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (path.clone(), path.display().to_string(), text, None),
            Err(e) => {
                eprintln!("loadgen: --alertmanager-config {}: {e}", path.display());
                return Err(EXIT_USAGE);
            }
        },
        None => {
            let dir = std::env::temp_dir().join(format!("loadgen-routes-{}", std::process::id()));
            let written = std::fs::create_dir_all(dir.join("templates"))
                .and_then(|()| std::fs::write(dir.join("templates/slack.tmpl"), STACK_TEMPLATE))
                .and_then(|()| std::fs::write(dir.join("alertmanager.yml"), STACK_CONFIG));
            if let Err(e) = written {
                eprintln!(
                    "loadgen: cannot write the stack's Alertmanager configuration to {}: {e}",
                    dir.display()
                );
                return Err(crate::cmd::exit::EXIT_RUN_ERROR);
            }
            (
                dir.join("alertmanager.yml"),
                "stack/alertmanager/alertmanager.yml".to_owned(),
                STACK_CONFIG.to_owned(),
                Some(dir),
            )
        }
    };
    let inhibit = match crate::alerts::routes::inhibit_rules(&text) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("loadgen: {name}: {e}");
            return Err(EXIT_USAGE);
        }
    };
    let receivers = serde_norway::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|doc| {
            doc.get("receivers")?.as_array().map(|list| {
                list.iter()
                    .filter_map(|r| r.get("name")?.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default();
    Ok(RoutingConfig {
        file,
        name,
        inhibit,
        receivers,
        own_dir,
    })
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

    /// Exit 1 when a rule is uncovered, a prediction contradicts an expectation, or an expectation
    /// holds by less than the prediction's known error (fragile).
    #[arg(long)]
    pub strict: bool,

    /// Also change every alerting rule in documented ways (mutants) and score the scenarios by how
    /// many of the changes some expectation notices.
    #[arg(long)]
    pub mutants: bool,

    /// With `--mutants`: for each surviving mutant, search the smallest change to one phase of a
    /// scenario that checks its alert (rate, failing faults' ratio or duration, x1/3 to x3) that
    /// would kill it while the scenario still holds, or say why none does. Slower: many
    /// predictions per scenario.
    #[arg(long, requires = "mutants")]
    pub near_misses: bool,

    /// With `--mutants`: exit 1 when the share of mutants killed is below this (0 to 1).
    #[arg(long, value_name = "SCORE", requires = "mutants", value_parser = parse_score)]
    pub min_score: Option<f64>,

    #[command(flatten)]
    pub routes: RoutesArgs,
}

fn parse_score(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a score between 0 and 1")),
    }
}

/// The margins of `s` under the stack's and the private Prometheus' intervals (and under `scrapes`,
/// first, when it is neither), reusing `prediction`, made for `scrapes`.
pub(crate) fn margin_sets(
    s: &Scenario,
    rules: &Rules,
    scrapes: crate::alerts::predict::Scrapes,
    prediction: &crate::alerts::predict::Prediction,
) -> Result<Vec<MarginSet>, crate::alerts::predict::PredictError> {
    use crate::alerts::predict::Scrapes;
    let mut wanted = vec![Scrapes::STACK, Scrapes::PRIVATE];
    if !wanted.contains(&scrapes) {
        wanted.insert(0, scrapes);
    }
    let mut sets = Vec::new();
    for w in wanted {
        let margins = if w == scrapes {
            margin::margins(s, prediction)
        } else {
            margin::margins(s, &predict(s, rules, w)?)
        };
        sets.push(MarginSet {
            interval_s: w.interval.as_secs_f64(),
            margins,
        });
    }
    Ok(sets)
}

/// Prints a warning for each fragile expectation.
pub fn warn_fragile(file: &Path, sets: &[MarginSet]) {
    for set in sets {
        for m in set.fragile() {
            eprintln!(
                "warning: {}: phase `{}` expects {} {} with a margin of {}s at {}s intervals, under the \
                 prediction's known error ({}s): a run may land either way",
                file.display(),
                m.phase,
                m.alert,
                m.expect,
                m.seconds.unwrap_or(0.0),
                set.interval_s,
                margin::threshold(set.interval_s)
            );
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match target_app::duration::parse(text) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err("must be at least 100ms".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn rules(options: &PredictOptions) -> Result<Rules, u8> {
    if options.rules.is_empty() {
        return Ok(Rules::stack());
    }
    Rules::load(&options.rules).map_err(|e| {
        eprintln!("loadgen: --rules: {e}");
        EXIT_USAGE
    })
}

/// Loads a scenario and its text (for positions), or prints its diagnostics.
pub(crate) fn load(path: &Path) -> Result<(Scenario, String), u8> {
    let s = crate::cmd::load(path)?;
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

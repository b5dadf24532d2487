//! Prediction beside observation in a live run: before Prometheus and the load start, the run predicts
//! the scenario for the Prometheus it will ask (loadgen's private one, or the stack's); the live panel
//! shows the next predicted changes, and once the alerts have been checked each check gets the
//! predicted times of the same expectation and the drift between the two.

use std::path::Path;
use std::sync::Arc;

use super::{predict, PredictError, Prediction, Rules, Scrapes};
use crate::alerts::{AlertReport, Predicted};
use crate::scenario::Scenario;
use crate::shared::Transition;

/// Predicts `scenario` with the rules in `rules_dir` (the stack's without it), for loadgen's private
/// Prometheus when `private`, else for the stack's. A prediction that cannot be made is told on
/// stderr.
pub async fn start(
    scenario: Arc<Scenario>,
    rules_dir: Option<&Path>,
    private: bool,
) -> Result<Prediction, PredictError> {
    let rules_dir = rules_dir.map(Path::to_owned);
    let result = tokio::task::spawn_blocking(move || {
        let rules = match rules_dir {
            Some(dir) => Rules::load(&[dir])?,
            None => Rules::stack(),
        };
        let scrapes = if private { Scrapes::PRIVATE } else { Scrapes::STACK };
        predict(&scenario, &rules, scrapes)
    })
    .await
    .unwrap_or_else(|e| Err(PredictError::Spawn(std::io::Error::other(e))));
    if let Err(e) = &result {
        eprintln!("loadgen: alert predictions skipped: {e}");
    }
    result
}

/// The predicted transitions, for the live panel (none without a prediction).
pub fn transitions(prediction: &Option<Result<Prediction, PredictError>>) -> Vec<Transition> {
    match prediction {
        Some(Ok(p)) => p.transitions.clone(),
        _ => Vec::new(),
    }
}

/// Adds the predicted times to every check of `report`.
pub fn annotate(report: &mut AlertReport, scenario: &Scenario, prediction: Prediction) {
    let predicted = super::check(scenario, &prediction);
    let margins = super::margin::margins(scenario, &prediction);
    for c in &mut report.checks {
        let Some(p) = predicted
            .iter()
            .find(|p| p.phase == c.phase && p.alert == c.alert && p.expect == c.expect)
        else {
            continue;
        };
        let drift = |observed: Option<f64>, predicted: Option<f64>| {
            Some(((observed? - predicted?) * 10.0).round() / 10.0)
        };
        let margin = margins
            .iter()
            .find(|m| m.phase == c.phase && m.alert == c.alert && m.expect == c.expect);
        c.predicted = Some(Predicted {
            margin_s: margin.and_then(|m| m.seconds),
            fragile: margin.is_some_and(|m| m.fragile(prediction.interval_s)),
            pending_after_s: p.pending_after_s,
            firing_after_s: p.firing_after_s,
            resolved_after_s: p.resolved_after_s,
            drift_s: match c.expect {
                "firing" => drift(c.firing_after_s, p.firing_after_s),
                "resolved" => drift(c.resolved_after_s, p.resolved_after_s),
                _ => None,
            },
        });
    }
}

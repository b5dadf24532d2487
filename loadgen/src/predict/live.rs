//! Prediction beside observation in a live run: the run starts a prediction for the Prometheus it
//! asks (loadgen's private one, or the stack's) as it starts; the live panel shows the next predicted
//! changes once it is known, and once the alerts have been checked each check gets the predicted times
//! of the same expectation and the drift between the two.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use super::{predict, PredictError, Prediction, Rules, Scrapes};
use crate::alerts::{AlertReport, Predicted, Transition};
use crate::scenario::Scenario;

/// Starts predicting `scenario` in the background, with the rules in `rules_dir` (the stack's
/// without it), for loadgen's private Prometheus when `private`, else for the stack's.
pub fn start(
    scenario: Arc<Scenario>,
    rules_dir: Option<&Path>,
    private: bool,
) -> JoinHandle<Result<Prediction, PredictError>> {
    let rules_dir = rules_dir.map(Path::to_owned);
    tokio::task::spawn_blocking(move || {
        let rules = match rules_dir {
            Some(dir) => Rules::load(&[dir])?,
            None => Rules::stack(),
        };
        let scrapes = if private { Scrapes::PRIVATE } else { Scrapes::STACK };
        predict(&scenario, &rules, scrapes)
    })
}

/// Waits for the prediction, puts its transitions where the live panel reads them, and returns it.
pub fn share(
    handle: JoinHandle<Result<Prediction, PredictError>>,
    panel: Arc<Mutex<Vec<Transition>>>,
) -> JoinHandle<Result<Prediction, PredictError>> {
    tokio::spawn(async move {
        let result = handle
            .await
            .unwrap_or_else(|e| Err(PredictError::Spawn(std::io::Error::other(e))));
        if let Ok(p) = &result {
            *panel.lock().unwrap_or_else(|e| e.into_inner()) = p.transitions.clone();
        }
        result
    })
}

/// Adds the predicted times to every check of `report`; a prediction that could not be made is
/// told on stderr and leaves the report as it was.
pub fn annotate(report: &mut AlertReport, scenario: &Scenario, prediction: Result<Prediction, PredictError>) {
    let prediction = match prediction {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadgen: alert predictions skipped: {e}");
            return;
        }
    };
    let predicted = super::check(scenario, &prediction);
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
        c.predicted = Some(Predicted {
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

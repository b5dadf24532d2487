//! Alert states as Prometheus reports them, and the changes the watcher keeps: read by the judge,
//! the prediction, delivery, the reports and the live displays.

use serde::{Deserialize, Serialize};

/// State of an alert as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Inactive,
    Pending,
    Firing,
}

impl State {
    /// As Prometheus spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

/// The alerts pending or firing at the watcher's last answered poll (the most severe state per name,
/// by name), for the live displays; `None` until the first answer, and when alerts are not checked.
pub type Active = Option<Vec<(String, State)>>;

/// One change of an alert's state, at `at_s` seconds from the run's start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transition {
    pub at_s: f64,
    pub alert: String,
    pub to: State,
}

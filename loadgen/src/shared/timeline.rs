//! When phases ran and when faults were in force: what the engine hands back and the alert judge,
//! delivery and reports read.

use std::time::Duration;

/// When phases ran and when faults were in force, relative to the run's start.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Start and end of each phase that ran.
    pub phases: Vec<(Duration, Duration)>,
    /// Phase index, start and end of each window in which faults were applied.
    pub faults: Vec<(usize, Duration, Duration)>,
    /// The fault kinds in force in each window of `faults` (same order), when known.
    pub fault_kinds: Vec<Vec<String>>,
    /// Changes made live, in order.
    pub changes: Vec<crate::shared::control::Change>,
    /// Start and end of each piece the phases ran as (a phase is cut into pieces by live changes).
    pub pieces: Vec<(Duration, Duration)>,
}

impl Timeline {
    /// How long phase `index` ran, or zero if it did not.
    pub fn elapsed(&self, index: usize) -> Duration {
        self.phases
            .get(index)
            .map_or(Duration::ZERO, |(start, end)| *end - *start)
    }
}

//! The three verdicts every expectation ends with, and the verdict of a whole run.
//!
//! A PASS needs observations that cover what it claims; a FAIL needs observations that contradict it;
//! everything in between is NOT VERIFIED, with the reason. SKIPPED is only ever asked for
//! (`--no-alerts`, `--no-notifications`): a check skipped by request is listed, and does not stand in
//! the way of a PASS.

use serde::{Deserialize, Serialize};

/// How one expectation, or a whole run, ended. Ordered from best to worst, so the verdict of several
/// is the worst of them ([`Verdict::of_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Observed to hold.
    Pass,
    /// Not checked, because the user asked so.
    Skipped,
    /// Neither shown to hold nor shown to fail: what would decide it was not observed.
    NotVerified,
    /// Observed not to hold.
    Fail,
}

impl Verdict {
    /// As the text reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Skipped => "SKIPPED",
            Verdict::NotVerified => "NOT VERIFIED",
            Verdict::Fail => "FAIL",
        }
    }

    /// PASS or FAIL from a condition that was observed.
    pub fn holds(held: bool) -> Verdict {
        if held {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// The verdict of a whole: FAIL if any failed, else NOT VERIFIED if any was not verified, else
    /// PASS (checks skipped by request count for nothing).
    pub fn of_all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        match verdicts.into_iter().max() {
            None | Some(Verdict::Pass | Verdict::Skipped) => Verdict::Pass,
            Some(worst) => worst,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::{self, *};

    #[test]
    fn the_worst_verdict_decides_and_skipped_by_request_counts_for_nothing() {
        assert_eq!(Verdict::of_all([]), Pass);
        assert_eq!(Verdict::of_all([Pass, Skipped]), Pass);
        assert_eq!(Verdict::of_all([Skipped]), Pass);
        assert_eq!(Verdict::of_all([Pass, NotVerified, Skipped]), NotVerified);
        assert_eq!(Verdict::of_all([NotVerified, Fail, Pass]), Fail);
    }
}

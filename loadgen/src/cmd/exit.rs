//! The exit codes of every subcommand, in one place (documented in the README).

/// Every expectation was observed to hold (checks skipped by request aside).
pub const EXIT_PASS: u8 = 0;
/// An expectation was observed to fail.
pub const EXIT_FAIL: u8 = 1;
/// Bad scenario file or bad usage.
pub const EXIT_USAGE: u8 = 2;
/// The run could not be carried out.
pub const EXIT_RUN_ERROR: u8 = 3;
/// No expectation failed, but at least one could not be verified (NOT VERIFIED: Prometheus
/// unreachable or not installed, no request completed in the phase, ...).
pub const EXIT_NOT_VERIFIED: u8 = 4;
/// Stopped by SIGINT or SIGTERM (after writing what it had).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit code of a verdict.
pub fn of_verdict(verdict: crate::shared::Verdict) -> u8 {
    use crate::shared::Verdict;
    match verdict {
        Verdict::Pass | Verdict::Skipped => EXIT_PASS,
        Verdict::NotVerified => EXIT_NOT_VERIFIED,
        Verdict::Fail => EXIT_FAIL,
    }
}

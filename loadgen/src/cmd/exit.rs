//! The exit codes of every subcommand, in one place (documented in the README).

/// Every expectation held.
pub const EXIT_PASS: u8 = 0;
/// An expectation failed.
pub const EXIT_FAIL: u8 = 1;
/// Bad scenario file or bad usage.
pub const EXIT_USAGE: u8 = 2;
/// The run could not be carried out.
pub const EXIT_RUN_ERROR: u8 = 3;
/// Stopped by SIGINT or SIGTERM (after writing what it had).
pub const EXIT_INTERRUPTED: u8 = 130;

//! The subcommands, from parsed arguments to an exit code: the command line ([`cli`]), `run` ([`run`]),
//! and `plan`, `coverage` and `validate`'s warnings ([`predict`]). Printing to the terminal and
//! choosing exit codes happen here and nowhere below.

pub mod cli;
pub mod predict;
pub mod run;

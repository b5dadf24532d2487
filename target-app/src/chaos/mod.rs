//! Fault injection: the request format ([`spec`]), reading it from JSON with every bad field named
//! ([`json`]), and the live state that applies it ([`state`]).
//!
//! Faults are shared state read on every request and changed only by the admin API; which request
//! gets a fault is a pure function of (seed, fault, route, request number), so a run replays exactly.

pub mod json;
pub mod spec;
pub mod state;

pub use spec::{ChaosSpec, Fault, FieldError, FAULT_KINDS};
pub use state::{Chaos, Decision, FaultGauge, Terminal};

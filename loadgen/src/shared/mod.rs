//! Data that several wings share, so that none of them has to import another for its types: how a
//! request ended ([`outcome`]), alert states ([`alert`]), when phases and faults ran ([`timeline`]),
//! the one view of a run in progress ([`snapshot`]) and the verdicts ([`verdict`]). Types only: nothing here sends, polls,
//! records or prints, and nothing here imports another wing.

pub mod alert;
pub mod control;
pub mod outcome;
pub mod snapshot;
pub mod timeline;
pub mod verdict;

pub use alert::{Active, State, Transition};
pub use snapshot::{Live, LivePhase, Position, Snapshot};
pub use timeline::Timeline;
pub use verdict::Verdict;

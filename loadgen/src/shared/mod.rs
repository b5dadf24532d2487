//! Data that several wings share: how a request ended ([`outcome`]) and the one view of a run in
//! progress ([`snapshot`]). Types only: nothing here sends, polls, records or prints.

pub mod outcome;
pub mod snapshot;

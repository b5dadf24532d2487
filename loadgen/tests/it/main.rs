//! The integration tests of `loadgen`, in one binary so the build links once.

mod alerts;
mod children;
mod control;
mod fuzz;
mod hostile;
mod html;
mod keys;
mod layout;
mod live;
mod metrics;
mod notify;
mod peers;
mod plan;
mod predict;
mod queries;
mod routing;
mod run;
mod scenario;
mod scope;
mod shard;
mod stack;
mod support;
mod verdicts;

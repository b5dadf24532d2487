//! The integration tests of `loadgen`, in one binary so the build links once.

mod run;
mod scenario;

//! `loadgen`: reads a scenario, paces requests against a target by an arrival-rate shape, injects faults
//! through the target's chaos API, and checks that the expected signals and alerts show up.
//!
//! # Layout
//!
//! One folder per wing; each says in its module doc what enters and what leaves. Imports flow one way
//! (a test reads the `crate::` paths and fails on a cycle between top-level modules).
//!
//! - [`scenario`]: scenario files → the validated model: raw TOML mirror, positioned diagnostics,
//!   expectation conditions and the JSON schema.
//! - [`schedule`]: when each request is due (rate curves and their inverse, even and Poisson
//!   arrivals), which request of the mix it sends, and sharding.
//! - [`engine`], [`client`]: the traffic. The engine runs the phases (pacing, in-flight bound, faults
//!   applied and cleared) and its recorder keeps the statistics; the client sends a request (HTTP/1.1,
//!   HTTP/2, TLS) and classifies what came back, and speaks to the chaos API.
//! - [`alerts`]: the evidence about alerts: the private Prometheus and Alertmanager, the poller, the
//!   run's scope, the webhook receiver, delivery, the prediction (promtool), and the judge.
//! - [`report`]: the summary (text and JSON), the HTML report, merging shard reports, the live panel
//!   and the generator's own `/metrics`.
//! - [`control`]: live control over HTTP (`--control`): the JSON API and the console page.
//! - [`cmd`]: one file per subcommand, and the exit codes.
//! - [`shared`]: data types several wings share.
//! - [`http_server`]: the small HTTP/1.1 server behind `/metrics` and the webhook receiver.

pub mod alerts;
pub mod client;
pub mod cmd;
pub mod control;
pub mod engine;
pub mod http_server;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod shared;

pub use cmd::run::run;

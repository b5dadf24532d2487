//! `loadgen`: reads a scenario, paces requests against a target by an arrival-rate shape, injects faults
//! through the target's chaos API, and checks that the expected signals and alerts show up.
//!
//! # Layout
//! - [`scenario`]: scenario files: raw TOML mirror, validation with positioned diagnostics, the checked
//!   model, expectation conditions and the JSON schema.
//! - [`schedule`]: when each request is due (rate curves and their inverse, even and Poisson
//!   arrivals), which request of the mix it sends, and sharding.
//! - [`plan`]: the timeline and rate chart printed by `loadgen plan`.
//! - [`predict`]: alert predictions without a server (`plan --predict`, `coverage`, `validate`'s
//!   warnings): modelled series evaluated by promtool on the real rule files.
//! - [`engine`]: runs the phases: pacing, in-flight bound, faults applied and cleared.
//! - [`client`], [`outcome`]: sending a request and classifying what came back.
//! - [`stats`]: the one recorder of results (HDR histograms, per-second series).
//! - [`snapshot`]: the one view of a run in progress, published by the recorder and read by the live
//!   displays and the alert watcher.
//! - [`report`], [`progress`]: the summary (text and JSON) and the live panel or progress line.
//! - [`exporter`]: the generator's own `/metrics` while it runs.
//! - [`html`]: the self-contained HTML report.
//! - [`merge`], [`histograms`]: combining shard reports, from the HDR histograms the JSON report carries.
//! - [`scope`]: which alerts count for a run (`--alert-match`, or the target's job and instance).
//! - [`alerts`], [`prometheus`]: alert expectations checked against a real Prometheus.
//! - [`notify`], [`alertmanager`]: the webhook receiver that times Alertmanager's notifications, and
//!   the private Alertmanager that sends them; [`delivery`]: each expected alert's hops to the
//!   notification.
//! - [`target`], [`chaos_client`]: the embedded target and the chaos API client.
//! - [`cli`], [`run`](mod@run): the command line and one invocation from arguments to exit code;
//!   [`run::RunPlan`] is a run's checked options and [`run()`] carries one out.

pub mod alertmanager;
pub mod alerts;
pub mod chaos_client;
pub mod cli;
pub mod client;
pub mod delivery;
pub mod engine;
pub mod exporter;
pub mod histograms;
pub mod html;
pub mod http_server;
pub mod merge;
pub mod notify;
pub mod outcome;
pub mod plan;
pub mod predict;
pub mod progress;
pub mod prometheus;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod scope;
pub mod snapshot;
pub mod stats;
pub mod target;

pub use run::run;

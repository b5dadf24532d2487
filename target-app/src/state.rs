//! The shared state of one service instance ([`App`]): its configuration, telemetry, chaos state,
//! downstream client and concurrency limit, built once and read by every request. It holds state only;
//! what a request does with it is decided in [`crate::app`] and [`crate::handlers`].

use std::sync::Arc;

use opentelemetry_sdk::propagation::TraceContextPropagator;
use tokio::sync::Semaphore;

use crate::chaos::Chaos;
use crate::config::Config;
use crate::downstream::Downstream;
use crate::error::ServeError;
use crate::telemetry::Telemetry;

/// Shared state of one service instance.
pub struct App {
    pub config: Config,
    pub telemetry: Telemetry,
    pub chaos: Chaos,
    pub downstream: Downstream,
    pub propagator: TraceContextPropagator,
    pub(crate) limit: Arc<Semaphore>,
}

impl App {
    /// Builds the instance's telemetry, chaos state and downstream client; a bad downstream URL or
    /// telemetry setting is an error here, before anything is served.
    pub fn new(config: Config) -> Result<Self, ServeError> {
        let downstream = Downstream::new(&config)?;
        let telemetry = Telemetry::new(&config)?;
        let chaos = Chaos::new(telemetry.metrics.clone());
        Ok(App {
            downstream,
            limit: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            propagator: TraceContextPropagator::new(),
            config,
            telemetry,
            chaos,
        })
    }
}

//! Continuous CPU profiles pushed to Pyroscope, on only when a server address is configured.
//!
//! The profiler samples the whole process, so it is started once per process (not per service
//! instance) and tagged with the service and role of the process's main service.

use std::time::Duration;

use pyroscope::backend::{pprof_backend, BackendConfig, PprofConfig};
use pyroscope::pyroscope::{PyroscopeAgent, PyroscopeAgentBuilder, PyroscopeAgentRunning};

/// A running profiler; call [`Profiler::stop`] to push the last profile and stop.
pub struct Profiler {
    agent: PyroscopeAgent<PyroscopeAgentRunning>,
}

/// Samples per second.
const SAMPLE_RATE: u32 = 100;

/// Starts pushing CPU profiles of this process to `server` every `interval`.
pub fn start(
    server: &str,
    service: &str,
    role: &str,
    interval: Duration,
) -> Result<Profiler, pyroscope::PyroscopeError> {
    let agent = PyroscopeAgentBuilder::new(
        server,
        service,
        SAMPLE_RATE,
        "pyroscope-rs",
        env!("CARGO_PKG_VERSION"),
        pprof_backend(
            PprofConfig {
                sample_rate: SAMPLE_RATE,
            },
            BackendConfig::default(),
        ),
    )
    .tags(vec![("service", service), ("role", role)])
    .upload_interval(interval)
    .build()?
    .start()?;
    Ok(Profiler { agent })
}

impl Profiler {
    /// Stops sampling and pushes what was collected since the last push. Blocks.
    pub fn stop(self) {
        match self.agent.stop() {
            Ok(ready) => ready.shutdown(),
            Err(e) => tracing::warn!(error = %e, "profiler did not stop cleanly"),
        }
    }
}

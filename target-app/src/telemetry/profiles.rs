//! Continuous CPU profiles pushed to Pyroscope, on only when a server address is configured, and span
//! profiles: CPU samples of a request's work labelled with its root span's id.
//!
//! The profiler samples the whole process, so one process starts it once (the standalone binary does,
//! for its one service). Span profiles follow the convention of Grafana's `otel-profiling-go` and the
//! Pyroscope agents: the local root span carries `pyroscope.profile.id` = its span id, and samples taken
//! while its work runs carry the pprof labels `span_id` (the same id) and `span_name`. They are pprof
//! sample labels inside the one profile pushed per interval, not labels of a new series.
//!
//! Labels are pyroscope's thread tags, keyed by OS thread, and every tag change makes the crate's pprof
//! backend dump and re-symbolise what it has sampled so far (`Pprof::add_tag` calls `dump_report`). So
//! only work that owns a thread for its whole duration is tagged (`/generate-load`'s blocking task);
//! async request futures, which share worker threads and take microseconds, are not: tagging each poll
//! would cost more than the request and would mislabel other requests polled on the same thread.

use std::time::Duration;

use pyroscope::backend::{pprof_backend, BackendConfig, PprofConfig, Tag};
use pyroscope::pyroscope::{PyroscopeAgent, PyroscopeAgentBuilder, PyroscopeAgentRunning};

/// pprof label carrying the root span's id, as Pyroscope's span-profile index expects.
pub const SPAN_ID_LABEL: &str = "span_id";
/// pprof label carrying the root span's name.
pub const SPAN_NAME_LABEL: &str = "span_name";
/// Span attribute that tells Grafana a root span has a profile.
pub const PROFILE_ID_ATTRIBUTE: &str = "pyroscope.profile.id";

/// A running profiler; call [`Profiler::stop`] to push the last profile and stop.
pub struct Profiler {
    agent: PyroscopeAgent<PyroscopeAgentRunning>,
}

/// The profile id of a root span: its span id in hex, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileId {
    pub span_id: String,
    pub span_name: String,
}

/// A span id as the 16 lower-case hex digits the profile id is written in.
pub fn hex_id(id: opentelemetry::trace::SpanId) -> String {
    let mut out = String::with_capacity(16);
    super::logs::push_hex(&mut out, &id.to_bytes());
    out
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

/// Labels of the calling thread's samples; removed when dropped, on the same thread.
pub struct ThreadTags {
    profiler: std::sync::Arc<Profiler>,
    thread: pyroscope::ThreadId,
    tags: [Tag; 2],
}

impl Profiler {
    /// Labels the samples of the calling thread with `id` until the returned value is dropped.
    pub fn tag_thread(self: &std::sync::Arc<Self>, id: &ProfileId) -> ThreadTags {
        let thread = pyroscope::ThreadId::pthread_self();
        let tags = [
            Tag::new(SPAN_ID_LABEL.to_owned(), id.span_id.clone()),
            Tag::new(SPAN_NAME_LABEL.to_owned(), id.span_name.clone()),
        ];
        for tag in &tags {
            if let Err(e) = self.agent.add_thread_tag(thread.clone(), tag.clone()) {
                tracing::debug!(error = %e, "cannot tag profile samples");
            }
        }
        ThreadTags {
            profiler: self.clone(),
            thread,
            tags,
        }
    }

    /// Stops sampling and pushes what was collected since the last push. Blocks.
    pub fn stop(self) {
        match self.agent.stop() {
            Ok(ready) => ready.shutdown(),
            Err(e) => tracing::warn!(error = %e, "profiler did not stop cleanly"),
        }
    }
}

impl Drop for ThreadTags {
    fn drop(&mut self) {
        for tag in &self.tags {
            let _ = self
                .profiler
                .agent
                .remove_thread_tag(self.thread.clone(), tag.clone());
        }
    }
}

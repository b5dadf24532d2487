//! Chaos API requests as target-app reads them: any body is a spec within its bounds or a list of
//! named problems, never a panic; a spec that was read can be applied and cleared.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use target_app::chaos::{Chaos, FaultGauge};

struct NoGauge;

impl FaultGauge for NoGauge {
    fn fault_active(&self, _: &'static str, _: bool) {}
}

fuzz_target!(|data: &[u8]| {
    match target_app::chaos::json::read(data) {
        Ok(spec) => {
            // Effects that run on their own (CPU burn, memory growth, outages) are left out: a fuzz
            // run applies thousands of specs a second.
            let mut spec = spec;
            spec.faults
                .retain(|f| !matches!(f.kind(), "cpu" | "memory" | "outage"));
            let chaos = Chaos::new(Arc::new(NoGauge));
            chaos.apply(spec).expect("a spec that was read is valid");
            let _ = chaos.decide(target_app::route::Route::Index);
            chaos.clear();
        }
        Err(problems) => assert!(!problems.is_empty(), "an error names at least one problem"),
    }
});

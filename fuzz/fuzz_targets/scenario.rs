//! Scenario files: any text is a scenario or diagnostics with positions, never a panic; a scenario
//! that validates has a duration and a plan that can be drawn.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match loadgen::scenario::parse(&text, "fuzz.toml") {
        Ok(scenario) => {
            let _ = scenario.duration();
            let _ = loadgen::schedule::check_size(&scenario);
            // Drawing a plan counts every Poisson arrival: kept to small schedules, for speed.
            let expected: f64 = scenario
                .phases
                .iter()
                .filter_map(loadgen::schedule::expected_requests)
                .sum();
            if expected <= 1e5 {
                let mut out = Vec::new();
                let _ = loadgen::report::plan::write_plan(&scenario, &mut out);
            }
        }
        Err(diagnostics) => {
            let _ = diagnostics.to_string();
        }
    }
});

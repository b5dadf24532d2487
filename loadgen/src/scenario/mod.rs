//! Scenario files: parsing, validation with positioned diagnostics, and the JSON schema for editors.
//!
//! A file goes through two layers: [`raw`] mirrors the TOML (serde, unknown keys refused), and
//! `validate` turns it into the [`model`], whose types cannot hold a bad value. Every problem is
//! collected and reported at once, each with file, line and column ([`Diagnostics`]). This module does
//! not pace, send or measure anything; `docs/scenario-reference.md` is the user guide.
//!
//! - [`raw`]: the file as written; its doc comments are the field reference and the schema.
//! - [`model`]: the checked scenario the planner and engine use.
//! - [`condition`]: expectation conditions (`p95 < 300ms`).
//! - `document`, `validate`, `load`, `request`, `expect`: from text to model.
//! - [`diag`]: diagnostics and their rendering.

pub mod condition;
pub mod diag;
mod document;
mod env;
mod expect;
mod load;
pub mod model;
pub mod raw;
mod request;
mod validate;

use std::path::Path;

pub use condition::{Condition, ConditionError, Kind, Metric, Op};
pub use diag::{Diagnostic, Diagnostics};
pub use model::{
    Arrivals, Defaults, Expectations, Load, Mix, NotNotified, Notified, Phase, Rate, Request, Rps, Scenario,
    Step,
};

/// Parses and checks a scenario; `file` names it in diagnostics (and, without a `name` key, names the
/// scenario after the file's stem).
pub fn parse(text: &str, file: &str) -> Result<Scenario, Diagnostics> {
    parse_with_env(text, file, &env::process)
}

/// [`parse`], with `${NAME}` references resolved by `env` instead of the process environment.
pub fn parse_with_env(text: &str, file: &str, env: env::Lookup<'_>) -> Result<Scenario, Diagnostics> {
    let fail = |items| Diagnostics::new(file, text, items);
    let doc = document::Document::parse(text).map_err(|d| fail(vec![d]))?;
    let out = document::deserialize::<raw::RawScenario>(&doc);
    let Some(raw) = out.value else {
        return Err(fail(out.errors));
    };
    let mut ctx = validate::Ctx {
        doc: &doc,
        source: text,
        removed: &out.removed,
        errors: out.errors,
        env,
    };
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario");
    match validate::scenario(raw, &mut ctx, stem) {
        Some(scenario) => Ok(scenario),
        None => Err(fail(ctx.errors)),
    }
}

/// Reads and parses the scenario at `path`; an unreadable file is reported like any other problem.
pub fn load(path: impl AsRef<Path>) -> Result<Scenario, Diagnostics> {
    let path = path.as_ref();
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file),
        Err(e) => Err(Diagnostics::new(
            file.clone(),
            "",
            vec![Diagnostic::new(format!("cannot read `{file}`: {e}"), None)],
        )),
    }
}

/// The JSON schema of scenario files, for editors (e.g. with taplo's `#:schema` directive).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(raw::RawScenario);
    let mut value = serde_json::to_value(schema).unwrap_or_default();
    strip_null(&mut value);
    value
}

/// TOML has no null: an optional key is simply left out, so `null` alternatives are removed.
fn strip_null(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            if let Some(Value::Array(any_of)) = map.get_mut("anyOf") {
                any_of.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if any_of.len() == 1 {
                    if let Some(Value::Object(only)) = any_of.pop() {
                        map.remove("anyOf");
                        map.extend(only);
                    }
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// A duration as a user might write one: 0, 1, u64::MAX, hundreds of digits, each unit.
    fn extreme_duration() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            Just("0".to_owned()),
            Just("1".to_owned()),
            Just(u64::MAX.to_string()),
            Just("31536000".to_owned()),
            Just("31536001".to_owned()),
            Just("-1".to_owned()),
            "[0-9]{20,300}",
            any::<u64>().prop_map(|n| n.to_string()),
        ];
        let unit = prop::sample::select(vec!["ms", "s", "m", "h", "", "d"]);
        let ordinary =
            prop::sample::select(vec!["1ms", "90s", "1h", "2190h", "8760h"]).prop_map(str::to_owned);
        prop_oneof![
            4 => ordinary,
            1 => (number, unit).prop_map(|(n, u)| format!("{n}{u}")),
        ]
    }

    fn extreme_integer() -> impl Strategy<Value = i64> {
        let extreme = prop_oneof![
            Just(0),
            Just(-1),
            Just(1_000_001),
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>(),
        ];
        prop_oneof![3 => Just(1), 3 => Just(1_000_000), 1 => extreme]
    }

    /// A rate as TOML: NaN, infinities, negatives, huge, and ordinary ones.
    fn extreme_rate() -> impl Strategy<Value = String> {
        let extreme = prop::sample::select(vec![
            "nan",
            "inf",
            "-inf",
            "-1.0",
            "0",
            "1e308",
            "10000000",
            "10000000.5",
            "0.5",
        ]);
        prop_oneof![6 => Just("10"), 1 => extreme].prop_map(str::to_owned)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Extreme values in every duration, count, rate and size: never a panic; a scenario that
        /// validates is within the maxima, and each refusal is placed. (The plan of a scenario at the
        /// maxima is drawn in `report::plan`'s tests, and by the `scenario` fuzz target.)
        #[test]
        fn extreme_values_are_refused_or_within_the_maxima(
            durations in prop::collection::vec(extreme_duration(), 6),
            integers in prop::collection::vec(extreme_integer(), 3),
            rates in prop::collection::vec(extreme_rate(), 2),
            body_len in prop_oneof![Just(0usize), Just(1), Just(10_000)],
            latency in prop_oneof![4 => Just("1ms".to_owned()), 1 => "[0-9]{1,300}s"],
        ) {
            let text = format!(
                "[defaults]\ntimeout = \"{}\"\nmax_in_flight = {}\n\
                 [[mix]]\npath = \"/\"\nweight = {}\nbody = \"{}\"\n\
                 [[phases]]\nduration = \"{}\"\nrate = {{ shape = \"constant\", rps = {} }}\n\
                 [[phases]]\nrate = {{ shape = \"steps\", steps = [{{ rps = {}, duration = \"{}\" }}, {{ rps = 1, duration = \"{}\" }}] }}\n\
                 [[phases]]\nduration = \"{}\"\nconcurrency = {}\nexpect = {{ p95 = \"< {latency}\", notify_within = \"{}\", alerts_notified = [\"A\"] }}\n",
                durations[0], integers[0], integers[1], "x".repeat(body_len), durations[1], rates[0],
                rates[1], durations[2], durations[3], durations[4], integers[2], durations[5],
            );
            match parse(&text, "p.toml") {
                Ok(s) => {
                    let max = target_app::duration::MAX;
                    prop_assert!(s.duration() <= max, "{text}");
                    prop_assert!(s.defaults.timeout <= max);
                    prop_assert!(s.phases.iter().all(|p| !p.duration.is_zero() && p.duration <= max));
                }
                Err(d) => {
                    prop_assert!(!d.is_empty());
                    prop_assert!(d.items().iter().all(|item| item.span.is_some()), "{d}");
                }
            }
        }
    }

    #[test]
    fn a_full_file_becomes_the_model() {
        let text = r#"
            description = "all the parts"
            seed = 9
            [defaults]
            timeout = "2s"
            max_in_flight = 50
            headers = { "user-agent" = "loadgen", "x-team" = "sre" }
            [[mix]]
            path = "/error"
            query = { type = "500", n = 2 }
            headers = { "x-team" = "obs" }
            weight = 3
            [[mix]]
            name = "buy"
            method = "post"
            path = "/checkout"
            body = { items = [{ sku = "A1", qty = 2 }] }
            [[phases]]
            duration = "1m30s"
            rate = { shape = "sine", mean = 10, amplitude = 10, period = "30s" }
            arrivals = "poisson"
            chaos = [{ fault = "latency", delay = "800ms", routes = ["/checkout"] }]
            [phases.expect]
            p95 = "> 800ms"
            error_ratio = "< 1%"
            checks = ["rps >= 9", "p(99) < 2s"]
            alerts_firing = ["HighLatency"]
            [[phases]]
            name = "closed"
            duration = "10s"
            concurrency = 4
            mix = [{ path = "/slow", query = "ms=5" }]
        "#;
        let s = parse(text, "dir/full.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.name.as_str(), s.seed), ("full", 9));
        assert_eq!(s.defaults.timeout, Duration::from_secs(2));
        assert_eq!(s.defaults.max_in_flight.get(), 50);
        let [error, buy] = s.mix.as_ref().unwrap().requests() else {
            panic!("two requests")
        };
        assert_eq!(
            (error.name.as_str(), error.path_and_query.as_str()),
            ("GET /error", "/error?n=2&type=500")
        );
        assert_eq!(error.headers["x-team"], "obs", "a request's headers win");
        assert_eq!(error.headers["user-agent"], "loadgen");
        assert_eq!((buy.method.as_str(), buy.weight.get()), ("POST", 1));
        assert_eq!(buy.headers["content-type"], "application/json");
        assert_eq!(
            buy.body.as_deref(),
            Some(&br#"{"items":[{"qty":2,"sku":"A1"}]}"#[..])
        );

        let p = &s.phases[0];
        assert_eq!(
            (p.name.as_str(), p.duration, p.own_mix),
            ("phase-1", Duration::from_secs(90), false)
        );
        assert!(matches!(
            p.load,
            Load::Open {
                rate: Rate::Sine { .. },
                arrivals: Arrivals::Poisson
            }
        ));
        assert_eq!(p.chaos[0].kind(), "latency");
        let conditions: Vec<String> = p.expect.conditions.iter().map(ToString::to_string).collect();
        assert_eq!(
            conditions,
            ["error_ratio < 0.01", "p95 > 800ms", "rps >= 9", "p99 < 2s"]
        );
        assert_eq!(p.expect.alerts_firing, ["HighLatency"]);

        let closed = &s.phases[1];
        assert!(closed.own_mix);
        assert_eq!(closed.mix.requests()[0].path_and_query.as_str(), "/slow?ms=5");
        assert!(matches!(closed.load, Load::Closed { concurrency } if concurrency.get() == 4));
        assert_eq!(s.duration(), Duration::from_secs(100));
        assert_eq!(s.phase_start(1), Duration::from_secs(90));
    }

    #[test]
    fn sums_of_durations_saturate_in_a_scenario_built_by_hand() {
        let text = "[[mix]]\npath = \"/\"\n[[phases]]\nduration = \"1s\"\nconcurrency = 1\n";
        let mut s = parse(text, "s.toml").unwrap_or_else(|e| panic!("{e}"));
        s.phases[0].duration = Duration::MAX;
        s.phases.push(s.phases[0].clone());
        assert_eq!(s.duration(), Duration::MAX);
        assert_eq!(s.phase_start(2), Duration::MAX);
        assert_eq!(s.phase_start(9), Duration::MAX);
    }

    #[test]
    fn a_body_past_the_maximum_is_refused_at_its_position() {
        let body = "x".repeat((64 << 20) + 1);
        let text = format!(
            "[[mix]]\npath = \"/\"\nbody = \"{body}\"\n[[phases]]\nduration = \"1s\"\nconcurrency = 1\n"
        );
        let e = parse(&text, "s.toml").unwrap_err();
        let [d] = e.items() else { panic!("{e}") };
        assert_eq!(d.message, format!("the body is too large: {} bytes", body.len()));
        assert_eq!(e.line_col(d.span.clone().unwrap().start), (3, 8));
    }
}

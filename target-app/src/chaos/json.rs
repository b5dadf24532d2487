//! A chaos request read from JSON, with every bad field named at once.
//!
//! serde stops at the first problem and, inside an internally tagged enum like [`Fault`], cannot say which
//! field it was. So a request that does not deserialize whole is read again field by field: each field of
//! each fault is tried alone on a complete fault of its kind, and each one that fails is named by its path
//! (`faults[0].rps`). The well-typed fields then get the range checks of [`Fault::validate`], so a wrong
//! type and a bad value in one request are reported together. This module only reads and checks; applying
//! a request is [`super::state`]'s.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::spec::{ChaosSpec, Fault, FieldError, FAULT_KINDS};

/// Reads a chaos request: the spec when every field is well typed and in range, or every problem found.
pub fn read(body: &[u8]) -> Result<ChaosSpec, Vec<FieldError>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| vec![problem("body", e.to_string())])?;
    // serde would also read a struct from a list (`[7, []]`): only an object is a request.
    let Value::Object(top) = &value else {
        return Err(vec![problem(
            "body",
            format!(
                "must be a JSON object like {{\"seed\":1,\"faults\":[...]}}, got {}",
                kind_of(&value)
            ),
        )]);
    };
    if let Ok(spec) = ChaosSpec::deserialize(&value) {
        let errors = spec.validate();
        return if errors.is_empty() { Ok(spec) } else { Err(errors) };
    }
    let mut errors = Vec::new();
    for (key, v) in top {
        match key.as_str() {
            "seed" if u64::deserialize(v).is_err() => errors.push(problem(
                "seed",
                format!("must be a whole number from 0 to {}, got {v}", u64::MAX),
            )),
            "seed" => {}
            "faults" => match v {
                Value::Array(faults) => {
                    for (i, fault) in faults.iter().enumerate() {
                        fault_problems(fault, &format!("faults[{i}]"), &mut errors);
                    }
                }
                other => errors.push(problem(
                    "faults",
                    format!("must be a list of faults, got {}", kind_of(other)),
                )),
            },
            other => errors.push(problem(other, "unknown field; expected `seed` or `faults`")),
        }
    }
    if errors.is_empty() {
        // Every part passed on its own: say what serde said of the whole.
        let whole = ChaosSpec::deserialize(&value)
            .err()
            .map_or_else(String::new, |e| reword(&e));
        errors.push(problem("body", whole));
    }
    Err(errors)
}

/// Adds the problems of the fault `value` at `path` to `errors`.
fn fault_problems(value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Value::Object(fields) = value else {
        errors.push(problem(
            path,
            format!(
                "must be an object like {{\"fault\":\"error\",\"ratio\":0.3}}, got {}",
                kind_of(value)
            ),
        ));
        return;
    };
    let kind = match fields.get("fault") {
        Some(Value::String(kind)) if FAULT_KINDS.contains(&kind.as_str()) => kind.as_str(),
        found => {
            let found = found.map_or_else(|| "nothing".to_owned(), ToString::to_string);
            errors.push(problem(
                &format!("{path}.fault"),
                format!("must be one of {}, got {found}", FAULT_KINDS.join(", ")),
            ));
            return;
        }
    };
    if let Ok(fault) = Fault::deserialize(value) {
        errors.extend(fault.validate(path));
        return;
    }
    let complete = complete_fault(kind);
    // The request's well-typed fields on a complete fault, for the range checks; and its fields alone,
    // the ill-typed ones stood in for, to find the required fields it left out.
    let mut patched = complete.clone();
    let mut given = Map::new();
    given.insert("fault".to_owned(), json!(kind));
    for (key, v) in fields.iter().filter(|(key, _)| *key != "fault") {
        let mut probe = complete.clone();
        probe.insert(key.clone(), v.clone());
        match Fault::deserialize(&Value::Object(probe)) {
            Ok(_) => {
                patched.insert(key.clone(), v.clone());
                given.insert(key.clone(), v.clone());
            }
            Err(e) => {
                errors.push(problem(&format!("{path}.{key}"), reword(&e)));
                if let Some(stand_in) = complete.get(key) {
                    given.insert(key.clone(), stand_in.clone());
                }
            }
        }
    }
    if let Err(e) = Fault::deserialize(&Value::Object(given)) {
        errors.push(problem(path, reword(&e)));
    }
    // The stand-in values pass every check, so what is found here is the request's.
    if let Ok(fault) = Fault::deserialize(&Value::Object(patched)) {
        errors.extend(fault.validate(path));
    }
}

/// A fault of `kind` with every required field, each value within its range.
fn complete_fault(kind: &str) -> Map<String, Value> {
    let value = match kind {
        "latency" => json!({ "fault": kind, "delay": "1ms" }),
        "memory" => json!({ "fault": kind, "mb_per_second": 1, "limit_mb": 1 }),
        "outage" => json!({ "fault": kind, "duration": "1s" }),
        "rate_limit" => json!({ "fault": kind, "rps": 1 }),
        _ => json!({ "fault": kind }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn problem(field: &str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// serde's message, with Rust type names said in words.
fn reword(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let words = [
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number from 0 to 4294967295"),
        (
            "expected u64",
            "expected a whole number from 0 to 18446744073709551615",
        ),
        ("expected f64", "expected a number"),
    ];
    words
        .iter()
        .find(|(rust, _)| text.ends_with(rust))
        .map_or(text.clone(), |(rust, said)| text.replace(rust, said))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// JSON values at the edges: 0, 1, -1, the integer extremes, huge and tiny floats, durations past the
    /// maximum, a huge string, and every other type.
    fn extreme_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!(0)),
            Just(json!(1)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(u32::MAX)),
            Just(json!(f64::MAX)),
            Just(json!(-f64::MAX)),
            Just(json!(0.5)),
            Just(json!(1.0000001)),
            Just(json!(null)),
            Just(json!(true)),
            Just(json!("18446744073709551615s")),
            Just(json!("8760h")),
            Just(json!("1ms")),
            Just(json!("/")),
            Just(json!("x".repeat(10_000))),
            Just(json!([])),
            Just(json!(["/checkout", 7])),
            Just(json!({})),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
        ]
    }

    const KEYS: &[&str] = &[
        "status",
        "ratio",
        "routes",
        "delay",
        "jitter",
        "hold",
        "threads",
        "utilization",
        "mb_per_second",
        "limit_mb",
        "duration",
        "rps",
        "burst",
        "zzz",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn reading_never_panics_and_names_the_fields_it_refuses(
            kind in prop::sample::select(FAULT_KINDS),
            fields in prop::collection::btree_map(prop::sample::select(KEYS), extreme_value(), 0..4),
            seed in extreme_value(),
        ) {
            let mut fault = Map::new();
            fault.insert("fault".to_owned(), json!(kind));
            for (key, value) in &fields {
                fault.insert((*key).to_owned(), value.clone());
            }
            let body = json!({ "seed": seed, "faults": [fault] }).to_string();
            match read(body.as_bytes()) {
                Ok(spec) => {
                    prop_assert!(spec.validate().is_empty());
                    prop_assert_eq!(spec.faults.len(), 1);
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for e in &errors {
                        prop_assert!(
                            e.field == "seed" || e.field.starts_with("faults[0]"),
                            "{} named for {}", e.field, body
                        );
                    }
                }
            }
        }
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        match read(body.as_bytes()) {
            Ok(spec) => panic!("{body} was accepted: {spec:?}"),
            Err(errors) => errors.into_iter().map(|e| (e.field, e.problem)).collect(),
        }
    }

    fn names(body: &str) -> Vec<String> {
        fields(body).into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn a_wrong_type_and_a_bad_value_are_named_together() {
        let found = fields(r#"{"faults":[{"fault":"rate_limit","rps":-1,"burst":0}]}"#);
        let named: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(named, ["faults[0].rps", "faults[0].burst"]);
        assert!(
            found[0].1.contains("-1") && found[0].1.contains("a whole number"),
            "{found:?}"
        );
        assert!(found[1].1.contains("got 0"), "{found:?}");
    }

    #[test]
    fn every_bad_field_of_every_fault_is_named() {
        let body = r#"{"seed":"x","faults":[
            {"fault":"error","status":"500","ratio":2,"routes":"/"},
            {"fault":"latency","delay":5,"jitter":"fast","ratoi":1},
            {"fault":"memory","limit_mb":true},
            {"fault":"gremlins"},
            {"ratio":0.5},
            7
        ],"extra":1}"#;
        assert_eq!(
            names(body),
            [
                "extra",
                "faults[0].routes",
                "faults[0].status",
                "faults[0].ratio",
                "faults[1].delay",
                "faults[1].jitter",
                "faults[1].ratoi",
                "faults[2].limit_mb",
                "faults[2]",
                "faults[3].fault",
                "faults[4].fault",
                "faults[5]",
                "seed",
            ]
        );
        let found = fields(body);
        let problem = |field: &str| found.iter().find(|(f, _)| f == field).unwrap().1.clone();
        assert!(
            problem("faults[2]").contains("missing field `mb_per_second`"),
            "{found:?}"
        );
        assert!(problem("faults[3].fault").contains("gremlins"), "{found:?}");
        assert!(problem("faults[1].jitter").contains("fast"), "{found:?}");
    }

    #[test]
    fn the_shape_of_the_request_is_named_when_it_is_wrong() {
        assert_eq!(names(r#"{"faults":{"fault":"error"}}"#), ["faults"]);
        assert_eq!(names("[]"), ["body"]);
        assert_eq!(names("not json"), ["body"]);
        assert_eq!(names(r#"{"seed":-1,"faults":[]}"#), ["seed"]);
    }

    #[test]
    fn a_good_request_is_read_and_range_checks_still_apply() {
        let spec = read(br#"{"seed":3,"faults":[{"fault":"rate_limit","rps":5}]}"#).unwrap();
        assert_eq!((spec.seed, spec.faults.len()), (3, 1));
        assert_eq!(
            names(r#"{"faults":[{"fault":"outage","duration":"1s"},{"fault":"outage","duration":"1s"}]}"#),
            ["faults"]
        );
    }
}

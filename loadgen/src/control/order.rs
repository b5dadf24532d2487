//! The body of `POST /api/control`, checked into a [`Command`] like a scenario value: every problem names
//! the field at fault, and nothing is applied unless the whole order is good.
//!
//! ```json
//! {"action": "rate", "rps": 1500}            {"action": "rate", "factor": 2}
//! {"action": "pause"}  {"action": "resume"}  {"action": "end_phase"}  {"action": "stop"}
//! {"action": "extend", "by": "30s"}
//! {"action": "fault_on", "fault": {"fault": "error", "status": 500, "ratio": 0.3, "routes": ["/"]}}
//! {"action": "fault_off", "kind": "error"}
//! ```

use serde_json::{Map, Value};
use target_app::chaos::Fault;

use crate::shared::control::{Command, RateSet, Refusal, ACTIONS};

fn refuse(field: &str, problem: impl Into<String>) -> Refusal {
    Refusal {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// Parses and checks one order.
pub fn parse(body: &[u8]) -> Result<Command, Refusal> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| refuse("body", format!("not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(refuse(
            "body",
            "expected a JSON object such as {\"action\": \"pause\"}",
        ));
    };
    let action = match map.get("action") {
        Some(Value::String(a)) => a.as_str(),
        Some(other) => return Err(refuse("action", format!("expected a string, got {other}"))),
        None => {
            return Err(refuse(
                "action",
                format!("missing; one of {}", ACTIONS.join(", ")),
            ))
        }
    };
    let command = match action {
        "rate" => {
            only(&map, &["rps", "factor"])?;
            match (map.get("rps"), map.get("factor")) {
                (Some(r), None) => Command::Rate {
                    set: RateSet::Rps(number(r, "rps")?),
                },
                (None, Some(f)) => Command::Rate {
                    set: RateSet::Factor(number(f, "factor")?),
                },
                (Some(_), Some(_)) => return Err(refuse("factor", "give `rps` or `factor`, not both")),
                (None, None) => {
                    return Err(refuse(
                        "rps",
                        "missing: give `rps` (requests per second) or `factor` (times the scenario's curve)",
                    ))
                }
            }
        }
        "pause" | "resume" | "end_phase" | "stop" => {
            only(&map, &[])?;
            match action {
                "pause" => Command::Pause,
                "resume" => Command::Resume,
                "end_phase" => Command::EndPhase,
                _ => Command::Stop,
            }
        }
        "extend" => {
            only(&map, &["by"])?;
            let by = match map.get("by") {
                Some(Value::String(text)) => target_app::duration::parse(text)
                    .map_err(|e| refuse("by", format!("{e}; e.g. \"30s\"")))?,
                Some(other) => {
                    return Err(refuse(
                        "by",
                        format!("expected a duration such as \"30s\", got {other}"),
                    ))
                }
                None => return Err(refuse("by", "missing: how much longer, e.g. \"30s\"")),
            };
            Command::Extend { by }
        }
        "fault_on" => {
            only(&map, &["fault"])?;
            let Some(fault) = map.get("fault") else {
                return Err(refuse(
                    "fault",
                    "missing: the fault as the chaos API takes it, e.g. {\"fault\": \"error\", \"ratio\": 0.3}",
                ));
            };
            let fault: Fault =
                serde_json::from_value(fault.clone()).map_err(|e| refuse("fault", e.to_string()))?;
            Command::FaultOn { fault }
        }
        "fault_off" => {
            only(&map, &["kind"])?;
            match map.get("kind") {
                Some(Value::String(kind)) => Command::FaultOff { kind: kind.clone() },
                Some(other) => return Err(refuse("kind", format!("expected a fault kind, got {other}"))),
                None => {
                    return Err(refuse(
                        "kind",
                        "missing: the kind of fault to switch off, e.g. \"error\"",
                    ))
                }
            }
        }
        other => {
            return Err(refuse(
                "action",
                format!("unknown action `{other}`; one of {}", ACTIONS.join(", ")),
            ))
        }
    };
    command.validate()?;
    Ok(command)
}

/// Refuses keys other than `action` and `allowed`.
fn only(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), Refusal> {
    match map
        .keys()
        .find(|k| *k != "action" && !allowed.contains(&k.as_str()))
    {
        Some(key) => Err(refuse(
            key,
            if allowed.is_empty() {
                "unknown field: this action takes none".to_owned()
            } else {
                format!("unknown field; this action takes {}", allowed.join(", "))
            },
        )),
        None => Ok(()),
    }
}

fn number(v: &Value, field: &str) -> Result<f64, Refusal> {
    v.as_f64()
        .ok_or_else(|| refuse(field, format!("expected a number, got {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(r) => r.field,
            Ok(c) => panic!("{body} was accepted as {c:?}"),
        }
    }

    #[test]
    fn good_orders_parse() {
        let ok = |b: &str| parse(b.as_bytes()).unwrap_or_else(|r| panic!("{b}: {r}"));
        assert_eq!(
            ok(r#"{"action": "rate", "rps": 1500}"#),
            Command::Rate {
                set: RateSet::Rps(1500.0)
            }
        );
        assert_eq!(
            ok(r#"{"action": "rate", "factor": 0.5}"#),
            Command::Rate {
                set: RateSet::Factor(0.5)
            }
        );
        assert_eq!(
            ok(r#"{"action": "extend", "by": "1m30s"}"#),
            Command::Extend {
                by: std::time::Duration::from_secs(90)
            }
        );
        assert_eq!(ok(r#"{"action": "pause"}"#), Command::Pause);
        assert!(matches!(
            ok(
                r#"{"action": "fault_on", "fault": {"fault": "latency", "delay": "2s", "routes": ["/slow"]}}"#
            ),
            Command::FaultOn {
                fault: Fault::Latency(_)
            }
        ));
        assert_eq!(
            ok(r#"{"action": "fault_off", "kind": "rate_limit"}"#),
            Command::FaultOff {
                kind: "rate_limit".into()
            }
        );
    }

    #[test]
    fn each_bad_order_names_its_field() {
        assert_eq!(field("pause"), "body");
        assert_eq!(field("[1]"), "body");
        assert_eq!(field("{}"), "action");
        assert_eq!(field(r#"{"action": "jump"}"#), "action");
        assert_eq!(field(r#"{"action": "rate"}"#), "rps");
        assert_eq!(field(r#"{"action": "rate", "rps": -1}"#), "rps");
        assert_eq!(field(r#"{"action": "rate", "rps": "fast"}"#), "rps");
        assert_eq!(field(r#"{"action": "rate", "factor": 1e9}"#), "factor");
        assert_eq!(field(r#"{"action": "rate", "rps": 5, "factor": 2}"#), "factor");
        assert_eq!(field(r#"{"action": "rate", "rsp": 5}"#), "rsp");
        assert_eq!(field(r#"{"action": "pause", "now": true}"#), "now");
        assert_eq!(field(r#"{"action": "extend", "by": "soon"}"#), "by");
        assert_eq!(field(r#"{"action": "extend", "by": "0s"}"#), "by");
        assert_eq!(field(r#"{"action": "fault_on"}"#), "fault");
        assert_eq!(
            field(r#"{"action": "fault_on", "fault": {"fault": "flood"}}"#),
            "fault"
        );
        assert_eq!(
            field(r#"{"action": "fault_on", "fault": {"fault": "error", "ratio": 2}}"#),
            "fault.ratio"
        );
        assert_eq!(
            field(r#"{"action": "fault_on", "fault": {"fault": "error", "routes": ["/nope"]}}"#),
            "fault.routes[0]"
        );
        assert_eq!(field(r#"{"action": "fault_off", "kind": "gremlins"}"#), "kind");
    }
}

//! `--record FILE`: the run as driven, written as a scenario. The scenario file the run started from
//! is kept as written (its defaults, mix, `${NAME}` references), with the seed of the run and its
//! phases replaced by the pieces the run was split into at every live change: each with the length it
//! ran, the rate it ran at and the faults in force. Expectations are left out (a piece has none of its
//! own). Running the file sends the same requests at the same offsets with the same fault windows.
//! Pure: text in, text out.

use target_app::chaos::Fault;
use toml::{Table, Value};

use crate::engine::Driven;
use crate::scenario::{Arrivals, Load, Phase, Rate, Scenario};

/// Why a recording cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the scenario file is no longer valid TOML: {0}")]
    Source(String),
    #[error("seed {0} does not fit in a TOML integer (at most {max})", max = i64::MAX)]
    Seed(u64),
    #[error("cannot write fault `{kind}`: {why}")]
    Fault { kind: &'static str, why: String },
    #[error("cannot write the scenario: {0}")]
    Write(String),
}

fn text(d: std::time::Duration) -> Value {
    Value::String(target_app::duration::format(d))
}

fn rate(rate: &Rate) -> Value {
    let mut t = Table::new();
    let rps = |r: crate::scenario::Rps| Value::Float(r.get());
    match rate {
        Rate::Constant { rps: r } => {
            t.insert("shape".into(), "constant".into());
            t.insert("rps".into(), rps(*r));
        }
        Rate::Ramp { from, to } => {
            t.insert("shape".into(), "ramp".into());
            t.insert("from".into(), rps(*from));
            t.insert("to".into(), rps(*to));
        }
        Rate::Steps(steps) => {
            t.insert("shape".into(), "steps".into());
            let list = steps
                .iter()
                .map(|s| {
                    let mut step = Table::new();
                    step.insert("rps".into(), rps(s.rps));
                    step.insert("duration".into(), text(s.duration));
                    Value::Table(step)
                })
                .collect();
            t.insert("steps".into(), Value::Array(list));
        }
        Rate::Spike {
            base,
            peak,
            at,
            width,
        } => {
            t.insert("shape".into(), "spike".into());
            t.insert("base".into(), rps(*base));
            t.insert("peak".into(), rps(*peak));
            t.insert("at".into(), text(*at));
            t.insert("width".into(), text(*width));
        }
        Rate::Sine {
            mean,
            amplitude,
            period,
            shift,
        } => {
            t.insert("shape".into(), "sine".into());
            t.insert("mean".into(), rps(*mean));
            t.insert("amplitude".into(), rps(*amplitude));
            t.insert("period".into(), text(*period));
            if !shift.is_zero() {
                t.insert("shift".into(), text(*shift));
            }
        }
    }
    Value::Table(t)
}

fn fault(f: &Fault) -> Result<Value, RecordError> {
    Value::try_from(f).map_err(|e| RecordError::Fault {
        kind: f.kind(),
        why: e.to_string(),
    })
}

/// The piece `piece` of phase `written` (the phase's table as the file has it).
fn phase(written: &Table, piece: &Phase) -> Result<Table, RecordError> {
    let mut t = written.clone();
    for key in [
        "name",
        "duration",
        "rate",
        "arrivals",
        "concurrency",
        "chaos",
        "expect",
    ] {
        t.remove(key);
    }
    t.insert("name".into(), piece.name.clone().into());
    t.insert("duration".into(), text(piece.duration));
    match &piece.load {
        Load::Open { rate: r, arrivals } => {
            t.insert("rate".into(), rate(r));
            if *arrivals == Arrivals::Poisson {
                t.insert("arrivals".into(), "poisson".into());
            }
        }
        Load::Closed { concurrency } => {
            t.insert("concurrency".into(), Value::Integer(i64::from(concurrency.get())));
        }
    }
    if !piece.chaos.is_empty() {
        let list = piece.chaos.iter().map(fault).collect::<Result<Vec<_>, _>>()?;
        t.insert("chaos".into(), Value::Array(list));
    }
    Ok(t)
}

/// The recording of a run of `scenario` (read from `source`) that ran as `driven`.
pub fn scenario_toml(source: &str, scenario: &Scenario, driven: &Driven) -> Result<String, RecordError> {
    let mut doc: Table = source
        .parse()
        .map_err(|e: toml::de::Error| RecordError::Source(e.to_string()))?;
    let written: Vec<Table> = match doc.remove("phases") {
        Some(Value::Array(list)) => list
            .into_iter()
            .map(|v| match v {
                Value::Table(t) => t,
                _ => Table::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let seed = i64::try_from(scenario.seed).map_err(|_| RecordError::Seed(scenario.seed))?;
    doc.insert("name".into(), scenario.name.clone().into());
    doc.insert("seed".into(), Value::Integer(seed));
    doc.insert(
        "description".into(),
        format!(
            "The run of `{}` as driven live, its phases split at every change: replays it.",
            scenario.name
        )
        .into(),
    );
    let empty = Table::new();
    let mut phases = Vec::with_capacity(driven.pieces.len());
    for (piece, of) in driven.pieces.iter().zip(&driven.phase_of) {
        phases.push(Value::Table(phase(written.get(*of).unwrap_or(&empty), piece)?));
    }
    doc.insert("phases".into(), Value::Array(phases));
    let body = toml::to_string(&doc).map_err(|e| RecordError::Write(e.to_string()))?;
    Ok(format!(
        "# Recorded by `loadgen run --record`: scenario `{}` as it ran, split at every live change.\n{body}",
        scenario.name
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule::{piece, Steered};
    use crate::shared::control::RateSet;

    const SOURCE: &str = r#"# a comment that goes
name = "shapes"
seed = 9
[defaults]
timeout = "2s"
[[mix]]
path = "/"
weight = 2
[[mix]]
path = "/external"
[[phases]]
name = "wave"
duration = "60s"
rate = { shape = "sine", mean = 50, amplitude = 20, period = "40s" }
arrivals = "poisson"
expect = { p95 = "< 300ms" }
[[phases]]
name = "stairs"
duration = "30s"
rate = { shape = "steps", steps = [{ rps = 10, duration = "10s" }, { rps = 40, duration = "20s" }] }
mix = [{ path = "/slow" }]
chaos = [{ fault = "latency", delay = "200ms", ratio = 0.5, routes = ["/slow"] }]
[[phases]]
name = "spike"
duration = "20s"
rate = { shape = "spike", base = 5, peak = 50, at = "5s", width = "3s" }
[[phases]]
name = "workers"
duration = "10s"
concurrency = 4
"#;

    /// Pieces of every kind: shapes cut mid-way, scaled, set live, paused, extended, closed-loop, with
    /// faults switched on live.
    fn driven(s: &Scenario) -> Driven {
        let ms = Duration::from_millis;
        let error: Fault =
            serde_json::from_str(r#"{"fault": "error", "status": 503, "ratio": 0.25}"#).unwrap();
        let factor = Steered {
            rate: Some(RateSet::Factor(1.5)),
            paused: false,
        };
        let rps = Steered {
            rate: Some(RateSet::Rps(33.3)),
            paused: false,
        };
        let paused = Steered {
            rate: None,
            paused: true,
        };
        let mut pieces = vec![
            piece(&s.phases[0], "wave".into(), ms(0), ms(12_345), Steered::default()),
            piece(&s.phases[0], "wave~2".into(), ms(12_345), ms(20_000), factor),
            piece(&s.phases[0], "wave~3".into(), ms(32_345), ms(27_655), paused),
            piece(
                &s.phases[1],
                "stairs".into(),
                ms(0),
                ms(7_500),
                Steered::default(),
            ),
            piece(&s.phases[1], "stairs~2".into(), ms(7_500), ms(22_500), factor),
            piece(&s.phases[1], "stairs~3".into(), ms(30_000), ms(5_000), factor),
            piece(&s.phases[2], "spike".into(), ms(0), ms(6_001), rps),
            piece(
                &s.phases[2],
                "spike~2".into(),
                ms(6_001),
                ms(13_999),
                Steered::default(),
            ),
            piece(
                &s.phases[3],
                "workers".into(),
                ms(0),
                ms(4_000),
                Steered::default(),
            ),
            piece(&s.phases[3], "workers~2".into(), ms(4_000), ms(6_000), rps),
        ];
        pieces[4].chaos.push(error.clone());
        pieces[7].chaos = vec![error];
        Driven {
            phase_of: vec![0, 0, 0, 1, 1, 1, 2, 2, 3, 3],
            pieces,
        }
    }

    #[test]
    fn a_recording_reads_back_as_the_pieces_that_ran() {
        let s = crate::scenario::parse(SOURCE, "shapes.toml").unwrap_or_else(|d| panic!("{d}"));
        let driven = driven(&s);
        let text = scenario_toml(SOURCE, &s, &driven).unwrap();
        let back = crate::scenario::parse(&text, "recorded.toml").unwrap_or_else(|d| panic!("{d}\n{text}"));
        assert_eq!(back.phases, driven.pieces, "{text}");
        assert_eq!((back.seed, back.defaults.timeout), (9, Duration::from_secs(2)));
        assert!(text.contains("shift = \"12345ms\""), "{text}");
        assert!(!text.contains("expect"), "a piece has no expectations: {text}");
        // The same pieces, scheduled: the same arrivals.
        let pieces = Scenario {
            phases: driven.pieces.clone(),
            ..s.clone()
        };
        let a: Vec<_> = crate::schedule::Schedule::new(&pieces).collect();
        let b: Vec<_> = crate::schedule::Schedule::new(&back).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn a_seed_beyond_toml_integers_is_refused() {
        let mut s = crate::scenario::parse(SOURCE, "shapes.toml").unwrap();
        s.seed = u64::MAX;
        let driven = driven(&s);
        assert!(matches!(
            scenario_toml(SOURCE, &s, &driven),
            Err(RecordError::Seed(_))
        ));
    }
}

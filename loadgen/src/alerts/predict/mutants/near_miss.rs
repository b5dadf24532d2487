//! Near misses: for a mutant no scenario kills, the smallest change to one phase of a scenario that
//! already checks its alert with which the scenario would kill it.
//!
//! The knobs are a phase's rate (every rate of its curve scaled), the ratio of each fault that fails
//! requests (`error`, `timeout`, `reset`, `downstream`) and its duration, each scaled by the
//! factors of [`FACTORS`], smallest first; only the phases up to the last one that checks the
//! alert are changed (a later phase cannot change what an earlier one saw). A change counts only
//! when the changed scenario still holds with the original rules, every alert expectation of it,
//! none of them fragile: it is a scenario one could ship. All changes of one size to one scenario
//! are evaluated in one promtool process each, two at a time, with only the open survivors that
//! scenario can judge beside the rules.

use std::time::Duration;

use serde::Serialize;
use target_app::chaos::Fault;

use super::{evaluate, last_check, Judged, Mutant, Report};
use crate::alerts::predict::{margin, PredictError, Rules, Scrapes};
use crate::scenario::{Load, Rate, Rps, Scenario};
use crate::shared::Verdict;

/// The factors tried, in the order tried: the smallest change first, up before down.
pub const FACTORS: [f64; 6] = [1.5, 1.0 / 1.5, 2.0, 0.5, 3.0, 1.0 / 3.0];

/// What the search found for one surviving mutant.
#[derive(Debug, Clone, Serialize)]
pub struct NearMiss {
    /// The smallest change that kills the mutant; `None` when none of those tried does.
    pub change: Option<Change>,
    /// How many changed scenarios were judged against it.
    pub tried: usize,
    /// How many of those still held with the original rules, none of their expectations fragile
    /// (the only ones that may count).
    pub held: usize,
    /// Why no change was found, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One change to one phase of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub scenario: String,
    pub phase: String,
    /// The change, as `duration 30s -> 45s`, `rate x2 (20 -> 40 rps)` or `error ratio 0.3 -> 0.45`.
    pub what: String,
    /// The expectation that then tells the mutant from the rule.
    pub killed_by: String,
}

/// One phase's knob scaled.
struct Variant {
    phase: usize,
    what: String,
    scenario: Scenario,
}

/// Searches a change for every surviving mutant of `report` and records it in the mutant's
/// `near_miss`. `scenarios` are the ones the report was made from.
pub fn search_near_misses(
    rules: &Rules,
    report: &mut Report,
    scenarios: &[(String, Scenario)],
    scrapes: Scrapes,
) -> Result<(), PredictError> {
    let mut open: Vec<&mut Mutant> = report
        .rules
        .iter_mut()
        .flat_map(|r| r.mutants.iter_mut())
        .filter(|m| m.killed_by.is_none())
        .collect();
    let mut tried = vec![0usize; open.len()];
    let mut held = vec![0usize; open.len()];
    let mut found: Vec<Option<Change>> = vec![None; open.len()];
    for factor in FACTORS {
        for (name, s) in scenarios {
            // The open survivors this scenario can judge, and how far into it changes matter.
            let mine: Vec<usize> = (0..open.len())
                .filter(|&k| found[k].is_none() && last_check(s, &open[k].alert).is_some())
                .collect();
            let Some(last) = mine.iter().filter_map(|&k| last_check(s, &open[k].alert)).max() else {
                continue;
            };
            let variants: Vec<Variant> = (0..=last).flat_map(|i| variants(s, i, factor)).collect();
            if variants.is_empty() {
                continue;
            }
            let mutants: Vec<Mutant> = mine.iter().map(|&k| (*open[k]).clone()).collect();
            let named: Vec<(String, Scenario)> = variants
                .iter()
                .map(|v| (name.clone(), v.scenario.clone()))
                .collect();
            let evaluated = evaluate(rules, &mutants, &named, scrapes)?;
            for (v, ev) in variants.iter().zip(&evaluated) {
                let checks = crate::alerts::predict::check(&v.scenario, &ev.original);
                let shippable = checks.iter().all(|c| c.verdict == Verdict::Pass)
                    && !margin::margins(&v.scenario, &ev.original)
                        .iter()
                        .any(|m| m.fragile(ev.interval()));
                for &k in &mine {
                    if found[k].is_some() || last_check(&v.scenario, &open[k].alert) < Some(v.phase) {
                        continue;
                    }
                    tried[k] += 1;
                    if !shippable {
                        continue;
                    }
                    held[k] += 1;
                    if let Some(Judged::Killed(phase, expect)) =
                        ev.judge(rules, &*open[k], &v.scenario, &checks)
                    {
                        found[k] = Some(Change {
                            scenario: name.clone(),
                            phase: s.phases[v.phase].name.clone(),
                            what: v.what.clone(),
                            killed_by: format!("phase {phase} expects {expect}"),
                        });
                    }
                }
            }
        }
    }
    for (k, m) in open.iter_mut().enumerate() {
        let change = found[k].take();
        let why = change.is_none().then(|| why_not(m, tried[k], held[k], scenarios));
        m.near_miss = Some(NearMiss {
            change,
            tried: tried[k],
            held: held[k],
            why,
        });
    }
    Ok(())
}

/// Why no change of those tried kills `m`.
fn why_not(m: &Mutant, tried: usize, held: usize, scenarios: &[(String, Scenario)]) -> String {
    if !scenarios.iter().any(|(_, s)| last_check(s, &m.alert).is_some()) {
        return format!(
            "no scenario has an expectation about {}: changing a scenario's traffic cannot reach it; \
             a new scenario that expects it firing and one that expects it inactive near its threshold can",
            m.alert
        );
    }
    if tried == 0 {
        return "the scenarios that check it have no rate, fault ratio or duration to change".to_owned();
    }
    let hint = if m.operator.starts_with("matcher dropped") {
        ": the modelled series hold one value of the label it matched, so with it dropped the \
         mutant reads the same series"
    } else if m.operator.starts_with("and -> or") || m.operator.starts_with("or -> and") {
        ": the two sides of the set operator hold together on every traffic the scenarios' shapes make"
    } else {
        ""
    };
    format!(
        "of the {tried} changes tried (rate, fault ratio or duration of one phase, x1/3 to x3), \
         {held} left the scenario holding with room, and none of those tells it from the rule{hint}"
    )
}

/// Phase `i` of `s` with each of its knobs scaled by `factor`.
fn variants(s: &Scenario, i: usize, factor: f64) -> Vec<Variant> {
    let phase = &s.phases[i];
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut crate::scenario::Phase)| {
        let mut v = s.clone();
        f(&mut v.phases[i]);
        v
    };
    // Duration, in whole seconds, at least one, and never shorter than an outage in the phase.
    let from = phase.duration.as_secs_f64();
    let to = Duration::from_secs((from * factor).round().max(1.0) as u64);
    let outage = phase
        .chaos
        .iter()
        .filter_map(|f| match f {
            Fault::Outage(o) => Some(o.duration),
            _ => None,
        })
        .max()
        .unwrap_or_default();
    if to != phase.duration && to >= outage && to.as_secs_f64() <= from * 3.0 + 0.5 {
        out.push(Variant {
            phase: i,
            what: format!("duration {} -> {}", secs(phase.duration), secs(to)),
            scenario: with(&|p| p.duration = to),
        });
    }
    if let Load::Open { rate, .. } = &phase.load {
        if let Some(scaled) = scale_rate(rate, factor) {
            out.push(Variant {
                phase: i,
                what: format!("rate x{} ({})", ratio(factor), describe(rate, &scaled)),
                scenario: with(&|p| {
                    if let Load::Open { rate, .. } = &mut p.load {
                        *rate = scaled.clone();
                    }
                }),
            });
        }
    }
    for (f, fault) in phase.chaos.iter().enumerate() {
        let Some((kind, from)) = failure_ratio(fault) else {
            continue;
        };
        let to = ((from * factor).min(1.0) * 1000.0).round() / 1000.0;
        if to <= 0.0 || (to - from).abs() < 1e-9 {
            continue;
        }
        out.push(Variant {
            phase: i,
            what: format!("{kind} ratio {from} -> {to}"),
            scenario: with(&|p| set_ratio(&mut p.chaos[f], to)),
        });
    }
    out
}

/// The ratio of a fault that fails requests, with the fault's kind.
fn failure_ratio(f: &Fault) -> Option<(&'static str, f64)> {
    match f {
        Fault::Error(e) => Some(("error", e.ratio)),
        Fault::Timeout(t) => Some(("timeout", t.ratio)),
        Fault::Reset(r) => Some(("reset", r.ratio)),
        Fault::Downstream(d) => Some(("downstream", d.ratio)),
        _ => None,
    }
}

fn set_ratio(f: &mut Fault, to: f64) {
    match f {
        Fault::Error(e) => e.ratio = to,
        Fault::Timeout(t) => t.ratio = to,
        Fault::Reset(r) => r.ratio = to,
        Fault::Downstream(d) => d.ratio = to,
        _ => {}
    }
}

/// Every rate of the curve scaled; `None` when that changes nothing or leaves the allowed range.
fn scale_rate(rate: &Rate, factor: f64) -> Option<Rate> {
    let s = |r: &Rps| Rps::new((r.get() * factor * 1000.0).round() / 1000.0);
    let scaled = match rate {
        Rate::Constant { rps } => Rate::Constant { rps: s(rps)? },
        Rate::Ramp { from, to } => Rate::Ramp {
            from: s(from)?,
            to: s(to)?,
        },
        Rate::Steps(steps) => Rate::Steps(
            steps
                .iter()
                .map(|st| {
                    Some(crate::scenario::Step {
                        rps: s(&st.rps)?,
                        duration: st.duration,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        Rate::Spike {
            base,
            peak,
            at,
            width,
        } => Rate::Spike {
            base: s(base)?,
            peak: s(peak)?,
            at: *at,
            width: *width,
        },
        Rate::Sine {
            mean,
            amplitude,
            period,
            shift,
        } => Rate::Sine {
            mean: s(mean)?,
            amplitude: s(amplitude)?,
            period: *period,
            shift: *shift,
        },
    };
    (scaled != *rate).then_some(scaled)
}

/// `20 -> 40 rps` for a constant rate, the peak or mean for the others.
fn describe(from: &Rate, to: &Rate) -> String {
    let level = |r: &Rate| match r {
        Rate::Constant { rps } => rps.get(),
        Rate::Ramp { to, .. } => to.get(),
        Rate::Steps(steps) => steps.iter().map(|s| s.rps.get()).fold(0.0, f64::max),
        Rate::Spike { peak, .. } => peak.get(),
        Rate::Sine { mean, .. } => mean.get(),
    };
    let what = match from {
        Rate::Constant { .. } => "",
        Rate::Ramp { .. } => "ramp to ",
        Rate::Steps(_) => "highest step ",
        Rate::Spike { .. } => "peak ",
        Rate::Sine { .. } => "mean ",
    };
    format!("{what}{} -> {} rps", level(from), level(to))
}

fn ratio(f: f64) -> String {
    match f {
        f if (f - 1.0 / 1.5).abs() < 1e-9 => "2/3".to_owned(),
        f if (f - 1.0 / 3.0).abs() < 1e-9 => "1/3".to_owned(),
        f => format!("{f}"),
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        crate::scenario::parse(
            r#"name = "n"
[[mix]]
path = "/"
[[phases]]
name = "down"
duration = "40s"
rate = { shape = "ramp", from = 10, to = 30 }
chaos = [{ fault = "outage", duration = "30s" }, { fault = "error", ratio = 0.6 }]
"#,
            "n.toml",
        )
        .unwrap()
    }

    fn whats(factor: f64) -> Vec<String> {
        variants(&scenario(), 0, factor)
            .into_iter()
            .map(|v| v.what)
            .collect()
    }

    #[test]
    fn each_knob_of_a_phase_is_scaled_once() {
        assert_eq!(
            whats(1.5),
            [
                "duration 40s -> 60s",
                "rate x1.5 (ramp to 30 -> 45 rps)",
                "error ratio 0.6 -> 0.9"
            ]
        );
        // Past 1 the ratio stops at 1; a phase is never shorter than its outage.
        assert_eq!(
            whats(2.0),
            [
                "duration 40s -> 80s",
                "rate x2 (ramp to 30 -> 60 rps)",
                "error ratio 0.6 -> 1"
            ]
        );
        assert_eq!(
            whats(0.5),
            ["rate x0.5 (ramp to 30 -> 15 rps)", "error ratio 0.6 -> 0.3"]
        );
        let v = variants(&scenario(), 0, 0.5);
        assert_eq!(v[0].scenario.phases[0].load, {
            let mut s = scenario();
            s.phases[0].load = Load::Open {
                rate: Rate::Ramp {
                    from: Rps::new(5.0).unwrap(),
                    to: Rps::new(15.0).unwrap(),
                },
                arrivals: crate::scenario::Arrivals::Even,
            };
            s.phases.remove(0).load
        });
    }
}

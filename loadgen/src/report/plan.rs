//! `loadgen plan`: a scenario's timeline and an ASCII chart of its target rate, without sending anything.
//!
//! Pure: it writes to any `io::Write`, so a test renders into a `Vec<u8>`. It shows what the schedule
//! will do (phases, start and end, rate shape, request counts, faults, expectations); it does not
//! check the file (that happened when the scenario was parsed) and knows nothing about the target.

use std::io::{self, Write};
use std::time::Duration;

use target_app::chaos::Fault;
use target_app::duration::Display as Dur;

use crate::scenario::{Arrivals, Load, Phase, Rate, Scenario};
use crate::schedule::{self, RateCurve};

/// Chart size, in characters.
const COLUMNS: usize = 60;
const ROWS: usize = 10;

/// Writes the timeline and rate chart of `s`.
pub fn write_plan(s: &Scenario, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "scenario {}", s.name)?;
    if !s.description.is_empty() {
        writeln!(out, "  {}", s.description)?;
    }
    let (mut total, mut approximate) = (0u64, false);
    for (i, p) in s.phases.iter().enumerate() {
        if let Load::Open { arrivals, .. } = &p.load {
            total += schedule::arrival_count(s, i);
            approximate |= *arrivals == Arrivals::Poisson;
        }
    }
    let phases = if s.phases.len() == 1 { "phase" } else { "phases" };
    let about = if approximate { "about " } else { "" };
    writeln!(
        out,
        "  seed {}, {}, {} {phases}, {about}{total} scheduled requests",
        s.seed,
        Dur(s.duration()),
        s.phases.len()
    )?;
    writeln!(
        out,
        "  timeout {}, at most {} in flight",
        Dur(s.defaults.timeout),
        s.defaults.max_in_flight
    )?;
    for (i, p) in s.phases.iter().enumerate() {
        writeln!(out)?;
        phase(s, i, p, out)?;
    }
    writeln!(out)?;
    chart(s, out)
}

fn phase(s: &Scenario, i: usize, p: &Phase, out: &mut impl Write) -> io::Result<()> {
    let start = s.phase_start(i);
    writeln!(
        out,
        "phase {}  {}  {} -> {} ({})",
        i + 1,
        p.name,
        Dur(start),
        Dur(start + p.duration),
        Dur(p.duration)
    )?;
    match &p.load {
        Load::Open { rate, arrivals } => {
            let spacing = match arrivals {
                Arrivals::Even => "even arrivals",
                Arrivals::Poisson => "Poisson arrivals",
            };
            writeln!(out, "  load      {}, {spacing}", describe_rate(rate))?;
            let count = schedule::arrival_count(s, i);
            let expected = schedule::expected_requests(p).unwrap_or(0.0);
            match arrivals {
                Arrivals::Even => writeln!(out, "  requests  {count}")?,
                Arrivals::Poisson => writeln!(out, "  requests  {count} (expected {})", number(expected))?,
            }
        }
        Load::Closed { concurrency } => {
            writeln!(out, "  load      closed loop, {concurrency} in flight")?;
            writeln!(out, "  requests  as many as the target answers")?;
        }
    }
    let names: Vec<String> = p
        .mix
        .requests()
        .iter()
        .map(|r| format!("{} x{}", r.name, r.weight))
        .collect();
    let whose = if p.own_mix { "own mix" } else { "mix" };
    writeln!(out, "  {whose:<9} {}", names.join(", "))?;
    if p.chaos.is_empty() {
        writeln!(out, "  chaos     none")?;
    }
    for (j, f) in p.chaos.iter().enumerate() {
        let label = if j == 0 { "chaos" } else { "" };
        writeln!(out, "  {label:<9} {}", describe_fault(f))?;
    }
    let e = &p.expect;
    let mut lines: Vec<String> = e.conditions.iter().map(ToString::to_string).collect();
    for (what, list) in [
        ("alerts firing", &e.alerts_firing),
        ("alerts inactive", &e.alerts_inactive),
        ("alerts resolved", &e.alerts_resolved),
    ] {
        if !list.is_empty() {
            lines.push(format!("{what}: {}", list.join(", ")));
        }
    }
    if lines.is_empty() {
        lines.push("nothing".to_owned());
    }
    for (j, line) in lines.iter().enumerate() {
        let label = if j == 0 { "expect" } else { "" };
        writeln!(out, "  {label:<9} {line}")?;
    }
    Ok(())
}

fn describe_rate(rate: &Rate) -> String {
    let rps = |r: crate::scenario::Rps| number(r.get());
    match rate {
        Rate::Constant { rps: r } => format!("constant {} rps", rps(*r)),
        Rate::Ramp { from, to } => format!("ramp {} -> {} rps", rps(*from), rps(*to)),
        Rate::Steps(steps) => {
            let parts: Vec<String> = steps
                .iter()
                .map(|s| format!("{} rps for {}", rps(s.rps), Dur(s.duration)))
                .collect();
            format!("steps {}", parts.join(", "))
        }
        Rate::Spike {
            base,
            peak,
            at,
            width,
        } => {
            format!(
                "spike {} rps, {} rps from {} for {}",
                rps(*base),
                rps(*peak),
                Dur(*at),
                Dur(*width)
            )
        }
        Rate::Sine {
            mean,
            amplitude,
            period,
            shift,
        } => {
            let shifted = if shift.is_zero() {
                String::new()
            } else {
                format!(", shifted {}", Dur(*shift))
            };
            format!(
                "sine {} +/- {} rps, period {}{shifted}",
                rps(*mean),
                rps(*amplitude),
                Dur(*period)
            )
        }
    }
}

/// `error ratio=0.3 status=500`: the kind, then the fault's fields as the chaos API spells them.
fn describe_fault(fault: &Fault) -> String {
    let mut text = fault.kind().to_owned();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(fault) {
        for (key, value) in fields.iter().filter(|(k, _)| k.as_str() != "fault") {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            text.push_str(&format!(" {key}={value}"));
        }
    }
    text
}

/// Up to two decimals, trailing zeros dropped.
fn number(n: f64) -> String {
    let text = format!("{n:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The target rate over the whole scenario: each column is the highest rate within its time slice.
fn chart(s: &Scenario, out: &mut impl Write) -> io::Result<()> {
    let total = s.duration().as_secs_f64();
    let curves: Vec<Option<RateCurve>> = s
        .phases
        .iter()
        .map(|p| match &p.load {
            Load::Open { rate, .. } => Some(RateCurve::new(rate, p.duration.as_secs_f64())),
            Load::Closed { .. } => None,
        })
        .collect();
    let starts: Vec<f64> = (0..s.phases.len())
        .map(|i| s.phase_start(i).as_secs_f64())
        .collect();
    let rate_at = |t: f64| -> Option<f64> {
        let i = starts.iter().rposition(|start| *start <= t)?;
        curves[i].as_ref().map(|c| c.rate_at(t - starts[i]))
    };
    const SAMPLES: usize = 16;
    let columns: Vec<Option<f64>> = (0..COLUMNS)
        .map(|c| {
            (0..SAMPLES)
                .filter_map(|k| rate_at(total * (c * SAMPLES + k) as f64 / (COLUMNS * SAMPLES) as f64))
                .reduce(f64::max)
        })
        .collect();
    let top = columns.iter().flatten().copied().fold(0.0, f64::max);
    writeln!(out, "target rate (requests per second)")?;
    let labels = [(ROWS, number(top)), (ROWS / 2, number(top / 2.0))];
    let width = labels.iter().map(|(_, l)| l.len()).max().unwrap_or(1);
    for row in (1..=ROWS).rev() {
        let label = labels
            .iter()
            .find(|(r, _)| *r == row)
            .map_or("", |(_, l)| l.as_str());
        let line: String = columns
            .iter()
            .map(|v| match v {
                None if row == 1 => '~',
                None => ' ',
                Some(v) if top > 0.0 && (v / top * ROWS as f64 - 1e-9).ceil() >= row as f64 => '#',
                Some(_) => ' ',
            })
            .collect();
        writeln!(out, "{label:>width$} |{}", line.trim_end())?;
    }
    writeln!(out, "{:>width$} +{}", 0, "-".repeat(COLUMNS))?;
    let mut marks = vec![b' '; COLUMNS + 2];
    for (i, start) in starts.iter().enumerate() {
        let col = ((start / total) * COLUMNS as f64).round() as usize;
        let digits = (i + 1).to_string();
        if marks[col..].len() >= digits.len() && marks[col..col + digits.len()].iter().all(|b| *b == b' ') {
            marks[col..col + digits.len()].copy_from_slice(digits.as_bytes());
        }
    }
    let marks = String::from_utf8_lossy(&marks).trim_end().to_owned();
    writeln!(out, "{:>width$}  {marks}   (phase starts)", "")?;
    let end = Dur(Duration::from_secs_f64(total)).to_string();
    writeln!(out, "{:>width$}  0s{end:>pad$}", "", pad = COLUMNS - 2)?;
    if curves.iter().any(Option::is_none) {
        writeln!(
            out,
            "{:>width$}  ~ closed loop: the rate depends on the target",
            ""
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_at_the_maxima_is_drawn_without_overflow() {
        // A year of phases at the highest rate: counts past 10^17, durations at the year's maximum.
        let text = r#"
            name = "edge"
            [defaults]
            timeout = "8760h"
            [[mix]]
            path = "/"
            [[phases]]
            duration = "8759h"
            rate = { shape = "constant", rps = 10000000 }
            [[phases]]
            duration = "1h"
            rate = { shape = "ramp", from = 10000000, to = 0 }
        "#;
        let s = crate::scenario::parse(text, "edge.toml").unwrap();
        let mut out = Vec::new();
        write_plan(&s, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("8759h"));
    }

    #[test]
    fn plan_shows_phases_counts_faults_and_chart() {
        let text = r#"
            name = "demo"
            description = "A ramp, then errors."
            [[mix]]
            path = "/"
            weight = 3
            [[mix]]
            path = "/checkout"
            method = "POST"
            body = { sku = "A1" }
            [[phases]]
            name = "warm"
            duration = "1m"
            rate = { shape = "ramp", from = 0, to = 100 }
            [[phases]]
            name = "errors"
            duration = "2m"
            rate = { shape = "constant", rps = 100 }
            chaos = [{ fault = "error", status = 500, ratio = 0.3, routes = ["/checkout"] }]
            expect = { error_ratio = "> 0.05", alerts_firing = ["HighErrorRate"] }
            [[phases]]
            name = "soak"
            duration = "30s"
            concurrency = 4
        "#;
        let s = crate::scenario::parse(text, "demo.toml").unwrap();
        let mut out = Vec::new();
        write_plan(&s, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        for want in [
            "scenario demo",
            "seed 1, 3m30s, 3 phases, 15000 scheduled requests",
            "phase 1  warm  0s -> 1m (1m)",
            "ramp 0 -> 100 rps, even arrivals",
            "requests  3000",
            "phase 2  errors  1m -> 3m (2m)",
            "requests  12000",
            "chaos     error ratio=0.3 routes=/checkout status=500",
            "expect    error_ratio > 0.05",
            "alerts firing: HighErrorRate",
            "closed loop, 4 in flight",
            "mix       GET / x3, POST /checkout x1",
            "100 |               #####################################\n",
            " 50 |      ##############################################\n",
            "    |####################################################~~~~~~~~\n",
            "  0 +------------------------------------------------------------\n",
            "     1                2                                 3   (phase starts)\n",
            "     0s                                                     3m30s\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
        let chart_rows = out.lines().filter(|l| l.contains(" |")).count();
        assert_eq!(chart_rows, ROWS);
    }
}

//! A piece of a phase as a phase of its own: what live control runs between two changes, and what a
//! recording of the run writes. The rate of a piece is the phase's curve from an offset on (times a
//! factor), a constant rate set live, or zero while paused; the same rate written in a scenario gives the
//! same arrivals. Nothing here knows about time passing.

use std::time::Duration;

use crate::scenario::{Arrivals, Load, Phase, Rate, Rps, Step};
use crate::shared::control::RateSet;

/// A rate as an [`Rps`], cut into its range (a factor can take a rate past [`Rps::MAX`]).
fn rps(v: f64) -> Rps {
    let v = if v.is_finite() {
        v.clamp(0.0, Rps::MAX)
    } else {
        0.0
    };
    Rps::new(v).unwrap_or(Rps::new(0.0).expect("0 is a rate"))
}

/// `rate` (over a phase of `duration`) from `from` for `len`, times `factor`, as a rate starting at 0.
/// Past `duration` the rate holds its last value.
pub fn remainder(rate: &Rate, duration: Duration, from: Duration, len: Duration, factor: f64) -> Rate {
    let scale = |r: Rps| rps(r.get() * factor);
    if from >= duration {
        return Rate::Constant {
            rps: rps(last_rate(rate, duration) * factor),
        };
    }
    match rate {
        Rate::Constant { rps: r } => Rate::Constant { rps: scale(*r) },
        Rate::Ramp { from: a, to: b } => {
            let at = |t: Duration| {
                let x = t.min(duration).as_secs_f64() / duration.as_secs_f64();
                a.get() + (b.get() - a.get()) * x
            };
            Rate::Ramp {
                from: rps(at(from) * factor),
                to: rps(at(from + len) * factor),
            }
        }
        Rate::Steps(steps) => {
            let pieces: Vec<(Duration, f64)> = steps.iter().map(|s| (s.duration, s.rps.get())).collect();
            window(&pieces, from, len, factor)
        }
        Rate::Spike {
            base,
            peak,
            at,
            width,
        } => {
            let rest = duration.saturating_sub(*at + *width);
            let pieces = [(*at, base.get()), (*width, peak.get()), (rest, base.get())];
            window(&pieces, from, len, factor)
        }
        Rate::Sine {
            mean,
            amplitude,
            period,
            shift,
        } => {
            // The shift stays within one period so that it reads well in a recording.
            let shifted = (shift.as_nanos() + from.as_nanos()) % period.as_nanos().max(1);
            Rate::Sine {
                mean: scale(*mean),
                amplitude: scale(*amplitude),
                period: *period,
                shift: Duration::from_nanos(u64::try_from(shifted).unwrap_or(0)),
            }
        }
    }
}

/// The rate at the very end of a phase of `duration`.
fn last_rate(rate: &Rate, duration: Duration) -> f64 {
    match rate {
        Rate::Constant { rps } => rps.get(),
        Rate::Ramp { to, .. } => to.get(),
        Rate::Steps(steps) => steps.last().map_or(0.0, |s| s.rps.get()),
        Rate::Spike { base, .. } => base.get(),
        Rate::Sine { .. } => crate::schedule::RateCurve::new(rate, duration.as_secs_f64())
            .rate_at(duration.as_secs_f64() - 1e-9),
    }
}

/// Constant pieces `(length, rps)` cut to `[from, from + len)`, times `factor`.
fn window(pieces: &[(Duration, f64)], from: Duration, len: Duration, factor: f64) -> Rate {
    let end = from + len;
    let mut start = Duration::ZERO;
    let mut out: Vec<Step> = Vec::new();
    for &(length, r) in pieces {
        let (a, b) = (start.max(from), (start + length).min(end));
        if b > a {
            out.push(Step {
                duration: b - a,
                rps: rps(r * factor),
            });
        }
        start += length;
    }
    match out.as_slice() {
        [] => Rate::Constant { rps: rps(0.0) },
        [one] => Rate::Constant { rps: one.rps },
        _ => Rate::Steps(out),
    }
}

/// What live control has set for the rate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Steered {
    pub rate: Option<RateSet>,
    pub paused: bool,
}

/// Phase `phase` from `from` on, for `len`, as a phase of its own named `name`, under `steered`.
/// Its expectations are left out: a piece has none of its own.
pub fn piece(phase: &Phase, name: String, from: Duration, len: Duration, steered: Steered) -> Phase {
    let load = if steered.paused {
        Load::Open {
            rate: Rate::Constant { rps: rps(0.0) },
            arrivals: Arrivals::Even,
        }
    } else {
        match (&phase.load, steered.rate) {
            (_, Some(RateSet::Rps(r))) => Load::Open {
                rate: Rate::Constant { rps: rps(r) },
                arrivals: match &phase.load {
                    Load::Open { arrivals, .. } => *arrivals,
                    Load::Closed { .. } => Arrivals::Even,
                },
            },
            (Load::Open { rate, arrivals }, set) => {
                let factor = match set {
                    Some(RateSet::Factor(f)) => f,
                    _ => 1.0,
                };
                Load::Open {
                    rate: remainder(rate, phase.duration, from, len, factor),
                    arrivals: *arrivals,
                }
            }
            (Load::Closed { concurrency }, _) => Load::Closed {
                concurrency: *concurrency,
            },
        }
    };
    Phase {
        name,
        duration: len,
        load,
        mix: phase.mix.clone(),
        own_mix: phase.own_mix,
        chaos: phase.chaos.clone(),
        expect: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::RateCurve;

    fn r(v: f64) -> Rps {
        Rps::new(v).unwrap()
    }

    fn s(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Every shape, cut anywhere and scaled, follows the original curve from the cut on.
    #[test]
    fn a_remainder_continues_the_curve() {
        let shapes = [
            Rate::Constant { rps: r(40.0) },
            Rate::Ramp {
                from: r(10.0),
                to: r(100.0),
            },
            Rate::Steps(vec![
                Step {
                    duration: s(3000),
                    rps: r(10.0),
                },
                Step {
                    duration: s(4000),
                    rps: r(70.0),
                },
                Step {
                    duration: s(3000),
                    rps: r(5.0),
                },
            ]),
            Rate::Spike {
                base: r(20.0),
                peak: r(200.0),
                at: s(4000),
                width: s(1500),
            },
            Rate::Sine {
                mean: r(50.0),
                amplitude: r(30.0),
                period: s(6000),
                shift: s(1000),
            },
        ];
        let duration = s(10_000);
        for shape in &shapes {
            let whole = RateCurve::new(shape, 10.0);
            for (from, len) in [(0, 10_000), (2500, 3000), (3999, 1502), (7250, 2750)] {
                for factor in [1.0, 0.5, 3.0] {
                    let part = remainder(shape, duration, s(from), s(len), factor);
                    let curve = RateCurve::new(&part, len as f64 / 1000.0);
                    let a = from as f64 / 1000.0;
                    for x in [0.0, 0.3, 1.0, 1.499, len as f64 / 1000.0] {
                        let want = factor * (whole.cumulative(a + x) - whole.cumulative(a));
                        let got = curve.cumulative(x);
                        assert!(
                            (got - want).abs() < 1e-6,
                            "{shape:?} from {from} len {len} x{factor} at {x}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn past_its_end_a_phase_holds_its_last_rate() {
        let ramp = Rate::Ramp {
            from: r(10.0),
            to: r(100.0),
        };
        assert_eq!(
            remainder(&ramp, s(10_000), s(10_000), s(5000), 2.0),
            Rate::Constant { rps: r(200.0) }
        );
    }
}

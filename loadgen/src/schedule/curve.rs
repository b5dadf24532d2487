//! A phase's target rate `λ(t)`, its cumulative count `Λ(t) = ∫₀ᵗ λ`, and the inverse of `Λ`.
//!
//! Times are seconds from the phase start, as `f64`. `Λ` is continuous and non-decreasing, so arrivals
//! can be placed exactly: the k-th even arrival is at `Λ⁻¹(k)`. Closed forms are used where they
//! exist (constant, steps, spike, ramp); the sine is inverted numerically. Nothing here draws random
//! numbers or knows about requests.

use crate::scenario::Rate;

/// The rate function of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    shape: Shape,
    duration: f64,
    total: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Constant pieces: constant, steps, spike.
    Pieces(Vec<Piece>),
    /// `from + slope·t`.
    Ramp { from: f64, slope: f64 },
    /// `mean + amplitude·sin(ω·(t + shift))`.
    Sine {
        mean: f64,
        amplitude: f64,
        omega: f64,
        shift: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    start: f64,
    end: f64,
    rps: f64,
    /// `Λ(start)`.
    before: f64,
}

impl RateCurve {
    /// The curve of `rate` over a phase of `duration` seconds.
    pub fn new(rate: &Rate, duration: f64) -> RateCurve {
        let shape = match rate {
            Rate::Constant { rps } => pieces(&[(duration, rps.get())]),
            Rate::Steps(steps) => {
                let list: Vec<(f64, f64)> = steps
                    .iter()
                    .map(|s| (s.duration.as_secs_f64(), s.rps.get()))
                    .collect();
                pieces(&list)
            }
            Rate::Spike {
                base,
                peak,
                at,
                width,
            } => {
                let (at, width) = (at.as_secs_f64(), width.as_secs_f64());
                pieces(&[
                    (at, base.get()),
                    (width, peak.get()),
                    ((duration - at - width).max(0.0), base.get()),
                ])
            }
            Rate::Ramp { from, to } => {
                let slope = if duration > 0.0 {
                    (to.get() - from.get()) / duration
                } else {
                    0.0
                };
                Shape::Ramp {
                    from: from.get(),
                    slope,
                }
            }
            Rate::Sine {
                mean,
                amplitude,
                period,
                shift,
            } => Shape::Sine {
                mean: mean.get(),
                amplitude: amplitude.get(),
                omega: std::f64::consts::TAU / period.as_secs_f64(),
                shift: shift.as_secs_f64(),
            },
        };
        let mut curve = RateCurve {
            shape,
            duration,
            total: 0.0,
        };
        curve.total = curve.cumulative(duration);
        curve
    }

    /// Phase length in seconds.
    pub fn duration(&self) -> f64 {
        self.duration
    }

    /// `Λ(duration)`: the expected number of arrivals in the phase.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// `λ(t)`: requests per second at `t` seconds (0 outside the phase).
    pub fn rate_at(&self, t: f64) -> f64 {
        if !(0.0..self.duration).contains(&t) {
            return 0.0;
        }
        match &self.shape {
            Shape::Pieces(pieces) => pieces.iter().find(|p| t < p.end).map_or(0.0, |p| p.rps),
            Shape::Ramp { from, slope } => (from + slope * t).max(0.0),
            Shape::Sine {
                mean,
                amplitude,
                omega,
                shift,
            } => (mean + amplitude * (omega * (t + shift)).sin()).max(0.0),
        }
    }

    /// `Λ(t)`: expected arrivals from the phase start to `t` seconds (clamped to the phase).
    pub fn cumulative(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.duration);
        match &self.shape {
            Shape::Pieces(pieces) => pieces
                .iter()
                .find(|p| t < p.end)
                .or(pieces.last())
                .map_or(0.0, |p| p.before + p.rps * (t.min(p.end) - p.start)),
            Shape::Ramp { from, slope } => from * t + slope * t * t / 2.0,
            Shape::Sine {
                mean,
                amplitude,
                omega,
                shift,
            } => mean * t + amplitude / omega * ((omega * shift).cos() - (omega * (t + shift)).cos()),
        }
    }

    /// `Λ⁻¹(n)`: the earliest time at which `n` arrivals are expected, in seconds, for `0 <= n < total`
    /// (clamped to the phase otherwise). Where the rate is zero for a while, the time after the gap.
    pub fn inverse(&self, n: f64) -> f64 {
        if n <= 0.0 && self.rate_at(0.0) > 0.0 {
            return 0.0;
        }
        if n >= self.total {
            return self.duration;
        }
        let t = match &self.shape {
            Shape::Pieces(pieces) => pieces
                .iter()
                .find(|p| p.rps > 0.0 && n < p.before + p.rps * (p.end - p.start))
                .map_or(self.duration, |p| p.start + (n - p.before).max(0.0) / p.rps),
            Shape::Ramp { from, slope } => {
                // Root of slope/2·t² + from·t − n = 0, in the form that stays exact when slope → 0.
                let root = (from * from + 2.0 * slope * n).max(0.0).sqrt();
                if from + root > 0.0 {
                    2.0 * n / (from + root)
                } else {
                    0.0
                }
            }
            Shape::Sine { .. } => self.solve(n),
        };
        t.clamp(0.0, self.duration)
    }

    /// Solves `Λ(t) = n` by Newton steps kept inside a shrinking bracket (bisection when they leave it).
    fn solve(&self, n: f64) -> f64 {
        let (mut lo, mut hi) = (0.0, self.duration);
        let mut t = (n / self.total * self.duration).clamp(lo, hi);
        for _ in 0..100 {
            let f = self.cumulative(t) - n;
            if f.abs() < 1e-9 {
                break;
            }
            if f > 0.0 {
                hi = t;
            } else {
                lo = t;
            }
            let slope = self.rate_at(t);
            let newton = if slope > 0.0 { t - f / slope } else { f64::NAN };
            t = if newton > lo && newton < hi {
                newton
            } else {
                (lo + hi) / 2.0
            };
            if hi - lo < 1e-12 {
                break;
            }
        }
        t
    }
}

fn pieces(list: &[(f64, f64)]) -> Shape {
    let mut out = Vec::with_capacity(list.len());
    let (mut start, mut before) = (0.0, 0.0);
    for &(length, rps) in list {
        let end = start + length;
        out.push(Piece {
            start,
            end,
            rps,
            before,
        });
        before += rps * length;
        start = end;
    }
    Shape::Pieces(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::{Rps, Step};

    fn rps(v: f64) -> Rps {
        Rps::new(v).unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Λ(Λ⁻¹(n)) == n across the phase, and Λ⁻¹ is non-decreasing.
    fn check_inverse(curve: &RateCurve) {
        let mut last = 0.0;
        let steps = 997;
        for i in 0..steps {
            let n = curve.total() * i as f64 / steps as f64;
            let t = curve.inverse(n);
            assert!(t >= last - 1e-9, "inverse must not go back: {n} -> {t} < {last}");
            assert!(
                (curve.cumulative(t) - n).abs() < 1e-6,
                "Λ(Λ⁻¹({n})) = {}",
                curve.cumulative(t)
            );
            last = t;
        }
    }

    #[test]
    fn constant_is_linear() {
        let c = RateCurve::new(&Rate::Constant { rps: rps(50.0) }, 60.0);
        assert_eq!(c.total(), 3000.0);
        assert_eq!(c.rate_at(10.0), 50.0);
        assert_eq!(c.inverse(100.0), 2.0);
        check_inverse(&c);
    }

    #[test]
    fn ramp_follows_its_formula() {
        let c = RateCurve::new(
            &Rate::Ramp {
                from: rps(50.0),
                to: rps(100.0),
            },
            60.0,
        );
        assert_eq!(c.total(), 50.0 * 60.0 + 50.0 * 60.0 / 2.0);
        assert!((c.rate_at(30.0) - 75.0).abs() < 1e-9);
        // Λ(t) = 50t + 50t²/120
        let t = 20.0;
        assert!((c.cumulative(t) - (50.0 * t + 50.0 * t * t / 120.0)).abs() < 1e-9);
        check_inverse(&c);
        let down = RateCurve::new(
            &Rate::Ramp {
                from: rps(100.0),
                to: rps(0.0),
            },
            10.0,
        );
        assert_eq!(down.total(), 500.0);
        check_inverse(&down);
        let up_from_zero = RateCurve::new(
            &Rate::Ramp {
                from: rps(0.0),
                to: rps(10.0),
            },
            10.0,
        );
        assert_eq!(up_from_zero.inverse(0.0), 0.0);
        check_inverse(&up_from_zero);
    }

    #[test]
    fn steps_and_spike_are_piecewise() {
        let steps = vec![
            Step {
                rps: rps(0.0),
                duration: secs(10),
            },
            Step {
                rps: rps(10.0),
                duration: secs(10),
            },
            Step {
                rps: rps(30.0),
                duration: secs(5),
            },
        ];
        let c = RateCurve::new(&Rate::Steps(steps), 25.0);
        assert_eq!(c.total(), 250.0);
        assert_eq!(c.rate_at(5.0), 0.0);
        assert_eq!(c.rate_at(22.0), 30.0);
        assert_eq!(c.inverse(0.0), 10.0, "nothing is sent while the rate is 0");
        assert_eq!(c.inverse(100.0), 20.0);
        assert_eq!(c.inverse(130.0), 21.0);
        check_inverse(&c);

        let spike = Rate::Spike {
            base: rps(20.0),
            peak: rps(200.0),
            at: secs(30),
            width: secs(10),
        };
        let c = RateCurve::new(&spike, 60.0);
        assert_eq!(c.total(), 20.0 * 50.0 + 200.0 * 10.0);
        assert_eq!(
            (c.rate_at(29.9), c.rate_at(30.0), c.rate_at(39.9), c.rate_at(40.0)),
            (20.0, 200.0, 200.0, 20.0)
        );
        assert_eq!(c.inverse(600.0 + 1000.0), 35.0);
        check_inverse(&c);
    }

    #[test]
    fn sine_follows_its_formula() {
        let sine = Rate::Sine {
            mean: rps(50.0),
            amplitude: rps(50.0),
            period: secs(60),
            shift: Duration::ZERO,
        };
        let c = RateCurve::new(&sine, 90.0);
        let w = std::f64::consts::TAU / 60.0;
        for t in [0.0, 7.5, 15.0, 45.0, 80.0] {
            assert!((c.rate_at(t) - (50.0 + 50.0 * (w * t).sin())).abs() < 1e-9);
            assert!((c.cumulative(t) - (50.0 * t + 50.0 / w * (1.0 - (w * t).cos()))).abs() < 1e-9);
        }
        check_inverse(&c);
    }
}

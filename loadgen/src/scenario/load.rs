//! Checks of a phase's pacing: `rate` (each shape's parameters) or `concurrency`, `arrivals`, and the
//! phase duration, which a steps rate implies. Part of validation; see [`super::validate`].

use std::ops::Range;
use std::time::Duration;

use super::diag::Diagnostic;
use super::model::{Arrivals, Load, Rate, Rps, Step};
use super::raw::{Checked, RawArrivals, RawPhase, RawRate, RawStep};
use super::validate::{positive, Ctx, MAX_DURATION};

/// A complete rate of each shape, for hints.
fn rate_example(shape: &str) -> &'static str {
    match shape {
        "ramp" => "{ shape = \"ramp\", from = 10, to = 100 }",
        "steps" => "{ shape = \"steps\", steps = [{ rps = 10, duration = \"30s\" }, { rps = 50, duration = \"1m\" }] }",
        "spike" => "{ shape = \"spike\", base = 20, peak = 200, at = \"30s\", width = \"10s\" }",
        "sine" => "{ shape = \"sine\", mean = 50, amplitude = 20, period = \"60s\" }",
        _ => "{ shape = \"constant\", rps = 50 }",
    }
}

/// The phase's pacing and its duration (which a steps rate may imply).
pub(super) fn load(
    raw: &RawPhase,
    path: &str,
    span: &Range<usize>,
    duration: Option<Duration>,
    name: &str,
    ctx: &mut Ctx<'_>,
) -> Option<(Load, Duration)> {
    let rate_path = format!("{path}.rate");
    let explained =
        "`rate` paces arrivals (open loop); `concurrency` keeps that many requests in flight (closed loop)";
    if let (Some(_), Some(c)) = (&raw.rate, &raw.concurrency) {
        ctx.push(
            Diagnostic::new("a phase has `rate` or `concurrency`, not both", Some(c.span()))
                .hint(format!("remove one: {explained}")),
        );
        return None;
    }
    if let (None, Some(a)) = (&raw.rate, &raw.arrivals) {
        ctx.push(
            Diagnostic::new("`arrivals` applies only to phases with a `rate`", Some(a.span()))
                .hint("closed-loop phases send when a worker is free; remove `arrivals`"),
        );
    }
    let missing_duration = |ctx: &mut Ctx<'_>| {
        if raw.duration.is_none() && !ctx.was_removed(&format!("{path}.duration")) {
            ctx.push(
                Diagnostic::new(format!("phase `{name}` has no `duration`"), Some(span.clone()))
                    .hint("add e.g. `duration = \"2m\"`"),
            );
        }
    };
    if let Some(c) = &raw.concurrency {
        let concurrency = positive(ctx, c, "concurrency", 1_000_000);
        missing_duration(ctx);
        return Some((
            Load::Closed {
                concurrency: concurrency?,
            },
            duration?,
        ));
    }
    let Some(rate) = &raw.rate else {
        if !ctx.was_removed(&rate_path) && !ctx.was_removed(&format!("{path}.concurrency")) {
            ctx.push(
                Diagnostic::new(
                    format!("phase `{name}` has neither `rate` nor `concurrency`"),
                    Some(span.clone()),
                )
                .hint(format!(
                    "add e.g. `rate = {{ shape = \"constant\", rps = 10 }}`: {explained}"
                )),
            );
        }
        missing_duration(ctx);
        return None;
    };
    let arrivals = match raw.arrivals.as_ref().map(|a| *a.get_ref()) {
        None | Some(RawArrivals::Even) => Arrivals::Even,
        Some(RawArrivals::Poisson) => Arrivals::Poisson,
    };
    let rate_span = rate.span();
    let shape = match rate.get_ref() {
        Checked::Invalid(message) => {
            ctx.checked_error(message, &rate_path, rate_span, "shape", rate_example);
            // A steps phase may leave out its duration.
            if ctx.doc.value_str(&format!("{rate_path}.shape")).as_deref() != Some("steps") {
                missing_duration(ctx);
            }
            return None;
        }
        Checked::Valid(shape) => shape,
    };
    let (rate, duration) = match shape {
        RawRate::Steps(s) => {
            let steps = steps(&s.steps, &rate_path, &rate_span, ctx)?;
            let total = steps
                .iter()
                .try_fold(Duration::ZERO, |sum, s| sum.checked_add(s.duration))
                .filter(|total| *total <= MAX_DURATION);
            let Some(total) = total else {
                let max = target_app::duration::format(MAX_DURATION);
                let at = ctx.doc.value_span(&format!("{rate_path}.steps"));
                ctx.push(
                    Diagnostic::new(
                        format!("the steps add up to more than {max}"),
                        at.or(Some(rate_span.clone())),
                    )
                    .expected(format!("steps that last at most {max} (one year) together")),
                );
                return None;
            };
            match (duration, &raw.duration) {
                (Some(d), Some(written)) if d != total => {
                    ctx.push(
                        Diagnostic::new(
                            format!(
                                "the phase lasts {} but its steps add up to {}",
                                target_app::duration::format(d),
                                target_app::duration::format(total)
                            ),
                            Some(written.span()),
                        )
                        .hint("remove `duration`: a steps phase lasts as long as its steps"),
                    );
                    return None;
                }
                (None, Some(_)) => return None,
                _ => (Rate::Steps(steps), total),
            }
        }
        other => {
            let rate = rate_shape(other, &rate_path, &rate_span, duration, ctx);
            missing_duration(ctx);
            (rate?, duration?)
        }
    };
    Some((Load::Open { rate, arrivals }, duration))
}

fn rps(ctx: &mut Ctx<'_>, value: f64, path: &str, fallback: &Range<usize>) -> Option<Rps> {
    let rps = Rps::new(value);
    if rps.is_none() {
        let key = path.rsplit('.').next().unwrap_or(path);
        let problem = if value.is_nan() {
            "is not a number"
        } else if value < 0.0 {
            "must not be negative"
        } else {
            "is too large"
        };
        ctx.push(
            Diagnostic::new(
                format!("`{key}` {problem}, got {value}"),
                ctx.doc.value_span(path).or(Some(fallback.clone())),
            )
            .expected(format!("requests per second, from 0 to {}", Rps::MAX)),
        );
    }
    rps
}

fn text_duration(ctx: &mut Ctx<'_>, text: &str, path: &str, fallback: &Range<usize>) -> Option<Duration> {
    let span = ctx.doc.value_span(path).or(Some(fallback.clone()));
    ctx.duration(text, span, path.rsplit('.').next().unwrap_or(path))
}

fn steps(raw: &[RawStep], path: &str, span: &Range<usize>, ctx: &mut Ctx<'_>) -> Option<Vec<Step>> {
    if raw.is_empty() {
        let at = ctx
            .doc
            .value_span(&format!("{path}.steps"))
            .unwrap_or(span.clone());
        ctx.push(
            Diagnostic::new("a steps rate has no steps", Some(at))
                .hint("add e.g. `steps = [{ rps = 10, duration = \"30s\" }]`"),
        );
        return None;
    }
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("{path}.steps[{i}]");
        let rps = rps(ctx, s.rps, &format!("{at}.rps"), span);
        let duration = text_duration(ctx, &s.duration, &format!("{at}.duration"), span);
        if let (Some(rps), Some(duration)) = (rps, duration) {
            out.push(Step { rps, duration });
        }
    }
    (out.len() == raw.len()).then_some(out)
}

fn rate_shape(
    raw: &RawRate,
    path: &str,
    span: &Range<usize>,
    duration: Option<Duration>,
    ctx: &mut Ctx<'_>,
) -> Option<Rate> {
    let at = |key: &str| format!("{path}.{key}");
    match raw {
        RawRate::Constant(c) => Some(Rate::Constant {
            rps: rps(ctx, c.rps, &at("rps"), span)?,
        }),
        RawRate::Ramp(r) => {
            let (from, to) = (
                rps(ctx, r.from, &at("from"), span),
                rps(ctx, r.to, &at("to"), span),
            );
            Some(Rate::Ramp { from: from?, to: to? })
        }
        RawRate::Spike(s) => {
            let base = rps(ctx, s.base, &at("base"), span);
            let peak = rps(ctx, s.peak, &at("peak"), span);
            let start = target_app::duration::parse(&s.at);
            let start = match start {
                Ok(d) => Some(d),
                Err(_) => text_duration(ctx, &s.at, &at("at"), span),
            };
            let width = text_duration(ctx, &s.width, &at("width"), span);
            if let (Some(start), Some(width), Some(d)) = (start, width, duration) {
                let ends = start.saturating_add(width);
                if ends > d {
                    let fmt = target_app::duration::format;
                    ctx.push(
                        Diagnostic::new(
                            format!("the spike ends at {} but the phase lasts {}", fmt(ends), fmt(d)),
                            ctx.doc.value_span(&at("width")).or(Some(span.clone())),
                        )
                        .hint("the spike must end within the phase: make `at` earlier, `width` shorter or the phase longer"),
                    );
                    return None;
                }
            }
            Some(Rate::Spike {
                base: base?,
                peak: peak?,
                at: start?,
                width: width?,
            })
        }
        RawRate::Sine(s) => {
            let mean = rps(ctx, s.mean, &at("mean"), span);
            let amplitude = rps(ctx, s.amplitude, &at("amplitude"), span);
            let period = text_duration(ctx, &s.period, &at("period"), span);
            let shift = match &s.shift {
                Some(text) => text_duration(ctx, text, &at("shift"), span),
                None => Some(std::time::Duration::ZERO),
            };
            if let (Some(m), Some(a)) = (mean, amplitude) {
                if a > m {
                    ctx.push(
                        Diagnostic::new(
                            format!("`amplitude` {} is more than `mean` {}", a.get(), m.get()),
                            ctx.doc.value_span(&at("amplitude")).or(Some(span.clone())),
                        )
                        .expected("an amplitude from 0 to the mean")
                        .hint("the rate would go below 0: lower `amplitude` or raise `mean`"),
                    );
                    return None;
                }
            }
            Some(Rate::Sine {
                mean: mean?,
                amplitude: amplitude?,
                period: period?,
                shift: shift?,
            })
        }
        RawRate::Steps(_) => None,
    }
}

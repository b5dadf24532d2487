//! Expectation conditions, written the way k6 users write thresholds: `p95 < 300ms`, `error_ratio > 0.25`,
//! `rps >= 45`.
//!
//! A [`Condition`] holds its value in base units (seconds for latencies, 0..1 for ratios), so checking one
//! is a plain comparison with what was measured. This module only parses, prints and compares; measuring
//! belongs to the engine.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// What a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Requests completed in the phase.
    Requests,
    /// Completed requests per second over the phase.
    Rps,
    /// Failed requests / requests.
    ErrorRatio,
    /// Failed requests.
    Errors,
    /// Median latency.
    P50,
    /// 90th percentile latency.
    P90,
    /// 95th percentile latency.
    P95,
    /// 99th percentile latency.
    P99,
    /// 99.9th percentile latency.
    P999,
    /// Largest latency.
    Max,
    /// Mean latency.
    Mean,
    /// Requests started later than scheduled / requests.
    LateRatio,
    /// Requests that could not start before the phase ended.
    Dropped,
}

/// The kind of value a metric has, which decides how its values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number of requests.
    Count,
    /// Requests per second.
    Rate,
    /// A share from 0 to 1.
    Ratio,
    /// A latency, in seconds.
    Latency,
}

impl Metric {
    /// Every metric, in the order used for keyed expectations.
    pub const ALL: [Metric; 13] = [
        Metric::Requests,
        Metric::Rps,
        Metric::ErrorRatio,
        Metric::Errors,
        Metric::P50,
        Metric::P90,
        Metric::P95,
        Metric::P99,
        Metric::P999,
        Metric::Max,
        Metric::Mean,
        Metric::LateRatio,
        Metric::Dropped,
    ];

    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::Rps => "rps",
            Metric::ErrorRatio => "error_ratio",
            Metric::Errors => "errors",
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::P999 => "p999",
            Metric::Max => "max",
            Metric::Mean => "mean",
            Metric::LateRatio => "late_ratio",
            Metric::Dropped => "dropped",
        }
    }

    /// Looks a metric up by name; `p(95)` is accepted for `p95`.
    pub fn from_name(name: &str) -> Option<Metric> {
        let canonical = match name {
            "p(50)" => "p50",
            "p(90)" => "p90",
            "p(95)" => "p95",
            "p(99)" => "p99",
            "p(99.9)" => "p999",
            other => other,
        };
        Metric::ALL.into_iter().find(|m| m.name() == canonical)
    }

    /// How values of this metric are written and compared.
    pub fn kind(self) -> Kind {
        match self {
            Metric::Requests | Metric::Errors | Metric::Dropped => Kind::Count,
            Metric::Rps => Kind::Rate,
            Metric::ErrorRatio | Metric::LateRatio => Kind::Ratio,
            Metric::P50
            | Metric::P90
            | Metric::P95
            | Metric::P99
            | Metric::P999
            | Metric::Max
            | Metric::Mean => Kind::Latency,
        }
    }

    /// The quantile of a percentile metric (`p95` is 0.95).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Metric::P50 => Some(0.5),
            Metric::P90 => Some(0.9),
            Metric::P95 => Some(0.95),
            Metric::P99 => Some(0.99),
            Metric::P999 => Some(0.999),
            _ => None,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Longest spellings first, so `<=` is not read as `<`.
    const SPELLINGS: [(&'static str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        Op::SPELLINGS
            .iter()
            .find(|(_, op)| *op == self)
            .map(|(s, _)| *s)
            .unwrap_or("?")
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// `metric op value`, with `value` in base units: seconds, ratio 0..1, requests, requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// What is compared.
    pub metric: Metric,
    /// How.
    pub op: Op,
    /// With what, in base units.
    pub value: f64,
}

impl Condition {
    /// Whether `observed` (in base units: latencies in seconds) satisfies the condition. NaN never does.
    pub fn holds(&self, observed: f64) -> bool {
        if observed.is_nan() {
            return false;
        }
        let close = (observed - self.value).abs() <= 1e-9 * self.value.abs().max(1.0);
        match self.op {
            Op::Lt => observed < self.value && !close,
            Op::Le => observed <= self.value || close,
            Op::Gt => observed > self.value && !close,
            Op::Ge => observed >= self.value || close,
            Op::Eq => close,
            Op::Ne => !close,
        }
    }

    /// Parses the keyed form, where the metric is the key: `p95 = "< 300ms"`.
    pub fn parse_for(metric: Metric, text: &str) -> Result<Condition, ConditionError> {
        let (op, rest) = parse_op(text, 0)?;
        let value = parse_value(metric.kind(), text, rest)?;
        Ok(Condition { metric, op, value })
    }

    /// The value written the way a scenario file writes it (`300ms`, `0.25`, `45`).
    pub fn value_text(&self) -> String {
        format_value(self.metric.kind(), self.value)
    }
}

impl FromStr for Condition {
    type Err = ConditionError;

    /// Parses the list form: `p95 < 300ms`.
    fn from_str(text: &str) -> Result<Condition, ConditionError> {
        let start = text.len() - text.trim_start().len();
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_().".contains(c)))
            .map_or(text.len(), |i| start + i);
        let name = &text[start..end];
        if name.is_empty() {
            return Err(ConditionError::new(
                "missing metric name",
                start..start,
                "a condition like `p95 < 300ms`, `error_ratio > 0.25` or `rps >= 45`",
            ));
        }
        let metric = Metric::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            let mut e = ConditionError::new(
                format!("unknown metric `{name}`"),
                start..end,
                format!("one of {}", names.join(", ")),
            );
            e.hint = super::diag::did_you_mean(name, names.iter().copied());
            e
        })?;
        let (op, rest) = parse_op(text, end)?;
        let value = parse_value(metric.kind(), text, rest)?;
        Ok(Condition { metric, op, value })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op, self.value_text())
    }
}

/// Why a condition did not parse; `span` is the byte range of the bad part within the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// What is wrong.
    pub message: String,
    /// Where in the condition text.
    pub span: Range<usize>,
    /// What was expected there.
    pub expected: String,
    /// What to write instead, when it is clear.
    pub hint: Option<String>,
}

impl ConditionError {
    fn new(message: impl Into<String>, span: Range<usize>, expected: impl Into<String>) -> Self {
        ConditionError {
            message: message.into(),
            span,
            expected: expected.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Reads the operator starting at `from`; returns it and the offset just after it.
fn parse_op(text: &str, from: usize) -> Result<(Op, usize), ConditionError> {
    let at = from + (text[from..].len() - text[from..].trim_start().len());
    let rest = &text[at..];
    if let Some((spelling, op)) = Op::SPELLINGS.iter().find(|(s, _)| rest.starts_with(s)) {
        return Ok((*op, at + spelling.len()));
    }
    let expected = "a comparison: <, <=, >, >=, == or !=";
    let token_end = rest.find(char::is_whitespace).map_or(text.len(), |i| at + i);
    if rest.starts_with('=') {
        return Err(ConditionError::new("`=` is not a comparison", at..at + 1, expected).hint("write `==`"));
    }
    let message = if rest.is_empty() {
        "missing comparison".to_owned()
    } else {
        format!("expected a comparison, found `{}`", &text[at..token_end])
    };
    let hint = match rest.chars().next() {
        Some(c) if c.is_ascii_digit() => "put an operator before the value, e.g. `< 300ms`",
        _ => "write e.g. `p95 < 300ms`",
    };
    Err(ConditionError::new(message, at..token_end.max(at), expected).hint(hint))
}

/// Reads the value after the operator (from `from` to the end) as a `kind`, in base units.
fn parse_value(kind: Kind, text: &str, from: usize) -> Result<f64, ConditionError> {
    let lead = text[from..].len() - text[from..].trim_start().len();
    let start = from + lead;
    let value = text[start..].trim_end();
    let span = start..start + value.len();
    let bad = |message: String, expected: &str| ConditionError::new(message, span.clone(), expected);
    if value.is_empty() {
        return Err(bad(
            "missing value after the comparison".into(),
            expected_for(kind),
        ));
    }
    let digits = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let number: f64 = match number.parse() {
        Ok(n) if number.chars().next().is_some_and(|c| c.is_ascii_digit()) => n,
        _ if value.starts_with('-') => {
            return Err(bad(format!("`{value}` is negative"), expected_for(kind)));
        }
        _ => return Err(bad(format!("`{value}` is not a number"), expected_for(kind))),
    };
    let too_large = || {
        let max = format_value(kind, max_for(kind));
        bad(format!("`{value}` is more than {max}"), expected_for(kind))
    };
    // Hundreds of digits read as infinity.
    if number.is_infinite() {
        return Err(too_large());
    }
    let base = match kind {
        Kind::Latency => {
            let scale = match unit.trim_start() {
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "" => {
                    return Err(bad(format!("latency `{value}` has no unit"), expected_for(kind))
                        .hint(format!("write `{number}ms` or `{number}s`")))
                }
                other => {
                    return Err(bad(format!("unknown latency unit `{other}`"), expected_for(kind))
                        .hint("use us, ms, s or m"))
                }
            };
            number * scale
        }
        Kind::Ratio => {
            let ratio = match unit.trim_start() {
                "" => number,
                "%" if number <= 100.0 => number / 100.0,
                "%" => return Err(bad(format!("`{value}` is more than 100%"), expected_for(kind))),
                _ => return Err(bad(format!("`{value}` is not a ratio"), expected_for(kind))),
            };
            if ratio > 1.0 {
                let e = bad(format!("ratio {number} is more than 1"), expected_for(kind));
                return Err(if number <= 100.0 {
                    e.hint(format!(
                        "for {number} percent write `{}` or `{number}%`",
                        format_number(number / 100.0)
                    ))
                } else {
                    e
                });
            }
            ratio
        }
        Kind::Rate if unit.is_empty() || unit == "/s" => number,
        Kind::Count if unit.is_empty() && number.fract() == 0.0 => number,
        Kind::Rate | Kind::Count => {
            return Err(bad(
                format!("`{value}` is not a {}", noun(kind)),
                expected_for(kind),
            ))
        }
    };
    if base.is_nan() || base > max_for(kind) {
        return Err(too_large());
    }
    Ok(base)
}

/// The largest value a condition on a metric of this kind may hold, in base units.
fn max_for(kind: Kind) -> f64 {
    match kind {
        // More than a year at the highest rate, and exact in an f64.
        Kind::Count => 1e15,
        Kind::Rate => super::model::Rps::MAX,
        Kind::Ratio => 1.0,
        Kind::Latency => target_app::duration::MAX.as_secs_f64(),
    }
}

fn noun(kind: Kind) -> &'static str {
    match kind {
        Kind::Count => "whole number",
        Kind::Rate => "rate",
        Kind::Ratio => "ratio",
        Kind::Latency => "latency",
    }
}

fn expected_for(kind: Kind) -> &'static str {
    match kind {
        Kind::Count => "a whole number of requests, e.g. `== 0` or `>= 1000`",
        Kind::Rate => "requests per second, e.g. `>= 45`",
        Kind::Ratio => "a ratio from 0 to 1 or a percentage, e.g. `> 0.25` or `> 25%`",
        Kind::Latency => "a latency with a unit, e.g. `< 300ms` or `< 1.5s`",
    }
}

fn format_value(kind: Kind, value: f64) -> String {
    match kind {
        Kind::Latency if value != 0.0 && value < 1.0 => format!("{}ms", format_number(value * 1e3)),
        Kind::Latency => format!("{}s", format_number(value)),
        Kind::Count | Kind::Rate | Kind::Ratio => format_number(value),
    }
}

/// Up to six decimals, trailing zeros dropped, so `0.3 * 1000` prints as `300`.
fn format_number(n: f64) -> String {
    let text = format!("{n:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Numbers at the edges, as text: 0, 1, u64::MAX, hundreds of digits, fractions, negatives.
    fn extreme_number() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("0".to_owned()),
            Just("1".to_owned()),
            Just(u64::MAX.to_string()),
            Just("-1".to_owned()),
            Just("0.0000001".to_owned()),
            Just("1e9".to_owned()),
            Just("NaN".to_owned()),
            "[0-9]{16,400}",
            "[0-9]{1,20}\\.[0-9]{1,20}",
            any::<u64>().prop_map(|n| n.to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn values_are_finite_and_within_the_maxima(
            metric in prop::sample::select(Metric::ALL.to_vec()),
            op in prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]),
            number in extreme_number(),
            unit in prop::sample::select(vec!["", "ms", "s", "m", "us", "%", "/s", "h"]),
        ) {
            let text = format!("{metric} {op} {number}{unit}");
            if let Ok(c) = text.parse::<Condition>() {
                prop_assert!(c.value.is_finite() && c.value >= 0.0, "{text}: {}", c.value);
                prop_assert!(c.value <= max_for(metric.kind()), "{text}: {}", c.value);
            }
        }
    }

    fn parse(text: &str) -> Condition {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    #[test]
    fn parses_and_prints_back() {
        for (text, printed) in [
            ("p95 < 300ms", "p95 < 300ms"),
            ("error_ratio>0.25", "error_ratio > 0.25"),
            ("rps >= 45", "rps >= 45"),
            ("p(99.9) <= 1.5s", "p999 <= 1.5s"),
            ("late_ratio < 1%", "late_ratio < 0.01"),
            ("dropped == 0", "dropped == 0"),
            ("max != 2m", "max != 120s"),
            ("mean < 500us", "mean < 0.5ms"),
        ] {
            assert_eq!(parse(text).to_string(), printed);
            assert_eq!(parse(printed).to_string(), printed, "display must parse back");
        }
    }

    #[test]
    fn values_are_in_base_units() {
        assert_eq!(parse("p95 < 300ms").value, 0.3);
        assert_eq!(parse("error_ratio > 25%").value, 0.25);
        assert_eq!(Condition::parse_for(Metric::P99, "< 2s").unwrap().value, 2.0);
    }

    #[test]
    fn numbers_too_large_for_a_float_are_refused() {
        let huge = "9".repeat(400);
        for text in [
            format!("p95 < {huge}s"),
            format!("errors < {huge}"),
            format!("rps > {huge}"),
            format!("error_ratio < {huge}%"),
        ] {
            let e = text.parse::<Condition>().unwrap_err();
            assert!(e.message.contains("is more than"), "{text}: {}", e.message);
        }
    }

    #[test]
    fn holds_compares() {
        let c = parse("p95 < 300ms");
        assert!(c.holds(0.299));
        assert!(!c.holds(0.3));
        assert!(!c.holds(f64::NAN));
        assert!(parse("error_ratio >= 0.3").holds(0.3));
        assert!(parse("errors == 0").holds(0.0));
        assert!(parse("errors != 0").holds(1.0));
        assert!(parse("rps > 45").holds(45.5));
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        let cases = [
            ("p96 < 1s", 0..3, "unknown metric `p96`"),
            ("p95 = 1s", 4..5, "`=` is not a comparison"),
            ("p95 < 300", 6..9, "latency `300` has no unit"),
            ("error_ratio > 1.5", 14..17, "ratio 1.5 is more than 1"),
            ("requests > 1.5", 11..14, "`1.5` is not a whole number"),
            ("rps >= -3", 7..9, "`-3` is negative"),
            ("rps", 3..3, "missing comparison"),
            ("p95 < 31536001s", 6..15, "`31536001s` is more than 31536000s"),
            (
                "requests > 1000000000000001",
                11..27,
                "`1000000000000001` is more than 1000000000000000",
            ),
            ("rps > 10000001", 6..14, "`10000001` is more than 10000000"),
        ];
        for (text, span, message) in cases {
            let e = text.parse::<Condition>().unwrap_err();
            assert_eq!((e.span, e.message.as_str()), (span, message), "{text}");
        }
    }
}

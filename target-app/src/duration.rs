//! Human-friendly durations (`250ms`, `90s`, `2m`, `1m30s`, `1h`) shared by the chaos API and scenario files.
//!
//! Parsing is strict: a number must carry a unit, and only whole numbers are accepted, so `1.5s` is
//! written `1500ms`. This module only converts text; it does not decide what values are sensible.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`: {problem} (write e.g. `250ms`, `90s`, `2m`, `1m30s`)")]
pub struct ParseDurationError {
    text: String,
    problem: &'static str,
}

/// Parses `250ms`, `90s`, `2m`, `1h`, and sums like `1m30s`.
pub fn parse(text: &str) -> Result<Duration, ParseDurationError> {
    let fail = |problem| ParseDurationError {
        text: text.to_owned(),
        problem,
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(fail("expected a whole number followed by a unit"));
        }
        let value: u64 = rest[..digits].parse().map_err(|_| fail("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "" => return Err(fail("missing unit (ms, s, m or h)")),
            _ => return Err(fail("unknown unit (use ms, s, m or h)")),
        };
        total = total.checked_add(part).ok_or_else(|| fail("too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats a duration the way [`parse`] reads it back, using the largest exact unit.
pub fn format(d: Duration) -> String {
    Display(d).to_string()
}

/// Wrapper that displays a duration in the same spelling that [`parse`] accepts.
pub struct Display(pub Duration);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        let secs = ms / 1000;
        match (secs / 3600, (secs % 3600) / 60, secs % 60) {
            (h, 0, 0) if h > 0 => write!(f, "{h}h"),
            (0, m, 0) if m > 0 => write!(f, "{m}m"),
            (0, 0, s) => write!(f, "{s}s"),
            (h, m, s) => {
                if h > 0 {
                    write!(f, "{h}h")?;
                }
                if m > 0 {
                    write!(f, "{m}m")?;
                }
                if s > 0 {
                    write!(f, "{s}s")?;
                }
                Ok(())
            }
        }
    }
}

/// `serde(with = "target_app::duration::serde_text")` for a `Duration` field written as text.
pub mod serde_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Display(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "10", "s", "1.5s", "10 parsecs", "-1s", "5d"] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "45s", "2m", "1h", "1m30s", "1500ms", "0s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}

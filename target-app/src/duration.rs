//! Human-friendly durations (`250ms`, `90s`, `2m`, `1m30s`, `1h`) shared by the chaos API and scenario files.
//!
//! Parsing is strict: a number must carry a unit, and only whole numbers are accepted, so `1.5s` is
//! written `1500ms`. Nothing longer than [`MAX`] is accepted, so sums of a few parsed durations and
//! `Instant + duration` cannot overflow. This module only converts text; what is sensible for a
//! particular setting is decided where it is used.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The longest duration [`parse`] accepts: one year of 365 days, written `8760h`.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// The text is not a duration.
    #[error("invalid duration `{text}`: {problem} (write e.g. `250ms`, `90s`, `2m`, `1m30s`)")]
    Invalid {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The text is a duration, but longer than [`MAX`].
    #[error("duration `{text}` is too long: at most {} (one year)", Display(MAX))]
    TooLong {
        /// The text as given.
        text: String,
    },
}

/// Parses `250ms`, `90s`, `2m`, `1h`, and sums like `1m30s`, up to [`MAX`].
pub fn parse(text: &str) -> Result<Duration, ParseDurationError> {
    let invalid = |problem| ParseDurationError::Invalid {
        text: text.to_owned(),
        problem,
    };
    let too_long = || ParseDurationError::TooLong {
        text: text.to_owned(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected a whole number followed by a unit"));
        }
        // Only digits: a number that does not fit is simply too large.
        let value: Option<u64> = rest[..digits].parse().ok();
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds_per = match &rest[..unit_len] {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "" => return Err(invalid("missing unit (ms, s, m or h)")),
            _ => return Err(invalid("unknown unit (use ms, s, m or h)")),
        };
        let part = match seconds_per {
            None => value.map(Duration::from_millis),
            Some(n) => value.and_then(|v| v.checked_mul(n)).map(Duration::from_secs),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .filter(|t| *t <= MAX)
            .ok_or_else(too_long)?;
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
    use proptest::prelude::*;

    use super::*;

    /// Durations as a user might type them: extreme numbers (0, 1, u64::MAX, hundreds of digits) with
    /// every unit and some that are not, several parts, and arbitrary text.
    fn typed() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            Just(0u64),
            Just(1),
            Just(u64::MAX),
            Just(u64::MAX / 60),
            Just(MAX.as_secs()),
            Just(MAX.as_secs() + 1),
            any::<u64>(),
        ]
        .prop_map(|n| n.to_string());
        let digits = prop_oneof![number, "[0-9]{20,400}", Just("-1".to_owned())];
        let unit = prop_oneof![
            Just("ms"),
            Just("s"),
            Just("m"),
            Just("h"),
            Just(""),
            Just("d"),
            Just(".5s"),
            Just(" s")
        ];
        let part = (digits, unit).prop_map(|(n, u)| format!("{n}{u}"));
        prop_oneof![
            prop::collection::vec(part, 1..4).prop_map(|parts| parts.concat()),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn parsing_never_panics_and_stays_within_the_maximum(text in typed()) {
            if let Ok(d) = parse(&text) {
                prop_assert!(d <= MAX, "{text} gave {d:?}");
                prop_assert_eq!(parse(&format(d)), Ok(d));
            }
        }
    }

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
    fn refuses_more_than_a_year() {
        assert_eq!(parse("8760h"), Ok(MAX));
        assert_eq!(parse("525600m"), Ok(MAX));
        for long in [
            "8760h1ms",
            "31536001s",
            "18446744073709551615s",
            "18446744073709551615m",
            "18446744073709551615h",
            "99999999999999999999999ms",
            "8760h8760h",
        ] {
            assert!(
                matches!(parse(long), Err(ParseDurationError::TooLong { .. })),
                "{long}: {:?}",
                parse(long)
            );
        }
        let message = parse("9000h").unwrap_err().to_string();
        assert_eq!(message, "duration `9000h` is too long: at most 8760h (one year)");
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "45s", "2m", "1h", "1m30s", "1500ms", "0s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}

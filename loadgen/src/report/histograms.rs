//! HDR histograms in the JSON report: each [`crate::engine::stats::Stats`] histogram written with the
//! HdrHistogram V2 encoding, base64, so `loadgen merge` adds the shards' histograms and reads percentiles
//! from the sum instead of averaging percentiles. Decoding never trusts the file: a bad value is an error,
//! not a panic.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::engine::stats::Stats;

/// The histograms of one set of requests (microseconds), V2-encoded and base64.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histograms {
    /// Latency from the intended send time.
    pub corrected: String,
    /// Latency from the actual send time.
    pub uncorrected: String,
    /// Schedule lag.
    pub lag: String,
    /// Connection set-up times (absent in reports without new connections, and in older ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<String>,
}

/// Why a report's histogram could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not a V2-encoded HDR histogram: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
    #[error("histogram does not fit the report's range: {0:?}")]
    Range(hdrhistogram::AdditionError),
}

impl Histograms {
    /// The histograms of `stats`.
    pub fn of(stats: &Stats) -> Histograms {
        Histograms {
            corrected: encode(&stats.corrected),
            uncorrected: encode(&stats.uncorrected),
            lag: encode(&stats.lag),
            handshake: (!stats.handshake.is_empty()).then(|| encode(&stats.handshake)),
        }
    }

    /// Statistics holding these histograms (and no counts).
    pub fn stats(&self) -> Result<Stats, HistogramError> {
        let mut stats = Stats::default();
        for (text, into) in [
            (&self.corrected, &mut stats.corrected),
            (&self.uncorrected, &mut stats.uncorrected),
            (&self.lag, &mut stats.lag),
        ] {
            into.add(decode(text)?).map_err(HistogramError::Range)?;
        }
        if let Some(text) = &self.handshake {
            stats
                .handshake
                .add(decode(text)?)
                .map_err(HistogramError::Range)?;
        }
        Ok(stats)
    }
}

/// V2 encoding, base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail, and a histogram of u64 always fits the V2 format.
    let _ = V2Serializer::new().serialize(h, &mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// The inverse of [`encode`].
pub fn decode(text: &str) -> Result<Histogram<u64>, HistogramError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistogramError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_exactly() {
        let mut stats = Stats::default();
        for v in [1u64, 250, 1_000, 1_001, 99_999, 3_000_000] {
            stats.corrected.record(v).unwrap();
            stats.uncorrected.record(v / 2 + 1).unwrap();
            stats.lag.record(v % 7 + 1).unwrap();
            stats.handshake.record(v / 3 + 1).unwrap();
        }
        let back = Histograms::of(&stats).stats().unwrap();
        assert_eq!(back.corrected, stats.corrected);
        assert_eq!(back.uncorrected, stats.uncorrected);
        assert_eq!(back.lag, stats.lag);
        assert_eq!(back.handshake, stats.handshake);
        assert!(decode("not base64!").is_err());
        assert!(decode("AAAA").is_err());
    }
}

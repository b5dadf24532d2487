//! Free play (`loadgen run --rps R`): no scenario file, one phase sending `GET /` at a starting rate for
//! up to [`LENGTH`], to be steered live and stopped by hand. The scenario is written as TOML text and
//! read like any file, so `--record` keeps that text with the phases as they ran.

use std::time::Duration;

use crate::scenario::{Rps, Scenario};

/// How long free play lasts unless stopped (or extended).
pub const LENGTH: Duration = Duration::from_secs(24 * 3600);

/// Why free play cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FreePlayError {
    #[error("--rps {0}: expected requests per second from 0 to {max}", max = Rps::MAX)]
    Rate(f64),
    #[error("--seed {0}: free play keeps seeds up to {max} (a TOML integer)", max = i64::MAX)]
    Seed(u64),
    #[error("free play: {0}")]
    Scenario(String),
}

/// The free-play scenario at `rps`, and its text.
pub fn scenario(rps: f64, seed: Option<u64>) -> Result<(Scenario, String), FreePlayError> {
    if Rps::new(rps).is_none() || !rps.is_finite() {
        return Err(FreePlayError::Rate(rps));
    }
    let seed = seed.unwrap_or(1);
    if i64::try_from(seed).is_err() {
        return Err(FreePlayError::Seed(seed));
    }
    let text = format!(
        r#"name = "free-play"
description = "Free play: one phase at a starting rate, steered live until stopped."
seed = {seed}

[[mix]]
path = "/"

[[phases]]
name = "free"
duration = "{length}"
rate = {{ shape = "constant", rps = {rps:?} }}
"#,
        length = target_app::duration::format(LENGTH),
    );
    let scenario = crate::scenario::parse(&text, "free-play.toml")
        .map_err(|d| FreePlayError::Scenario(d.to_string()))?;
    Ok((scenario, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_play_is_one_long_phase_at_the_rate() {
        let (s, text) = scenario(20.0, Some(5)).unwrap();
        assert_eq!((s.phases.len(), s.seed, s.duration()), (1, 5, LENGTH), "{text}");
        assert!(matches!(
            &s.phases[0].load,
            crate::scenario::Load::Open {
                rate: crate::scenario::Rate::Constant { rps },
                ..
            } if rps.get() == 20.0
        ));
        assert!(matches!(scenario(-1.0, None), Err(FreePlayError::Rate(_))));
        assert!(matches!(scenario(f64::NAN, None), Err(FreePlayError::Rate(_))));
        assert!(matches!(
            scenario(1.0, Some(u64::MAX)),
            Err(FreePlayError::Seed(_))
        ));
    }
}

use std::time::Duration;

use super::*;
use crate::scenario;

fn scenario_with(phases: &str) -> Scenario {
    let text = format!(
        "seed = 42\n[[mix]]\npath = \"/\"\nweight = 6\n[[mix]]\npath = \"/external\"\nweight = 3\n[[mix]]\npath = \"/slow\"\n{phases}"
    );
    scenario::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn phase(duration: &str, rate: &str) -> String {
    format!("[[phases]]\nduration = \"{duration}\"\nrate = {rate}\n")
}

fn offsets(s: &Scenario) -> Vec<f64> {
    Schedule::new(s).map(|a| a.offset.as_secs_f64()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn constant_even_arrivals_are_exactly_spaced() {
    let s = scenario_with(&phase("60s", "{ shape = \"constant\", rps = 50 }"));
    let all: Vec<Arrival> = Schedule::new(&s).collect();
    assert_eq!(all.len(), 3000);
    for (k, a) in all.iter().enumerate() {
        assert_eq!(a.number, k as u64);
        assert_eq!(a.offset, Duration::from_millis(20 * k as u64), "request {k}");
    }
}

#[test]
fn ramp_matches_its_formula() {
    // λ(t) = 10 + 90t/60, so Λ(t) = 10t + 0.75t²; request k at the root of 0.75t² + 10t − k = 0.
    let s = scenario_with(&phase("60s", "{ shape = \"ramp\", from = 10, to = 100 }"));
    let got = offsets(&s);
    assert_eq!(got.len(), 10 * 60 + 45 * 60);
    for (k, t) in got.iter().enumerate() {
        let want = (-10.0 + (100.0 + 3.0 * k as f64).sqrt()) / 1.5;
        assert!(close(*t, want), "request {k}: {t} != {want}");
    }
}

#[test]
fn steps_spike_and_sine_match_their_formulas() {
    let s = scenario_with(&format!(
        "[[phases]]\nrate = {{ shape = \"steps\", steps = [{{ rps = 10, duration = \"10s\" }}, {{ rps = 40, duration = \"5s\" }}] }}\n{}{}",
        phase("60s", "{ shape = \"spike\", base = 5, peak = 100, at = \"20s\", width = \"10s\" }"),
        phase("60s", "{ shape = \"sine\", mean = 20, amplitude = 10, period = \"30s\" }"),
    ));
    let all: Vec<Arrival> = Schedule::new(&s).collect();
    let by_phase = |p: usize| {
        all.iter()
            .filter(move |a| a.phase == p)
            .map(|a| a.offset.as_secs_f64())
    };

    let steps: Vec<f64> = by_phase(0).collect();
    assert_eq!(steps.len(), 100 + 200);
    for (k, t) in steps.iter().enumerate() {
        let want = if k < 100 {
            k as f64 / 10.0
        } else {
            10.0 + (k - 100) as f64 / 40.0
        };
        assert!(close(*t, want), "step request {k}: {t} != {want}");
    }

    let spike: Vec<f64> = by_phase(1).collect();
    assert_eq!(spike.len(), 5 * 50 + 100 * 10);
    for (k, t) in spike.iter().enumerate() {
        let k = k as f64;
        let want = match k {
            k if k < 100.0 => k / 5.0,
            k if k < 1100.0 => 20.0 + (k - 100.0) / 100.0,
            k => 30.0 + (k - 1100.0) / 5.0,
        };
        assert!(close(*t, want), "spike request {k}: {t} != {want}");
    }

    // Λ(t) = 20t + 10·30/(2π)·(1 − cos(2πt/30)); check Λ(t_k) = k.
    let sine: Vec<f64> = by_phase(2).collect();
    assert_eq!(sine.len(), 1200);
    let w = std::f64::consts::TAU / 30.0;
    for (k, t) in sine.iter().enumerate() {
        let cumulative = 20.0 * t + 10.0 / w * (1.0 - (w * t).cos());
        assert!(
            (cumulative - k as f64).abs() < 1e-4,
            "sine request {k}: Λ({t}) = {cumulative}"
        );
    }
}

#[test]
fn numbers_run_across_phases_and_offsets_stay_in_their_phase() {
    let s = scenario_with(&format!(
        "{}{}[[phases]]\nduration = \"5s\"\nconcurrency = 3\n{}",
        phase("10s", "{ shape = \"constant\", rps = 7 }"),
        phase("3s", "{ shape = \"constant\", rps = 0.5 }"),
        phase("10s", "{ shape = \"constant\", rps = 2 }"),
    ));
    let all: Vec<Arrival> = Schedule::new(&s).collect();
    assert_eq!(
        all.iter().map(|a| a.number).collect::<Vec<_>>(),
        (0..70 + 2 + 20).collect::<Vec<_>>()
    );
    assert!(all.iter().all(|a| a.offset <= s.phases[a.phase].duration));
    assert!(
        all.iter().all(|a| a.phase != 2),
        "a closed-loop phase has no schedule"
    );
    let last: Vec<Arrival> = PhaseStarts::new(&s).phase(&s, 3, Shard::WHOLE).collect();
    assert_eq!(last.first().map(|a| a.number), Some(72));
    assert_eq!(last, all[72..]);
    assert_eq!(
        Schedule::starting_at(&s, 1, Shard::WHOLE).collect::<Vec<_>>(),
        all[70..]
    );
}

#[test]
fn poisson_has_the_right_mean_rate() {
    let s = scenario_with(&format!(
        "{}arrivals = \"poisson\"\n{}arrivals = \"poisson\"\n",
        phase("100s", "{ shape = \"constant\", rps = 1000 }"),
        phase("100s", "{ shape = \"ramp\", from = 0, to = 200 }"),
    ));
    let all: Vec<Arrival> = Schedule::new(&s).collect();
    let constant = all.iter().filter(|a| a.phase == 0).count() as f64;
    // 100 000 expected; the standard deviation is about 316.
    assert!((constant - 100_000.0).abs() < 1_500.0, "{constant}");
    // Ramp: Λ(50) = 2500 of Λ(100) = 10000; each count within ~5 standard deviations.
    let ramp: Vec<f64> = all
        .iter()
        .filter(|a| a.phase == 1)
        .map(|a| a.offset.as_secs_f64())
        .collect();
    let first_half = ramp.iter().filter(|t| **t < 50.0).count() as f64;
    assert!((ramp.len() as f64 - 10_000.0).abs() < 500.0, "{}", ramp.len());
    assert!((first_half - 2_500.0).abs() < 250.0, "{first_half}");
    // Gaps are exponential: about 63.2% of them are shorter than the mean.
    let phase0: Vec<f64> = all
        .iter()
        .filter(|a| a.phase == 0)
        .map(|a| a.offset.as_secs_f64())
        .collect();
    let short = phase0.windows(2).filter(|w| w[1] - w[0] < 0.001).count() as f64 / phase0.len() as f64;
    assert!((short - (1.0 - (-1.0f64).exp())).abs() < 0.01, "{short}");
    assert!(phase0.windows(2).all(|w| w[0] <= w[1]), "arrivals in time order");
}

#[test]
fn same_seed_same_schedule() {
    let text = |seed: u64| {
        format!(
            "seed = {seed}\n[[mix]]\npath = \"/\"\n[[mix]]\npath = \"/slow\"\n{}arrivals = \"poisson\"\n",
            phase(
                "20s",
                "{ shape = \"sine\", mean = 50, amplitude = 25, period = \"10s\" }"
            )
        )
    };
    let run = |seed| {
        let s = scenario::parse(&text(seed), "t.toml").unwrap();
        Schedule::new(&s).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn shards_partition_the_schedule() {
    let s = scenario_with(&format!(
        "{}{}arrivals = \"poisson\"\n[[phases]]\nduration = \"1s\"\nconcurrency = 2\n{}",
        phase("10s", "{ shape = \"ramp\", from = 5, to = 50 }"),
        phase("10s", "{ shape = \"constant\", rps = 33 }"),
        phase("5s", "{ shape = \"constant\", rps = 10 }"),
    ));
    let whole: Vec<Arrival> = Schedule::new(&s).collect();
    for n in [1, 2, 3, 7] {
        let mut union: Vec<Arrival> = (0..n)
            .flat_map(|i| {
                let shard = Shard::new(i, n).unwrap();
                let part: Vec<Arrival> = Schedule::new(&s).shard(shard).collect();
                assert!(part.iter().all(|a| a.number % n == i));
                part
            })
            .collect();
        union.sort_by_key(|a| a.number);
        assert_eq!(union, whole, "{n} shards");
    }
}

/// The arrivals and picks of each phase, started from the counted starts, are the whole run's.
#[test]
fn phases_started_from_their_counted_starts_are_the_whole_run() {
    let s = scenario_with(&format!(
        "{}arrivals = \"poisson\"\n{}[[phases]]\nduration = \"1s\"\nconcurrency = 2\n{}arrivals = \"poisson\"\n{}",
        phase("10s", "{ shape = \"constant\", rps = 37 }"),
        phase("7s", "{ shape = \"ramp\", from = 3, to = 41 }"),
        phase("9s", "{ shape = \"sine\", mean = 30, amplitude = 20, period = \"4s\" }"),
        phase("2500ms", "{ shape = \"constant\", rps = 13 }"),
    ));
    let starts = PhaseStarts::new(&s);
    let whole: Vec<Arrival> = Schedule::new(&s).collect();
    assert_eq!(starts.total(), whole.len() as u64);
    for index in 0..s.phases.len() {
        let before = whole.iter().filter(|a| a.phase < index).count() as u64;
        assert_eq!(starts.first_number(index), before, "phase {index}");
    }
    // A Poisson count is not its expectation: the draws decide it.
    let poisson = whole.iter().filter(|a| a.phase == 0).count() as u64;
    assert_eq!(starts.first_number(1), poisson);
    assert_eq!(arrival_count(&s, 0), poisson);
    for n in [1u64, 2, 3, 7] {
        for i in 0..n {
            let shard = Shard::new(i, n).unwrap();
            let mine: Vec<Arrival> = whole
                .iter()
                .filter(|a| shard.contains(a.number))
                .copied()
                .collect();
            let by_phase: Vec<Arrival> = (0..s.phases.len())
                .flat_map(|index| starts.phase(&s, index, shard))
                .collect();
            assert_eq!(by_phase, mine, "shard {shard}, phase by phase");
            assert_eq!(
                Schedule::new(&s).shard(shard).collect::<Vec<_>>(),
                mine,
                "shard {shard}"
            );
            for index in 0..s.phases.len() {
                assert_eq!(
                    Schedule::starting_at(&s, index, shard).collect::<Vec<_>>(),
                    mine.iter()
                        .filter(|a| a.phase >= index)
                        .copied()
                        .collect::<Vec<_>>(),
                    "shard {shard} from phase {index}"
                );
            }
        }
    }
    for a in &whole {
        assert_eq!(
            a.request,
            crate::schedule::pick(&s.phases[a.phase].mix, s.seed, a.number)
        );
    }
}

#[test]
fn mix_weights_hold_exactly_per_block() {
    let s = scenario_with(&phase("100s", "{ shape = \"constant\", rps = 100 }"));
    let mix = &s.phases[0].mix;
    assert_eq!(mix.total_weight(), 10);
    let mut counts = [0u64; 3];
    for a in Schedule::new(&s) {
        counts[a.request] += 1;
    }
    assert_eq!(counts, [6000, 3000, 1000]);
    for block in 0..50u64 {
        let mut per_block = [0; 3];
        for number in block * 10..block * 10 + 10 {
            per_block[crate::schedule::pick(mix, s.seed, number)] += 1;
        }
        assert_eq!(per_block, [6, 3, 1]);
    }
    let order: Vec<usize> = (0..20).map(|n| crate::schedule::pick(mix, s.seed, n)).collect();
    assert_ne!(order[..10], order[10..], "blocks are shuffled differently");
    assert_eq!(
        order,
        (0..20)
            .map(|n| crate::schedule::pick(mix, s.seed, n))
            .collect::<Vec<_>>()
    );
}

#[test]
fn shard_parses_from_text() {
    assert_eq!("2/4".parse::<Shard>(), Ok(Shard::new(2, 4).unwrap()));
    assert_eq!(Shard::new(2, 4).unwrap().to_string(), "2/4");
    for bad in ["4/4", "1", "a/b", "0/0", "-1/3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[test]
fn a_scenario_may_schedule_at_most_a_billion_requests() {
    let at = |rps: u64| {
        crate::scenario::parse(
            &format!(
                "name = \"n\"\n[[mix]]\npath = \"/\"\n[[phases]]\nname = \"p\"\nduration = \"1000s\"\n\
                 rate = {{ shape = \"constant\", rps = {rps} }}\narrivals = \"poisson\"\n"
            ),
            "n.toml",
        )
        .unwrap()
    };
    assert!(super::check_size(&at(1_000_000)).is_ok(), "exactly the most");
    let e = super::check_size(&at(1_000_001)).unwrap_err();
    assert!(e.contains("about 1.000e9 requests; at most 1e9"), "{e}");
}

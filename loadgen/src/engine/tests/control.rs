//! Live control under paused time: orders given at set instants change the rate, pause, end or
//! extend a phase and switch faults exactly then; the pieces the run was split into, run again as a
//! scenario, send the same requests at the same instants with the same fault windows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use target_app::chaos::Fault;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{scenario, Scripted};
use crate::client::chaos::ChaosError;
use crate::engine::{Driven, Ending, Engine, Faults, Pacing};
use crate::scenario::Scenario;
use crate::schedule::{PhaseStarts, Shard};
use crate::shared::control::{self, Change, Command, RateSet, Unapplied};
use crate::shared::Timeline;

/// Records which fault kinds were put in force, and when.
#[derive(Default)]
struct Switches {
    calls: Mutex<Vec<(Duration, Vec<&'static str>)>>,
    start: Mutex<Option<Instant>>,
}

impl Switches {
    fn log(&self, kinds: Vec<&'static str>) {
        let at = self.start.lock().unwrap().expect("start set").elapsed();
        self.calls.lock().unwrap().push((at, kinds));
    }
}

impl Faults for &Switches {
    async fn apply(&self, _seed: u64, faults: &[Fault]) -> Result<(), ChaosError> {
        self.log(faults.iter().map(Fault::kind).collect());
        Ok(())
    }

    async fn clear(&self) -> Result<(), ChaosError> {
        self.log(Vec::new());
        Ok(())
    }
}

struct Steered {
    ending: Ending,
    timeline: Timeline,
    driven: Driven,
    /// When each request was sent, from the start.
    sends: Vec<Duration>,
    /// When each request was due and which request of the mix it was, in order.
    requests: Vec<(Duration, usize)>,
    /// The schedule as it stood after the last change.
    planned: Arc<Scenario>,
    /// The answer to each order, in order.
    answers: Vec<Result<Change, Unapplied>>,
    switches: Vec<(Duration, Vec<&'static str>)>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `scenario`, giving each order of `script` at its time from the start.
async fn steered(scenario: Arc<Scenario>, script: Vec<(Duration, Command)>) -> Steered {
    let switches = Switches::default();
    let transport = Scripted::new(ms(10));
    let (control, steer) = control::channel();
    let (planned_tx, planned_rx) = watch::channel(scenario.clone());
    let (samples_tx, mut samples) = tokio::sync::mpsc::unbounded_channel();
    let (_stop_tx, stop) = watch::channel(false);
    let start = Instant::now();
    *switches.start.lock().unwrap() = Some(start);
    let orders = tokio::spawn(async move {
        let mut answers = Vec::new();
        for (at, command) in script {
            tokio::time::sleep_until(start + at).await;
            answers.push(steer.give(command, "test").await);
        }
        answers
    });
    let engine = Engine {
        starts: PhaseStarts::new(&scenario),
        scenario,
        client: transport.clone(),
        chaos: Some(&switches),
        shard: Shard::WHOLE,
        samples: Arc::new(samples_tx),
        stop,
        position: watch::channel(Default::default()).0,
        start,
        drain: Duration::from_secs(1),
        pacing: Pacing::Timer,
        control: Some(control),
        planned: Some(planned_tx),
    };
    let (result, timeline, driven) = engine.run_driven().await;
    let answers = orders.await.expect("the orders were given");
    let switches = switches.calls.lock().unwrap().clone();
    let mut requests = Vec::new();
    while let Ok(s) = samples.try_recv() {
        requests.push((s.intended - start, s.request));
    }
    requests.sort();
    let planned = planned_rx.borrow().clone();
    Steered {
        planned,
        requests,
        ending: result.expect("the run went through"),
        timeline,
        driven,
        sends: transport.sends(),
        answers,
        switches,
    }
}

/// When the orders of [`script`] are given, in milliseconds (tokio's timers tick by the millisecond):
/// spaced unevenly, so that no order ties with an arrival of the piece before it.
const AT: [u64; 10] = [2053, 4071, 5034, 6047, 8012, 9023, 12_032, 15_043, 16_020, 17_027];

fn at(i: usize) -> Duration {
    ms(AT[i])
}

const THREE_PHASES: &str = r#"name = "steered"
seed = 7
[[mix]]
path = "/"
weight = 3
[[mix]]
path = "/external"
weight = 2
[[phases]]
name = "a"
duration = "10s"
rate = { shape = "constant", rps = 10 }
[[phases]]
name = "b"
duration = "10s"
rate = { shape = "ramp", from = 10, to = 30 }
[[phases]]
name = "c"
duration = "5s"
rate = { shape = "constant", rps = 10 }
chaos = [{ fault = "latency", ratio = 0.5, delay = "100ms" }]
"#;

fn script() -> Vec<(Duration, Command)> {
    let error: Fault = serde_json::from_str(r#"{"fault": "error", "status": 503, "ratio": 0.5}"#).unwrap();
    let commands = [
        Command::Rate {
            set: RateSet::Rps(20.0),
        },
        Command::Pause,
        Command::Resume,
        Command::FaultOn { fault: error },
        Command::FaultOff { kind: "error".into() },
        Command::Rate {
            set: RateSet::Factor(1.0),
        },
        Command::Rate {
            set: RateSet::Factor(2.0),
        },
        Command::EndPhase,
        Command::FaultOff {
            kind: "latency".into(),
        },
        Command::Extend { by: ms(2000) },
    ];
    commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| (at(i), c))
        .collect()
}

fn count(sends: &[Duration], from: Duration, to: Duration) -> usize {
    sends.iter().filter(|t| **t >= from && **t < to).count()
}

#[tokio::test(start_paused = true)]
async fn each_change_applies_at_the_instant_it_is_given() {
    let out = steered(scenario(THREE_PHASES), script()).await;
    assert_eq!(out.ending, Ending::Completed);
    let given: Vec<Duration> = out
        .answers
        .iter()
        .map(|a| Duration::from_secs_f64(a.as_ref().expect("applied").at_s))
        .collect();
    let want: Vec<Duration> = (0..AT.len()).map(at).collect();
    for (g, w) in given.iter().zip(&want) {
        assert!(g.abs_diff(*w) < Duration::from_nanos(10), "{given:?}");
    }
    assert_eq!(out.timeline.changes.len(), 10);
    assert_eq!(out.timeline.changes[7].text, "end phase");

    let n = |from: Duration, to: Duration| count(&out.sends, from, to);
    // 10 rps until the first order (0, 0.1 … 2.0 s), then 20 rps, then nothing while paused.
    assert_eq!(n(ms(0), at(0)), 21);
    assert_eq!(n(at(0), at(1)), 41, "20 rps for 2.018 s");
    assert_eq!(n(at(1), at(2)), 0, "paused");
    assert!(out.sends.contains(&at(2)), "resumed at once");
    // 20 rps holds across the fault switches: each piece starts with an arrival.
    assert_eq!(n(at(2), at(3)), 21);
    assert_eq!(n(at(3), at(4)), 40);
    assert_eq!(n(at(4), at(5)), 21);
    assert_eq!(n(at(5), ms(10_000)), 10, "back to the curve: 10 rps");
    // Phase b: the ramp 10 → 30 over 10 s (Λ(t) = 10t + t²): 25 arrivals before the factor, then
    // 2·(Λ(5.043) − Λ(2.032)) = 102.8 until the phase is ended.
    assert_eq!(n(ms(10_000), at(6)), 25);
    assert_eq!(n(at(6), at(7)), 103);
    // Phase c, 10 rps written, doubled: the factor holds until set again. 5 s written, 2 s more from
    // the extension; a new piece at each order: 20 + 21 + 61 + 40.
    let c_end = at(7) + ms(7000);
    assert_eq!(n(at(7), c_end), 142);
    assert_eq!(
        n(at(7) + ms(5000), c_end),
        40,
        "the extension holds the last rate"
    );
    assert!(out.sends.iter().all(|t| *t < c_end));

    let spans: Vec<(Duration, Duration)> = out.timeline.phases.clone();
    assert_eq!(spans, [(ms(0), ms(10_000)), (ms(10_000), at(7)), (at(7), c_end)]);

    // Faults: the error fault from the 4th order to the 5th; phase c's latency until switched off;
    // everything cleared at the end.
    assert_eq!(
        out.switches,
        [
            (at(3), vec!["error"]),
            (at(4), vec![]),
            (at(7), vec!["latency"]),
            (at(8), vec![]),
            (c_end, vec![]),
        ]
    );
    assert_eq!(out.timeline.faults, [(0, at(3), at(4)), (2, at(7), at(8))]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_order_names_its_field_and_changes_nothing() {
    let bad: Fault = serde_json::from_str(r#"{"fault": "error", "ratio": 1.5}"#).unwrap();
    let script = vec![
        (ms(1050), Command::Resume),
        (
            ms(1050),
            Command::Rate {
                set: RateSet::Factor(1000.0),
            },
        ),
        (ms(1050), Command::FaultOn { fault: bad }),
        (
            ms(1050),
            Command::FaultOff {
                kind: "latency".into(),
            },
        ),
        (ms(1050), Command::Extend { by: Duration::ZERO }),
    ];
    let out = steered(scenario(THREE_PHASES), script).await;
    let fields: Vec<String> = out
        .answers
        .iter()
        .map(|a| match a {
            Err(Unapplied::Refused(r)) => r.field.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(fields, ["action", "factor", "fault.ratio", "kind", "by"]);
    assert!(out.timeline.changes.is_empty());
    assert_eq!(out.driven.pieces.len(), 3, "no phase was split");
    assert_eq!(count(&out.sends, ms(0), ms(10_000)), 100);
}

/// The pieces of a run as a scenario of their own (what `--record` writes: the report's recording
/// tests check that the file reads back as these pieces).
fn as_scenario(of: &Scenario, driven: &Driven) -> Arc<Scenario> {
    Arc::new(Scenario {
        phases: driven.pieces.clone(),
        ..of.clone()
    })
}

#[tokio::test(start_paused = true)]
async fn the_pieces_run_again_give_the_same_requests_and_fault_windows() {
    for arrivals in ["even", "poisson"] {
        let text = THREE_PHASES.replace(
            "rate = { shape = \"ramp\", from = 10, to = 30 }",
            &format!("rate = {{ shape = \"ramp\", from = 10, to = 30 }}\narrivals = \"{arrivals}\""),
        );
        let original = scenario(&text);
        let live = steered(original.clone(), script()).await;
        // a: 7 pieces (6 changes); b: 2 (cut at 12.0525 s, ended at 15.0525 s); c: 4 (a fault switched
        // off, the extension given, its written end, the extension).
        assert_eq!(live.driven.phase_of, [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2]);
        let again = steered(as_scenario(&original, &live.driven), Vec::new()).await;
        assert_eq!(again.sends, live.sends, "{arrivals}");
        assert_eq!(
            again.requests, live.requests,
            "{arrivals}: the same requests of the mix"
        );
        // And both are the recording's schedule as the scheduler alone computes it.
        let recorded = as_scenario(&original, &live.driven);
        let mut scheduled: Vec<(Duration, usize)> = crate::schedule::Schedule::new(&recorded)
            .map(|a| (recorded.phase_start(a.phase) + a.offset, a.request))
            .collect();
        scheduled.sort();
        assert_eq!(live.requests, scheduled, "{arrivals}");
        let windows = |t: &Timeline| -> Vec<(Duration, Duration)> {
            t.faults.iter().map(|(_, a, b)| (*a, *b)).collect()
        };
        assert_eq!(windows(&again.timeline), windows(&live.timeline));
        assert_eq!(again.switches, live.switches);
        assert_eq!(again.timeline.phases.last().unwrap().1, at(7) + ms(7000));
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_change_the_schedule_as_it_stands_is_published() {
    let error: Fault = serde_json::from_str(r#"{"fault": "error", "ratio": 0.5}"#).unwrap();
    let script = vec![
        (
            ms(2000),
            Command::Rate {
                set: RateSet::Rps(40.0),
            },
        ),
        (ms(3000), Command::FaultOn { fault: error }),
        (ms(4000), Command::Extend { by: ms(5000) }),
    ];
    let out = steered(scenario(THREE_PHASES), script).await;
    let plan = &out.planned;
    // Run so far (a: 0-2 s at 10, 2-3 s at 40, 3-4 s at 40), then a's rest at 40 with the fault,
    // its 5 s extension, then b and c as written but at 40 req/s and with the error fault.
    let names: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "a~2", "a~3", "a~next", "a~extended", "b", "c"]);
    let total: Duration = plan.phases.iter().map(|p| p.duration).sum();
    assert_eq!(total, ms(10_000 + 5000 + 10_000 + 5000));
    for p in &plan.phases[3..] {
        assert!(p.chaos.iter().any(|f| f.kind() == "error"), "{}", p.name);
        assert_eq!(
            p.load,
            crate::scenario::Load::Open {
                rate: crate::scenario::Rate::Constant {
                    rps: crate::scenario::Rps::new(40.0).unwrap()
                },
                arrivals: crate::scenario::Arrivals::Even
            },
            "{}",
            p.name
        );
    }
    // c keeps its own latency fault beside the one switched on.
    assert_eq!(plan.phases[6].chaos.len(), 2);
}

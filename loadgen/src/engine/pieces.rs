//! The phases, run as pieces: a phase runs as one piece unless live control changes something, which
//! cuts the running piece at that instant and starts the next one with the change in force (a new
//! rate, a pause, other faults, an earlier or later end). Each piece is paced as a phase of its own,
//! with request numbers following on from the previous piece, so the pieces written as a scenario
//! (the recording) give the same schedule. Every change is an event of the timeline.

use std::collections::BTreeMap;

use target_app::chaos::{ChaosSpec, Fault, FAULT_KINDS};

use super::*;
use crate::schedule::{arrival_count, piece, RateCurve, Steered};
use crate::shared::control::{Change, Command, Order, RateSet, Refusal, Steering};

/// The run as driven: every piece that ran, in order, as it ran (its length, rate and faults).
#[derive(Debug, Clone, Default)]
pub struct Driven {
    pub pieces: Vec<crate::scenario::Phase>,
    /// The scenario phase each piece belongs to.
    pub phase_of: Vec<usize>,
}

/// Where the answer to an order goes.
type Answer = tokio::sync::oneshot::Sender<Result<Change, Refusal>>;

/// Why a piece ended.
enum Why {
    /// Its planned end.
    End,
    Stop,
    Order(Order),
}

/// What live control has changed, in force until changed again.
#[derive(Debug, Default)]
struct Live {
    steered: Steered,
    /// Faults switched live, by kind: on with these values, or off.
    faults: BTreeMap<&'static str, Option<Fault>>,
    changes: Vec<Change>,
}

impl Live {
    /// The faults in force: the phase's own, each replaced or removed by a live switch of its kind.
    fn faults(&self, phase: &[Fault]) -> Vec<Fault> {
        let mut out: Vec<Fault> = phase
            .iter()
            .filter(|f| !self.faults.contains_key(f.kind()))
            .cloned()
            .collect();
        out.extend(self.faults.values().flatten().cloned());
        out
    }
}

fn refuse(field: &str, problem: impl Into<String>) -> Refusal {
    Refusal {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// The first instant at or after `now` a whole number of milliseconds after `from`.
fn whole_ms(from: Instant, now: Instant) -> Instant {
    let nanos = now.saturating_duration_since(from).as_nanos();
    let ms = u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX);
    later(from, Duration::from_millis(ms))
}

async fn next_order(control: &mut Option<Control>) -> Option<Order> {
    match control {
        Some(c) => c.orders.recv().await,
        None => std::future::pending().await,
    }
}

impl<T: Transport, F: Faults> Engine<T, F> {
    /// Whether `command` can be applied now, in phase `phase` with `live` in force; if not, which
    /// field is at fault and why.
    fn check(&self, command: &Command, phase: &crate::scenario::Phase, live: &Live) -> Result<(), Refusal> {
        command.validate()?;
        match command {
            Command::Rate {
                set: RateSet::Factor(_),
            } if matches!(phase.load, Load::Closed { .. }) => Err(refuse(
                "factor",
                format!(
                    "phase `{}` is closed-loop (no rate curve to scale): set an absolute `rps`",
                    phase.name
                ),
            )),
            Command::Pause if live.steered.paused => Err(refuse("action", "the run is already paused")),
            Command::Resume if !live.steered.paused => Err(refuse("action", "the run is not paused")),
            Command::FaultOn { .. } | Command::FaultOff { .. } if self.chaos.is_none() => Err(refuse(
                "action",
                "this run has no chaos API to switch faults with",
            )),
            Command::FaultOn { fault } => {
                let mut next = live.faults(&phase.chaos);
                next.retain(|f| f.kind() != fault.kind());
                next.push(fault.clone());
                let spec = ChaosSpec {
                    seed: self.scenario.seed,
                    faults: next,
                };
                match spec.validate().into_iter().next() {
                    Some(e) => Err(refuse("fault", e.problem)),
                    None => Ok(()),
                }
            }
            Command::FaultOff { kind } => {
                let on = live.faults(&phase.chaos);
                if on.iter().any(|f| f.kind() == kind) {
                    Ok(())
                } else {
                    Err(refuse("kind", format!("no `{kind}` fault is on")))
                }
            }
            _ => Ok(()),
        }
    }

    fn publish(&self, control: &Option<Control>, live: &Live, faults: &[Fault], target_rps: Option<f64>) {
        if let Some(control) = control {
            control.state.send_replace(Steering {
                rate: live.steered.rate,
                paused: live.steered.paused,
                target_rps,
                faults: faults.to_vec(),
                changes: live.changes.clone(),
            });
        }
    }

    /// Publishes the schedule as it stands: the pieces so far (the running one to its planned end),
    /// an extension of the running phase (`extra`, at its last rate), then the later phases with the
    /// live changes in force.
    fn publish_plan(&self, pieces: &[crate::scenario::Phase], index: usize, extra: Duration, live: &Live) {
        let Some(planned) = &self.planned else {
            return;
        };
        let mut phases = pieces.to_vec();
        let phase = &self.scenario.phases[index];
        if !extra.is_zero() {
            let name = format!("{}~extended", phase.name);
            let mut more = piece(phase, name, phase.duration, extra, live.steered);
            more.chaos = live.faults(&phase.chaos);
            phases.push(more);
        }
        for later in &self.scenario.phases[index + 1..] {
            let mut next = piece(
                later,
                later.name.clone(),
                Duration::ZERO,
                later.duration,
                live.steered,
            );
            next.chaos = live.faults(&later.chaos);
            next.expect = later.expect.clone();
            phases.push(next);
        }
        planned.send_replace(self.as_scenario(&phases));
    }

    /// The pieces so far as a scenario (the last one is paced).
    fn as_scenario(&self, pieces: &[crate::scenario::Phase]) -> Arc<Scenario> {
        Arc::new(Scenario {
            name: self.scenario.name.clone(),
            description: self.scenario.description.clone(),
            seed: self.scenario.seed,
            defaults: self.scenario.defaults.clone(),
            mix: self.scenario.mix.clone(),
            phases: pieces.to_vec(),
        })
    }

    /// Applies `faults` if they are not what the target has; `applied` follows.
    async fn set_faults(
        &self,
        phase: &str,
        applied: &mut Vec<Fault>,
        faults: Vec<Fault>,
    ) -> Result<(), EngineError> {
        let Some(chaos) = &self.chaos else {
            return Ok(());
        };
        if faults == *applied {
            return Ok(());
        }
        let done = if faults.is_empty() {
            chaos.clear().await
        } else {
            chaos.apply(self.scenario.seed, &faults).await
        };
        done.map_err(|source| EngineError::Chaos {
            phase: phase.to_owned(),
            source,
        })?;
        *applied = faults;
        Ok(())
    }

    pub(super) async fn phases(
        &self,
        control: &mut Option<Control>,
        shared: &Arc<Shared>,
        slots: &Arc<Semaphore>,
        timeline: &mut Timeline,
        driven: &mut Driven,
    ) -> Result<Ending, EngineError> {
        let mut pending = None;
        let result = self
            .run_pieces(control, shared, slots, timeline, driven, &mut pending)
            .await;
        if let Some((answer, change)) = pending {
            let _ = answer.send(Ok(change));
        }
        result
    }

    /// Runs the phases piece by piece. An accepted order is answered (`pending`) once the piece it
    /// starts is under way, its faults applied.
    async fn run_pieces(
        &self,
        control: &mut Option<Control>,
        shared: &Arc<Shared>,
        slots: &Arc<Semaphore>,
        timeline: &mut Timeline,
        driven: &mut Driven,
        pending: &mut Option<(Answer, Change)>,
    ) -> Result<Ending, EngineError> {
        let mut live = Live::default();
        let mut applied: Vec<Fault> = Vec::new();
        let mut first_number = 0u64;
        let mut stop = self.stop.clone();
        let mut listening = control.is_some();
        for (index, phase) in self.scenario.phases.iter().enumerate() {
            if self.stopped() {
                return Ok(Ending::Interrupted);
            }
            // How long the phase is to last (changed by an end or extension), and how much of it ran.
            let mut planned = phase.duration;
            let mut ran = Duration::ZERO;
            let mut phase_started = None;
            // Start of the open fault window, from the run's start, and the kinds in force in it.
            let mut window: Option<Duration> = None;
            let mut kinds: Vec<String> = Vec::new();
            let mut last_cut = Instant::now();
            let mut pieces_here = 0usize;
            let ending = loop {
                let faults = live.faults(&phase.chaos);
                let set = self.set_faults(&phase.name, &mut applied, faults).await;
                let piece_start = Instant::now();
                // A window closes where the faults went off: at the cut before.
                if applied.is_empty() {
                    if let Some(open) = window.take() {
                        timeline.faults.push((index, open, last_cut - self.start));
                        timeline.fault_kinds.push(std::mem::take(&mut kinds));
                    }
                } else {
                    window.get_or_insert(piece_start - self.start);
                    for f in &applied {
                        if !kinds.iter().any(|k| k == f.kind()) {
                            kinds.push(f.kind().to_owned());
                        }
                    }
                }
                if let Err(e) = set {
                    if let Some(started) = phase_started {
                        timeline
                            .phases
                            .push((started - self.start, last_cut - self.start));
                    }
                    return Err(e);
                }
                let started = *phase_started.get_or_insert(piece_start);
                if pieces_here == 0 {
                    self.set_position(shared, Some(index), Some(started));
                }
                // Past its written length, an extended phase runs as a piece of its own.
                let until = if ran < phase.duration {
                    phase.duration.min(planned)
                } else {
                    planned
                };
                let len = until.saturating_sub(ran);
                if len.is_zero() {
                    self.publish(control, &live, &applied, None);
                    break None;
                }
                let name = match pieces_here {
                    0 => phase.name.clone(),
                    n => format!("{}~{}", phase.name, n + 1),
                };
                let steered = live.steered;
                let mut this = piece(phase, name.clone(), ran, len, steered);
                this.chaos = applied.clone();
                let target_rps = match &this.load {
                    Load::Open { rate, .. } => Some(RateCurve::new(rate, len.as_secs_f64()).rate_at(0.0)),
                    Load::Closed { .. } => None,
                };
                driven.pieces.push(this);
                driven.phase_of.push(index);
                let piece_index = driven.pieces.len() - 1;
                self.publish(control, &live, &applied, target_rps);
                if let Some((answer, change)) = pending.take() {
                    let _ = answer.send(Ok(change));
                }

                let end = later(piece_start, len);
                let (halt_tx, halt) = watch::channel(false);
                let halt = Halt {
                    run: self.stop.clone(),
                    piece: halt,
                };
                let (pacer, workers) = match &driven.pieces[piece_index].load {
                    Load::Open { .. } => {
                        let pacer = Pacer {
                            launch: Launch {
                                scenario: self.scenario.clone(),
                                client: self.client.clone(),
                                samples: self.samples.clone(),
                                shared: shared.clone(),
                                index,
                            },
                            slots: slots.clone(),
                            halt: halt.clone(),
                            position: self.position.clone(),
                            pieces: self.as_scenario(&driven.pieces),
                            first_number,
                            shard: self.shard,
                            started: piece_start,
                            phase_started: started,
                            end,
                        };
                        (Some(pacer.spawn(self.pacing)), Vec::new())
                    }
                    Load::Closed { concurrency } => (
                        None,
                        self.closed_loop(index, piece_index, concurrency.get(), end, shared, &halt),
                    ),
                };
                let why = loop {
                    tokio::select! {
                        biased;
                        () = stopped(&mut stop) => break Why::Stop,
                        order = next_order(control), if listening => match order {
                            Some(order) => match self.check(&order.command, phase, &live) {
                                Ok(()) => break Why::Order(order),
                                Err(refusal) => {
                                    let _ = order.answer.send(Err(refusal));
                                }
                            },
                            None => listening = false,
                        },
                        () = tokio::time::sleep_until(end) => break Why::End,
                    }
                };
                // Scenario durations are whole milliseconds: the piece is cut at the next one, so
                // that the recording of the run gives the same schedule.
                let cut = match why {
                    Why::End => end,
                    // A stop halts at once: nothing due after it may go out.
                    Why::Stop => Instant::now().min(end),
                    Why::Order(Order {
                        command: Command::Stop,
                        ..
                    }) => Instant::now().min(end),
                    Why::Order(_) => {
                        let cut = whole_ms(piece_start, Instant::now()).min(end);
                        tokio::time::sleep_until(cut).await;
                        cut
                    }
                };
                // At its planned end the pacer finishes by itself (counting the arrivals that found no
                // slot as dropped); a stop or a change halts it at once.
                if !matches!(why, Why::End) {
                    let _ = halt_tx.send(true);
                }
                if let Some(pacer) = pacer {
                    if let Err(e) = pacer.await {
                        if e.is_panic() {
                            std::panic::resume_unwind(e.into_panic());
                        }
                    }
                }
                for w in workers {
                    let _ = w.await;
                }
                drop(halt_tx);
                last_cut = cut;

                // The piece as it ran: cut to its length, numbered as a scenario of the pieces would be.
                let took = cut.saturating_duration_since(piece_start).min(len);
                if took.is_zero() {
                    driven.pieces.pop();
                    driven.phase_of.pop();
                } else {
                    let mut cut_piece = piece(phase, name, ran, took, steered);
                    cut_piece.chaos = applied.clone();
                    driven.pieces[piece_index] = cut_piece;
                    timeline.pieces.push((piece_start - self.start, cut - self.start));
                    first_number += arrival_count(&self.as_scenario(&driven.pieces), piece_index);
                    ran += took;
                    pieces_here += 1;
                }

                let order = match why {
                    Why::End => {
                        if ran >= planned {
                            break None;
                        }
                        continue;
                    }
                    Why::Stop => break Some(Ending::Interrupted),
                    Why::Order(order) => order,
                };
                match &order.command {
                    Command::Rate {
                        set: RateSet::Factor(f),
                    } if *f == 1.0 => live.steered.rate = None,
                    Command::Rate { set } => live.steered.rate = Some(*set),
                    Command::Pause => live.steered.paused = true,
                    Command::Resume => live.steered.paused = false,
                    Command::EndPhase => planned = ran,
                    Command::Extend { by } => planned = planned.saturating_add(*by).max(ran),
                    Command::FaultOn { fault } => {
                        live.faults.insert(fault.kind(), Some(fault.clone()));
                    }
                    Command::FaultOff { kind } => {
                        if let Some(kind) = FAULT_KINDS.iter().find(|k| **k == kind.as_str()) {
                            live.faults.insert(kind, None);
                        }
                    }
                    Command::Stop => {}
                }
                let change = Change {
                    at_s: (cut - self.start).as_secs_f64(),
                    phase: index,
                    source: order.source.clone(),
                    text: order.command.describe(),
                    command: order.command.clone(),
                };
                timeline.changes.push(change.clone());
                live.changes.push(change.clone());
                // The running piece as it would go on from here, then the rest.
                let mut ahead = driven.pieces.clone();
                let from_here = planned.min(phase.duration).saturating_sub(ran);
                if !from_here.is_zero() && !matches!(order.command, Command::Stop) {
                    let mut rest = piece(
                        phase,
                        format!("{}~next", phase.name),
                        ran,
                        from_here,
                        live.steered,
                    );
                    rest.chaos = live.faults(&phase.chaos);
                    ahead.push(rest);
                }
                self.publish_plan(
                    &ahead,
                    index,
                    planned.saturating_sub(ran.max(phase.duration)),
                    &live,
                );
                let stop = order.command == Command::Stop;
                *pending = Some((order.answer, change));
                if stop {
                    self.publish(control, &live, &applied, target_rps);
                    break Some(Ending::Interrupted);
                }
            };
            let ended = last_cut;
            let started = phase_started.unwrap_or(ended);
            timeline.phases.push((started - self.start, ended - self.start));
            if let Some(open) = window.take() {
                timeline.faults.push((index, open, ended - self.start));
                timeline.fault_kinds.push(kinds);
            }
            if let Some(ending) = ending {
                return Ok(ending);
            }
        }
        Ok(Ending::Completed)
    }
}

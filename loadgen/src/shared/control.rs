//! Live control of a run: the orders an instructor gives (rate, pause, phase end or extension, a fault
//! switched on or off, stop), the change each one made, and the state they leave the run in.
//!
//! The control API and the live panel send [`Order`]s; the engine applies each at the instant it takes
//! it, answers with the [`Change`] it made (or why it refused), and publishes the [`Steering`] state.
//! Every change is a timestamped event of the run's timeline. Types only: nothing here paces or serves.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use target_app::chaos::Fault;
use tokio::sync::{mpsc, oneshot, watch};

/// How the rate is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateSet {
    /// Requests per second, whatever the scenario's curve says.
    Rps(f64),
    /// The scenario's curve times this factor (1.0: the curve as written).
    Factor(f64),
}

/// One order to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Command {
    /// Sets the open-loop rate from now on, until set again.
    Rate { set: RateSet },
    /// Sends nothing until resumed.
    Pause,
    /// Sends again at the rate in force.
    Resume,
    /// Ends the running phase now; the next one starts.
    EndPhase,
    /// Makes the running phase last `by` longer (past its planned end, its last rate holds).
    Extend {
        #[serde(with = "target_app::duration::serde_text")]
        by: Duration,
    },
    /// Switches a fault on (replacing one of the same kind), until switched off.
    FaultOn { fault: Fault },
    /// Switches the fault of this kind off, including the phase's own, until switched on again.
    FaultOff { kind: String },
    /// Ends the run like a Ctrl-C: requests in flight drain and the reports are written.
    Stop,
}

/// The live panel's last line when keys steer the run.
pub const KEYS_HELP: &str = "keys: p pause  +/- rate  0 as written  n next  x +30s  e l d r o fault  q stop";

/// The actions, as the control API spells them in `action`.
pub const ACTIONS: &[&str] = &[
    "rate",
    "pause",
    "resume",
    "end_phase",
    "extend",
    "fault_on",
    "fault_off",
    "stop",
];

impl Command {
    /// The action, as spelled in the API's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            Command::Rate { .. } => "rate",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::EndPhase => "end_phase",
            Command::Extend { .. } => "extend",
            Command::FaultOn { .. } => "fault_on",
            Command::FaultOff { .. } => "fault_off",
            Command::Stop => "stop",
        }
    }

    /// What the command touches, as expectations name what they measure: `rate`, `faults`, `phase`.
    pub fn touches(&self) -> &'static str {
        match self {
            Command::Rate { .. } | Command::Pause | Command::Resume => "rate",
            Command::FaultOn { .. } | Command::FaultOff { .. } => "faults",
            Command::EndPhase | Command::Extend { .. } | Command::Stop => "phase",
        }
    }

    /// One line for people: `rate 1500 rps`, `fault error on (ratio 0.3)`, …
    pub fn describe(&self) -> String {
        match self {
            Command::Rate { set: RateSet::Rps(r) } => format!("rate {r} rps"),
            Command::Rate {
                set: RateSet::Factor(f),
            } => format!("rate {f}x the scenario"),
            Command::Pause => "pause".to_owned(),
            Command::Resume => "resume".to_owned(),
            Command::EndPhase => "end phase".to_owned(),
            Command::Extend { by } => format!("extend phase by {}", target_app::duration::format(*by)),
            Command::FaultOn { fault } => {
                let routes = fault.routes();
                let on = if routes.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", routes.join(", "))
                };
                format!("fault {} on (ratio {}){on}", fault.kind(), fault.ratio())
            }
            Command::FaultOff { kind } => format!("fault {kind} off"),
            Command::Stop => "stop".to_owned(),
        }
    }
}

/// A change made to the run: an event of its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Seconds from the run's start.
    pub at_s: f64,
    /// The phase that was running (its index).
    pub phase: usize,
    /// Where it came from: `api`, `console`, `keys`.
    pub source: String,
    pub command: Command,
    /// [`Command::describe`].
    pub text: String,
}

/// A field of an order that cannot be applied, and why: answered as 400 naming `field`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// An order and where its answer goes.
#[derive(Debug)]
pub struct Order {
    pub command: Command,
    pub source: String,
    pub answer: oneshot::Sender<Result<Change, Refusal>>,
}

/// The state live control leaves the run in, published by the engine after each change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Steering {
    /// The rate set live, if any.
    pub rate: Option<RateSet>,
    pub paused: bool,
    /// The target rate now, requests per second (`None` in a closed-loop phase).
    pub target_rps: Option<f64>,
    /// The faults on the target now.
    pub faults: Vec<Fault>,
    /// Every change so far, oldest first.
    pub changes: Vec<Change>,
}

/// The engine's end of live control.
#[derive(Debug)]
pub struct Control {
    pub orders: mpsc::Receiver<Order>,
    pub state: watch::Sender<Steering>,
}

/// The senders' end: gives orders and reads the state.
#[derive(Debug, Clone)]
pub struct Steer {
    pub orders: mpsc::Sender<Order>,
    pub state: watch::Receiver<Steering>,
}

/// Why an order got no change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unapplied {
    Refused(Refusal),
    /// The run is over (or not listening any more).
    Gone,
}

impl Steer {
    /// Gives `command` and waits for the engine's answer.
    pub async fn give(&self, command: Command, source: &str) -> Result<Change, Unapplied> {
        let (answer, rx) = oneshot::channel();
        let order = Order {
            command,
            source: source.to_owned(),
            answer,
        };
        self.orders.send(order).await.map_err(|_| Unapplied::Gone)?;
        match rx.await {
            Ok(Ok(change)) => Ok(change),
            Ok(Err(refusal)) => Err(Unapplied::Refused(refusal)),
            Err(_) => Err(Unapplied::Gone),
        }
    }
}

/// A connected pair: the engine takes [`Control`], the API and the panel share [`Steer`].
pub fn channel() -> (Control, Steer) {
    let (orders_tx, orders) = mpsc::channel(16);
    let (state, state_rx) = watch::channel(Steering::default());
    (
        Control { orders, state },
        Steer {
            orders: orders_tx,
            state: state_rx,
        },
    )
}

/// Most a rate factor may multiply the scenario's curve by.
pub const MAX_FACTOR: f64 = 100.0;

/// Longest extension of a phase at once.
pub const MAX_EXTEND: Duration = Duration::from_secs(24 * 3600);

impl Command {
    /// Checks the values of the command on their own (not against the run): ranges and fault
    /// parameters. The field named is the one to fix.
    pub fn validate(&self) -> Result<(), Refusal> {
        let bad = |field: &str, problem: String| {
            Err(Refusal {
                field: field.to_owned(),
                problem,
            })
        };
        match self {
            Command::Rate { set: RateSet::Rps(r) }
                if !(r.is_finite() && (0.0..=10_000_000.0).contains(r)) =>
            {
                bad(
                    "rps",
                    format!("must be from 0 to 10000000 requests per second, got {r}"),
                )
            }
            Command::Rate {
                set: RateSet::Factor(f),
            } if !(f.is_finite() && (0.0..=MAX_FACTOR).contains(f)) => {
                bad("factor", format!("must be from 0 to {MAX_FACTOR}, got {f}"))
            }
            Command::Extend { by } if by.is_zero() || *by > MAX_EXTEND => bad(
                "by",
                format!(
                    "must be more than 0s and at most {}, got {}",
                    target_app::duration::format(MAX_EXTEND),
                    target_app::duration::format(*by)
                ),
            ),
            Command::FaultOn { fault } => match fault.validate("fault").into_iter().next() {
                Some(e) => bad(&e.field, e.problem),
                None => Ok(()),
            },
            Command::FaultOff { kind } if !target_app::chaos::FAULT_KINDS.contains(&kind.as_str()) => bad(
                "kind",
                format!(
                    "unknown fault kind `{kind}`; known kinds: {}",
                    target_app::chaos::FAULT_KINDS.join(", ")
                ),
            ),
            _ => Ok(()),
        }
    }
}

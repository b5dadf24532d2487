//! Keys on the terminal for the same orders as the control API, while the live panel is shown:
//! `p` pause or resume, `+`/`-` the rate ×1.25 or ×0.8, `0` the rate as written, `n` the next phase,
//! `x` 30 s more of this phase, `e` `l` `d` `r` `o` an error, latency, downstream, rate-limit or outage
//! fault on or off, `q` stop. [`KEYS_HELP`](crate::shared::control::KEYS_HELP) is the panel's last line.
//!
//! The terminal is put in cbreak mode (no line buffering, no echo; Ctrl-C still signals) and restored
//! on every way out: when the guard drops (end of run, Ctrl-C, SIGTERM), from a panic hook, and by
//! [`restore`] before a forced exit. Keys are read by a thread that polls stdin 10 times a second and
//! ends within 100 ms of the run's end. [`order`] is pure.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use target_app::chaos::Fault;

use crate::shared::control::{Command, RateSet, Steer, Steering};

/// The terminal settings before cbreak mode, while it is on.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Puts the terminal back as it was, if keys changed it. Safe to call any number of times.
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(saved) = saved {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &saved);
    }
}

/// Cbreak mode for as long as it lives.
pub struct Cbreak(());

impl Drop for Cbreak {
    fn drop(&mut self) {
        restore();
    }
}

/// Cbreak mode on stdin, when it is a terminal (`None` otherwise, or when it cannot be set).
pub fn cbreak() -> Option<Cbreak> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    let before = termios::tcgetattr(&stdin).ok()?;
    let mut raw = before.clone();
    raw.local_modes.remove(LocalModes::ICANON | LocalModes::ECHO);
    raw.special_codes[SpecialCodeIndex::VMIN] = 1;
    raw.special_codes[SpecialCodeIndex::VTIME] = 0;
    *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(before);
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    if termios::tcsetattr(&stdin, OptionalActions::Now, &raw).is_err() {
        restore();
        return None;
    }
    Some(Cbreak(()))
}

fn fault(json: &str) -> Fault {
    serde_json::from_str(json).expect("the keys' faults are valid")
}

/// The order key `key` gives, with the run steered as `now`.
pub fn order(key: u8, now: &Steering) -> Option<Command> {
    let scaled = |by: f64| match now.rate {
        Some(RateSet::Rps(r)) => RateSet::Rps((r * by).max(0.1)),
        Some(RateSet::Factor(f)) => RateSet::Factor((f * by).clamp(0.01, crate::shared::control::MAX_FACTOR)),
        None => RateSet::Factor(by),
    };
    let toggle = |kind: &str, json: &str| {
        if now.faults.iter().any(|f| f.kind() == kind) {
            Command::FaultOff {
                kind: kind.to_owned(),
            }
        } else {
            Command::FaultOn { fault: fault(json) }
        }
    };
    Some(match key {
        b'p' | b' ' if now.paused => Command::Resume,
        b'p' | b' ' => Command::Pause,
        b'+' | b'=' => Command::Rate { set: scaled(1.25) },
        b'-' | b'_' => Command::Rate { set: scaled(0.8) },
        b'0' => Command::Rate {
            set: RateSet::Factor(1.0),
        },
        b'n' => Command::EndPhase,
        b'x' => Command::Extend {
            by: Duration::from_secs(30),
        },
        b'e' => toggle("error", r#"{"fault": "error", "status": 500, "ratio": 0.3}"#),
        b'l' => toggle("latency", r#"{"fault": "latency", "delay": "1500ms"}"#),
        b'd' => toggle("downstream", r#"{"fault": "downstream", "ratio": 1.0}"#),
        b'r' => toggle("rate_limit", r#"{"fault": "rate_limit", "rps": 20}"#),
        b'o' => toggle("outage", r#"{"fault": "outage", "duration": "20s"}"#),
        b'q' => Command::Stop,
        _ => return None,
    })
}

/// Reads keys until `done` is set, giving each order through `steer`; answers (and refusals) go to
/// the run's changes, which the panel shows. Runs on a thread of its own.
pub fn read(steer: Steer, handle: tokio::runtime::Handle, done: Arc<AtomicBool>) {
    let stdin = std::io::stdin();
    let mut buf = [0u8; 16];
    while !done.load(Ordering::Relaxed) {
        let mut fds = [rustix::event::PollFd::new(&stdin, rustix::event::PollFlags::IN)];
        let tenth = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        match rustix::event::poll(&mut fds, Some(&tenth)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
        let n = match rustix::io::read(&stdin, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &key in &buf[..n] {
            let now = steer.state.borrow().clone();
            if let Some(command) = order(key, &now) {
                let steer = steer.clone();
                // A refused key (pause when paused…) changes nothing; the panel shows what did change.
                let _ = handle.block_on(async move {
                    tokio::time::timeout(Duration::from_secs(5), steer.give(command, "keys")).await
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gives_its_order() {
        let idle = Steering::default();
        assert_eq!(order(b'p', &idle), Some(Command::Pause));
        assert_eq!(
            order(
                b'p',
                &Steering {
                    paused: true,
                    ..Steering::default()
                }
            ),
            Some(Command::Resume)
        );
        assert_eq!(
            order(b'+', &idle),
            Some(Command::Rate {
                set: RateSet::Factor(1.25)
            })
        );
        let at_100 = Steering {
            rate: Some(RateSet::Rps(100.0)),
            ..Steering::default()
        };
        assert_eq!(
            order(b'-', &at_100),
            Some(Command::Rate {
                set: RateSet::Rps(80.0)
            })
        );
        assert!(matches!(
            order(b'e', &idle),
            Some(Command::FaultOn {
                fault: Fault::Error(_)
            })
        ));
        let erring = Steering {
            faults: vec![fault(r#"{"fault": "error"}"#)],
            ..Steering::default()
        };
        assert_eq!(
            order(b'e', &erring),
            Some(Command::FaultOff { kind: "error".into() })
        );
        assert_eq!(order(b'q', &idle), Some(Command::Stop));
        assert_eq!(order(b'z', &idle), None);
        for key in [b'e', b'l', b'd', b'r', b'o', b'x', b'n', b'0'] {
            let command = order(key, &idle).unwrap();
            assert_eq!(command.validate(), Ok(()), "{}", key as char);
        }
    }
}

//! Waits to an instant on the OS clock from inside the runtime. A timer file descriptor registered
//! with tokio's reactor wakes the runtime's own thread at the instant, to tens of microseconds,
//! where tokio's timer wakes on millisecond ticks; no thread of its own, so no hand-over to the
//! runtime per wake-up.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{Duration, Instant};

/// A one-shot timer on the monotonic clock (the clock of [`Instant`]).
pub(super) struct OsClock {
    fd: AsyncFd<Timer>,
}

struct Timer(OwnedFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl OsClock {
    /// A timer in the current runtime's reactor. Fails outside a runtime with I/O enabled, or where
    /// the system has no timer descriptors.
    pub(super) fn new() -> io::Result<OsClock> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // Deprecated because a type's `as_raw_fd` could change or close under the reactor (the
        // replacement is `unsafe`, which this crate forbids); `Timer` owns its descriptor and
        // always returns it, until it is dropped with the `AsyncFd`.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(Timer(fd), Interest::READABLE)?;
        Ok(OsClock { fd })
    }

    /// Returns at `at` or just after. Should the timer fail, tokio's timer takes over for this wait.
    pub(super) async fn sleep_until(&mut self, at: Instant) {
        if self.wait(at).await.is_err() {
            tokio::time::sleep_until(at).await;
        }
    }

    async fn wait(&mut self, at: Instant) -> io::Result<()> {
        let now = Instant::now();
        if at <= now {
            return Ok(());
        }
        // Relative to now: `Instant` does not expose its clock's reading. Arming again resets the
        // count of a timer that went off while nobody waited (a wait given up on a stop).
        let spec = Itimerspec {
            it_interval: timespec(Duration::ZERO),
            it_value: timespec(at - now),
        };
        timerfd_settime(&self.fd.get_ref().0, TimerfdTimerFlags::empty(), &spec)?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match rustix::io::read(&ready.get_inner().0, &mut count) {
                // Gone off and read: not readable again until armed again, so the next wait need
                // not try a read that finds nothing first.
                Ok(_) => {
                    ready.clear_ready();
                    return Ok(());
                }
                // Readiness left from a timer armed before: not gone off yet.
                Err(e) if e == rustix::io::Errno::AGAIN => ready.clear_ready(),
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wait ends at its instant, never before, and a wait given up (as on a stop) leaves the
    /// next one to its own instant.
    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_ends_at_its_instant_and_one_given_up_does_not_end_the_next_early() {
        let mut clock = OsClock::new().unwrap();
        let at = Instant::now() + Duration::from_millis(3);
        clock.sleep_until(at).await;
        assert!(Instant::now() >= at);

        // Armed for 1 ms and given up after one poll; the timer goes off unread.
        tokio::select! {
            biased;
            () = clock.sleep_until(Instant::now() + Duration::from_millis(1)) => {
                panic!("a wait of 1 ms ended at once")
            }
            () = std::future::ready(()) => {}
        }
        std::thread::sleep(Duration::from_millis(2));
        let at = Instant::now() + Duration::from_millis(20);
        clock.sleep_until(at).await;
        assert!(Instant::now() >= at, "{:?} early", at - Instant::now());

        // An instant already past returns at once.
        clock.sleep_until(Instant::now() - Duration::from_millis(1)).await;
    }
}

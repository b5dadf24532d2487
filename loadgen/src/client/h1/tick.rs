//! Connections whose answers are read when the open-loop pacer wakes, not when they arrive.
//!
//! At a few thousand requests a second, waking the runtime's thread costs more than the request:
//! the pacer wakes once per batch window to send what is due, and every answer woke the thread
//! again, some tens of microseconds after. These connections sit in an epoll set of their own,
//! outside tokio's reactor, so an answer wakes nobody. Whoever holds a [`Lease`] (the precise
//! pacer, while its next wake-up is near) polls that set at each wake-up and wakes the requests
//! answered meanwhile; when nobody holds one, a driver task waits on the set through the reactor,
//! as any socket would be waited on.
//!
//! An answer read up to a window after it arrived is still timed from its arrival: each read takes
//! the kernel's receive timestamp of its last segment (`SO_TIMESTAMPNS`), and the answer's end is
//! the timestamp of its last read.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use rustix::event::epoll;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Events taken from the set per call.
const EVENTS: usize = 256;

/// A receive timestamp older than this (or ahead of the clock) is taken as the wall clock having
/// been set meanwhile; the answer is then timed when it is read.
const MOST_AGE: Duration = Duration::from_secs(60);

/// The set of a client's ticked connections. Dropping it ends its driver.
pub struct Ticker {
    inner: Arc<Inner>,
}

struct Inner {
    epoll: Arc<OwnedFd>,
    watches: Mutex<Watches>,
    /// The wakers of the poll under way, kept between polls.
    wakers: Mutex<Vec<Waker>>,
    leases: AtomicUsize,
    closed: AtomicBool,
    /// Told when a lease is taken or given back, and when the ticker is dropped.
    changed: Notify,
}

/// The connections in the set, by the number their events carry.
#[derive(Default)]
struct Watches {
    by_id: Vec<Option<Arc<Watch>>>,
    free: Vec<usize>,
}

/// What a connection waits for, and who.
#[derive(Default)]
struct Watch {
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    readable: bool,
    writable: bool,
    /// Counts events, so that one arriving during a read that found nothing is not lost.
    events: u64,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Watch {
    fn state(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// While held, its holder polls the set at each of its wake-ups; while let go (or once dropped),
/// the driver waits on the set.
pub struct Lease {
    inner: Arc<Inner>,
    held: bool,
}

impl Lease {
    /// Wakes the requests whose connections had news since the last poll.
    pub fn poll(&self) {
        self.inner.poll();
    }

    /// Holds it, or lets it go.
    pub fn hold(&mut self, held: bool) {
        if held != self.held {
            self.held = held;
            self.inner.count_lease(held);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.hold(false);
    }
}

impl Ticker {
    /// An empty set, and its driver task. Fails outside a runtime with I/O enabled (the driver's
    /// registration), or where the system has no epoll.
    pub fn new() -> io::Result<Ticker> {
        let epoll = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC)?);
        let inner = Arc::new(Inner {
            epoll,
            watches: Mutex::new(Watches::default()),
            wakers: Mutex::new(Vec::new()),
            leases: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
        });
        // Registered once here so that a runtime without I/O fails now, not in the driver.
        #[allow(deprecated)]
        drop(AsyncFd::with_interest(inner.epoll.clone(), Interest::READABLE)?);
        tokio::spawn(drive(inner.clone()));
        Ok(Ticker { inner })
    }

    /// Takes over waking the set's requests: the holder polls the set at each wake-up.
    pub fn lease(&self) -> Lease {
        let mut lease = Lease {
            inner: self.inner.clone(),
            held: false,
        };
        lease.hold(true);
        lease
    }

    /// `tcp` (non-blocking) as a connection of the set, its answers timestamped by the kernel.
    pub(crate) fn stream(&self, tcp: std::net::TcpStream) -> io::Result<TickStream> {
        setsockopt(&tcp, sockopt::ReceiveTimestampns, &true)?;
        let watch = Arc::new(Watch {
            state: Mutex::new(WatchState {
                readable: true,
                writable: true,
                ..WatchState::default()
            }),
        });
        let id = {
            let mut watches = self.inner.watches();
            let id = watches.free.pop().unwrap_or(watches.by_id.len());
            if id == watches.by_id.len() {
                watches.by_id.push(None);
            }
            watches.by_id[id] = Some(watch.clone());
            id
        };
        let flags =
            epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
        if let Err(e) = epoll::add(
            &*self.inner.epoll,
            &tcp,
            epoll::EventData::new_u64(id as u64),
            flags,
        ) {
            self.inner.release(id);
            return Err(e.into());
        }
        Ok(TickStream {
            tcp,
            watch,
            id,
            inner: self.inner.clone(),
            control: nix::cmsg_space!(TimeSpec),
            received: None,
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.changed.notify_waiters();
    }
}

impl Inner {
    fn watches(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_lease(&self, taken: bool) {
        if taken {
            self.leases.fetch_add(1, Ordering::AcqRel);
        } else {
            self.leases.fetch_sub(1, Ordering::AcqRel);
        }
        self.changed.notify_waiters();
    }

    fn release(&self, id: usize) {
        let mut watches = self.watches();
        watches.by_id[id] = None;
        watches.free.push(id);
    }

    /// Takes every event waiting in the set, without waiting, and wakes who waits on them.
    fn poll(&self) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        let mut room = [MaybeUninit::<epoll::Event>::uninit(); EVENTS];
        loop {
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let events = match epoll::wait(&*self.epoll, &mut room[..], Some(&zero)) {
                Ok((events, _)) => &*events,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            };
            {
                let watches = self.watches();
                for event in events.iter() {
                    let id = event.data.u64() as usize;
                    let Some(Some(watch)) = watches.by_id.get(id) else {
                        continue;
                    };
                    let flags = event.flags;
                    let mut state = watch.state();
                    state.events += 1;
                    let failed = flags.intersects(epoll::EventFlags::ERR | epoll::EventFlags::HUP);
                    if failed || flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::RDHUP) {
                        state.readable = true;
                        wakers.extend(state.reader.take());
                    }
                    if failed || flags.contains(epoll::EventFlags::OUT) {
                        state.writable = true;
                        wakers.extend(state.writer.take());
                    }
                }
            }
            // Woken outside the locks.
            wakers.drain(..).for_each(Waker::wake);
            if events.len() < EVENTS {
                return;
            }
        }
    }
}

/// Waits on the set through the reactor whenever nobody holds a lease, until the ticker is dropped.
async fn drive(inner: Arc<Inner>) {
    // The set in the reactor while nobody polls it; taken out while a lease is held, since then an
    // answer must wake nobody. Registering reports the events already waiting.
    let mut set: Option<AsyncFd<Arc<OwnedFd>>> = None;
    loop {
        let changed = inner.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        if inner.leases.load(Ordering::Acquire) > 0 {
            set = None;
            changed.await;
            continue;
        }
        if set.is_none() {
            #[allow(deprecated)]
            let registered = AsyncFd::with_interest(inner.epoll.clone(), Interest::READABLE);
            set = registered.ok();
        }
        let Some(registered) = &set else {
            // Cannot happen once `Ticker::new` registered it; polled on tokio's timer if it does.
            inner.poll();
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let failed = tokio::select! {
            biased;
            () = &mut changed => false,
            ready = registered.readable() => {
                let failed = ready.map(|mut ready| ready.clear_ready()).is_err();
                inner.poll();
                failed
            }
        };
        if failed {
            // The reactor is going away with the runtime: registered again after a pause.
            set = None;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A connection of the set.
pub(crate) struct TickStream {
    tcp: std::net::TcpStream,
    watch: Arc<Watch>,
    id: usize,
    inner: Arc<Inner>,
    /// Room for the receive timestamp of each read.
    control: Vec<u8>,
    /// When the last bytes read arrived, by the kernel's timestamp.
    received: Option<Instant>,
}

impl TickStream {
    /// Marks the start of an exchange: no answer can be waiting before its request is written, so
    /// the first read waits for the set's news instead of trying the socket.
    pub(crate) fn expect_answer(&mut self) {
        self.watch.state().readable = false;
        self.received = None;
    }

    /// When the last bytes read arrived; `None` when the last read carried no timestamp (the end
    /// of the stream).
    pub(crate) fn received(&self) -> Option<Instant> {
        self.received
    }

    /// Whether the server closed (or reset) this idle connection, or sent bytes nobody asked for.
    pub(crate) fn closed_while_idle(&self) -> bool {
        let mut byte = [0u8; 1];
        !matches!((&self.tcp).read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn read_once(&mut self, into: &mut [u8]) -> io::Result<usize> {
        let mut iov = [io::IoSliceMut::new(into)];
        let msg = recvmsg::<()>(
            self.tcp.as_raw_fd(),
            &mut iov,
            Some(&mut self.control),
            MsgFlags::empty(),
        )?;
        let n = msg.bytes;
        let mut stamp = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                    stamp = Some(ts);
                }
            }
        }
        self.received = stamp.and_then(arrival);
        Ok(n)
    }
}

/// The kernel's receive timestamp (wall clock) on the runtime's clock.
fn arrival(ts: TimeSpec) -> Option<Instant> {
    let since_epoch = Duration::new(
        u64::try_from(ts.tv_sec()).ok()?,
        u32::try_from(ts.tv_nsec()).ok()?,
    );
    let at = SystemTime::UNIX_EPOCH.checked_add(since_epoch)?;
    let (now, wall) = (Instant::now(), SystemTime::now());
    let age = wall.duration_since(at).ok()?;
    (age <= MOST_AGE).then(|| now - age)
}

impl Drop for TickStream {
    fn drop(&mut self) {
        let _ = epoll::delete(&*self.inner.epoll, &self.tcp);
        self.inner.release(self.id);
    }
}

/// Tries `op` on the socket unless the set said it has nothing; on nothing, waits for the set's
/// next event on it (`reader` chooses the reading side).
fn poll_side<T>(
    watch: &Watch,
    cx: &mut Context<'_>,
    reader: bool,
    mut op: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        let seen = {
            let mut state = watch.state();
            let ready = if reader { state.readable } else { state.writable };
            if !ready {
                let slot = if reader {
                    &mut state.reader
                } else {
                    &mut state.writer
                };
                match slot {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            state.events
        };
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut state = watch.state();
                // An event since the try: try again.
                if state.events == seen {
                    if reader {
                        state.readable = false;
                    } else {
                        state.writable = false;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return Poll::Ready(result),
        }
    }
}

impl AsyncRead for TickStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let watch = this.watch.clone();
        let into = buf.initialize_unfilled();
        match poll_side(&watch, cx, true, || this.read_once(into)) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TickStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_side(&this.watch, cx, false, || (&this.tcp).write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.tcp.shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use http::{HeaderMap, Method};

    use super::*;
    use crate::client::{Client, Options, Response};
    use crate::scenario::Request;
    use crate::shared::outcome::Class;

    /// A server on its own thread answering one request per connection in turn; says on `answered`
    /// each time an answer has been written.
    fn server(answers: usize) -> (String, mpsc::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut socket, _)) = listener.accept() else {
                return;
            };
            for _ in 0..answers {
                let mut seen = Vec::new();
                while !seen.ends_with(b"\r\n\r\n") {
                    let mut chunk = [0u8; 1024];
                    match socket.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&chunk[..n]),
                    }
                }
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
                let _ = tx.send(());
            }
        });
        (url, rx)
    }

    fn get() -> Request {
        Request {
            name: "GET /".into(),
            method: Method::GET,
            path_and_query: "/".parse().unwrap(),
            headers: HeaderMap::new(),
            body: None,
            weight: 1.try_into().unwrap(),
        }
    }

    /// Sends one request on its own task through the open loop's path.
    fn spawn_send(client: &Arc<Client>) -> tokio::task::JoinHandle<Response> {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send(&get(), Instant::now() + Duration::from_secs(30))
                .await
        })
    }

    /// Waits (on the runtime, so that the request's task runs) until the server has answered.
    async fn answered(rx: &mpsc::Receiver<()>) {
        for _ in 0..30_000 {
            if rx.try_recv().is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the server never answered");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_waits_for_the_next_poll_and_is_timed_at_its_arrival() {
        let (url, rx) = server(2);
        let client = Arc::new(Client::new(&url, &Options::default()).unwrap());
        let lease = client
            .lease()
            .expect("a plain http target's connections are in a set");
        for round in 0..2 {
            let before = Instant::now();
            let request = spawn_send(&client);
            answered(&rx).await;
            let answered_by = Instant::now();
            // The answer is in the socket; nothing polls the set, so it woke nobody.
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                !request.is_finished(),
                "round {round}: an answer woke the runtime"
            );

            lease.poll();
            let r = request.await.unwrap();
            assert_eq!(
                (r.class, r.status, r.bytes),
                (Class::Ok, Some(200), 2),
                "round {round}"
            );
            let received = r.received.expect("a receive timestamp");
            assert!(received >= before, "round {round}: timed before it was sent");
            assert!(
                received <= answered_by,
                "round {round}: timed {:?} after the server's write returned, at the read",
                received - answered_by
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_a_lease_held_answers_wake_the_runtime_as_they_arrive() {
        let (url, rx) = server(2);
        let client = Arc::new(Client::new(&url, &Options::default()).unwrap());

        // No lease taken: the driver waits on the set.
        let r = spawn_send(&client).await.unwrap();
        assert_eq!((r.class, r.status), (Class::Ok, Some(200)));

        // Taken while a request waits, then let go: the driver reads the answer that came meanwhile.
        let mut lease = client.lease().unwrap();
        let request = spawn_send(&client);
        answered(&rx).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !request.is_finished(),
            "an answer woke the runtime while a lease was held"
        );
        lease.hold(false);
        let r = request.await.unwrap();
        assert_eq!((r.class, r.status), (Class::Ok, Some(200)));
    }
}

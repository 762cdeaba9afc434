//! hyper's `rt::Timer` as plain loop timers: no task and no channel per sleep.
//!
//! hyper wants `Send + Sync` sleeps, while a loop timer (`TimerHandle`)
//! belongs to its loop's thread. So the timer handles live in a table per
//! thread ([`LOCAL`]: a slab of entries, each tagged with a generation), and
//! an [`EvloopSleep`] holds only the entry's index and generation: plain
//! data, `Send + Sync`.
//!
//! - **Fast path** (a sleep polled on a thread where an evloop loop runs,
//!   which is every sleep of a hyper connection served on evloop): the first
//!   poll puts `(generation, waker)` in the table, in the **tick** of its
//!   deadline rounded up to the next millisecond (at most 1 ms late, never
//!   early). Each tick has one loop timer (`call_at`), armed by its first
//!   sleep and shared by every later one: a server that makes one
//!   `header_read_timeout` sleep per request arms one loop timer per
//!   millisecond, not one per request. The timer's callback removes the
//!   tick's entries and wakes their wakers; a later poll that finds its
//!   entry gone knows the deadline passed. Dropping (or resetting) the sleep
//!   on that thread removes its entry at once, and the tick's loop timer is
//!   cancelled when its last sleep goes: no dead timers pile up on a
//!   keep-alive connection, which makes and drops one sleep per request. A
//!   tick's timer belongs to the loop that armed it; a sleep polled under
//!   another loop (the first one stopped, not closed) gets a timer of its
//!   own.
//! - **Other threads** (a sleep polled where no evloop loop runs): the sleep
//!   sends one closure to the timer's loop (`LoopHandle::call_soon_threadsafe`)
//!   that arms the same kind of entry there, with a waker that sets a flag in
//!   an `Arc` the sleep shares and wakes the polling task. Dropped from
//!   another thread, a sleep sends a second closure that cancels its entry.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use evloop::{EventLoop, LoopHandle, TimerHandle};
use slab::Slab;

// The granularity of the shared loop timers is one millisecond: a sleep's
// deadline is rounded up to the next millisecond tick, so it completes at
// most 1 ms late, never early (tokio's timer wheel has the same resolution).

/// Tick numbers are consecutive integers: one multiplication spreads them
/// over the map, where SipHash (std's default) would cost more than the
/// rest of arming a sleep.
#[derive(Default)]
struct TickHasher(u64);

impl Hasher for TickHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One armed sleep in a thread's table.
struct Entry {
    /// Tells this entry from a later one that reuses the slot.
    gen: u64,
    /// The loop timer that fires it.
    armed: Armed,
    /// Woken when the timer fires.
    waker: Waker,
}

/// Which loop timer fires an [`Entry`].
enum Armed {
    /// The shared timer of tick `.0` (generation `.1`) in [`Table::ticks`].
    Tick(u64, u64),
    /// A timer of its own (the tick's timer belongs to a loop that is not
    /// the running one); `None` only while it is being armed.
    Own(Option<TimerHandle>),
}

/// The loop timer shared by every sleep of one thread whose deadline
/// rounds up to the same tick: arming a sleep in a tick that already has
/// its timer costs no loop timer at all.
struct Tick {
    /// Tells this tick from a later one with the same number.
    gen: u64,
    /// The loop the timer runs on (a sleep joins the tick only if that loop
    /// is the one running, so never a stopped or closed loop's timer).
    lp: EventLoop,
    /// `None` only while it is being armed.
    timer: Option<TimerHandle>,
    /// The entries armed in this tick, `(key, gen)`; some may be gone.
    sleeps: Vec<(usize, u64)>,
    /// How many of `sleeps` are still armed: at 0 the timer is cancelled.
    live: usize,
}

/// The armed sleeps of one thread.
struct Table {
    thread: ThreadId,
    next_gen: u64,
    entries: Slab<Entry>,
    /// Tick numbers count milliseconds from here.
    epoch: Instant,
    ticks: HashMap<u64, Tick, BuildHasherDefault<TickHasher>>,
}

impl Table {
    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }
}

thread_local! {
    static LOCAL: RefCell<Table> = RefCell::new(Table {
        thread: std::thread::current().id(),
        next_gen: 0,
        entries: Slab::new(),
        epoch: Instant::now(),
        ticks: HashMap::default(),
    });
}

/// Where an armed sleep lives: a thread's table, slot and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    thread: ThreadId,
    key: usize,
    gen: u64,
}

/// The first tick at or after `deadline`, and when it is.
fn tick_of(epoch: Instant, deadline: Instant) -> (u64, Instant) {
    let since = deadline.saturating_duration_since(epoch);
    let tick = since
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(since.subsec_nanos().div_ceil(1_000_000)));
    let at = epoch
        .checked_add(Duration::from_millis(tick))
        .unwrap_or(deadline);
    (tick, at)
}

/// Arms `deadline` on `lp` (which runs on this thread): a table entry that
/// the loop timer's callback takes out and wakes. The entry joins the
/// shared timer of its tick, which is armed (one `call_at`) only if the
/// tick has none yet. `None` if the loop is closed (it could never wake
/// us).
fn arm_local(lp: &EventLoop, deadline: Instant, waker: Waker) -> Option<Slot> {
    /// What is left to do once the table is released.
    enum Then {
        Nothing,
        ArmTick(u64, u64, Instant),
        ArmOwn,
    }
    let (slot, then) = LOCAL.with(|t| {
        let mut t = t.borrow_mut();
        let t = &mut *t;
        let gen = t.gen();
        let tgen = t.gen();
        let (tick, at) = tick_of(t.epoch, deadline);
        let entries = t.entries.vacant_entry();
        let key = entries.key();
        let (armed, then) = match t.ticks.get_mut(&tick) {
            Some(shared) if shared.lp.is_running() => {
                shared.sleeps.push((key, gen));
                shared.live += 1;
                (Armed::Tick(tick, shared.gen), Then::Nothing)
            }
            Some(_) => (Armed::Own(None), Then::ArmOwn),
            None => {
                let shared = Tick {
                    gen: tgen,
                    lp: lp.clone(),
                    timer: None,
                    sleeps: vec![(key, gen)],
                    live: 1,
                };
                t.ticks.insert(tick, shared);
                (Armed::Tick(tick, tgen), Then::ArmTick(tick, tgen, at))
            }
        };
        entries.insert(Entry { gen, armed, waker });
        let slot = Slot {
            thread: t.thread,
            key,
            gen,
        };
        (slot, then)
    });
    // `call_at` outside the borrow: the table is never borrowed across
    // loop code.
    match then {
        Then::Nothing => Some(slot),
        Then::ArmTick(tick, tgen, at) => match lp.call_at(at, move || fire_tick(tick, tgen)) {
            Ok(timer) => {
                LOCAL.with(|t| {
                    if let Some(shared) = t.borrow_mut().ticks.get_mut(&tick) {
                        shared.timer = Some(timer);
                    }
                });
                Some(slot)
            }
            Err(_) => {
                let gone = LOCAL.with(|t| {
                    let mut t = t.borrow_mut();
                    t.entries.remove(slot.key);
                    t.ticks.remove(&tick)
                });
                drop(gone);
                None
            }
        },
        Then::ArmOwn => {
            let (key, gen) = (slot.key, slot.gen);
            match lp.call_at(deadline, move || fire_own(key, gen)) {
                Ok(timer) => {
                    LOCAL.with(|t| t.borrow_mut().entries[key].armed = Armed::Own(Some(timer)));
                    Some(slot)
                }
                Err(_) => {
                    LOCAL.with(|t| t.borrow_mut().entries.remove(key));
                    None
                }
            }
        }
    }
}

/// The shared timer of tick `(tick, tgen)` fired: take its entries out and
/// wake their wakers.
fn fire_tick(tick: u64, tgen: u64) {
    let (shared, wakers) = LOCAL.with(|t| {
        let mut t = t.borrow_mut();
        let t = &mut *t;
        let shared = match t.ticks.get(&tick) {
            Some(shared) if shared.gen == tgen => t.ticks.remove(&tick),
            _ => None,
        };
        let mut wakers = Vec::new();
        if let Some(shared) = &shared {
            for &(key, gen) in &shared.sleeps {
                if t.entries.get(key).is_some_and(|e| e.gen == gen) {
                    wakers.push(t.entries.remove(key).waker);
                }
            }
        }
        (shared, wakers)
    });
    // Woken (and the tick's loop reference dropped) outside the borrow: a
    // waker may run code that touches the table.
    drop(shared);
    for waker in wakers {
        waker.wake();
    }
}

/// The own timer of `(key, gen)` fired: take the entry out, wake its waker.
fn fire_own(key: usize, gen: u64) {
    let entry = LOCAL.with(|t| {
        let mut t = t.borrow_mut();
        match t.entries.get(key) {
            Some(e) if e.gen == gen => Some(t.entries.remove(key)),
            _ => None,
        }
    });
    if let Some(entry) = entry {
        entry.waker.wake();
    }
}

/// Whether `slot` (of this thread) is still armed; if so, makes `waker` the
/// one its timer wakes.
fn still_armed(slot: Slot, waker: &Waker) -> bool {
    LOCAL.with(|t| match t.borrow_mut().entries.get_mut(slot.key) {
        Some(e) if e.gen == slot.gen => {
            if !e.waker.will_wake(waker) {
                e.waker = waker.clone();
            }
            true
        }
        _ => false,
    })
}

/// Disarms `slot` if this is its thread (removes the entry; cancels its
/// loop timer if no other sleep needs it). `false` if `slot` belongs to
/// another thread.
fn disarm_here(slot: Slot) -> bool {
    let gone = LOCAL
        .try_with(|t| {
            let mut t = t.borrow_mut();
            let t = &mut *t;
            if t.thread != slot.thread {
                return Err(());
            }
            let entry = match t.entries.get(slot.key) {
                Some(e) if e.gen == slot.gen => t.entries.remove(slot.key),
                _ => return Ok((None, None)),
            };
            Ok(match entry.armed {
                Armed::Own(timer) => (timer, None),
                Armed::Tick(tick, tgen) => match t.ticks.get_mut(&tick) {
                    Some(shared) if shared.gen == tgen => {
                        shared.live -= 1;
                        if shared.live == 0 {
                            let shared = t.ticks.remove(&tick);
                            (None, shared)
                        } else {
                            (None, None)
                        }
                    }
                    _ => (None, None),
                },
            })
        })
        .unwrap_or(Err(()));
    match gone {
        Ok((own, tick)) => {
            // Cancelled, and their closures and loop released, outside the
            // borrow.
            if let Some(timer) = own {
                timer.cancel();
            }
            if let Some(timer) = tick.and_then(|mut shared| shared.timer.take()) {
                timer.cancel();
            }
            true
        }
        Err(()) => false,
    }
}

/// hyper's [`Timer`](hyper::rt::Timer) on an evloop loop: what makes
/// timeouts such as the server's `header_read_timeout` work (without a
/// timer, hyper silently ignores them).
///
/// `Send + Sync` as hyper requires (it holds a [`LoopHandle`]); a sleep is
/// armed on its first poll in a loop timer (`call_at`) shared by the
/// sleeps of this thread due in the same millisecond: no task, no channel,
/// and at most one loop timer per millisecond however many sleeps are made
/// and dropped. A sleep completes at its deadline rounded up to the next
/// millisecond, never before. A sleep polled on a thread where an evloop loop runs uses that
/// loop's timers directly (the loop that drives the polling task, the
/// timer's own loop in every ordinary program); a sleep polled elsewhere
/// arms its timer on the timer's loop through the handle. Deadlines are
/// `Instant`s, the clock every evloop loop keeps.
///
/// ```no_run
/// # fn f() -> evloop::Result<()> {
/// use std::time::Duration;
/// let mut http1 = hyper::server::conn::http1::Builder::new();
/// http1
///     .timer(evloop_compat::EvloopTimer::current()?)
///     .header_read_timeout(Duration::from_secs(10));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct EvloopTimer {
    handle: LoopHandle,
}

impl EvloopTimer {
    /// A timer on `lp`.
    pub fn new(lp: &EventLoop) -> Self {
        EvloopTimer {
            handle: lp.handle(),
        }
    }

    /// A timer on the loop `handle` refers to (usable from any thread).
    pub fn from_handle(handle: LoopHandle) -> Self {
        EvloopTimer { handle }
    }

    /// A timer on the loop running on this thread (`Error::NoRunningLoop`
    /// if none is).
    pub fn current() -> evloop::Result<Self> {
        Ok(EvloopTimer::new(&evloop::get_running_loop()?))
    }

    /// A sleep until `deadline` (what [`hyper::rt::Timer::sleep_until`]
    /// boxes), usable as a plain future too.
    pub fn sleep_until(&self, deadline: Instant) -> EvloopSleep {
        EvloopSleep {
            deadline,
            handle: self.handle.clone(),
            state: State::Idle,
        }
    }

    /// A sleep of `duration` from now.
    pub fn sleep(&self, duration: Duration) -> EvloopSleep {
        self.sleep_until(deadline_after(duration))
    }
}

impl hyper::rt::Timer for EvloopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(EvloopTimer::sleep(self, duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(EvloopTimer::sleep_until(self, deadline))
    }

    /// Moves the deadline of one of our sleeps in place (no new box); any
    /// other sleep is replaced.
    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<EvloopSleep>() {
            Some(ours) => ours.get_mut().reset(new_deadline),
            None => *sleep = hyper::rt::Timer::sleep_until(self, new_deadline),
        }
    }
}

/// `now + d`, or a century ahead if that does not fit the clock (as the
/// loop treats huge delays).
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// The state of an [`EvloopSleep`], flag by flag.
#[derive(Debug)]
enum State {
    /// Not armed yet (armed on the first poll before the deadline).
    Idle,
    /// Armed in `slot`'s thread table, on the loop `handle` refers to
    /// (kept to disarm it from another thread).
    Local { slot: Slot, handle: LoopHandle },
    /// Armed (or being armed) on the timer's loop from another thread.
    Remote(Arc<Remote>),
    /// The deadline passed (or the loop closed): ready for good.
    Done,
}

/// The part of an off-thread sleep that the loop's thread shares.
#[derive(Debug, Default)]
struct Remote {
    /// Set by the loop timer (or when it cannot be armed).
    fired: AtomicBool,
    /// Set when the sleep is dropped or reset: arming it is pointless.
    cancelled: AtomicBool,
    /// The polling task's waker.
    waker: AtomicWaker,
    /// Where it was armed, once it was.
    slot: Mutex<Option<Slot>>,
}

impl Wake for Remote {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Arms a [`Remote`] on the loop's thread; if it is dropped unrun (the
/// loop closed first), fires instead, so the sleep ends rather than hangs.
struct ArmRemote {
    remote: Arc<Remote>,
    deadline: Instant,
    armed: bool,
}

impl ArmRemote {
    fn run(mut self) {
        if self.remote.cancelled.load(Ordering::Acquire) {
            self.armed = true; // nothing to wake
            return;
        }
        if let Ok(lp) = evloop::get_running_loop() {
            let waker = Waker::from(self.remote.clone());
            if let Some(slot) = arm_local(&lp, self.deadline, waker) {
                *self
                    .remote
                    .slot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(slot);
                self.armed = true;
            }
        }
    }
}

impl Drop for ArmRemote {
    fn drop(&mut self) {
        if !self.armed {
            Waker::from(self.remote.clone()).wake();
        }
    }
}

/// A sleep of an [`EvloopTimer`] (hyper's [`Sleep`](hyper::rt::Sleep)):
/// completes at its deadline, measured by an evloop loop's timers. `Send +
/// Sync`. If the loop closes first, it completes at once rather than never.
/// Dropping it cancels its loop timer (on the loop's thread at once, from
/// other threads through the loop's handle).
pub struct EvloopSleep {
    deadline: Instant,
    handle: LoopHandle,
    state: State,
}

impl EvloopSleep {
    /// When the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (earlier or later); the sleep is pending again
    /// until the new one. Its loop timer is disarmed now and re-armed on the
    /// next poll.
    pub fn reset(&mut self, deadline: Instant) {
        self.disarm();
        self.deadline = deadline;
    }

    /// Cancels whatever loop timer is armed; back to `Idle`.
    fn disarm(&mut self) {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle | State::Done => {}
            State::Local { slot, handle } => {
                if !disarm_here(slot) {
                    // Dropped off its thread: the loop's thread disarms it.
                    let _ = handle.call_soon_threadsafe(move || {
                        disarm_here(slot);
                    });
                }
            }
            State::Remote(remote) => {
                remote.cancelled.store(true, Ordering::Release);
                let _ = self.handle.call_soon_threadsafe(move || {
                    let slot = *remote.slot.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(slot) = slot {
                        disarm_here(slot);
                    }
                });
            }
        }
    }
}

impl Drop for EvloopSleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl fmt::Debug for EvloopSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvloopSleep")
            .field("deadline", &self.deadline)
            .field("state", &self.state)
            .finish()
    }
}

impl Future for EvloopSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &this.state {
            State::Done => return Poll::Ready(()),
            State::Local { slot, .. } => {
                let slot = *slot;
                if LOCAL.with(|t| t.borrow().thread) == slot.thread {
                    if still_armed(slot, cx.waker()) {
                        return Poll::Pending;
                    }
                    this.state = State::Done;
                    return Poll::Ready(());
                }
                // Polled on another thread now: start over from here.
                this.disarm();
            }
            State::Remote(remote) => {
                remote.waker.register(cx.waker());
                if remote.fired.load(Ordering::Acquire) {
                    this.state = State::Done;
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
            State::Idle => {}
        }
        if Instant::now() >= this.deadline {
            this.state = State::Done;
            return Poll::Ready(());
        }
        match evloop::get_running_loop() {
            // The fast path: a loop runs on this thread.
            Ok(lp) => match arm_local(&lp, this.deadline, cx.waker().clone()) {
                Some(slot) => {
                    this.state = State::Local {
                        slot,
                        handle: lp.handle(),
                    };
                    Poll::Pending
                }
                None => {
                    this.state = State::Done;
                    Poll::Ready(())
                }
            },
            Err(_) => {
                let remote = Arc::new(Remote::default());
                remote.waker.register(cx.waker());
                let arm = ArmRemote {
                    remote: remote.clone(),
                    deadline: this.deadline,
                    armed: false,
                };
                // Refused (loop closed): the closure, and `arm` with it, is
                // dropped, which fires `remote`.
                let _ = this.handle.call_soon_threadsafe(move || arm.run());
                this.state = State::Remote(remote);
                Poll::Pending
            }
        }
    }
}

impl hyper::rt::Sleep for EvloopSleep {}

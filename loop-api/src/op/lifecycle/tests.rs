//! Property tests of the operation table: random sequences of starts,
//! completions, collects, drops, callback cancels and runs, and `close()`,
//! driven against a fake kernel (which ids it still owns) and a model of
//! every operation's slot.
//!
//! The leftovers and callbacks are probes: each records in a shared log
//! whether it was completed (with which result), freed (dropped) or leaked
//! (never dropped), and flags a violation if it is dropped while the fake
//! kernel still owns its operation. Checked after every step and at the
//! end:
//! - (a) no completion is lost: every result the kernel produced for an
//!   awaited operation reaches its future (`poll`) or its leftovers
//!   (`complete`), exactly once;
//! - (b) no id is reused while the kernel owns it, every key is new, a
//!   stale key never observes or affects the operation now in its slot,
//!   and ids stay dense (below the peak number of live operations);
//! - (c) no probe is dropped while the kernel owns its operation; after a
//!   `close` whose backend could not confirm the kernel let go, exactly the
//!   probes of what the kernel still owns are leaked.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use proptest::prelude::*;

use super::*;
use crate::loop_core::handle::{Callback, CallbackCell, Handle};

/// What a result carried, as the log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Res {
    /// A result the fake kernel produced, with its unique tag.
    Tag(usize),
    /// The error of an operation the loop's close ended.
    Closed,
}

fn res_of(result: &io::Result<OpOutput>) -> Res {
    match result {
        Ok(out) => Res::Tag(out.bytes),
        Err(_) => Res::Closed,
    }
}

#[derive(Default)]
struct Kernel {
    /// Id → operation number, for what the kernel owns.
    owns: BTreeMap<OpId, usize>,
    /// Results produced, per operation number.
    produced: BTreeMap<usize, usize>,
    next_tag: usize,
}

impl Kernel {
    fn owns_op(&self, n: usize) -> bool {
        self.owns.values().any(|&m| m == n)
    }
}

#[derive(Default)]
struct Log {
    /// Results collected by futures through `poll`.
    polled: Vec<(usize, Res)>,
    /// Results handed to leftovers through `complete`.
    salvaged: Vec<(usize, Res)>,
    /// Results callbacks ran with.
    ran: Vec<(usize, Res)>,
    /// Leftovers told they became orphans.
    orphaned: Vec<usize>,
    /// Probes dropped (freed).
    dropped: Vec<usize>,
    /// Probes alive.
    live: usize,
    violations: Vec<String>,
}

#[derive(Default)]
struct Env {
    kernel: RefCell<Kernel>,
    log: RefCell<Log>,
}

/// The memory of operation `n` (a future's buffer, a callback's captures).
struct Probe {
    n: usize,
    env: Rc<Env>,
}

impl Probe {
    fn new(n: usize, env: &Rc<Env>) -> Probe {
        env.log.borrow_mut().live += 1;
        Probe {
            n,
            env: env.clone(),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let owned = self.env.kernel.borrow().owns_op(self.n);
        let mut log = self.env.log.borrow_mut();
        if owned {
            log.violations
                .push(format!("op {} freed while the kernel owns it", self.n));
        }
        log.dropped.push(self.n);
        log.live -= 1;
    }
}

impl Abandoned for Probe {
    fn orphaned(&mut self) {
        self.env.log.borrow_mut().orphaned.push(self.n);
    }
    fn complete(self: Box<Self>, result: io::Result<OpOutput>) {
        let res = res_of(&result);
        self.env.log.borrow_mut().salvaged.push((self.n, res));
    }
}

/// Leftovers offered with a stale key: must be handed straight back.
struct Untouched(Rc<Env>);

impl Abandoned for Untouched {
    fn orphaned(&mut self) {
        self.0
            .log
            .borrow_mut()
            .violations
            .push("stale key orphaned leftovers".into());
    }
    fn complete(self: Box<Self>, _result: io::Result<OpOutput>) {
        self.0
            .log
            .borrow_mut()
            .violations
            .push("stale key salvaged a result".into());
    }
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Future,
    Callback,
}

/// The model's view of an operation's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum M {
    Waiting {
        waker: bool,
    },
    Done(Res),
    Orphan,
    Callback,
    Fired,
    Stuck,
    /// The slot is vacant (the operation ended).
    Gone,
    /// An orphan `close` leaked: the slot is vacant, the kernel owns it.
    Leaked,
}

struct OpModel {
    n: usize,
    key: OpKey,
    kind: Kind,
    slot: M,
    /// The future's memory while the future is alive (futures only).
    memory: Option<Box<Probe>>,
    /// The owner still holds the key (a live future; a callback's owner
    /// that has not cancelled it).
    held: bool,
}

#[derive(Clone, Debug)]
enum Action {
    StartFuture,
    StartCallback,
    /// The kernel completes one of the operations it owns.
    Complete(usize),
    Poll(usize),
    /// A future is dropped; the backend answers its cancel `Forgotten` if true.
    Abandon(usize, bool),
    CancelCallback(usize, bool),
    /// A queued callback runs.
    RunReady(usize),
    /// A key of an ended operation is used.
    Stale(usize),
    /// `close()`: the bits pick the backend's answers and which operations
    /// complete while it drains; `true`: the backend confirmed the kernel
    /// let go of everything.
    Close(u64, bool),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(Action::StartFuture),
        2 => Just(Action::StartCallback),
        4 => any::<usize>().prop_map(Action::Complete),
        3 => any::<usize>().prop_map(Action::Poll),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Action::Abandon(i, d)),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Action::CancelCallback(i, d)),
        2 => any::<usize>().prop_map(Action::RunReady),
        2 => any::<usize>().prop_map(Action::Stale),
        1 => (any::<u64>(), any::<bool>()).prop_map(|(b, l)| Action::Close(b, l)),
    ]
}

struct Harness {
    env: Rc<Env>,
    table: Rc<RefCell<OpTable>>,
    ops: Vec<OpModel>,
    /// Queued callbacks: operation number and the cell the loop would run.
    ready: Vec<(usize, Rc<dyn Callback>)>,
    issued: HashSet<(u32, u32)>,
    peak_live: usize,
    closed: bool,
    waker: Arc<CountingWaker>,
}

fn pick<T>(items: &[T], i: usize) -> Option<&T> {
    (!items.is_empty()).then(|| &items[i % items.len()])
}

impl Harness {
    fn new() -> Harness {
        Harness {
            env: Rc::new(Env::default()),
            table: Rc::new(RefCell::new(OpTable::default())),
            ops: Vec::new(),
            ready: Vec::new(),
            issued: HashSet::new(),
            peak_live: 0,
            closed: false,
            waker: Arc::new(CountingWaker::default()),
        }
    }

    fn op(&mut self, n: usize) -> &mut OpModel {
        &mut self.ops[n]
    }

    fn start(&mut self, kind: Kind) {
        if self.closed {
            // `start_op` and `submit_with_callback` never reach the table
            // of a closed loop.
            return;
        }
        let n = self.ops.len();
        let key = self.table.borrow().next_key();
        assert!(
            self.issued.insert((key.index, key.gen)),
            "key {key:?} issued twice"
        );
        {
            let mut kernel = self.env.kernel.borrow_mut();
            assert!(
                !kernel.owns.contains_key(&key.id()),
                "id {} reused while the kernel owns it",
                key.id()
            );
            kernel.owns.insert(key.id(), n);
        }
        let (state, memory, slot) = match kind {
            Kind::Future => (
                OpState::Waiting(None),
                Some(Box::new(Probe::new(n, &self.env))),
                M::Waiting { waker: false },
            ),
            Kind::Callback => {
                let probe = Probe::new(n, &self.env);
                let callback: OpCallback = Box::new(move |result| {
                    let res = res_of(&result);
                    probe.env.log.borrow_mut().ran.push((probe.n, res));
                });
                (OpState::Callback(callback), None, M::Callback)
            }
        };
        self.table.borrow_mut().insert(key, state);
        self.ops.push(OpModel {
            n,
            key,
            kind,
            slot,
            memory,
            held: true,
        });
        let live = self
            .ops
            .iter()
            .filter(|op| !matches!(op.slot, M::Gone | M::Leaked))
            .count();
        self.peak_live = self.peak_live.max(live);
        assert!(
            key.id() < self.peak_live,
            "id {} not dense: peak of {} live operations",
            key.id(),
            self.peak_live
        );
    }

    /// The kernel reports the result of the operation under `id`, which
    /// it stops owning; as `LoopInner::deliver` does.
    fn deliver(&mut self, id: OpId) {
        let (n, tag) = {
            let mut kernel = self.env.kernel.borrow_mut();
            let n = kernel.owns.remove(&id).expect("owned");
            kernel.next_tag += 1;
            let tag = 1000 + kernel.next_tag;
            kernel.produced.insert(n, tag);
            (n, tag)
        };
        let before = self.op(n).slot;
        let wakes = self.waker.0.load(Ordering::Relaxed);
        let delivered = self.table.borrow_mut().complete(id, Ok(OpOutput::new(tag)));
        match (delivered, before) {
            (Delivered::Nothing, M::Waiting { waker: false }) => {
                self.op(n).slot = M::Done(Res::Tag(tag));
            }
            (Delivered::Wake(waker), M::Waiting { waker: true }) => {
                waker.wake();
                assert_eq!(self.waker.0.load(Ordering::Relaxed), wakes + 1);
                self.op(n).slot = M::Done(Res::Tag(tag));
            }
            (Delivered::Salvage(leftovers, result), M::Orphan) => {
                assert_eq!(res_of(&result), Res::Tag(tag));
                self.op(n).slot = M::Gone;
                leftovers.complete(result);
            }
            (Delivered::Salvage(leftovers, result), M::Leaked) => {
                // Cannot happen: no completion after close.
                leftovers.complete(result);
                panic!("completion of a leaked orphan");
            }
            (Delivered::Call(key, callback, result), M::Callback) => {
                assert_eq!(key, self.op(n).key, "callback of another operation");
                assert_eq!(res_of(&result), Res::Tag(tag));
                assert!(matches!(
                    self.table.borrow().state(key),
                    OpState::Fired(None)
                ));
                if self.closed {
                    self.table.borrow_mut().fire(key, None);
                    drop(callback);
                    self.op(n).slot = M::Gone;
                } else {
                    let table: Weak<RefCell<OpTable>> = Rc::downgrade(&self.table);
                    let cell: Rc<dyn Callback> = Rc::new(CallbackCell::new(move || {
                        if let Some(table) = table.upgrade() {
                            table.borrow_mut().fired_runs(key);
                        }
                        callback(result)
                    }));
                    self.ready.push((n, cell.clone()));
                    self.table.borrow_mut().fire(key, Some(Handle(cell)));
                    self.op(n).slot = M::Fired;
                }
            }
            (delivered, before) => {
                let what = match delivered {
                    Delivered::Nothing => "Nothing",
                    Delivered::Wake(_) => "Wake",
                    Delivered::Salvage(..) => "Salvage",
                    Delivered::Call(..) => "Call",
                };
                panic!("completion of op {n} in {before:?} delivered {what}");
            }
        }
    }

    fn complete(&mut self, i: usize) {
        if self.closed {
            // The driver is gone: nothing completes any more.
            return;
        }
        let ids: Vec<OpId> = self.env.kernel.borrow().owns.keys().copied().collect();
        if let Some(&id) = pick(&ids, i) {
            self.deliver(id);
        }
    }

    fn poll(&mut self, i: usize) {
        let futures: Vec<usize> = self
            .ops
            .iter()
            .filter(|op| op.kind == Kind::Future && op.held)
            .map(|op| op.n)
            .collect();
        let Some(&n) = pick(&futures, i) else { return };
        let key = self.op(n).key;
        let waker = Waker::from(self.waker.clone());
        let polled = self
            .table
            .borrow_mut()
            .poll(key, &Context::from_waker(&waker));
        match (polled, self.op(n).slot) {
            (Poll::Pending, M::Waiting { .. }) => self.op(n).slot = M::Waiting { waker: true },
            (Poll::Pending, M::Stuck) => {}
            (Poll::Ready(result), M::Done(res)) => {
                assert_eq!(res_of(&result), res, "op {n} got another result");
                self.env.log.borrow_mut().polled.push((n, res));
                let op = self.op(n);
                op.slot = M::Gone;
                op.held = false;
                // The future returns its memory to its caller, who frees it.
                drop(op.memory.take());
            }
            (polled, slot) => panic!("poll of op {n} in {slot:?}: {polled:?}"),
        }
    }

    /// A future is dropped: as `LoopInner::abandon_op`.
    fn abandon(&mut self, n: usize, cancel_done: bool) {
        let key = self.op(n).key;
        let arrived = !matches!(self.table.borrow().state(key), OpState::Waiting(_));
        let outcome = if arrived {
            None
        } else if self.closed {
            Some(Cancel::Pending)
        } else if cancel_done {
            self.env.kernel.borrow_mut().owns.remove(&key.id());
            Some(Cancel::Forgotten)
        } else {
            Some(Cancel::Pending)
        };
        let op = self.op(n);
        op.held = false;
        let leftovers: Box<dyn Abandoned> = op.memory.take().expect("a live future");
        let before = op.slot;
        let step = self.table.borrow_mut().abandon(key, outcome, leftovers);
        match (step, before) {
            (Abandon::Salvage(leftovers, result), M::Done(res)) => {
                assert_eq!(res_of(&result), res);
                self.op(n).slot = M::Gone;
                leftovers.complete(result);
            }
            (Abandon::Nothing, M::Waiting { .. }) if outcome == Some(Cancel::Pending) => {
                assert_eq!(self.env.log.borrow().orphaned.last(), Some(&n));
                self.op(n).slot = M::Orphan;
            }
            (Abandon::Free(leftovers), M::Waiting { .. }) if outcome == Some(Cancel::Forgotten) => {
                self.op(n).slot = M::Gone;
                drop(leftovers);
            }
            // The leftovers were leaked by the table.
            (Abandon::Nothing, M::Stuck) => {}
            (step, before) => {
                let what = match step {
                    Abandon::Nothing => "Nothing",
                    Abandon::Free(_) => "Free",
                    Abandon::Salvage(..) => "Salvage",
                };
                panic!("abandon of op {n} in {before:?} ({outcome:?}) gave {what}");
            }
        }
    }

    fn abandon_one(&mut self, i: usize, cancel_done: bool) {
        let futures: Vec<usize> = self
            .ops
            .iter()
            .filter(|op| op.kind == Kind::Future && op.held)
            .map(|op| op.n)
            .collect();
        if let Some(&n) = pick(&futures, i) {
            self.abandon(n, cancel_done);
        }
    }

    /// As `EventLoop::cancel_op`.
    fn cancel_callback(&mut self, i: usize, cancel_done: bool) {
        let callbacks: Vec<usize> = self
            .ops
            .iter()
            .filter(|op| op.kind == Kind::Callback && op.held)
            .map(|op| op.n)
            .collect();
        let Some(&n) = pick(&callbacks, i) else {
            return;
        };
        let key = self.op(n).key;
        let before = self.op(n).slot;
        let outcome = match self.table.borrow().state(key) {
            OpState::Callback(_) => Some(if self.closed || cancel_done {
                self.env.kernel.borrow_mut().owns.remove(&key.id());
                Cancel::Forgotten
            } else {
                Cancel::Pending
            }),
            OpState::Fired(_) => None,
            _ => {
                assert!(
                    matches!(before, M::Gone | M::Orphan | M::Leaked),
                    "op {n} in {before:?}"
                );
                return;
            }
        };
        self.op(n).held = false;
        let left = self.table.borrow_mut().cancel_callback(key, outcome);
        match (left, before) {
            (Some(OpState::Fired(handle)), M::Fired) => {
                self.op(n).slot = M::Gone;
                handle.expect("queued").cancel();
            }
            (Some(state @ OpState::Callback(_)), M::Callback) => {
                assert_eq!(outcome, Some(Cancel::Forgotten));
                self.op(n).slot = M::Gone;
                drop(state);
            }
            (None, M::Callback) => {
                assert_eq!(outcome, Some(Cancel::Pending));
                self.op(n).slot = M::Orphan;
            }
            (left, before) => panic!("cancel of callback op {n} in {before:?}: {left:?}"),
        }
    }

    fn run_ready(&mut self, i: usize) {
        if self.ready.is_empty() {
            return;
        }
        let (n, cell) = self.ready.remove(i % self.ready.len());
        let runs = self.op(n).slot == M::Fired;
        assert_eq!(
            runs,
            !cell.is_cancelled(),
            "op {n} in {:?}",
            self.op(n).slot
        );
        cell.run();
        if runs {
            self.op(n).slot = M::Gone;
            let tag = self.env.kernel.borrow().produced[&n];
            assert_eq!(
                self.env.log.borrow().ran.last(),
                Some(&(n, Res::Tag(tag))),
                "callback of op {n} did not run with its result"
            );
        }
    }

    /// A key whose operation ended is used every way a caller could.
    fn stale(&mut self, i: usize) {
        let ended: Vec<OpKey> = self
            .ops
            .iter()
            .filter(|op| matches!(op.slot, M::Gone | M::Leaked))
            .map(|op| op.key)
            .collect();
        let Some(&key) = pick(&ended, i) else { return };
        let mut table = self.table.borrow_mut();
        assert!(matches!(table.state(key), OpState::Vacant));
        table.fired_runs(key);
        table.fire(key, None);
        for outcome in [None, Some(Cancel::Forgotten), Some(Cancel::Pending)] {
            assert!(table.cancel_callback(key, outcome).is_none());
            let leftovers = Box::new(Untouched(self.env.clone()));
            let step = table.abandon(key, outcome, leftovers);
            assert!(
                matches!(step, Abandon::Free(_)),
                "stale abandon took leftovers"
            );
        }
        assert!(table.finish_waiting(key, Err(closed())).is_none());
        // `check` then finds every live operation in its state.
    }

    /// As `EventLoop::close`, from the table's point of view.
    fn close(&mut self, bits: u64, let_go: bool) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut bit = 0;
        let mut next = || {
            bit += 1;
            bits >> (bit % 64) & 1 == 1
        };
        // Queued callbacks are dropped unrun (their slots stay Fired).
        self.ready.clear();
        drop(self.table.borrow_mut().take_wakers());
        for op in &mut self.ops {
            if let M::Waiting { .. } = op.slot {
                op.slot = M::Waiting { waker: false };
            }
        }
        // Callback operations are cancelled in the backend.
        let callbacks = self
            .table
            .borrow()
            .keys_where(|state| matches!(state, OpState::Callback(_)));
        for key in callbacks {
            let n = self.env.kernel.borrow().owns[&key.id()];
            let outcome = if next() {
                self.env.kernel.borrow_mut().owns.remove(&key.id());
                Cancel::Forgotten
            } else {
                Cancel::Pending
            };
            let left = self.table.borrow_mut().cancel_callback(key, Some(outcome));
            self.op(n).slot = match outcome {
                Cancel::Forgotten => M::Gone,
                Cancel::Pending => M::Orphan,
            };
            assert_eq!(left.is_some(), outcome == Cancel::Forgotten);
            drop(left);
        }
        // Awaited operations too: those the backend forgot end `Closed`.
        let awaited = self
            .table
            .borrow()
            .keys_where(|state| matches!(state, OpState::Waiting(_)));
        for key in awaited {
            let n = self.env.kernel.borrow().owns[&key.id()];
            if next() {
                self.env.kernel.borrow_mut().owns.remove(&key.id());
                let waker = self.table.borrow_mut().finish_waiting(key, Err(closed()));
                assert!(waker.is_none(), "wakers were taken");
                self.op(n).slot = M::Done(Res::Closed);
            }
        }
        // The bounded drain: some final completions arrive.
        let owned: Vec<OpId> = self.env.kernel.borrow().owns.keys().copied().collect();
        for id in owned {
            if next() {
                self.deliver(id);
            }
        }
        let holds = self.table.borrow().kernel_holds_any();
        assert_eq!(holds, !self.env.kernel.borrow().owns.is_empty());
        let let_go = let_go || !holds;
        if let_go {
            // The backend confirmed the kernel let go of everything.
            self.env.kernel.borrow_mut().owns.clear();
        }
        let (left, wakers) = self.table.borrow_mut().close(let_go, closed);
        assert!(wakers.is_empty(), "wakers were taken");
        for state in left {
            match state {
                OpState::Orphan(leftovers) if !let_go => std::mem::forget(leftovers),
                OpState::Orphan(_) | OpState::Fired(_) => drop(state),
                other => panic!("close took {other:?}"),
            }
        }
        for op in &mut self.ops {
            op.slot = match op.slot {
                M::Waiting { .. } if let_go => M::Done(Res::Closed),
                M::Waiting { .. } => M::Stuck,
                M::Orphan if let_go => M::Gone,
                M::Orphan => M::Leaked,
                M::Fired => M::Gone,
                M::Callback => panic!("callback op {} left at close", op.n),
                other => other,
            };
        }
    }

    fn step(&mut self, action: &Action) {
        match *action {
            Action::StartFuture => self.start(Kind::Future),
            Action::StartCallback => self.start(Kind::Callback),
            Action::Complete(i) => self.complete(i),
            Action::Poll(i) => self.poll(i),
            Action::Abandon(i, done) => self.abandon_one(i, done),
            Action::CancelCallback(i, done) => self.cancel_callback(i, done),
            Action::RunReady(i) => self.run_ready(i),
            Action::Stale(i) => self.stale(i),
            Action::Close(bits, let_go) => self.close(bits, let_go),
        }
        self.check();
    }

    /// The table agrees with the model, the kernel with both, and no probe
    /// was freed too early.
    fn check(&self) {
        let table = self.table.borrow();
        let mut kernel_should_own = BTreeSet::new();
        for op in &self.ops {
            let state = table.state(op.key);
            let agrees = match op.slot {
                M::Waiting { waker } => {
                    matches!(state, OpState::Waiting(w) if w.is_some() == waker)
                }
                M::Done(res) => matches!(state, OpState::Arrived(r) if res_of(r) == res),
                M::Orphan => matches!(state, OpState::Orphan(_)),
                M::Callback => matches!(state, OpState::Callback(_)),
                M::Fired => matches!(state, OpState::Fired(Some(_))),
                M::Stuck => matches!(state, OpState::Stuck),
                M::Gone | M::Leaked => matches!(state, OpState::Vacant),
            };
            assert!(
                agrees,
                "op {} is {:?} in the model, {state:?} in the table",
                op.n, op.slot
            );
            if matches!(
                op.slot,
                M::Waiting { .. } | M::Orphan | M::Callback | M::Stuck | M::Leaked
            ) {
                kernel_should_own.insert(op.n);
            }
        }
        let kernel_owns: BTreeSet<usize> =
            self.env.kernel.borrow().owns.values().copied().collect();
        assert_eq!(kernel_owns, kernel_should_own, "what the kernel owns");
        assert_eq!(table.slots.len(), self.peak_live, "slots beyond the peak");
        let log = self.env.log.borrow();
        assert!(log.violations.is_empty(), "{:?}", log.violations);
    }

    /// Closes (if not yet) and drops every future, then the table; checks
    /// what was completed, freed and leaked.
    fn finish(mut self, bits: u64, let_go: bool) {
        self.close(bits, let_go);
        self.check();
        let held: Vec<usize> = self
            .ops
            .iter()
            .filter(|op| op.kind == Kind::Future && op.held)
            .map(|op| op.n)
            .collect();
        for n in held {
            self.abandon(n, false);
            self.check();
        }
        let Harness {
            env, table, ops, ..
        } = self;
        drop(table);
        let log = env.log.borrow();
        let kernel = env.kernel.borrow();
        assert!(log.violations.is_empty(), "{:?}", log.violations);
        // (a) Every result the kernel produced for an awaited operation
        // reached its future or its leftovers, once.
        for op in ops.iter().filter(|op| op.kind == Kind::Future) {
            let got: Vec<Res> = log
                .polled
                .iter()
                .chain(&log.salvaged)
                .filter(|(n, _)| *n == op.n)
                .map(|&(_, res)| res)
                .collect();
            match kernel.produced.get(&op.n) {
                Some(&tag) => assert_eq!(got, [Res::Tag(tag)], "op {}", op.n),
                None => assert!(got.iter().all(|&r| r == Res::Closed) && got.len() <= 1),
            }
        }
        // A callback ran at most once, with its operation's result.
        for op in ops.iter().filter(|op| op.kind == Kind::Callback) {
            let ran: Vec<Res> = log
                .ran
                .iter()
                .filter(|(n, _)| *n == op.n)
                .map(|&(_, res)| res)
                .collect();
            assert!(ran.len() <= 1);
            if let Some(&res) = ran.first() {
                assert_eq!(Some(res), kernel.produced.get(&op.n).map(|&t| Res::Tag(t)));
            }
        }
        // (c) Exactly what the kernel still owns was leaked; everything else
        // was freed, once.
        let owned: BTreeSet<usize> = kernel.owns.values().copied().collect();
        let dropped: BTreeSet<usize> = log.dropped.iter().copied().collect();
        assert_eq!(dropped.len(), log.dropped.len(), "a probe dropped twice");
        let all: BTreeSet<usize> = ops.iter().map(|op| op.n).collect();
        let leaked: BTreeSet<usize> = all.difference(&dropped).copied().collect();
        assert_eq!(leaked, owned, "leaked versus still in the kernel");
        assert_eq!(log.live, owned.len());
    }
}

fn closed() -> io::Error {
    io::Error::other("closed")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_matches_model(
        actions in proptest::collection::vec(action(), 1..80),
        bits in any::<u64>(),
        let_go in any::<bool>(),
    ) {
        let mut harness = Harness::new();
        for action in &actions {
            harness.step(action);
        }
        harness.finish(bits, let_go);
    }

    /// Many operations in flight, few closes: ids are reused a lot.
    #[test]
    fn busy_table_reuses_ids_safely(
        actions in proptest::collection::vec(
            prop_oneof![
                3 => Just(Action::StartFuture),
                1 => Just(Action::StartCallback),
                3 => any::<usize>().prop_map(Action::Complete),
                3 => any::<usize>().prop_map(Action::Poll),
                2 => (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Action::Abandon(i, d)),
                1 => (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Action::CancelCallback(i, d)),
                2 => any::<usize>().prop_map(Action::RunReady),
                3 => any::<usize>().prop_map(Action::Stale),
            ],
            20..200,
        ),
        bits in any::<u64>(),
        let_go in any::<bool>(),
    ) {
        let mut harness = Harness::new();
        for action in &actions {
            harness.step(action);
        }
        harness.finish(bits, let_go);
    }
}

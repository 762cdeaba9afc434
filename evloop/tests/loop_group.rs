//! `LoopGroup` / `run_per_core`: a loop per thread, on every backend.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use evloop::backend::{Cancel, Completion, Driver, Notify, Op, OpId, OpOutput};
use evloop::net::TcpStream;
use evloop::{Error, LoopGroup};

const LOOPS: usize = 3;

/// A group of `n` loops on `backend`, made through the builder's factory.
fn group_on(backend: &'static str, n: usize) -> LoopGroup {
    LoopGroup::builder()
        .threads(n)
        .factory(move || evloop::new_event_loop_for(backend))
        .build()
        .unwrap_or_else(|e| panic!("group on {backend}: {e}"))
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// An echo handler that counts its connections in `served[loop]`.
fn echo(
    served: Arc<Vec<AtomicUsize>>,
    index_of: Arc<dyn Fn() -> usize + Send + Sync>,
) -> impl Fn(TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Send + Clone {
    move |conn: TcpStream| {
        served[index_of()].fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let mut buf = Vec::with_capacity(4096);
            loop {
                let (n, b) = conn.read_owned(buf).await;
                match n {
                    Ok(n) if n > 0 => {
                        let (res, b) = conn.write_all_owned(b).await;
                        if res.is_err() {
                            return;
                        }
                        buf = b;
                        buf.clear();
                    }
                    _ => return,
                }
            }
        })
    }
}

// Which loop a handler runs on: each loop stores its index in a thread-local.
thread_local! {
    static LOOP_INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn tag_loops(group: &LoopGroup) {
    for t in group
        .spawn_each(|i| async move { LOOP_INDEX.with(|c| c.set(i)) })
        .unwrap()
    {
        t.wait().unwrap();
    }
}

#[test]
fn every_loop_runs_work_on_its_own_thread_on_every_backend() {
    for &backend in &evloop::available_backends() {
        let group = group_on(backend, LOOPS);
        assert_eq!(group.len(), LOOPS);
        let tasks = group
            .spawn_each(|i| async move {
                // !Send state is fine: the future is built on the loop.
                let local = std::rc::Rc::new(i * 10);
                evloop::sleep(Duration::from_millis(2)).await;
                let lp = evloop::get_running_loop().unwrap();
                (*local, lp.backend_name(), std::thread::current().id())
            })
            .unwrap();
        let outs: Vec<_> = tasks.into_iter().map(|t| t.wait().unwrap()).collect();
        let threads: HashSet<_> = outs.iter().map(|o| o.2).collect();
        assert_eq!(threads.len(), LOOPS, "{backend}: one thread per loop");
        assert!(!threads.contains(&std::thread::current().id()));
        for (i, (v, name, _)) in outs.iter().enumerate() {
            assert_eq!(*v, i * 10);
            assert_eq!(*name, backend);
            assert_eq!(group.backend(i), Some(backend));
        }
        group.shutdown().unwrap();
    }
}

#[test]
fn posting_to_each_loop_through_its_handle() {
    let group = LoopGroup::builder().threads(LOOPS).build().unwrap();
    let expected: Vec<_> = (0..LOOPS)
        .map(|i| {
            group
                .spawn_on(i, || async { std::thread::current().id() })
                .unwrap()
                .wait()
                .unwrap()
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    // From other threads, through the Send + Sync handles.
    let group = Arc::new(group);
    std::thread::scope(|s| {
        for i in 0..LOOPS {
            let group = group.clone();
            let tx = tx.clone();
            s.spawn(move || {
                group
                    .handle(i)
                    .unwrap()
                    .call_soon_threadsafe(move || {
                        tx.send((i, std::thread::current().id())).unwrap()
                    })
                    .unwrap();
            });
        }
    });
    let mut got: Vec<_> = (0..LOOPS)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    got.sort_by_key(|(i, _)| *i);
    for (i, id) in got {
        assert_eq!(
            id, expected[i],
            "loop {i}'s callback ran on loop {i}'s thread"
        );
    }
    // A stop() on one member ends only one run_forever: the loop keeps serving.
    group.handle(0).unwrap().stop().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        group.spawn_on(0, || async { 7 }).unwrap().wait().unwrap(),
        7
    );
    Arc::try_unwrap(group).unwrap().shutdown().unwrap();
}

#[test]
fn a_remote_task_is_awaited_from_another_loop() {
    let group = Arc::new(LoopGroup::builder().threads(2).build().unwrap());
    let g = group.clone();
    let sum = evloop::run(async move {
        let a = g.spawn_on(0, || async { 20 }).unwrap();
        let b = g.spawn_on(1, || async { 22 }).unwrap();
        // A blocking wait inside a loop is refused, not a deadlock.
        let c = g.spawn_on(1, || async { 0 }).unwrap();
        assert!(matches!(c.wait(), Err(Error::AnotherLoopRunning)));
        a.await.unwrap() + b.await.unwrap()
    })
    .unwrap();
    assert_eq!(sum, 42);
    Arc::try_unwrap(group).unwrap().shutdown().unwrap();
}

#[test]
fn reuseport_echo_served_by_every_loop_answers_every_client() {
    const CLIENTS: usize = 120;
    for &backend in &evloop::available_backends() {
        let group = group_on(backend, LOOPS);
        tag_loops(&group);
        let served: Arc<Vec<AtomicUsize>> =
            Arc::new((0..LOOPS).map(|_| AtomicUsize::new(0)).collect());
        let addr = group
            .serve(
                localhost(),
                echo(served.clone(), Arc::new(|| LOOP_INDEX.with(|c| c.get()))),
            )
            .unwrap();
        assert_ne!(addr.port(), 0);
        // Many clients, from 4 threads, each its own connection (and port).
        let answered = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let answered = &answered;
                s.spawn(move || {
                    for c in 0..CLIENTS / 4 {
                        let mut conn = std::net::TcpStream::connect(addr).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                        let msg = format!("hello {t} {c} {}", "x".repeat(c * 37));
                        conn.write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0; msg.len()];
                        conn.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg.as_bytes());
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(answered.load(Ordering::SeqCst), CLIENTS);
        let per_loop: Vec<usize> = served.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        // Every connection was accepted by one of the group's loops (how the
        // kernel spread them is not asserted).
        assert_eq!(
            per_loop.iter().sum::<usize>(),
            CLIENTS,
            "{backend}: {per_loop:?}"
        );
        group.shutdown().unwrap();
        // Every listener closed with the group.
        assert_eq!(
            std::net::TcpStream::connect(addr).unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }
}

#[test]
fn serve_reports_a_taken_address_and_a_bad_index() {
    let group = LoopGroup::builder().threads(2).build().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = group.serve(addr, |_c: TcpStream| async {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    match group.spawn_on(2, || async {}) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("out of range"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(group.handle(2).is_none());
    group.shutdown().unwrap();
    assert!(matches!(
        LoopGroup::builder().threads(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        LoopGroup::builder().threads(2).backend("kqueue").build(),
        Err(Error::BackendUnavailable { .. })
    ));
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_cancels_pending_tasks_and_closes_open_connections() {
    for &backend in &evloop::available_backends() {
        let group = group_on(backend, 2);
        let addr = group
            .serve(localhost(), |conn: TcpStream| async move {
                // Holds the connection, reading until the peer closes.
                let _ = conn.read_owned(Vec::with_capacity(16)).await;
                evloop::sleep(Duration::from_secs(3600)).await;
            })
            .unwrap();
        let mut open = std::net::TcpStream::connect(addr).unwrap();
        open.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let dropped: Vec<Arc<AtomicBool>> =
            (0..2).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let pending: Vec<_> = (0..2)
            .map(|i| {
                let flag = dropped[i].clone();
                group
                    .spawn_on(i, move || async move {
                        let _guard = SetOnDrop(flag);
                        evloop::sleep(Duration::from_secs(3600)).await;
                    })
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        group.shutdown().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{backend}: {:?}",
            t0.elapsed()
        );
        for (i, flag) in dropped.iter().enumerate() {
            assert!(
                flag.load(Ordering::SeqCst),
                "{backend}: loop {i}'s task was dropped"
            );
        }
        for t in pending {
            assert!(matches!(t.wait(), Err(Error::Cancelled)), "{backend}");
        }
        // The server side of the open connection was closed: end of stream.
        let mut buf = [0u8; 1];
        assert_eq!(open.read(&mut buf).unwrap(), 0, "{backend}");
    }
}

#[test]
fn a_panicking_setup_is_that_loops_error_and_the_others_keep_running() {
    let group = LoopGroup::builder().threads(LOOPS).build().unwrap();
    let tasks = group
        .spawn_each(|i| {
            if i == 1 {
                panic!("setup of loop 1 failed");
            }
            async move { i }
        })
        .unwrap();
    let results: Vec<_> = tasks.into_iter().map(|t| t.wait()).collect();
    assert_eq!(*results[0].as_ref().unwrap(), 0);
    assert_eq!(*results[2].as_ref().unwrap(), 2);
    match &results[1] {
        Err(Error::Panicked(msg)) => assert!(msg.contains("setup of loop 1 failed"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // Loop 1 survived its setup's panic.
    assert_eq!(
        group.spawn_on(1, || async { 5 }).unwrap().wait().unwrap(),
        5
    );
    group.shutdown().unwrap();

    // run(): a panicking main fails the whole run and cancels the others.
    let others_dropped = Arc::new(AtomicBool::new(false));
    let flag = others_dropped.clone();
    let err = LoopGroup::builder()
        .threads(2)
        .build()
        .unwrap()
        .run(move |i| {
            let flag = flag.clone();
            async move {
                if i == 1 {
                    evloop::sleep(Duration::from_millis(5)).await;
                    panic!("main of loop 1");
                }
                let _guard = SetOnDrop(flag);
                evloop::sleep(Duration::from_secs(3600)).await;
            }
        })
        .unwrap_err();
    match err {
        Error::Panicked(msg) => assert!(
            msg.starts_with("loop 1: ") && msg.contains("main of loop 1"),
            "{msg}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(others_dropped.load(Ordering::SeqCst));

    // A factory that panics: build() reports it, no thread is left behind.
    let err = LoopGroup::builder()
        .threads(2)
        .factory(|| panic!("no loop for you"))
        .build()
        .unwrap_err();
    match err {
        Error::Panicked(msg) => assert!(msg.contains("no loop for you"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn run_per_core_runs_main_on_every_loop() {
    let out = evloop::run_per_core(|i| async move {
        evloop::yield_now().await;
        i * 2
    })
    .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(out, (0..cores).map(|i| i * 2).collect::<Vec<_>>());
    // Not from inside a loop: it blocks.
    let inside = evloop::run(async { evloop::run_per_core(|_| async {}) }).unwrap();
    assert!(matches!(inside, Err(Error::AnotherLoopRunning)));
}

#[test]
fn pinned_loops_run_on_their_cpu() {
    let group = LoopGroup::builder()
        .threads(2)
        .pin_to_cores(true)
        .build()
        .unwrap();
    for i in 0..2 {
        let cpu = group.cpu(i).expect("pinned");
        let allowed = group
            .spawn_on(i, || async {
                let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .unwrap()
                    .trim()
                    .to_owned()
            })
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(allowed, cpu.to_string(), "loop {i}");
    }
    group.shutdown().unwrap();
}

thread_local! {
    static BOOM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The mio driver, except that `wait` panics once its thread's `BOOM` is
/// set: a panic out of the loop itself (not a callback's, which the loop
/// catches).
struct PanickingDriver {
    inner: Box<dyn Driver>,
}

impl Driver for PanickingDriver {
    fn name(&self) -> &'static str {
        "panicking-mio"
    }
    unsafe fn submit(&mut self, id: OpId, op: Op) -> std::task::Poll<std::io::Result<OpOutput>> {
        // SAFETY: the loop keeps `submit`'s contract, which we pass on unchanged.
        unsafe { self.inner.submit(id, op) }
    }
    fn cancel(&mut self, id: OpId) -> Cancel {
        self.inner.cancel(id)
    }
    fn release_fd(&mut self, fd: std::os::fd::RawFd) {
        self.inner.release_fd(fd)
    }
    fn wait(&mut self, t: Option<Duration>, done: &mut Vec<Completion>) -> std::io::Result<()> {
        if BOOM.with(|b| b.replace(false)) {
            panic!("the driver broke");
        }
        self.inner.wait(t, done)
    }
    fn notifier(&self) -> Arc<dyn Notify> {
        self.inner.notifier()
    }
}

#[test]
fn a_loop_thread_that_panics_is_a_typed_shutdown_error() {
    let group = LoopGroup::builder()
        .threads(2)
        .factory(move || {
            Ok(evloop::backend::from_driver(Box::new(PanickingDriver {
                inner: Box::new(evloop::backend::mio::driver()?),
            })))
        })
        .build()
        .unwrap();
    // Break loop 0 only: set the flag on its own thread.
    group
        .handle(0)
        .unwrap()
        .call_soon_threadsafe(|| BOOM.with(|b| b.set(true)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while group.spawn_on(0, || async {}).is_ok() {
        assert!(Instant::now() < deadline, "loop 0 never broke");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        group.spawn_on(1, || async { 1 }).unwrap().wait().unwrap(),
        1
    );
    let err = group.shutdown().unwrap_err();
    assert_eq!(err.failures().len(), 1, "{err}");
    let (i, e) = &err.failures()[0];
    assert_eq!(*i, 0);
    assert!(
        matches!(e, Error::Panicked(m) if m.contains("the driver broke")),
        "{e}"
    );
    assert!(err.to_string().contains("loop 0: "), "{err}");
    // Into evloop::Error for `?`: the first failure.
    assert!(matches!(Error::from(err), Error::Panicked(m) if m.starts_with("loop 0: ")));
}

#[test]
fn the_group_and_its_results_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LoopGroup>();
    send_sync::<evloop::RemoteTask<Vec<u8>>>();
    send_sync::<evloop::LoopGroupError>();
}

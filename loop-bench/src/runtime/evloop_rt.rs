//! evloop, on one named backend, as a contender.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use evloop::{EventLoop, LoopHandle};

use super::{Runtime, Stopper, ECHO_BUF};

/// evloop on the backend `backend` (`mio`, `polling`, `uring`), each loop
/// made by `evloop::new_event_loop_for`.
#[derive(Debug, Clone)]
pub struct Evloop {
    /// The backend's name as `new_event_loop_for` takes it.
    pub backend: String,
}

impl Evloop {
    /// evloop on `backend`.
    pub fn new(backend: impl Into<String>) -> Evloop {
        Evloop {
            backend: backend.into(),
        }
    }

    /// Whether a loop on this backend can be created here; `Err(reason)`
    /// (unknown, not compiled in, or not usable on this host) if not.
    pub fn probe(&self) -> Result<(), String> {
        let lp = evloop::new_event_loop_for(&self.backend).map_err(|e| e.to_string())?;
        lp.close().map_err(|e| e.to_string())
    }
}

impl Runtime for Evloop {
    type Spawner = EventLoop;
    type Remote = LoopHandle;

    fn name(&self) -> String {
        self.backend.clone()
    }

    fn block_on<M, Fut>(&self, main: M) -> Result<Fut::Output, String>
    where
        M: FnOnce(EventLoop) -> Fut,
        Fut: Future + 'static,
        Fut::Output: 'static,
    {
        let lp = evloop::new_event_loop_for(&self.backend).map_err(|e| e.to_string())?;
        let fut = main(lp.clone());
        // run_with runs the future, cancels leftover tasks and closes the loop.
        evloop::run_with(move || Ok(lp), fut).map_err(|e| e.to_string())
    }

    fn soon<S, F>(lp: &EventLoop, f: F, state: S)
    where
        S: Send + 'static,
        F: FnOnce(&EventLoop, S) + Send + 'static,
    {
        let next = lp.clone();
        lp.call_soon(move || f(&next, state))
            .expect("the loop is open while a workload runs");
    }

    fn spawn<F>(lp: &EventLoop, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = lp
            .create_task(fut)
            .expect("the loop is open while a workload runs");
        async move { task.await.expect("a benchmark task never fails") }
    }

    fn yield_now() -> impl Future<Output = ()> + Send + 'static {
        evloop::yield_now()
    }

    fn timer_cycle(lp: &EventLoop, delay: Duration) {
        lp.call_later(delay, || {})
            .expect("the loop is open while a workload runs")
            .cancel();
    }

    fn remote(lp: &EventLoop) -> LoopHandle {
        lp.handle()
    }

    fn remote_call<F: FnOnce() + Send + 'static>(remote: &LoopHandle, f: F) -> bool {
        remote.call_soon_threadsafe(f).is_ok()
    }

    fn blocking<T, F>(
        lp: &EventLoop,
        f: F,
    ) -> Result<impl Future<Output = T> + 'static, &'static str>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let job = lp.run_in_executor(f);
        Ok(async move { job.await.expect("a benchmark job never fails") })
    }

    fn echo_supported(&self) -> Result<(), String> {
        Ok(())
    }

    fn serve_echo(
        &self,
        listener: TcpListener,
        ready: Box<dyn FnOnce(Stopper)>,
    ) -> Result<(), String> {
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("set_nonblocking: {e}"))?;
        self.block_on(move |lp| async move {
            let listener = evloop::net::TcpListener::from_std(listener)
                .map_err(|e| format!("evloop listener: {e}"))?;
            let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
            ready(Box::new(move || {
                stop_tx.close();
            }));
            let accept = async {
                loop {
                    let stream = match listener.accept().await {
                        Ok((stream, _)) => stream,
                        Err(e) => return Err::<(), String>(format!("accept: {e}")),
                    };
                    let _ = stream.set_nodelay(true);
                    let task = lp.create_task(async move {
                        let mut buf = Vec::with_capacity(ECHO_BUF);
                        loop {
                            let (res, data) = stream.read_owned(buf).await;
                            match res {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            }
                            let (res, data) = stream.write_all_owned(data).await;
                            if res.is_err() {
                                break;
                            }
                            buf = data;
                        }
                    });
                    match task {
                        Ok(task) => task.detach(),
                        Err(e) => return Err(format!("create_task: {e}")),
                    }
                }
            };
            futures_lite::future::or(accept, async {
                let _ = stop_rx.recv().await;
                Ok(())
            })
            .await
        })?
    }
}

//! tokio's `current_thread` runtime as a contender.

use std::future::Future;
use std::net::TcpListener;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Runtime, Stopper, ECHO_BUF};

/// tokio, `Builder::new_current_thread().enable_all()`: one thread, I/O and
/// timers driven by that thread (the peer most people would pick).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

/// tokio's spawner is its thread-local runtime context: `tokio::spawn`.
#[derive(Debug, Clone, Copy)]
pub struct TokioContext;

type Job = Box<dyn FnOnce() + Send>;

impl Runtime for Tokio {
    type Spawner = TokioContext;
    type Remote = mpsc::UnboundedSender<Job>;

    fn name(&self) -> String {
        "tokio".to_owned()
    }

    fn block_on<M, Fut>(&self, main: M) -> Result<Fut::Output, String>
    where
        M: FnOnce(TokioContext) -> Fut,
        Fut: Future + 'static,
        Fut::Output: 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
        Ok(rt.block_on(main(TokioContext)))
    }

    fn soon<S, F>(_: &TokioContext, f: F, state: S)
    where
        S: Send + 'static,
        F: FnOnce(&TokioContext, S) + Send + 'static,
    {
        // The JoinHandle is dropped: the task is detached.
        tokio::spawn(async move { f(&TokioContext, state) });
    }

    fn spawn<F>(_: &TokioContext, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = tokio::spawn(fut);
        async move { handle.await.expect("a benchmark task never panics") }
    }

    fn yield_now() -> impl Future<Output = ()> + Send + 'static {
        tokio::task::yield_now()
    }

    fn timer_cycle(_: &TokioContext, delay: Duration) {
        // `unconstrained`: the timer loop never yields, and without it tokio's
        // cooperative budget would make every poll after the 128th return
        // Pending without registering the timer at all.
        let sleep = pin!(tokio::task::unconstrained(tokio::time::sleep(delay)));
        // A first poll registers the timer with the driver; the drop at the
        // end of this scope deregisters it.
        let _ = sleep.poll(&mut Context::from_waker(Waker::noop()));
    }

    fn remote(_: &TokioContext) -> Self::Remote {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                job();
            }
        });
        tx
    }

    fn remote_call<F: FnOnce() + Send + 'static>(remote: &Self::Remote, f: F) -> bool {
        remote.send(Box::new(f)).is_ok()
    }

    fn blocking<T, F>(
        _: &TokioContext,
        f: F,
    ) -> Result<impl Future<Output = T> + 'static, &'static str>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = tokio::task::spawn_blocking(f);
        Ok(async move { handle.await.expect("a benchmark job never panics") })
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
        self.block_on(move |_| async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| format!("tokio listener: {e}"))?;
            let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
            ready(Box::new(move || {
                stop_tx.close();
            }));
            let accept = async {
                loop {
                    let mut stream = match listener.accept().await {
                        Ok((stream, _)) => stream,
                        Err(e) => return Err::<(), String>(format!("accept: {e}")),
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; ECHO_BUF];
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if stream.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    });
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

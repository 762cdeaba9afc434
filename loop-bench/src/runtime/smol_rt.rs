//! smol as a contender: a `LocalExecutor` driven by async-io's `block_on`.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::{Runtime, Stopper, ECHO_BUF};

/// smol's single-threaded setup: `async_io::block_on(LocalExecutor::run(..))`,
/// so the reactor is driven by the loop's own thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

type Job = Box<dyn FnOnce() + Send>;

impl Runtime for Smol {
    type Spawner = Rc<LocalExecutor<'static>>;
    type Remote = async_channel::Sender<Job>;

    fn name(&self) -> String {
        "smol".to_owned()
    }

    fn block_on<M, Fut>(&self, main: M) -> Result<Fut::Output, String>
    where
        M: FnOnce(Self::Spawner) -> Fut,
        Fut: Future + 'static,
        Fut::Output: 'static,
    {
        let ex = Rc::new(LocalExecutor::new());
        let fut = main(ex.clone());
        Ok(async_io::block_on(ex.run(fut)))
    }

    fn soon<S, F>(sp: &Self::Spawner, f: F, state: S)
    where
        S: Send + 'static,
        F: FnOnce(&Self::Spawner, S) + Send + 'static,
    {
        let ex = sp.clone();
        sp.spawn(async move { f(&ex, state) }).detach();
    }

    fn spawn<F>(sp: &Self::Spawner, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        sp.spawn(fut)
    }

    fn yield_now() -> impl Future<Output = ()> + Send + 'static {
        futures_lite::future::yield_now()
    }

    fn timer_cycle(_: &Self::Spawner, delay: Duration) {
        let timer = pin!(Timer::after(delay));
        // A first poll registers the timer with the reactor; the drop at the
        // end of this scope deregisters it.
        let _ = timer.poll(&mut Context::from_waker(Waker::noop()));
    }

    fn remote(sp: &Self::Spawner) -> Self::Remote {
        let (tx, rx) = async_channel::unbounded::<Job>();
        sp.spawn(async move {
            while let Ok(job) = rx.recv().await {
                job();
            }
        })
        .detach();
        tx
    }

    fn remote_call<F: FnOnce() + Send + 'static>(remote: &Self::Remote, f: F) -> bool {
        remote.try_send(Box::new(f)).is_ok()
    }

    fn blocking<T, F>(
        _: &Self::Spawner,
        f: F,
    ) -> Result<impl Future<Output = T> + 'static, &'static str>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Ok(blocking::unblock(f))
    }

    fn echo_supported(&self) -> Result<(), String> {
        Ok(())
    }

    fn serve_echo(
        &self,
        listener: TcpListener,
        ready: Box<dyn FnOnce(Stopper)>,
    ) -> Result<(), String> {
        self.block_on(move |ex| async move {
            let listener = Async::new(listener).map_err(|e| format!("smol listener: {e}"))?;
            let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
            ready(Box::new(move || {
                stop_tx.close();
            }));
            let accept = async {
                loop {
                    let mut stream: Async<TcpStream> = match listener.accept().await {
                        Ok((stream, _)) => stream,
                        Err(e) => return Err::<(), String>(format!("accept: {e}")),
                    };
                    let _ = stream.get_ref().set_nodelay(true);
                    ex.spawn(async move {
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
                    })
                    .detach();
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

//! Threads that may hang: a contender with a lost wake-up must fail its
//! cell, not stall the whole run.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// A thread whose result can be waited for with a time limit.
#[derive(Debug)]
pub struct Watched<T> {
    name: String,
    result: mpsc::Receiver<thread::Result<T>>,
    handle: thread::JoinHandle<()>,
}

/// Spawns `f` on a new thread called `name`.
pub fn spawn<T, F>(name: &str, f: F) -> Result<Watched<T>, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(out);
        })
        .map_err(|e| format!("cannot spawn a thread: {e}"))?;
    Ok(Watched {
        name: name.to_owned(),
        result: rx,
        handle,
    })
}

impl<T> Watched<T> {
    /// The thread's result, or an error if it panicked or did not finish
    /// within `limit` (the thread is then abandoned: it keeps whatever it
    /// holds, and the run goes on without it).
    pub fn wait(self, limit: Duration) -> Result<T, String> {
        match self.result.recv_timeout(limit) {
            Ok(Ok(value)) => {
                let _ = self.handle.join();
                Ok(value)
            }
            Ok(Err(_)) => {
                let _ = self.handle.join();
                Err(format!("thread {} panicked", self.name))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "thread {} did not finish within {limit:?}; abandoned",
                self.name
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("thread {} died", self.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_panics_and_hangs() {
        assert_eq!(
            spawn("ok", || 7).unwrap().wait(Duration::from_secs(5)),
            Ok(7)
        );
        let panicked = spawn("boom", || -> u8 { panic!("boom") })
            .unwrap()
            .wait(Duration::from_secs(5));
        assert!(panicked.unwrap_err().contains("panicked"));
        let (_keep, park) = mpsc::channel::<()>();
        let hung = spawn("hang", move || park.recv())
            .unwrap()
            .wait(Duration::from_millis(20));
        assert!(hung.unwrap_err().contains("abandoned"));
    }
}

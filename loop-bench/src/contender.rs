//! Choosing the contenders: evloop's backends, tokio and smol.

use crate::echo::{self, EchoCell};
use crate::runtime::{Evloop, Smol, Tokio};
use crate::sample::Window;
use crate::sched::{self, Outcome, SchedWorkload};
use crate::sys::Placement;

/// One contender in the race.
#[derive(Debug, Clone)]
pub enum Contender {
    /// evloop on one backend.
    Evloop(Evloop),
    /// tokio's current_thread runtime.
    Tokio(Tokio),
    /// smol: LocalExecutor on async-io.
    Smol(Smol),
}

/// A contender that was asked for but cannot run, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The name as given.
    pub name: String,
    /// Why it is skipped.
    pub reason: String,
}

/// The peers raced against evloop.
pub const PEERS: [&str; 2] = ["tokio", "smol"];

impl Contender {
    /// Its name in tables and JSON: the backend for evloop (`mio`, ...), else `tokio`/`smol`.
    pub fn name(&self) -> String {
        match self {
            Contender::Evloop(e) => e.backend.clone(),
            Contender::Tokio(_) => "tokio".to_owned(),
            Contender::Smol(_) => "smol".to_owned(),
        }
    }

    /// `true` for evloop backends.
    pub fn is_evloop(&self) -> bool {
        matches!(self, Contender::Evloop(_))
    }

    /// Runs one scheduling measurement.
    pub fn sched(&self, w: SchedWorkload, win: Window, place: Placement) -> Outcome {
        match self {
            Contender::Evloop(r) => sched::measure(r, w, win, place),
            Contender::Tokio(r) => sched::measure(r, w, win, place),
            Contender::Smol(r) => sched::measure(r, w, win, place),
        }
    }

    /// Runs one echo measurement.
    pub fn echo(&self, cell: EchoCell, win: Window, place: Placement) -> Outcome {
        match self {
            Contender::Evloop(r) => echo::measure(r, cell, win, place),
            Contender::Tokio(r) => echo::measure(r, cell, win, place),
            Contender::Smol(r) => echo::measure(r, cell, win, place),
        }
    }
}

/// Every contender this build knows: evloop's compiled-in backends, then the peers.
pub fn all_names() -> Vec<String> {
    evloop::available_backends()
        .into_iter()
        .map(str::to_owned)
        .chain(PEERS.iter().map(|p| (*p).to_owned()))
        .collect()
}

/// Turns the names asked for (`all` expands to [`all_names`]) into
/// contenders, in the order given, without duplicates; names that cannot
/// run here are returned with the reason.
pub fn resolve(names: &[String]) -> (Vec<Contender>, Vec<Skipped>) {
    let mut wanted: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let expanded = if name == "all" {
            all_names()
        } else {
            vec![name]
        };
        for n in expanded {
            if !wanted.contains(&n) {
                wanted.push(n);
            }
        }
    }
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for name in wanted {
        match name.as_str() {
            "tokio" => ok.push(Contender::Tokio(Tokio)),
            "smol" => ok.push(Contender::Smol(Smol)),
            backend => {
                let e = Evloop::new(backend);
                match e.probe() {
                    Ok(()) => ok.push(Contender::Evloop(e)),
                    Err(reason) => skipped.push(Skipped { name, reason }),
                }
            }
        }
    }
    (ok, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_expands_dedups_and_skips() {
        let names: Vec<String> = ["tokio", "all", "nope", "TOKIO", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (ok, skipped) = resolve(&names);
        let got: Vec<String> = ok.iter().map(Contender::name).collect();
        assert_eq!(got[0], "tokio");
        assert!(got.contains(&"mio".to_owned()));
        assert!(got.contains(&"smol".to_owned()));
        assert_eq!(got.iter().filter(|n| *n == "tokio").count(), 1);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].name, "nope");
        assert!(
            skipped[0].reason.contains("unknown"),
            "{}",
            skipped[0].reason
        );
    }
}

//! Cancelling a run from outside: Ctrl-C (SIGINT) or SIGTERM, at any moment
//! before the store's commit (SPEC, Exit codes and errors).
//!
//! The pipeline's loops look at [`Cancel::requested`] between batches, but
//! a store statement can run for seconds (the index build's scan, the
//! staged update), so each store connection that runs work for an import
//! is *armed* while it does: a request interrupts every armed connection,
//! and again every few milliseconds while any stays armed, because an
//! interrupt that lands between two statements may be lost when the next
//! one begins. The run's own connection is disarmed before its `COMMIT` or
//! `ROLLBACK` under the same lock a request takes, so neither is ever
//! interrupted, and disarming before the commit fails if a request came
//! first. (On PostgreSQL an import's undo record commits on a connection
//! of its own while still armed: a request that interrupts that commit
//! rolls the whole import back anyway, and the record's clean-up runs
//! disarmed and retries.)
//!
//! The signal handlers themselves are installed by the command line; the
//! library only sees this value (a front end would call `request`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::Interrupt;

/// What asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C on a terminal. Exit code 130.
    Interrupt,
    /// SIGTERM: a service manager or `kill`. Exit code 143.
    Terminate,
}

impl Signal {
    /// 128 + the signal's number, as a shell reports a process it ended.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C",
            Signal::Terminate => "SIGTERM",
        }
    }

    fn code(self) -> u8 {
        match self {
            Signal::Interrupt => 1,
            Signal::Terminate => 2,
        }
    }

    fn of_code(code: u8) -> Option<Signal> {
        match code {
            1 => Some(Signal::Interrupt),
            2 => Some(Signal::Terminate),
            _ => None,
        }
    }
}

/// The first request of any [`Cancel`] of this process (for a wait that
/// has no `Cancel` to look at: a store waiting for its writer lock).
static SIGNALLED: AtomicU8 = AtomicU8::new(0);

/// The signal of the first request to stop in this process, if one came.
pub fn signalled() -> Option<Signal> {
    Signal::of_code(SIGNALLED.load(Ordering::SeqCst))
}

/// How often an armed connection is interrupted again while a request
/// stands.
const REINTERRUPT: Duration = Duration::from_millis(10);

/// A request to stop, shared by the signal handler and the pipeline.
#[derive(Default)]
pub struct Cancel {
    /// `Signal::code` of the first request; 0 while none came.
    requested: AtomicU8,
    armed: Mutex<Vec<(u64, Interrupt)>>,
    next_id: AtomicU64,
    /// A connection was disarmed for its `COMMIT`: from then on the run
    /// can no longer be rolled back, and its errors are its own.
    committing: AtomicBool,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("requested", &self.requested())
            .finish_non_exhaustive()
    }
}

impl Cancel {
    pub fn new() -> Arc<Cancel> {
        Arc::new(Cancel::default())
    }

    /// Asks the run to stop; the first request's signal is the one
    /// reported. Interrupts the armed connections now and, from a thread
    /// of its own, every few milliseconds until none is armed.
    pub fn request(self: &Arc<Self>, signal: Signal) {
        let _ = SIGNALLED.compare_exchange(0, signal.code(), Ordering::SeqCst, Ordering::SeqCst);
        if self
            .requested
            .compare_exchange(0, signal.code(), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        if !self.interrupt_armed() {
            return;
        }
        let cancel = Arc::clone(self);
        std::thread::spawn(move || {
            while {
                std::thread::sleep(REINTERRUPT);
                cancel.interrupt_armed()
            } {}
        });
    }

    /// Interrupts every armed connection; whether any is armed.
    fn interrupt_armed(&self) -> bool {
        let armed = self.lock();
        for (_, interrupt) in armed.iter() {
            interrupt.interrupt();
        }
        !armed.is_empty()
    }

    /// The signal of the request, if one came.
    pub fn requested(&self) -> Option<Signal> {
        Signal::of_code(self.requested.load(Ordering::SeqCst))
    }

    /// `Err(Cancelled)` once a request came.
    pub fn check(&self) -> Result<()> {
        match self.requested() {
            Some(signal) => Err(Error::Cancelled(signal)),
            None => Ok(()),
        }
    }

    /// The error a failed step reports: a statement interrupted by a
    /// request (or anything else failing after one) is the cancel.
    pub fn or_cancelled(&self, error: Error) -> Error {
        if self.committing.load(Ordering::SeqCst) {
            return error;
        }
        match (self.requested(), &error) {
            (_, Error::Cancelled(_)) | (None, _) => error,
            (Some(signal), _) => Error::Cancelled(signal),
        }
    }

    /// Arms a connection's interrupt until the guard is disarmed or
    /// dropped. Fails if a request came already.
    pub fn arm(&self, interrupt: Interrupt) -> Result<Armed<'_>> {
        let mut armed = self.lock();
        self.check()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        armed.push((id, interrupt));
        Ok(Armed { cancel: self, id })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Interrupt)>> {
        self.armed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn disarm(&self, id: u64) {
        self.lock().retain(|(armed, _)| *armed != id);
    }
}

/// An armed connection (see [`Cancel::arm`]).
#[derive(Debug)]
pub struct Armed<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Armed<'_> {
    /// Disarms before the commit: once this returns `Ok`, no request
    /// interrupts the connection, and the commit goes ahead; if a request
    /// came first, it is `Err(Cancelled)` and the caller rolls back.
    pub fn disarm_to_commit(self) -> Result<()> {
        let mut armed = self.cancel.lock();
        armed.retain(|(id, _)| *id != self.id);
        let requested = self.cancel.check();
        if requested.is_ok() {
            self.cancel.committing.store(true, Ordering::SeqCst);
        }
        drop(armed);
        std::mem::forget(self);
        requested
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.cancel.disarm(self.id);
    }
}

/// Test hook: with `KONTAKT_TEST_STAGES=1`, each stage of an import that a
/// cancel must be able to stop says on standard error that it begins
/// (`kontakt: stage NAME`), so a test can send its signal there; with
/// `KONTAKT_TEST_STAGES=pause` it then waits half a second, so the signal
/// surely comes before the stage's next statement; with
/// `KONTAKT_TEST_STAGES=hold:NAME` stage NAME waits until standard input
/// ends (a test holds an import inside its transaction for as long as it
/// needs).
pub fn test_stage(name: &str) {
    enum Hook {
        Say,
        Pause,
        Hold(String),
    }
    static HOOK: std::sync::OnceLock<Option<Hook>> = std::sync::OnceLock::new();
    let hook = HOOK.get_or_init(|| match std::env::var("KONTAKT_TEST_STAGES").as_deref() {
        Ok("1") => Some(Hook::Say),
        Ok("pause") => Some(Hook::Pause),
        Ok(other) => other.strip_prefix("hold:").map(|stage| Hook::Hold(stage.to_string())),
        _ => None,
    });
    let Some(hook) = hook else {
        return;
    };
    eprintln!("kontakt: stage {name}");
    match hook {
        Hook::Say => {}
        Hook::Pause => std::thread::sleep(Duration::from_millis(500)),
        Hook::Hold(stage) if stage == name => {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        }
        Hook::Hold(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_is_the_one_reported() {
        let cancel = Cancel::new();
        assert!(cancel.check().is_ok());
        cancel.request(Signal::Terminate);
        cancel.request(Signal::Interrupt);
        assert_eq!(cancel.requested(), Some(Signal::Terminate));
        assert_eq!(cancel.check().map_err(|e| e.exit_code()), Err(143));
        let other = Error::usage("x");
        assert!(matches!(
            cancel.or_cancelled(other),
            Error::Cancelled(Signal::Terminate)
        ));
    }

    #[test]
    fn without_a_request_errors_are_kept() {
        let cancel = Cancel::new();
        assert!(matches!(cancel.or_cancelled(Error::usage("x")), Error::Usage(_)));
    }
}

//! The import's progress display (`--progress`), one line on standard
//! error: the phase, the percent of the input read, rows, rows/s and the
//! time left:
//!
//! ```text
//! ⠋ matching        42% 1,234,567 rows  612,345 rows/s  ETA 3s
//! ```
//!
//! The percent is of the file's rows handed on: the bytes up to the rows
//! taken from the reader, times the share of those rows handed on (see
//! [`crate::read::Table::read_position`]). Rows are taken ahead of the
//! matching (a file of a few hundred MB is taken whole while the store's
//! index is built), and the bytes read alone said 100% from the start,
//! with no time left. Where the size says nothing (standard input, XLSX)
//! only rows are shown. Drawn by indicatif; cleared when dropped, so an
//! error line never lands on a half-drawn bar.

use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::import::{Phase, Progress};
use crate::read::ReadPosition;

/// What the bar calls each phase.
fn name(phase: Phase) -> &'static str {
    match phase {
        Phase::Reading => "reading",
        Phase::Matching => "matching",
        Phase::WritingOutputs => "writing outputs",
        Phase::WritingStore => "writing the store",
    }
}

/// The import's [`Progress`] on standard error: the bar, drawn from the
/// import's start until this is dropped.
#[derive(Default)]
pub struct Bar(OnceLock<ImportProgress>);

impl Progress for Bar {
    fn start(&self, read: Option<ReadPosition>) {
        let _ = self.0.set(ImportProgress::start(read));
    }

    fn phase(&self, phase: Phase) {
        if let Some(bar) = self.0.get() {
            bar.phase(phase);
        }
    }

    fn rows(&self, n: u64) {
        if let Some(bar) = self.0.get() {
            bar.rows(n);
        }
    }
}

struct ImportProgress {
    bar: ProgressBar,
}

impl ImportProgress {
    /// Starts the display. `read`: how far the reading is, when bytes
    /// measure it.
    fn start(read: Option<ReadPosition>) -> ImportProgress {
        // A draw target of indicatif's own `stderr()` hides itself when
        // standard error is no terminal, and `--progress always` is asked
        // for exactly then (a log, a CI job).
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10);
        let bar = ProgressBar::with_draw_target(None, target);
        let fraction = move |rows_done: u64| read.as_ref().map(|read| read.fraction(rows_done));
        let percent = {
            let fraction = fraction.clone();
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                if let Some(f) = fraction(state.pos()) {
                    let _ = write!(w, "{:>3}% ", (f * 100.0).floor() as u32);
                }
            }
        };
        let eta = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            if let Some(left) = fraction(state.pos()).and_then(|f| time_left(f, state.elapsed())) {
                let _ = write!(w, "  ETA {}", HumanDuration(left));
            }
        };
        let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", HumanCount(rows_per_sec(state.pos(), state.elapsed())));
        };
        let style = ProgressStyle::with_template("{spinner} {msg:<17} {percent}{human_pos} rows  {rate} rows/s{eta}")
            .map(|s| {
                s.with_key("percent", percent)
                    .with_key("rate", rate)
                    .with_key("eta", eta)
            })
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(name(Phase::Reading));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar.tick();
        ImportProgress { bar }
    }

    fn phase(&self, phase: Phase) {
        self.bar.set_message(name(phase));
    }

    /// `n` more rows handed on (read, matched and resolved).
    fn rows(&self, n: u64) {
        self.bar.inc(n);
    }
}

impl Drop for ImportProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Rows per second, rounded to an integer.
fn rows_per_sec(rows: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    (rows as f64 / secs).round() as u64
}

/// The time left to read the rest at the pace so far; none before
/// anything is read or after everything is.
fn time_left(fraction: f64, elapsed: Duration) -> Option<Duration> {
    (fraction > 0.0 && fraction < 1.0).then(|| elapsed.mul_f64((1.0 - fraction) / fraction))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn rates_are_whole_rows_and_the_eta_follows_the_bytes_read() {
        assert_eq!(rows_per_sec(115_921, Duration::from_millis(204_940)), 566);
        assert_eq!(rows_per_sec(10, Duration::ZERO), 0);
        assert_eq!(
            HumanCount(rows_per_sec(565_635, Duration::from_secs(1))).to_string(),
            "565,635"
        );
        // Half the file read, holding 1,000 rows, of which 250 done: 1/8.
        let read = ReadPosition {
            bytes_read: Arc::new(AtomicU64::new(100)),
            size: 200,
            rows_read: Arc::new(AtomicU64::new(1_000)),
        };
        assert_eq!(read.fraction(250), 0.125);
        // The whole file read ahead and nothing matched yet: 0, no ETA.
        read.bytes_read.store(200, Ordering::Relaxed);
        assert_eq!(read.fraction(0), 0.0);
        assert_eq!(read.fraction(1_000), 1.0);
        read.bytes_read.store(300, Ordering::Relaxed);
        assert_eq!(read.fraction(2_000), 1.0);
        let nothing = ReadPosition {
            rows_read: Arc::new(AtomicU64::new(0)),
            ..read
        };
        assert_eq!(nothing.fraction(0), 0.0);
        // A quarter read in 10 s: 30 s to go.
        assert_eq!(time_left(0.25, Duration::from_secs(10)), Some(Duration::from_secs(30)));
        assert_eq!(time_left(0.0, Duration::from_secs(10)), None);
        assert_eq!(time_left(1.0, Duration::from_secs(10)), None);
    }
}

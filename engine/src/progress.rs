//! Live progress of `flow run`: redrawn bars on a terminal, plain lines otherwise.

use crate::compile::Plan;
use std::io::Write;

/// One row of the progress display: a step's tasks by state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgressRow {
    pub step: String,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub blocked: u64,
    pub cancelled: u64,
    /// Attempts the executor started.
    pub running: u64,
    /// Handed to the executor (queued in Slurm, waiting for a slot), not started yet.
    pub submitted: u64,
    /// Waiting for upstream or a retry delay.
    pub pending: u64,
}
use std::time::{Duration, Instant};

pub struct Progress {
    plain: bool,
    quiet: bool,
    started: Instant,
    last: Instant,
    drawn_lines: usize,
    last_plain: Vec<(u64, u64, u64)>,
}

impl Progress {
    pub fn new(_plan: &Plan, plain: bool, quiet: bool) -> Progress {
        Progress {
            plain,
            quiet,
            started: Instant::now(),
            last: Instant::now() - Duration::from_secs(10),
            drawn_lines: 0,
            last_plain: Vec::new(),
        }
    }

    /// A one-off message above the bars.
    pub fn note(&mut self, msg: &str) {
        if self.quiet {
            return;
        }
        self.clear();
        eprintln!("{msg}");
    }

    fn clear(&mut self) {
        if !self.plain && self.drawn_lines > 0 {
            eprint!("\x1b[{}A\x1b[J", self.drawn_lines);
            self.drawn_lines = 0;
        }
    }

    fn eta(&self, rows: &[ProgressRow]) -> String {
        let total: u64 = rows.iter().map(|r| r.total).sum();
        let done: u64 = rows
            .iter()
            .map(|r| r.succeeded + r.failed + r.blocked + r.cancelled)
            .sum();
        let elapsed = self.started.elapsed().as_secs_f64();
        if done == 0 || done >= total {
            return format!("elapsed {elapsed:.0}s");
        }
        let eta = elapsed / done as f64 * (total - done) as f64;
        format!("elapsed {elapsed:.0}s, ETA {eta:.0}s")
    }

    fn line(r: &ProgressRow) -> String {
        let ended = r.succeeded + r.failed + r.blocked + r.cancelled;
        let width = 24usize;
        let filled = if r.total == 0 {
            width
        } else {
            (ended as usize * width) / r.total as usize
        };
        let mut extra = String::new();
        for (n, what) in [
            (r.failed, "failed"),
            (r.blocked, "blocked"),
            (r.cancelled, "cancelled"),
        ] {
            if n > 0 {
                extra.push_str(&format!(", {n} {what}"));
            }
        }
        format!(
            "{:<16} [{}{}] {}/{} succeeded, {} running, {} queued{extra}",
            r.step,
            "#".repeat(filled),
            "-".repeat(width - filled),
            r.succeeded,
            r.total,
            r.running,
            r.submitted + r.pending,
        )
    }

    /// Whether `update` would draw now (callers skip building rows otherwise).
    pub fn due(&self) -> bool {
        !self.quiet && self.last.elapsed() >= Duration::from_millis(200)
    }

    pub fn update(&mut self, rows: &[ProgressRow]) {
        if self.quiet {
            return;
        }
        if self.plain {
            let now: Vec<(u64, u64, u64)> = rows
                .iter()
                .map(|r| (r.succeeded, r.failed, r.running))
                .collect();
            if now != self.last_plain && self.last.elapsed() > Duration::from_secs(2) {
                for r in rows.iter().filter(|r| r.running > 0 || r.failed > 0) {
                    eprintln!("{}", Self::line(r));
                }
                self.last_plain = now;
                self.last = Instant::now();
            }
            return;
        }
        if self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        self.clear();
        let mut err = std::io::stderr().lock();
        for r in rows {
            let _ = writeln!(err, "{}", Self::line(r));
        }
        let _ = writeln!(err, "{}", self.eta(rows));
        self.drawn_lines = rows.len() + 1;
    }

    pub fn finish(&mut self, rows: &[ProgressRow]) {
        if self.quiet {
            return;
        }
        self.clear();
        for r in rows {
            eprintln!("{}", Self::line(r));
        }
        eprintln!("{}", self.eta(rows));
    }
}

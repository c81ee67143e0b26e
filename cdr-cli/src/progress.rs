//! Progress on stderr: rows, rows/s, tokens/s, ETA. Tokens count every forward pass (a sequence
//! scored by both models counts twice), which is what the hardware does.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line reports progress when stderr is not a terminal (Slurm logs, pipes),
/// where the bar draws nothing.
const LOG_EVERY: Duration = Duration::from_secs(30);

pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    tokens: usize,
    label: String,
    total: usize,
    /// When the last log line was written; `None` when the bar is visible or `--quiet`.
    logged: Option<std::cell::Cell<Instant>>,
}

impl Progress {
    pub fn new(rows: usize, label: &str, quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(rows as u64), ProgressDrawTarget::stderr());
        if quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} rows {per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        let start = Instant::now();
        Self {
            bar,
            start,
            tokens: 0,
            label: label.to_string(),
            total: rows,
            logged: (!quiet && !std::io::stderr().is_terminal())
                .then(|| std::cell::Cell::new(start)),
        }
    }

    pub fn tokens(&mut self, n: usize) {
        self.tokens += n;
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        self.bar
            .set_message(format!("{:.0} tok/s", self.tokens as f64 / secs));
        self.log();
    }

    pub fn rows(&self, n: usize) {
        self.bar.inc(n as u64);
        self.log();
    }

    /// A plain progress line on stderr, at most every [`LOG_EVERY`], where no bar is drawn.
    fn log(&self) {
        let Some(logged) = &self.logged else {
            return;
        };
        if logged.get().elapsed() < LOG_EVERY {
            return;
        }
        logged.set(Instant::now());
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let done = self.bar.position() as usize;
        let eta = match done {
            0 => "?".to_string(),
            _ => {
                let left = secs / done as f64 * self.total.saturating_sub(done) as f64;
                format!("{}m{:02}s", (left / 60.0) as u64, (left % 60.0) as u64)
            }
        };
        eprintln!(
            "cdr {}: {done}/{} rows, {:.0} tok/s, elapsed {:.0}s, ETA {eta}",
            self.label,
            self.total,
            self.tokens as f64 / secs,
            secs
        );
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    pub fn total_tokens(&self) -> usize {
        self.tokens
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

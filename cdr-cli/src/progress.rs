//! Progress on stderr: rows, rows/s, tokens/s, ETA. Tokens count every forward pass (a sequence
//! scored by both models counts twice), which is what the hardware does.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    tokens: usize,
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
        Self {
            bar,
            start: Instant::now(),
            tokens: 0,
        }
    }

    pub fn tokens(&mut self, n: usize) {
        self.tokens += n;
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        self.bar
            .set_message(format!("{:.0} tok/s", self.tokens as f64 / secs));
    }

    pub fn rows(&self, n: usize) {
        self.bar.inc(n as u64);
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

//! The progress bar a call shows on stderr when asked (`progress=True`): one bar per stage the
//! engine reports (routing, then scoring), rows done and model tokens.

use cdr_core::engine::Reporter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws nothing unless shown.
pub struct Progress {
    show: bool,
    bar: Option<ProgressBar>,
    tokens: usize,
}

impl Progress {
    pub fn new(show: bool) -> Self {
        Self {
            show,
            bar: None,
            tokens: 0,
        }
    }
}

impl Reporter for Progress {
    fn begin(&mut self, stage: &str, rows: usize) {
        self.end();
        if !self.show {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(rows as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} {bar:30} {pos}/{len} rows {msg} [{elapsed_precise}<{eta_precise}]",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(stage.to_string());
        self.tokens = 0;
        self.bar = Some(bar);
    }

    fn tokens(&mut self, n: usize) {
        self.tokens += n;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} tokens", self.tokens));
        }
    }

    fn rows(&mut self, n: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

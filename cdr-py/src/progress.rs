//! The progress bar a call shows on stderr when asked (`progress=True`): one bar per stage the
//! engine reports (routing, then scoring): planned model tokens where the stage reports them
//! (scoring), else rows.

use cdr_core::engine::Reporter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws nothing unless shown.
pub struct Progress {
    show: bool,
    bar: Option<ProgressBar>,
    tokens: usize,
    rows: usize,
    total_rows: usize,
    /// Set once the stage reports its planned tokens: the bar then counts tokens.
    planned: bool,
}

impl Progress {
    pub fn new(show: bool) -> Self {
        Self {
            show,
            bar: None,
            tokens: 0,
            rows: 0,
            total_rows: 0,
            planned: false,
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
        self.rows = 0;
        self.total_rows = rows;
        self.planned = false;
        self.bar = Some(bar);
    }

    fn planned_tokens(&mut self, total: usize) {
        let Some(bar) = &self.bar else { return };
        if !self.planned {
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} {bar:30} {percent}% {msg} [{elapsed_precise}<{eta_precise}]",
            ) {
                bar.set_style(style);
            }
            self.planned = true;
        }
        bar.set_length(total.max(self.tokens) as u64);
        bar.set_position(self.tokens as u64);
        self.message();
    }

    fn tokens(&mut self, n: usize) {
        self.tokens += n;
        if let (Some(bar), true) = (&self.bar, self.planned) {
            bar.set_position(self.tokens as u64);
        }
        self.message();
    }

    fn rows(&mut self, n: usize) {
        self.rows += n;
        if let (Some(bar), false) = (&self.bar, self.planned) {
            bar.inc(n as u64);
        }
        self.message();
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Progress {
    fn message(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(match self.planned {
                true => format!(
                    "{}/{} rows, {} tokens",
                    self.rows, self.total_rows, self.tokens
                ),
                false => format!("{} tokens", self.tokens),
            });
        }
    }
}

//! The progress bar a call shows on stderr when asked (`progress=True`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Rows done of all, and model tokens through the forward passes; draws nothing unless shown.
pub struct Progress {
    bar: Option<ProgressBar>,
    tokens: usize,
}

impl Progress {
    pub fn new(rows: usize, label: &str, show: bool) -> Self {
        let bar = show.then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(rows as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} rows {msg} [{elapsed_precise}<{eta_precise}]",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_string());
            bar
        });
        Self { bar, tokens: 0 }
    }

    /// `rows` more rows done, `tokens` more model tokens scored.
    pub fn advance(&mut self, rows: usize, tokens: usize) {
        self.tokens += tokens;
        if let Some(bar) = &self.bar {
            bar.inc(rows as u64);
            if tokens > 0 {
                bar.set_message(format!("{} tokens", self.tokens));
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

//! The one place `cdr` writes to the terminal: progress (a bar on a terminal, log lines
//! otherwise; in planned tokens where the stage reports them, else rows; tokens/s, ETA),
//! notices and summaries on stderr, results on stdout.
//! Tokens count every forward pass (a sequence scored by both models counts twice), which is what
//! the hardware does.

use std::fmt::Display;
use std::time::{Duration, Instant};

use std::io::IsTerminal;

use cdr_core::DensityRatio;
use cdr_core::engine::{FileSummary, Reporter, RunStats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line reports progress when stderr is not a terminal (Slurm logs, pipes),
/// where the bar draws nothing.
const LOG_EVERY: Duration = Duration::from_secs(30);

pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    tokens: usize,
    label: String,
    rows: usize,
    total: usize,
    /// The stage's planned forward tokens, once it reports them: the bar then counts tokens
    /// (every batch moves it) and rows become the secondary count.
    planned: Option<usize>,
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
            rows: 0,
            total: rows,
            planned: None,
            logged: (!quiet && !std::io::stderr().is_terminal())
                .then(|| std::cell::Cell::new(start)),
        }
    }

    pub fn planned_tokens(&mut self, total: usize) {
        if self.planned.is_none() {
            let style = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {percent}% ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            self.bar.set_style(style);
            self.bar.set_position(self.tokens as u64);
        }
        self.planned = Some(total);
        self.bar.set_length(total.max(self.tokens) as u64);
        self.update_message();
    }

    pub fn tokens(&mut self, n: usize) {
        self.tokens += n;
        if self.planned.is_some() {
            self.bar.set_position(self.tokens as u64);
        }
        self.update_message();
        self.log();
    }

    pub fn rows(&mut self, n: usize) {
        self.rows += n;
        if self.planned.is_none() {
            self.bar.inc(n as u64);
        }
        self.update_message();
        self.log();
    }

    fn tokens_per_sec(&self) -> f64 {
        self.tokens as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    fn update_message(&self) {
        let rate = self.tokens_per_sec();
        self.bar.set_message(match self.planned {
            Some(_) => format!("{}/{} rows, {rate:.0} tok/s", self.rows, self.total),
            None => format!("{rate:.0} tok/s"),
        });
    }

    /// What is done, of how much: planned tokens once known, else rows.
    fn fraction(&self) -> Option<f64> {
        match self.planned {
            Some(0) => None,
            Some(planned) => Some(self.tokens as f64 / planned.max(self.tokens) as f64),
            None if self.total == 0 => None,
            None => Some(self.rows as f64 / self.total as f64),
        }
    }

    fn log(&self) {
        let Some(logged) = &self.logged else {
            return;
        };
        if logged.get().elapsed() < LOG_EVERY {
            return;
        }
        logged.set(Instant::now());
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let (percent, eta) = match self.fraction() {
            Some(f) if f > 0.0 => {
                let left = secs / f * (1.0 - f);
                (
                    format!("{:.0}%", f * 100.0),
                    format!("{}m{:02}s", (left / 60.0) as u64, (left % 60.0) as u64),
                )
            }
            _ => ("0%".to_string(), "?".to_string()),
        };
        eprintln!(
            "cdr {}: {percent}, {}/{} rows, {:.0} tok/s, elapsed {:.0}s, ETA {eta}",
            self.label,
            self.rows,
            self.total,
            self.tokens_per_sec(),
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

/// Progress, notices and summaries of a command.
pub struct Printer {
    quiet: bool,
    progress: Option<Progress>,
    /// Tokens and seconds of the last finished stage, for the summary's rate.
    last: (usize, f64),
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            progress: None,
            last: (0, 0.0),
        }
    }

    /// A notice on stderr: `cdr: TEXT`.
    pub fn note(&self, text: impl Display) {
        eprintln!("cdr: {text}");
    }

    /// An indented line under a notice (one skipped row, ...).
    pub fn detail(&self, text: impl Display) {
        eprintln!("  {text}");
    }

    /// A result on stdout (tables, descriptions), written as given.
    pub fn out(&self, text: impl Display) {
        print!("{text}");
    }

    /// The error that ends the command, with its causes.
    pub fn error(&self, error: &anyhow::Error) {
        eprintln!("cdr: error: {}", error_chain(error));
    }

    /// Rows left out under `--skip-invalid`, one line each.
    pub fn skipped_rows(&self, rows: &[(String, String)]) {
        for (id, why) in rows {
            self.detail(format_args!("skipped row `{id}`: {why}"));
        }
    }

    /// Tokens and seconds of the last finished stage.
    pub fn last_stage(&self) -> (usize, f64) {
        self.last
    }

    /// The summary of a scoring run.
    pub fn summary(&self, stats: &RunStats, read_skipped: usize) {
        let (tokens, secs) = self.last;
        eprintln!(
            "cdr: {} rows scored ({} already done), {} truncated responses, {} rows skipped, {:.0} model tokens/s (strong + weak forward passes){}",
            stats.scored_rows,
            stats.resumed,
            stats.truncated_items,
            stats.failed_rows.len() + read_skipped,
            tokens as f64 / secs.max(1e-9),
            peak_rss()
        );
        self.skipped_rows(&stats.failed_rows);
    }

    /// [`Self::summary`] of a file run.
    pub fn file_summary(&self, s: &FileSummary) {
        self.summary(&s.stats, s.read_skipped);
    }

    /// Says what the log-prob cache answered, when the run used one.
    pub fn cache_summary(&self, pair: &DensityRatio) {
        if let Some((s, w)) = pair.cache_stats() {
            self.note(format_args!(
                "log-prob cache: strong {} cached, {} computed; weak {} cached, {} computed",
                s.cached, s.computed, w.cached, w.computed
            ));
        }
    }
}

impl Reporter for Printer {
    fn begin(&mut self, stage: &str, rows: usize) {
        self.end();
        self.progress = Some(Progress::new(rows, stage, self.quiet));
    }

    fn tokens(&mut self, n: usize) {
        if let Some(p) = self.progress.as_mut() {
            p.tokens(n);
        }
    }

    fn planned_tokens(&mut self, total: usize) {
        if let Some(p) = self.progress.as_mut() {
            p.planned_tokens(total);
        }
    }

    fn rows(&mut self, n: usize) {
        if let Some(p) = self.progress.as_mut() {
            p.rows(n);
        }
    }

    fn end(&mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
            self.last = (p.total_tokens(), p.elapsed_secs());
        }
    }

    fn notice(&mut self, text: &str) {
        self.note(text);
    }
}

/// `, peak RSS X GiB` where the OS reports it: what a run needed, for sizing machines.
pub fn peak_rss() -> String {
    cdr_models::memory::peak_rss_bytes()
        .map(|b| format!(", peak RSS {:.2} GiB", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_default()
}

/// The error and its causes, `: `-separated like anyhow's `{:#}`, but leaving out a cause whose
/// text the message already ends with: cdr's IO errors name their OS error in their own message
/// (`cannot write F: File too large`), and repeating it reads like two failures.
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

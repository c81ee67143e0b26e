//! `cdr logprobs`: one model scores every response into the log-prob cache.

use anyhow::Context;
use cdr_core::engine::{LogprobsSettings, logprobs_file};

use crate::cli::LogprobsArgs;
use crate::job::{Printer, input, output, peak_rss, routing, scoring_settings, with_hint};

impl LogprobsArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let io = &self.io;
        let shard = self.shard.resolve()?;
        cdr_models::resolve_model(&self.model).context("--model")?;
        let mut scoring = scoring_settings(&self.scoring)?;
        // A single-model pass exists to fill the cache: on by default here.
        scoring.cache = self.scoring.cache.dir(true);
        let settings = LogprobsSettings {
            model: self.model.clone(),
            scoring,
            routing: routing(&self.customize),
            chunk_rows: io.chunk_rows,
            skip_invalid: io.skip_invalid,
            per_token: self.per_token,
            token_ids: self.token_ids,
        };
        let out = self.output.as_ref().map(|p| output(io, p, shard));
        let mut printer = Printer::new(self.quiet);
        let summary = logprobs_file(&settings, &input(io), out.as_ref(), shard, &mut printer)
            .map_err(with_hint)?;
        if let (Some(n), Some(out)) = (summary.written, &out) {
            eprintln!("cdr: {n} rows in {}", out.file().display());
        }
        let (tokens, secs) = printer.last_stage();
        eprintln!(
            "cdr: {} texts of {} rows: {} cached, {} computed ({:.0} model tokens/s{}){}",
            summary.texts,
            summary.rows,
            summary.stats.cached,
            summary.stats.computed,
            tokens as f64 / secs.max(1e-9),
            peak_rss(),
            summary
                .table
                .as_ref()
                .map(|t| format!("; cache table {}", t.display()))
                .unwrap_or_default()
        );
        for (id, why) in &summary.failed {
            eprintln!("  skipped row `{id}`: {why}");
        }
        Ok(())
    }
}

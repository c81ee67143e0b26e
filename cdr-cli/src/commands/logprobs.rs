//! `cdr logprobs`: one model scores every response into the log-prob cache.

use anyhow::Context;
use cdr_core::engine::{LogprobsSettings, logprobs_file};

use crate::cli::LogprobsArgs;
use crate::printer::{Printer, peak_rss};
use crate::settings::{input, output, remote_scoring_settings, routing, with_hint};

pub fn run(args: LogprobsArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.scoring.compute.validate()?;
    let io = &args.io;
    let shard = args.shard.resolve()?;
    cdr_models::resolve_model(&args.model).context("--model")?;
    let mut scoring = remote_scoring_settings(
        &args.scoring,
        &[(&args.model, "--model-url", &args.model_url)],
    )?;
    // A single-model pass exists to fill the cache: on by default here.
    scoring.cache = args.scoring.cache.dir(true);
    let settings = LogprobsSettings {
        model: args.model.clone(),
        scoring,
        routing: routing(&args.customize),
        chunk_rows: io.chunk_rows,
        skip_invalid: io.skip_invalid,
        per_token: args.per_token,
        token_ids: args.token_ids,
    };
    let out = args.output.as_ref().map(|p| output(io, p, shard));
    let summary =
        logprobs_file(&settings, &input(io), out.as_ref(), shard, printer).map_err(with_hint)?;
    if let (Some(n), Some(out)) = (summary.written, &out) {
        printer.note(format_args!("{n} rows in {}", out.file().display()));
    }
    let (tokens, secs) = printer.last_stage();
    printer.note(format_args!(
        "{} texts of {} rows: {} cached, {} computed ({:.0} model tokens/s{}){}",
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
    ));
    printer.skipped_rows(&summary.failed);
    Ok(())
}

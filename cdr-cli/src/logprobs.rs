//! `cdr logprobs`: one model scores every response into the log-prob cache.

use anyhow::Context;
use cdr_core::Device;
use cdr_core::{ChatTemplate, LogprobCache, ModelScorer};
use cdr_data::{RecordWriter, read_rows};
use serde::Serialize;

use crate::cli::LogprobsArgs;
use crate::commands::report_skipped;
use crate::job::{cache_table, read_options, score_options, write_options};
use crate::passes::{PassOptions, Rendering, score_pass};
use crate::progress::Progress;
use crate::routing;
use cdr_core::engine::{RowInfo, ScoredRow};

/// One response's log-probs under the model.
#[derive(Serialize)]
struct ResponseLogprobs<'a> {
    logprob: f64,
    n_response_tokens: usize,
    n_prompt_tokens: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_logprobs: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_ids: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_ids: Option<&'a [u32]>,
}

/// One output row: its responses in input order (chosen then rejected for pairwise rows).
#[derive(Serialize)]
struct RowLogprobs<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    responses: Vec<ResponseLogprobs<'a>>,
}

impl LogprobsArgs {
    pub fn run(self, device: Device) -> anyhow::Result<()> {
        let io = &self.io;
        let shard = self.shard.resolve()?;
        let out = match &self.output {
            Some(path) => Some(crate::shard::ShardedOutput::begin(shard, path)?),
            None => None,
        };
        let mut outcome = read_rows(&io.input, &read_options(io))?;
        report_skipped(&outcome);
        outcome
            .rows
            .retain(|r| shard.is_none_or(|s| s.contains(r.id())));
        let path = cdr_models::resolve_model(&self.model).context("--model")?;
        let options = score_options(&self.scoring, &[&path])?;
        let scorer = ModelScorer::load(&path, &device, options.dtype)?;
        let template = match &self.scoring.template {
            Some(spec) => ChatTemplate::resolve(spec, Some(&path))?,
            None => cdr_core::model_template(&path)?,
        };
        let infos: Vec<RowInfo<'_>> = outcome.rows.iter().map(ScoredRow::info).collect();
        let routed = routing::customize_rows(
            &self.customize,
            &infos,
            Some((&scorer, &template)),
            &device,
            &options,
            &io.input,
            self.quiet,
        )?;
        let templates = [template];
        let tokenizers = [&scorer.tokenizer];
        let texts = Rendering {
            templates: &templates,
            tokenizers: &tokenizers,
            routed: routed.as_ref(),
            limits: options.limits,
        }
        .prepare(&outcome.rows, io)?;

        let cache = match self.scoring.cache.dir(true) {
            Some(dir) => Some(LogprobCache::open(dir)?),
            None => None,
        };
        let table = match &cache {
            Some(c) => Some(cache_table(
                c,
                &path,
                &templates[0],
                routed.as_ref().map(|r| &r.customization),
                &options,
            )?),
            None => None,
        };
        let mut progress = Progress::new(texts.rows.len(), "logprobs", self.quiet);
        let (logprobs, stats) = score_pass(
            &scorer,
            &texts,
            (0, 0),
            &PassOptions {
                table: table.as_ref(),
                per_token: self.per_token,
                chunk_rows: io.chunk_rows,
                max_batch_tokens: options.max_batch_tokens,
            },
            &mut progress,
        )?;
        progress.finish();

        if let Some(out) = &out {
            // The cache already makes a re-run cheap; the file is rewritten whole.
            let mut write = write_options(io);
            write.fresh = true;
            let mut writer = RecordWriter::open(&out.path, &write)?;
            for (&r, span) in texts.rows.iter().zip(&texts.spans) {
                let row = &outcome.rows[r];
                let info = row.info();
                let domain = routed
                    .as_ref()
                    .and_then(|r| r.domains.get(info.id))
                    .map(String::as_str);
                let responses = span
                    .clone()
                    .map(|i| {
                        let e = &texts.encoded[0][0][i];
                        ResponseLogprobs {
                            logprob: logprobs[i].logprob,
                            n_response_tokens: e.n_response_tokens(),
                            n_prompt_tokens: e.n_prompt_tokens(),
                            truncated: e.truncated,
                            token_logprobs: logprobs[i].tokens.clone(),
                            prompt_ids: self.token_ids.then(|| &e.ids[..e.response_start]),
                            response_ids: self.token_ids.then(|| &e.ids[e.response_start..]),
                        }
                    })
                    .collect();
                writer.write(&RowLogprobs {
                    id: info.id,
                    subset: info.subset,
                    domain: domain.or(info.domain),
                    responses,
                })?;
            }
            let n = writer.finish()?;
            out.finish(&io.input, n)?;
            eprintln!("cdr: {n} rows in {}", out.path.display());
        }
        eprintln!(
            "cdr: {} texts of {} rows: {} cached, {} computed ({:.0} model tokens/s{}){}",
            logprobs.len(),
            texts.rows.len(),
            stats.cached,
            stats.computed,
            progress.total_tokens() as f64 / progress.elapsed_secs().max(1e-9),
            crate::job::peak_rss(),
            table
                .as_ref()
                .map(|t| format!("; cache table {}", t.path().display()))
                .unwrap_or_default()
        );
        for (id, why) in &texts.failed {
            eprintln!("  skipped row `{id}`: {why}");
        }
        Ok(())
    }
}

//! `cdr generate` as a library call: N sampled responses per prompt from a policy model, written
//! as best-of-N rows (`prompt` + `responses`) that an annotation reads, resumable by row id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cdr_data::{Message, PromptRow, RecordWriter, Shard, WriteOptions, read_prompts};
use cdr_models::{ComputeDtype, Device, FinishReason, Generation};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::debug;

use crate::error::{CoreError, Result};
use crate::generation::{Policy, SampleOptions};

use super::jobs::{Input, Output, report_read_skips};
use super::reporter::{Reporter, in_stage};
use super::settings::resolve;

/// A generation run: the policy, how it samples and computes.
#[derive(Debug, Clone)]
pub struct GenerateSettings {
    /// A model directory, GGUF file or hub id in the local cache.
    pub policy: String,
    /// The policy's chat template (built-in name or Jinja file); `None` uses its own.
    pub template: Option<String>,
    /// How many responses per prompt, and how they are drawn.
    pub sample: SampleOptions,
    /// Where the policy runs.
    pub device: Device,
    /// The policy's compute dtype.
    pub dtype: ComputeDtype,
    /// Sequences decoded together (prompts × responses per prompt).
    pub batch_rows: usize,
    /// Report and leave out prompts that cannot be generated from instead of stopping.
    pub skip_invalid: bool,
}

/// One written row: a best-of-N row plus how its responses came about.
#[derive(Serialize)]
pub struct GeneratedRow<'a> {
    id: &'a str,
    prompt: &'a [Message],
    responses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    policy: &'a str,
    /// Per response: why it ended, and its new tokens (a stop id included).
    finish_reasons: Vec<FinishReason>,
    response_tokens: Vec<usize>,
    /// Samples left out because their text was empty (a response must have text to be scored).
    empty_responses: usize,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

const OWN_FIELDS: [&str; 9] = [
    "id",
    "prompt",
    "responses",
    "subset",
    "domain",
    "policy",
    "finish_reasons",
    "response_tokens",
    "empty_responses",
];

/// What a generation run did.
#[derive(Debug, Default, Clone)]
pub struct GenerateSummary {
    /// Prompts already in the output.
    pub resumed: usize,
    /// Prompts generated and written.
    pub rows: usize,
    /// Responses written.
    pub responses: usize,
    /// Samples left out because their text was empty.
    pub empty: usize,
    /// Prompts that got no non-empty response (not written; a resumed run tries again).
    pub no_response: Vec<String>,
    /// Prompts left out under `skip_invalid`: id and why.
    pub failed: Vec<(String, String)>,
    /// How samples ended (`Stop`, `Length`, ...), counted.
    pub finish: BTreeMap<String, usize>,
    /// Rows in the output (earlier runs' included).
    pub written: usize,
    /// Rows skipped while reading.
    pub read_skipped: usize,
}

#[derive(Debug, Default)]
struct GenerateStats {
    resumed: usize,
    rows: usize,
    responses: usize,
    empty: usize,
    no_response: Vec<String>,
    failed: Vec<(String, String)>,
    finish: BTreeMap<String, usize>,
}

impl GenerateSettings {
    /// Writes one prompt's samples as a best-of-N row (if any response has text).
    fn write_row(
        &self,
        row: &PromptRow,
        samples: Vec<Generation>,
        writer: &mut RecordWriter,
        stats: &mut GenerateStats,
    ) -> Result<()> {
        let mut record = GeneratedRow {
            id: &row.id,
            prompt: &row.prompt,
            responses: Vec::new(),
            subset: row.subset.as_deref(),
            domain: row.domain.as_deref(),
            policy: &self.policy,
            finish_reasons: Vec::new(),
            response_tokens: Vec::new(),
            empty_responses: 0,
            extra: row
                .extra
                .iter()
                .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        for s in samples {
            *stats.finish.entry(format!("{:?}", s.finish)).or_default() += 1;
            match s.text {
                Some(text) if !text.trim().is_empty() => {
                    record.responses.push(text);
                    record.finish_reasons.push(s.finish);
                    record.response_tokens.push(s.ids.len());
                }
                _ => record.empty_responses += 1,
            }
        }
        stats.empty += record.empty_responses;
        if record.responses.is_empty() {
            // Not written: a best-of-N row needs a response. A resumed run tries again (and, with
            // the same seed, gets the same result).
            stats.no_response.push(row.id.clone());
            return Ok(());
        }
        stats.responses += record.responses.len();
        stats.rows += 1;
        writer.write(&record)?;
        Ok(())
    }

    /// Generates for the prompts of `input` this `shard` owns into the file `output` (resuming
    /// it, or afresh with `fresh`). No completion marker is written: see [`generate_file`].
    pub fn generate_into(
        &self,
        input: &Input,
        output: &Path,
        fresh: bool,
        shard: Option<Shard>,
        reporter: &mut dyn Reporter,
    ) -> Result<GenerateSummary> {
        let path = resolve(&self.policy, "policy")?;
        let mut outcome = read_prompts(&input.path, &input.read)?;
        report_read_skips(&outcome, reporter);
        if let Some(shard) = shard {
            outcome.rows.retain(|r| shard.contains(&r.id));
        }
        let mut writer = RecordWriter::open(
            output,
            &WriteOptions {
                fresh,
                ..WriteOptions::default()
            },
        )?;
        let todo: Vec<&PromptRow> = outcome
            .rows
            .iter()
            .filter(|r| !writer.contains(&r.id))
            .collect();
        let mut stats = GenerateStats {
            resumed: outcome.rows.len() - todo.len(),
            ..Default::default()
        };
        let policy = match todo.is_empty() {
            true => None,
            false => Some(Policy::load(
                &path,
                self.template.as_deref(),
                &self.device,
                self.dtype,
            )?),
        };
        // Started after loading, so tokens/s measures generation alone.
        in_stage(reporter, "generate", todo.len(), |reporter| {
            if let Some(policy) = &policy {
                // Rows whose samples decode together: about `batch_rows` sequences per step.
                let per_batch = (self.batch_rows / self.sample.n.max(1)).max(1);
                for chunk in todo.chunks(per_batch) {
                    let rows: Vec<(&str, &[Message])> = chunk
                        .iter()
                        .map(|r| (r.id.as_str(), r.prompt.as_slice()))
                        .collect();
                    let results = policy
                        .sample_many(&rows, &self.sample, &mut |n| reporter.tokens(n))
                        // A batch failure is no row's fault: not a `CoreError::Row`.
                        .map_err(|e| {
                            CoreError::Invalid(format!(
                                "{}: rows `{}` .. `{}`: {e}",
                                input.path.display(),
                                rows.first().map_or("", |r| r.0),
                                rows.last().map_or("", |r| r.0)
                            ))
                        })?;
                    for (row, result) in chunk.iter().zip(results) {
                        let samples = match result {
                            Ok(s) => s,
                            Err(e) if self.skip_invalid => {
                                debug!(id = %row.id, "skipped: {e}");
                                reporter.skipped(&row.id, &e.to_string());
                                stats.failed.push((row.id.clone(), e.to_string()));
                                reporter.rows(1);
                                continue;
                            }
                            Err(e) => {
                                return Err(CoreError::Row {
                                    source_name: input.path.display().to_string(),
                                    id: row.id.clone(),
                                    error: Box::new(e),
                                });
                            }
                        };
                        self.write_row(row, samples, &mut writer, &mut stats)?;
                        reporter.rows(1);
                    }
                }
            }
            Ok(())
        })?;
        let written = writer.finish()?;
        Ok(GenerateSummary {
            resumed: stats.resumed,
            rows: stats.rows,
            responses: stats.responses,
            empty: stats.empty,
            no_response: stats.no_response,
            failed: stats.failed,
            finish: stats.finish,
            written,
            read_skipped: outcome.skipped.len(),
        })
    }
}

/// `cdr generate`: samples for the prompts of `input` into `output` (a shard's own file, marked
/// complete at the end for merging).
pub fn generate_file(
    settings: &GenerateSettings,
    input: &Input,
    output: &Output,
    reporter: &mut dyn Reporter,
) -> Result<GenerateSummary> {
    let file = output.file();
    // The run starting now may be killed: its output must not pass for complete.
    if output.shard.is_some() {
        Shard::clear_marker(&file)?;
    }
    let summary = settings.generate_into(input, &file, output.fresh, output.shard, reporter)?;
    if let Some(shard) = output.shard {
        shard.mark_complete(&file, &input.path, summary.written)?;
        reporter.notice(&format!(
            "shard {shard} complete; merge all {} with `cdr merge`",
            shard.count()
        ));
    }
    Ok(summary)
}

/// Where an annotation that generates first keeps the generated rows (`<output>.generated.jsonl`),
/// so a killed run resumes generation too.
pub fn generated_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".generated.jsonl");
    PathBuf::from(name)
}

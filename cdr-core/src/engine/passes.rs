//! Single-model scoring passes, for `cdr logprobs` and `cdr pairs`: every response of the rows
//! rendered with each template, tokenized by each model, then scored by one model at a time,
//! chunk by chunk, through the log-prob cache.

use std::ops::Range;

use cdr_models::Tokenizer;
use cdr_prompt::ChatTemplate;
use tracing::debug;

use crate::cache::{CacheTable, ids_key, text_key};
use crate::encode::{Encoded, Limits, encode};
use crate::error::{CoreError, Result};
use crate::scorer::{KeyedText, ModelScorer, PassStats, TextLogprobs, render_item};

use super::reporter::Reporter;
use super::routing::Routed;
use super::run::ScoredRow;

/// The rows' texts, rendered with every template and tokenized by every model.
pub struct Texts {
    /// Input indices of the rows kept (every text of theirs rendered and tokenized).
    pub rows: Vec<usize>,
    /// Each kept row's texts, as a range of text indices.
    pub spans: Vec<Range<usize>>,
    /// `keys[template][text]`: the cache's text keys.
    pub keys: Vec<Vec<String>>,
    /// `encoded[model][template][text]`.
    pub encoded: Vec<Vec<Vec<Encoded>>>,
    /// `ids[model][template][text]`: fingerprints of the token ids.
    pub ids: Vec<Vec<Vec<String>>>,
    /// `(row id, why)` of the rows left out under `--skip-invalid`.
    pub failed: Vec<(String, String)>,
}

/// What every text goes through before a model scores it.
pub struct Rendering<'a> {
    /// The chat templates texts are rendered with.
    pub templates: &'a [ChatTemplate],
    /// The tokenizers of the models that score them.
    pub tokenizers: &'a [&'a Tokenizer],
    /// `None` without customization.
    pub routed: Option<&'a Routed>,
    /// Prompt and response token limits.
    pub limits: Limits,
}

/// One row's texts: keys per template, encodings per model and template.
type RowTexts = (Vec<Vec<String>>, Vec<Vec<Vec<Encoded>>>);

impl Rendering<'_> {
    fn row<R: ScoredRow>(&self, row: &R) -> Result<RowTexts> {
        let id = row.info().id;
        let domain = self.routed.and_then(|r| r.domains.get(id)).cloned();
        let items: Vec<_> = row
            .items()
            .into_iter()
            .map(|i| i.in_row(id, domain.clone()))
            .collect();
        let mut keys = Vec::new();
        let mut encoded = vec![Vec::new(); self.tokenizers.len()];
        for template in self.templates {
            let rendered = items
                .iter()
                .map(|i| render_item(template, self.routed.map(|r| &r.customization), i))
                .collect::<Result<Vec<_>>>()?;
            keys.push(
                rendered
                    .iter()
                    .map(|r| text_key(&r.full, r.response_start()))
                    .collect(),
            );
            for (m, tokenizer) in self.tokenizers.iter().enumerate() {
                encoded[m].push(
                    rendered
                        .iter()
                        .map(|r| encode(tokenizer, r, self.limits))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
        }
        Ok((keys, encoded))
    }

    /// Renders and tokenizes every row; a row that fails is an error naming it (and `source`),
    /// or with `skip_invalid` is left out (for every model alike) and reported.
    pub fn prepare<R: ScoredRow>(
        &self,
        rows: &[R],
        source: &str,
        skip_invalid: bool,
        reporter: &mut dyn Reporter,
    ) -> Result<Texts> {
        let (n_models, n_templates) = (self.tokenizers.len(), self.templates.len());
        let mut out = Texts {
            rows: Vec::new(),
            spans: Vec::new(),
            keys: vec![Vec::new(); n_templates],
            encoded: vec![vec![Vec::new(); n_templates]; n_models],
            ids: vec![vec![Vec::new(); n_templates]; n_models],
            failed: Vec::new(),
        };
        let mut next = 0;
        for (index, row) in rows.iter().enumerate() {
            let id = row.info().id;
            match self.row(row) {
                Ok((keys, encoded)) => {
                    let n = keys.first().map_or(0, Vec::len);
                    out.spans.push(next..next + n);
                    next += n;
                    out.rows.push(index);
                    for (t, k) in keys.into_iter().enumerate() {
                        out.keys[t].extend(k);
                    }
                    for (m, per_template) in encoded.into_iter().enumerate() {
                        for (t, e) in per_template.into_iter().enumerate() {
                            out.ids[m][t].extend(e.iter().map(ids_key));
                            out.encoded[m][t].extend(e);
                        }
                    }
                }
                Err(e) if skip_invalid => {
                    debug!(id, "skipped: {e}");
                    reporter.skipped(id, &e.to_string());
                    out.failed.push((id.to_string(), e.to_string()));
                }
                Err(e) => {
                    return Err(CoreError::Row {
                        source_name: source.to_string(),
                        id: id.to_string(),
                        error: Box::new(e),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// How one pass runs.
pub struct PassOptions<'a> {
    /// The model's cache table, if any.
    pub table: Option<&'a CacheTable>,
    /// Keep each token's log-prob, not just the sums.
    pub per_token: bool,
    /// Rows per batch plan, as in [`super::Engine::score`]: the same rows meet in the same
    /// batches, so a pass computes what the pair scoring computes.
    pub chunk_rows: usize,
    /// Most tokens (batch x padded length) in one forward pass.
    pub max_batch_tokens: usize,
}

/// Every text's log-probs under model `m` and template `t` when `table` holds them all (then the
/// model need not be loaded).
pub fn all_cached(
    table: &CacheTable,
    texts: &Texts,
    (m, t): (usize, usize),
) -> Option<(Vec<TextLogprobs>, PassStats)> {
    let logprobs = texts.keys[t]
        .iter()
        .zip(&texts.ids[m][t])
        .map(|(text, ids)| {
            table.get(text, ids, false).map(|e| TextLogprobs {
                logprob: e.logprob,
                tokens: None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let stats = PassStats {
        cached: logprobs.len(),
        computed: 0,
    };
    Some((logprobs, stats))
}

/// Model `m` scores every text under template `t`, from the cache where it can.
pub fn score_pass(
    scorer: &ModelScorer,
    texts: &Texts,
    (m, t): (usize, usize),
    options: &PassOptions<'_>,
    reporter: &mut dyn Reporter,
) -> Result<(Vec<TextLogprobs>, PassStats)> {
    let mut out = Vec::new();
    let mut stats = PassStats::default();
    for chunk in texts.spans.chunks(options.chunk_rows.max(1)) {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let keyed: Vec<KeyedText<'_>> = (first.start..last.end)
            .map(|i| KeyedText {
                encoded: &texts.encoded[m][t][i],
                text: &texts.keys[t][i],
            })
            .collect();
        let (logprobs, s) = scorer.logprobs_cached(
            &keyed,
            options.table,
            options.per_token,
            options.max_batch_tokens,
            &mut |_, tokens| reporter.tokens(tokens),
        )?;
        out.extend(logprobs);
        stats.add(s);
        reporter.rows(chunk.len());
    }
    Ok((out, stats))
}

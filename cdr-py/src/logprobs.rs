//! `cdr.logprobs`: one model's response log-probs, as `cdr logprobs` writes them.

use std::path::PathBuf;

use cdr_core::Limits;
use pyo3::prelude::*;
use serde::Serialize;

use crate::convert::{RowSource, to_python, warn_skipped};
use crate::pair::{LogprobsConfig, RowInput, logprobs};
use crate::progress::Progress;

/// One response's log-probs (the `responses` entries of `cdr logprobs`' records).
#[derive(Serialize)]
struct ResponseRecord<'a> {
    logprob: f64,
    n_response_tokens: usize,
    n_prompt_tokens: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_logprobs: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_ids: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_ids: Option<&'a [u32]>,
}

/// One row's record: its responses in input order (chosen then rejected for pairwise rows).
#[derive(Serialize)]
struct RowRecord<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    responses: Vec<ResponseRecord<'a>>,
}

/// Each row's response log-prob sums under `model` (its own chat template unless `template`),
/// as `cdr logprobs` writes them; `per_token` adds each token's log-prob, `token_ids` the ids.
#[pyfunction]
#[pyo3(name = "logprobs", signature = (
    model, rows, *, per_token=false, token_ids=false, device="cpu", dtype="f32", template=None,
    max_batch_tokens=8192, max_prompt_tokens=2048, max_response_tokens=2048,
    skip_invalid=false, progress=false,
))]
#[allow(clippy::too_many_arguments)]
pub fn py_logprobs<'py>(
    py: Python<'py>,
    model: PathBuf,
    rows: &Bound<'py, PyAny>,
    per_token: bool,
    token_ids: bool,
    device: &str,
    dtype: &str,
    template: Option<PathBuf>,
    max_batch_tokens: usize,
    max_prompt_tokens: usize,
    max_response_tokens: usize,
    skip_invalid: bool,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let config = LogprobsConfig {
        model: model.to_string_lossy().into_owned(),
        device: device.to_string(),
        dtype: dtype.to_string(),
        template: template.map(|t| t.to_string_lossy().into_owned()),
        limits: Limits {
            max_prompt_tokens,
            max_response_tokens,
        },
        max_batch_tokens,
    };
    let source = RowSource::extract(rows)?;
    let (outcome, computed) = py.detach(|| -> Result<_, crate::error::Error> {
        let outcome = source.read(skip_invalid)?;
        let inputs: Vec<RowInput> = outcome
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| RowInput::new(i, r))
            .collect();
        let items = inputs.iter().map(|r| r.responses.len()).sum();
        let mut bar = Progress::new(items, "logprobs", progress);
        let computed = logprobs(&config, &inputs, &mut |n, t| bar.advance(n, t));
        bar.finish();
        Ok((outcome, computed?))
    })?;
    let skipped: Vec<String> = outcome
        .skipped
        .iter()
        .map(|s| format!("skipped invalid row: {}", s.message))
        .collect();
    warn_skipped(py, &skipped)?;
    let records: Vec<RowRecord<'_>> = outcome
        .rows
        .iter()
        .zip(&computed)
        .map(|(row, responses)| RowRecord {
            id: row.id(),
            subset: row.subset(),
            domain: row.domain(),
            responses: responses
                .iter()
                .map(|r| {
                    let e = &r.encoded;
                    ResponseRecord {
                        logprob: r.logprob,
                        n_response_tokens: e.n_response_tokens(),
                        n_prompt_tokens: e.n_prompt_tokens(),
                        truncated: e.truncated,
                        token_logprobs: per_token.then_some(r.tokens.as_slice()),
                        prompt_ids: token_ids.then(|| &e.ids[..e.response_start]),
                        response_ids: token_ids.then(|| &e.ids[e.response_start..]),
                    }
                })
                .collect(),
        })
        .collect();
    to_python(py, &records)
}

//! `cdr.logprobs`: one model's response log-probs, as `cdr logprobs` writes them.

use std::path::PathBuf;

use cdr_core::Limits;
use pyo3::prelude::*;

use crate::convert::{RowSource, skipped_messages, to_python, warn_skipped};
use crate::pair::{LogprobsConfig, logprobs};
use crate::progress::Progress;

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
        per_token,
        skip_invalid,
    };
    let source = RowSource::extract(rows)?;
    let (outcome, pass) = py.detach(|| -> Result<_, crate::error::Error> {
        let outcome = source.read(skip_invalid)?;
        let pass = logprobs(&config, &outcome.rows, &mut Progress::new(progress))?;
        Ok((outcome, pass))
    })?;
    warn_skipped(py, &skipped_messages(&outcome.skipped, &pass.texts.failed))?;
    to_python(py, &pass.records(&outcome.rows, token_ids))
}

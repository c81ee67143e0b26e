//! `cdr.DensityRatio`: a loaded strong/weak pair, its scoring calls with the GIL released.

use std::path::PathBuf;

use cdr_core::Limits;
use cdr_data::{ReadOutcome, Row};
use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::convert::{RowSource, skipped_messages, to_json, to_python, warn_skipped};
use crate::error::Error;
use crate::pair::{Pair, PairConfig, Scored};
use crate::progress::Progress;
use crate::records::{self, EvalSummary, ScoreRecord};
use cdr_core::engine::PairScore;

fn spec(path: PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

/// The customized density-ratio reward of a strong/weak model pair.
#[pyclass(name = "DensityRatio", module = "cdr", frozen)]
pub struct PyDensityRatio {
    pair: Pair,
}

impl PyDensityRatio {
    /// Scores `rows` with the GIL released; skipped rows become Python warnings.
    fn score_outcome(
        &self,
        py: Python<'_>,
        outcome: &ReadOutcome<Row>,
        label: &str,
        skip_invalid: bool,
        progress: bool,
    ) -> PyResult<Scored> {
        let scored = py.detach(|| {
            let mut bar = Progress::new(progress);
            self.pair
                .score_rows(&outcome.rows, skip_invalid, label, &mut bar)
        })?;
        warn_skipped(py, &skipped_messages(&outcome.skipped, &scored.failed))?;
        Ok(scored)
    }

    fn read(
        py: Python<'_>,
        rows: &Bound<'_, PyAny>,
        skip_invalid: bool,
    ) -> PyResult<ReadOutcome<Row>> {
        let source = RowSource::extract(rows)?;
        Ok(py.detach(|| source.read(skip_invalid))?)
    }
}

#[pymethods]
impl PyDensityRatio {
    #[new]
    #[pyo3(signature = (
        strong, weak, *, customize=None, router="field", router_model=None,
        router_calibrate=false, device="cpu", dtype="f32",
        max_batch_tokens=8192, cache=None, template=None, reduction="sum",
        max_prompt_tokens=2048, max_response_tokens=2048, allow_tokenizer_mismatch=false,
        one_model_at_a_time=None, adapter_base=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        strong: PathBuf,
        weak: PathBuf,
        customize: Option<PathBuf>,
        router: &str,
        router_model: Option<PathBuf>,
        router_calibrate: bool,
        device: &str,
        dtype: &str,
        max_batch_tokens: usize,
        cache: Option<PathBuf>,
        template: Option<PathBuf>,
        reduction: &str,
        max_prompt_tokens: usize,
        max_response_tokens: usize,
        allow_tokenizer_mismatch: bool,
        one_model_at_a_time: Option<bool>,
        adapter_base: Option<PathBuf>,
    ) -> PyResult<Self> {
        // The CLI's --adapter-base: the base of an adapter whose recorded one is not here.
        if let Some(base) = adapter_base {
            let base = cdr_models::resolve_model(&spec(base))
                .map_err(|e| Error::NotFound(format!("adapter_base: {e}")))?;
            cdr_models::set_fallback_base(base);
        }
        let config = PairConfig {
            strong: spec(strong),
            weak: spec(weak),
            customize: customize.map(spec),
            router: router.to_string(),
            router_model: router_model.map(spec),
            router_calibrate,
            device: device.to_string(),
            dtype: dtype.to_string(),
            max_batch_tokens,
            template: template.map(spec),
            reduction: reduction.to_string(),
            limits: Limits {
                max_prompt_tokens,
                max_response_tokens,
            },
            allow_tokenizer_mismatch,
            one_model_at_a_time,
            cache,
        };
        let pair = py.detach(|| Pair::load(config))?;
        Ok(Self { pair })
    }

    /// The strong model as given.
    #[getter]
    fn strong(&self) -> &str {
        &self.pair.config().strong
    }

    /// The weak model as given.
    #[getter]
    fn weak(&self) -> &str {
        &self.pair.config().weak
    }

    /// The chat template's name (a path for a model's own template).
    #[getter]
    fn template(&self) -> &str {
        self.pair.template_name()
    }

    /// The strong template's end-of-sequence text (what ends an assistant turn in decoded text).
    #[getter]
    fn eos_token(&self) -> &str {
        self.pair.eos_token()
    }

    fn __repr__(&self) -> String {
        let c = self.pair.config();
        format!(
            "DensityRatio(strong={:?}, weak={:?}, dtype={:?}, customize={:?})",
            c.strong, c.weak, c.dtype, c.customize
        )
    }

    /// One reward per `(prompt, response)`; a prompt is a string (one user turn) or a list of
    /// `{"role", "content"}` messages. With `skip_invalid`, an item that cannot be scored (empty
    /// response, template failure) gets `None` and a warning instead of failing the call.
    #[pyo3(signature = (prompts, responses, *, domains=None, skip_invalid=false, progress=false))]
    fn score(
        &self,
        py: Python<'_>,
        prompts: &Bound<'_, PyAny>,
        responses: Vec<String>,
        domains: Option<Vec<Option<String>>>,
        skip_invalid: bool,
        progress: bool,
    ) -> PyResult<Vec<Option<f64>>> {
        let prompts: Vec<Value> = prompts
            .try_iter()?
            .map(|p| to_json(&p?))
            .collect::<PyResult<_>>()?;
        if prompts.len() != responses.len() {
            return Err(Error::Argument(format!(
                "{} prompts but {} responses",
                prompts.len(),
                responses.len()
            ))
            .into());
        }
        if let Some(d) = &domains
            && d.len() != prompts.len()
        {
            return Err(Error::Argument(format!(
                "{} prompts but {} domains",
                prompts.len(),
                d.len()
            ))
            .into());
        }
        let n = prompts.len();
        let values: Vec<Value> = prompts
            .into_iter()
            .zip(responses)
            .enumerate()
            .map(|(i, (prompt, response))| {
                let mut row =
                    json!({"id": format!("row-{i}"), "prompt": prompt, "responses": [response]});
                if let Some(Some(domain)) = domains.as_ref().map(|d| &d[i]) {
                    row["domain"] = Value::String(domain.clone());
                }
                row
            })
            .collect();
        let outcome = py.detach(|| RowSource::Values(values).read(skip_invalid))?;
        let scored = self.score_outcome(py, &outcome, "score", skip_invalid, progress)?;
        // Rows keep their input index in the id (`row-{i}`).
        let mut out = vec![None; n];
        for row in &scored.rows {
            let id = outcome.rows[row.index].id();
            if let Some(i) = id
                .strip_prefix("row-")
                .and_then(|i| i.parse::<usize>().ok())
                && let (Some(slot), Some(score)) = (out.get_mut(i), row.scores.first())
            {
                *slot = Some(score.reward);
            }
        }
        Ok(out)
    }

    /// `cdr score`'s records for rows in its input layouts (pairwise prompt/chosen/rejected,
    /// best-of-N prompt/responses, ...), from a list of dicts or a JSONL / JSON / Parquet path.
    #[pyo3(signature = (rows, *, skip_invalid=false, progress=false))]
    fn score_rows<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyAny>,
        skip_invalid: bool,
        progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let outcome = Self::read(py, rows, skip_invalid)?;
        let scored = self.score_outcome(py, &outcome, "score", skip_invalid, progress)?;
        let records: Vec<ScoreRecord> = scored
            .rows
            .into_iter()
            .map(|r| records::score_record(&outcome.rows[r.index], &r.scores, r.domain))
            .collect();
        to_python(py, &records)
    }

    /// `cdr eval`: pairwise accuracy (overall, per subset and domain, RewardBench sections)
    /// of pairwise rows from a path or a list of dicts; `records` holds the per-row scores.
    #[pyo3(signature = (path_or_rows, *, skip_invalid=false, progress=false))]
    fn eval<'py>(
        &self,
        py: Python<'py>,
        path_or_rows: &Bound<'py, PyAny>,
        skip_invalid: bool,
        progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut outcome = Self::read(py, path_or_rows, skip_invalid)?;
        let mut not_pairwise = Vec::new();
        outcome.rows.retain(|r| match r {
            Row::Pairwise(_) => true,
            Row::BestOfN(b) => {
                not_pairwise.push(format!(
                    "row `{}`: expected a pairwise row with `chosen` and `rejected`",
                    b.id
                ));
                false
            }
        });
        if let Some(first) = not_pairwise.first()
            && !skip_invalid
        {
            return Err(Error::Core(cdr_core::CoreError::Invalid(format!(
                "{first} (pass skip_invalid=True to continue past bad rows)"
            )))
            .into());
        }
        let not_pairwise: Vec<String> = not_pairwise
            .iter()
            .map(|m| format!("skipped {m}"))
            .collect();
        warn_skipped(py, &not_pairwise)?;
        let scored = self.score_outcome(py, &outcome, "eval", skip_invalid, progress)?;
        let records: Vec<PairScore> = scored
            .rows
            .iter()
            .filter_map(|r| {
                match records::score_record(&outcome.rows[r.index], &r.scores, r.domain.clone()) {
                    ScoreRecord::Pair(p) => Some(p),
                    ScoreRecord::Responses(_) => None,
                }
            })
            .collect();
        let skipped = outcome.skipped.len() + not_pairwise.len() + scored.failed.len();
        // The report's `input`: the path as given, or `rows` for a list.
        let source = match path_or_rows.extract::<PathBuf>() {
            Ok(path) => path.display().to_string(),
            Err(_) => "rows".to_string(),
        };
        let summary = EvalSummary {
            report: cdr_core::engine::report(self.pair.engine(), &source, &records, skipped),
            records,
        };
        to_python(py, &summary)
    }

    /// `cdr annotate`: best-of-N rows (prompt + responses) to TRL preference pairs
    /// (`prompt`, `chosen`, `rejected`, `score_chosen`, `score_rejected`, `id`, ...). Rows that
    /// give no pair (fewer than two responses, all tied, identical texts) are left out, their
    /// count by reason given in a `UserWarning` as `cdr annotate` prints it.
    #[pyo3(signature = (rows, *, strategy="best-worst", seed=0, skip_invalid=false, progress=false))]
    fn annotate<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyAny>,
        strategy: &str,
        seed: u64,
        skip_invalid: bool,
        progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let strategy = records::strategy(strategy, seed).ok_or_else(|| {
            Error::Argument(format!(
                "unknown strategy `{strategy}` (best-worst, best-random)"
            ))
        })?;
        let mut outcome = Self::read(py, rows, skip_invalid)?;
        let mut pairwise = Vec::new();
        outcome.rows.retain(|r| match r {
            Row::BestOfN(_) => true,
            Row::Pairwise(p) => {
                pairwise.push(format!(
                    "row `{}`: expected a best-of-N row with `responses` or `messages`",
                    p.id
                ));
                false
            }
        });
        if let Some(first) = pairwise.first()
            && !skip_invalid
        {
            return Err(Error::Core(cdr_core::CoreError::Invalid(format!(
                "{first} (pass skip_invalid=True to continue past bad rows)"
            )))
            .into());
        }
        let pairwise: Vec<String> = pairwise.iter().map(|m| format!("skipped {m}")).collect();
        warn_skipped(py, &pairwise)?;
        let scored = self.score_outcome(py, &outcome, "annotate", skip_invalid, progress)?;
        let mut pairs = Vec::new();
        let mut dropped = records::Dropped::new();
        for r in scored.rows {
            match records::annotate(&outcome.rows[r.index], &r.scores, r.domain, strategy) {
                Ok(pair) => pairs.push(pair),
                Err(why) => *dropped.entry(format!("{why:?}")).or_default() += 1,
            }
        }
        let out = to_python(py, &pairs)?;
        let reasons: Vec<String> = dropped
            .iter()
            .map(|(why, n)| format!("{n} rows gave no pair ({why})"))
            .collect();
        warn_skipped(py, &reasons)?;
        Ok(out)
    }
}

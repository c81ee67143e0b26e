//! Runs from a dataset file to an output file: rows read, the ones the output already holds
//! skipped (resume), this shard's rows scored, records written row by row.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cdr_data::{
    ReadOptions, ReadOutcome, RecordWriter, Row, Shard, WriteOptions, read_best_of_n, read_multi,
    read_pairwise, read_records, read_rows,
};

use crate::best_of_n::{NoPair, PairStrategy};
use crate::error::CoreError;
use crate::error::Result;
use crate::length_control::{AlphaSearch, Candidates, search_alpha};
use crate::scorer::ItemScore;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{
    EvalReport, MultiScore, PairScore, ResponsesScore, preference_pair, tally, tally_multi,
};
use super::reporter::Reporter;
use super::run::{Engine, Pass, RunStats, ScoredRow};

/// A dataset file and how to read it.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file (`.jsonl`, `.json` or `.parquet`), or a dataset: a directory or a hub id in the
    /// local Hugging Face cache, with an optional `:split` (`org/name[@revision][:split]`).
    pub path: PathBuf,
    /// Field names and whether bad rows are skipped while reading.
    pub read: ReadOptions,
}

impl Input {
    /// A file read with the default field names.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            read: ReadOptions::default(),
        }
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Where a run writes, and which shard of the rows it owns.
#[derive(Debug, Clone)]
pub struct Output {
    /// The file an unsharded run writes; a shard writes `OUTPUT.shard-I-of-N.EXT`.
    pub path: PathBuf,
    /// Start over instead of resuming from what the file holds.
    pub fresh: bool,
    /// The shard this process writes; `None` for an unsplit run.
    pub shard: Option<Shard>,
    /// A dataset directory `path` lies in (`DIR/data/{split}-00000-of-00001.parquet`), whose
    /// card (`DIR/README.md`) is rewritten to list its splits once an unsharded run finishes.
    pub dataset_dir: Option<PathBuf>,
}

impl Output {
    /// A file written in full, resuming what it already holds.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            fresh: false,
            shard: None,
            dataset_dir: None,
        }
    }

    /// Writes split `split` of the dataset directory `dir` (see [`Output::dataset_dir`]), so
    /// that `datasets.load_dataset(dir)` loads it.
    pub fn in_dataset_dir(dir: impl Into<PathBuf>, split: &str) -> Self {
        let dir = dir.into();
        Self {
            path: cdr_data::dataset_dir_file(&dir, split),
            dataset_dir: Some(dir),
            ..Self::new(PathBuf::new())
        }
    }

    /// The file this process writes.
    pub fn file(&self) -> PathBuf {
        match self.shard {
            Some(s) => s.output_path(&self.path),
            None => self.path.clone(),
        }
    }

    /// Whether this process owns row `id` (every row, unsharded).
    pub fn owns(&self, id: &str) -> bool {
        self.shard.is_none_or(|s| s.contains(id))
    }

    /// Opens the file for appending (resume) or afresh. A finished shard's completion marker is
    /// removed first: the run starting now may be killed, and its output must not pass for
    /// complete.
    pub(crate) fn open(&self) -> Result<RecordWriter> {
        let file = self.file();
        if self.shard.is_some() {
            Shard::clear_marker(&file)?;
        }
        if let (Some(_), Some(data)) = (&self.dataset_dir, file.parent()) {
            std::fs::create_dir_all(data).map_err(|e| cdr_data::DataError::Write {
                path: data.to_path_buf(),
                source: e,
            })?;
        }
        Ok(RecordWriter::open(
            &file,
            &WriteOptions {
                fresh: self.fresh,
                ..WriteOptions::default()
            },
        )?)
    }

    /// Closes the file and, for a shard, marks it complete for merging.
    pub(crate) fn finish(
        &self,
        writer: RecordWriter,
        input: &Path,
        reporter: &mut dyn Reporter,
    ) -> Result<usize> {
        let written = writer.finish()?;
        if let (Some(dir), None) = (&self.dataset_dir, self.shard) {
            cdr_data::write_dataset_card(dir)?;
        }
        if let Some(shard) = self.shard {
            shard.mark_complete(&self.file(), input, written)?;
            reporter.notice(&format!(
                "shard {shard} complete; merge all {} with `cdr merge`",
                shard.count()
            ));
        }
        Ok(written)
    }
}

/// What a file run did.
#[derive(Debug, Clone, Default)]
pub struct FileSummary {
    /// The scoring run's statistics.
    pub stats: RunStats,
    /// Rows skipped while reading (malformed, under `skip_invalid`).
    pub read_skipped: usize,
    /// Records in the output file (earlier runs' included).
    pub written: usize,
    /// The file written.
    pub path: PathBuf,
}

impl FileSummary {
    /// Rows left out: skipped while reading plus skipped while preparing.
    pub fn skipped_rows(&self) -> usize {
        self.read_skipped + self.stats.failed_rows.len()
    }
}

/// One notice per row skipped while reading.
pub(crate) fn report_read_skips<T>(outcome: &ReadOutcome<T>, reporter: &mut dyn Reporter) {
    for s in &outcome.skipped {
        reporter.notice(&format!("skipped invalid row: {}", s.message));
    }
}

/// `cdr score`: every response of every row (pairwise or best-of-N) scored into `output`.
pub fn score_file(
    engine: &Engine,
    input: &Input,
    output: &Output,
    reporter: &mut dyn Reporter,
) -> Result<FileSummary> {
    let mut outcome = read_rows(&input.path, &input.read)?;
    report_read_skips(&outcome, reporter);
    outcome.rows.retain(|r| output.owns(r.id()));
    let mut writer = output.open()?;
    let done = writer.ids().clone();
    let stats = engine.score(
        &outcome.rows,
        &Pass {
            done: &done,
            source: &input.name(),
            stage: "score",
            skip_invalid: engine.settings().skip_invalid,
        },
        reporter,
        |r, s, domain| {
            let domain = domain.map(str::to_string);
            match r {
                Row::Pairwise(p) => writer.write(&PairScore::new(p, s, domain))?,
                Row::BestOfN(b) => writer.write(&ResponsesScore::new(b, s, domain))?,
            }
            Ok(())
        },
    )?;
    let written = output.finish(writer, &input.path, reporter)?;
    Ok(FileSummary {
        stats,
        read_skipped: outcome.skipped.len(),
        written,
        path: output.file(),
    })
}

/// The eval of scored pairwise rows: accuracies and the report.
pub fn report(
    engine: &Engine,
    source: &str,
    scored: &[PairScore],
    skipped_rows: usize,
) -> EvalReport {
    let (accuracy, truncated) = tally(scored);
    let pair = engine.pair();
    EvalReport {
        input: source.to_string(),
        strong: engine.settings().pair.strong.clone(),
        weak: engine.settings().pair.weak.clone(),
        template: pair.template().name().to_string(),
        reduction: format!("{:?}", pair.options().reduction).to_lowercase(),
        rows: scored.len(),
        accuracy: accuracy.overall.accuracy(),
        truncated_responses: truncated,
        skipped_rows,
        rewardbench: accuracy.rewardbench(),
        rewardbench2: None,
        results: accuracy,
    }
}

/// The eval of scored RewardBench 2 rows: accuracy (every chosen completion above every rejected
/// one) per subset and domain, and RewardBench 2's scores.
pub fn report_multi(
    engine: &Engine,
    source: &str,
    scored: &[MultiScore],
    skipped_rows: usize,
) -> Result<EvalReport> {
    let (accuracy, truncated, rewardbench2) = tally_multi(scored)?;
    let pair = engine.pair();
    Ok(EvalReport {
        input: source.to_string(),
        strong: engine.settings().pair.strong.clone(),
        weak: engine.settings().pair.weak.clone(),
        template: pair.template().name().to_string(),
        reduction: format!("{:?}", pair.options().reduction).to_lowercase(),
        rows: scored.len(),
        accuracy: accuracy.overall.accuracy(),
        truncated_responses: truncated,
        skipped_rows,
        rewardbench: None,
        rewardbench2,
        results: accuracy,
    })
}

/// `cdr eval` on RewardBench 2 rows (lists of `chosen` and `rejected` completions, see
/// [`cdr_data::read_multi`]): every completion scored (into `output` when given, resumably), then
/// the report over every row of this shard, the output's earlier rows included.
pub fn eval_rewardbench2_file(
    engine: &Engine,
    input: &Input,
    output: Option<&Output>,
    shard: Option<Shard>,
    reporter: &mut dyn Reporter,
) -> Result<(EvalReport, Vec<MultiScore>, FileSummary)> {
    let outcome = read_multi(&input.path, &input.read)?;
    // Ties is scored over all its rows at once: the report needs the earlier runs' rows too.
    let (scored, summary) = eval_records(
        engine,
        input,
        output,
        shard,
        reporter,
        outcome,
        MultiScore::new,
    )?;
    let report = report_multi(engine, &input.name(), &scored, summary.skipped_rows())?;
    Ok((report, scored, summary))
}

/// `cdr eval`: pairwise rows scored (into `output` when given, resumably), then the report over
/// every row of this shard, the output's earlier rows included. Returns the report, the scored
/// records and the run's summary.
pub fn eval_file(
    engine: &Engine,
    input: &Input,
    output: Option<&Output>,
    shard: Option<Shard>,
    reporter: &mut dyn Reporter,
) -> Result<(EvalReport, Vec<PairScore>, FileSummary)> {
    let outcome = read_pairwise(&input.path, &input.read)?;
    // The report covers every row of the input, including rows scored by an earlier run.
    let (scored, summary) = eval_records(
        engine,
        input,
        output,
        shard,
        reporter,
        outcome,
        PairScore::new,
    )?;
    let report = report(engine, &input.name(), &scored, summary.skipped_rows());
    Ok((report, scored, summary))
}

/// A record `eval` writes, by the id of its row.
trait EvalRecord: Serialize + DeserializeOwned {
    fn id(&self) -> &str;
}

impl EvalRecord for PairScore {
    fn id(&self) -> &str {
        &self.id
    }
}

impl EvalRecord for MultiScore {
    fn id(&self) -> &str {
        &self.id
    }
}

/// What both evals share: `outcome`'s rows of this shard scored into `record`s (written to
/// `output` when given, resumably), then every record of the shard, the output's earlier rows
/// included.
fn eval_records<R: ScoredRow, S: EvalRecord>(
    engine: &Engine,
    input: &Input,
    output: Option<&Output>,
    shard: Option<Shard>,
    reporter: &mut dyn Reporter,
    mut outcome: ReadOutcome<R>,
    record: impl Fn(&R, &[ItemScore], Option<String>) -> S,
) -> Result<(Vec<S>, FileSummary)> {
    report_read_skips(&outcome, reporter);
    outcome
        .rows
        .retain(|r| shard.is_none_or(|s| s.contains(r.info().id)));
    let mut writer = output.map(Output::open).transpose()?;
    let done = writer.as_ref().map(|w| w.ids().clone()).unwrap_or_default();
    let mut scored: Vec<S> = Vec::new();
    let stats = engine.score(
        &outcome.rows,
        &Pass {
            done: &done,
            source: &input.name(),
            stage: "eval",
            skip_invalid: engine.settings().skip_invalid,
        },
        reporter,
        |r, s, domain| {
            let record = record(r, s, domain.map(str::to_string));
            if let Some(w) = writer.as_mut() {
                w.write(&record)?;
            }
            scored.push(record);
            Ok(())
        },
    )?;
    let mut summary = FileSummary {
        stats,
        read_skipped: outcome.skipped.len(),
        ..FileSummary::default()
    };
    if let (Some(w), Some(out)) = (writer, output) {
        summary.written = out.finish(w, &input.path, reporter)?;
        summary.path = out.file();
        let mut earlier: Vec<S> = read_records(&summary.path, None)?;
        let fresh: HashSet<&str> = scored.iter().map(EvalRecord::id).collect();
        earlier.retain(|s| !fresh.contains(s.id()));
        scored.extend(earlier);
    }
    Ok((scored, summary))
}

/// What an annotate run did: the file run's summary and the rows that gave no pair, by reason.
#[derive(Debug, Clone, Default)]
pub struct AnnotateSummary {
    /// The file run's summary.
    pub file: FileSummary,
    /// Rows that gave no pair, counted by reason (`TooFew`, `AllTied`, `IdenticalTexts`).
    pub no_pair: std::collections::BTreeMap<String, usize>,
}

/// `cdr annotate`: best-of-N rows scored, each turned into a preference pair by `strategy`.
pub fn annotate_file(
    engine: &Engine,
    input: &Input,
    output: &Output,
    strategy: PairStrategy,
    reporter: &mut dyn Reporter,
) -> Result<AnnotateSummary> {
    let mut outcome = read_best_of_n(&input.path, &input.read)?;
    report_read_skips(&outcome, reporter);
    outcome.rows.retain(|r| output.owns(&r.id));
    let mut writer = output.open()?;
    let done = writer.ids().clone();
    let mut no_pair = std::collections::BTreeMap::new();
    let stats = engine.score(
        &outcome.rows,
        &Pass {
            done: &done,
            source: &input.name(),
            stage: "annotate",
            skip_invalid: engine.settings().skip_invalid,
        },
        reporter,
        |r, s, domain| {
            match preference_pair(r, s, domain, strategy) {
                Ok(pair) => writer.write(&pair)?,
                Err(why) => *no_pair.entry(no_pair_reason(why)).or_default() += 1,
            }
            Ok(())
        },
    )?;
    let written = output.finish(writer, &input.path, reporter)?;
    Ok(AnnotateSummary {
        file: FileSummary {
            stats,
            read_skipped: outcome.skipped.len(),
            written,
            path: output.file(),
        },
        no_pair,
    })
}

fn no_pair_reason(why: NoPair) -> String {
    format!("{why:?}")
}

/// The file beside `output` where a length-controlled annotation keeps its scored rows:
/// `OUTPUT.scores.jsonl`. The pairs need every row's rewards first (one `alpha` for the file),
/// so the scores are what resumes; the pairs are rewritten from them at the end of every run.
pub fn scores_path(output: &Path) -> PathBuf {
    let mut p = output.as_os_str().to_owned();
    p.push(".scores.jsonl");
    PathBuf::from(p)
}

/// What a length-controlled annotation did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LengthControlSummary {
    /// The file run's summary (scoring into the scores file; `path`, `written`: the pairs).
    #[serde(skip)]
    pub file: FileSummary,
    /// The penalty per response token and the mean chosen-minus-rejected length before
    /// (`alpha = 0`) and after.
    pub search: Option<AlphaSearch>,
    /// Mean length (response tokens) of the samples kept.
    pub mean_length: f64,
    /// Pairs written.
    pub pairs: usize,
    /// Samples left out because they hit the token limit (cut to --max-response-tokens, or a
    /// generated sample that stopped for length).
    pub dropped_truncated: usize,
    /// Rows that gave no pair, counted by reason.
    pub no_pair: std::collections::BTreeMap<String, usize>,
}

/// `cdr annotate --pair-strategy length-controlled`: every row scored into [`scores_path`]
/// (resumably), samples at the token limit dropped, one `alpha` searched over the whole file
/// ([`search_alpha`]), then each row's pair picked by `reward - alpha * length` and the pairs
/// file written afresh. Pairs carry `margin` (the chosen minus the rejected penalized reward, so
/// never negative), `length_chosen` and `length_rejected` (response tokens).
///
/// A sharded run is refused: `alpha` must see every row. Share the scoring work instead through
/// the log-prob cache (sharded `cdr logprobs` runs, or any scoring run with the same cache),
/// then annotate once.
pub fn annotate_length_controlled(
    engine: &Engine,
    input: &Input,
    output: &Output,
    reporter: &mut dyn Reporter,
) -> Result<LengthControlSummary> {
    if let Some(shard) = output.shard {
        return Err(CoreError::Invalid(format!(
            "length-controlled pairs need one alpha over the whole file, but this run is shard \
             {shard}; annotate unsharded (fill the log-prob cache with sharded runs first)"
        )));
    }
    let outcome = read_best_of_n(&input.path, &input.read)?;
    report_read_skips(&outcome, reporter);
    let scores_file = scores_path(&output.path);
    let mut writer = RecordWriter::open(
        &scores_file,
        &WriteOptions {
            fresh: output.fresh,
            ..WriteOptions::default()
        },
    )?;
    let done = writer.ids().clone();
    let stats = engine.score(
        &outcome.rows,
        &Pass {
            done: &done,
            source: &input.name(),
            stage: "annotate",
            skip_invalid: engine.settings().skip_invalid,
        },
        reporter,
        |r, s, domain| {
            writer.write(&ResponsesScore::new(r, s, domain.map(str::to_string)))?;
            Ok(())
        },
    )?;
    writer.finish()?;
    let scored: std::collections::HashMap<String, ResponsesScore> =
        read_records::<ResponsesScore>(&scores_file, None)?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();

    let limit = engine.pair().options().limits.max_response_tokens;
    let mut summary = LengthControlSummary::default();
    // (row, its score record, the kept samples' indices, their candidates), in input order.
    let mut kept = Vec::new();
    let (mut length_sum, mut samples) = (0.0, 0usize);
    for row in &outcome.rows {
        let Some(score) = scored.get(&row.id) else {
            continue;
        };
        if score.scores.len() != row.responses.len() {
            return Err(CoreError::Invalid(format!(
                "{}: row `{}` has {} scores for {} responses; the input changed since it was \
                 scored (rerun with --fresh)",
                scores_file.display(),
                row.id,
                score.scores.len(),
                row.responses.len()
            )));
        }
        let finish = row.extra.get("finish_reasons").and_then(|v| v.as_array());
        let at_limit = |i: usize| {
            let s = &score.scores[i];
            let stopped_for_length = finish
                .and_then(|f| f.get(i))
                .and_then(|v| v.as_str())
                .is_some_and(|v| v == "length");
            (s.truncated && s.n_response_tokens >= limit) || stopped_for_length
        };
        let idx: Vec<usize> = (0..row.responses.len()).filter(|&i| !at_limit(i)).collect();
        summary.dropped_truncated += row.responses.len() - idx.len();
        let candidates = Candidates {
            texts: idx.iter().map(|&i| row.responses[i].clone()).collect(),
            rewards: idx.iter().map(|&i| score.scores[i].reward).collect(),
            lengths: idx
                .iter()
                .map(|&i| score.scores[i].n_response_tokens as f64)
                .collect(),
        };
        length_sum += candidates.lengths.iter().sum::<f64>();
        samples += idx.len();
        kept.push((row, score, candidates));
    }
    summary.mean_length = if samples == 0 {
        0.0
    } else {
        length_sum / samples as f64
    };
    let all: Vec<Candidates> = kept.iter().map(|(_, _, c)| c.clone()).collect();
    let search = search_alpha(&all);
    let alpha = search.alpha;
    summary.search = Some(search);

    let mut pairs = RecordWriter::open(
        &output.path,
        &WriteOptions {
            fresh: true,
            ..WriteOptions::default()
        },
    )?;
    for (row, score, c) in &kept {
        let Some(pick) = c.pick(alpha) else {
            let why = if c.texts.len() < 2 {
                NoPair::TooFew
            } else if (0..c.texts.len()).all(|i| c.penalized(i, alpha) == c.penalized(0, alpha)) {
                NoPair::AllTied
            } else {
                NoPair::IdenticalTexts
            };
            *summary.no_pair.entry(no_pair_reason(why)).or_default() += 1;
            continue;
        };
        let (ch, rj) = (pick.chosen, pick.rejected);
        let mut pair = cdr_data::PreferencePair::new(
            &row.id,
            row.prompt.clone(),
            &c.texts[ch],
            &c.texts[rj],
            c.rewards[ch],
            c.rewards[rj],
        )
        .with_extra("margin", c.penalized(ch, alpha) - c.penalized(rj, alpha))
        .with_extra("length_chosen", c.lengths[ch])
        .with_extra("length_rejected", c.lengths[rj]);
        if let Some(subset) = &row.subset {
            pair = pair.with_extra("subset", subset.as_str());
        }
        if let Some(domain) = &score.domain {
            pair = pair.with_extra("domain", domain.as_str());
        }
        pairs.write(&pair)?;
    }
    summary.pairs = pairs.finish()?;
    summary.file = FileSummary {
        stats,
        read_skipped: outcome.skipped.len(),
        written: summary.pairs,
        path: output.path.clone(),
    };
    Ok(summary)
}

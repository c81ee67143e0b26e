//! `cdr score`, `cdr eval`, `cdr annotate`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cdr_core::backend::Backend;
use cdr_core::best_of_n::{PairStrategy, select_pair};
use cdr_core::eval::{Accuracy, prefers_chosen};
use cdr_core::{Item, ItemScore};
use cdr_data::{
    BestOfNRow, PairwiseRow, PreferencePair, ReadOutcome, RecordWriter, Row, read_best_of_n,
    read_pairwise, read_records, read_rows,
};

use crate::backend::BackendJob;
use crate::cli::{AnnotateArgs, EvalArgs, PairStrategyArg, ScoreArgs};
use crate::job::{load_pair, read_options, score_rows, summary, write_options};
use crate::progress::Progress;
use crate::records::{PairScore, ResponsesScore};
use crate::report::{EvalReport, markdown};

fn report_skipped<T>(outcome: &ReadOutcome<T>) {
    for s in &outcome.skipped {
        eprintln!("cdr: skipped invalid row: {}", s.message);
    }
}

fn pair_items(r: &PairwiseRow) -> Vec<Item> {
    vec![
        Item::new(r.prompt.clone(), r.chosen.clone()),
        Item::new(r.prompt.clone(), r.rejected.clone()),
    ]
}

fn pair_score(r: &PairwiseRow, s: &[ItemScore]) -> PairScore {
    PairScore {
        id: r.id.clone(),
        subset: r.subset.clone(),
        domain: r.domain.clone(),
        reward_chosen: s[0].reward,
        reward_rejected: s[1].reward,
        margin: s[0].reward - s[1].reward,
        correct: prefers_chosen(s[0].reward, s[1].reward),
        chosen: s[0],
        rejected: s[1],
    }
}

fn bon_items(r: &BestOfNRow) -> Vec<Item> {
    r.responses
        .iter()
        .map(|resp| Item::new(r.prompt.clone(), resp.clone()))
        .collect()
}

impl BackendJob for ScoreArgs {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let outcome = read_rows(&self.io.input, &read_options(&self.io))?;
        report_skipped(&outcome);
        let mut writer = RecordWriter::open(&self.output, &write_options(&self.io))?;
        let done = writer.ids().clone();
        let pair = load_pair::<B>(&self.models, &device)?;
        let mut progress = Progress::new(todo(&outcome.rows, &done, Row::id), "score", self.quiet);
        let items = |r: &Row| match r {
            Row::Pairwise(p) => pair_items(p),
            Row::BestOfN(b) => bon_items(b),
        };
        let stats = score_rows(
            &pair,
            &outcome.rows,
            Row::id,
            items,
            &done,
            self.io.skip_invalid,
            self.io.chunk_rows,
            &self.io.input,
            &mut progress,
            |r, s| {
                match r {
                    Row::Pairwise(p) => writer.write(&pair_score(p, s))?,
                    Row::BestOfN(b) => writer.write(&ResponsesScore {
                        id: b.id.clone(),
                        subset: b.subset.clone(),
                        domain: b.domain.clone(),
                        rewards: s.iter().map(|x| x.reward).collect(),
                        scores: s.to_vec(),
                    })?,
                }
                Ok(())
            },
        )?;
        progress.finish();
        let written = writer.finish()?;
        summary(&stats, &progress);
        eprintln!("cdr: {written} rows in {}", self.output.display());
        Ok(())
    }
}

impl BackendJob for EvalArgs {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let outcome = read_pairwise(&self.io.input, &read_options(&self.io))?;
        report_skipped(&outcome);
        let mut writer = match &self.output {
            Some(path) => Some(RecordWriter::open(path, &write_options(&self.io))?),
            None => None,
        };
        let done = writer.as_ref().map(|w| w.ids().clone()).unwrap_or_default();
        let pair = load_pair::<B>(&self.models, &device)?;
        let mut progress = Progress::new(todo(&outcome.rows, &done, |r| &r.id), "eval", self.quiet);
        let mut scored: Vec<PairScore> = Vec::new();
        let stats = score_rows(
            &pair,
            &outcome.rows,
            |r| &r.id,
            pair_items,
            &done,
            self.io.skip_invalid,
            self.io.chunk_rows,
            &self.io.input,
            &mut progress,
            |r, s| {
                let record = pair_score(r, s);
                if let Some(w) = writer.as_mut() {
                    w.write(&record)?;
                }
                scored.push(record);
                Ok(())
            },
        )?;
        progress.finish();
        if let Some(w) = writer {
            w.finish()?;
        }
        summary(&stats, &progress);

        // The report covers every row of the input, including rows scored by an earlier run.
        if let Some(path) = &self.output {
            let mut earlier: Vec<PairScore> = read_records(path, None)
                .with_context(|| format!("reading back {}", path.display()))?;
            let fresh: std::collections::HashSet<&str> =
                scored.iter().map(|s| s.id.as_str()).collect();
            earlier.retain(|s| !fresh.contains(s.id.as_str()));
            scored.extend(earlier);
        }
        let mut accuracy = Accuracy::default();
        let mut truncated = 0;
        for s in &scored {
            accuracy.add(s.subset.as_deref(), s.domain.as_deref(), s.correct);
            truncated += usize::from(s.chosen.truncated) + usize::from(s.rejected.truncated);
        }
        let report = EvalReport {
            input: self.io.input.display().to_string(),
            strong: self.models.strong.clone(),
            weak: self.models.weak.clone(),
            template: pair.template().name().to_string(),
            reduction: format!("{:?}", pair.options().reduction).to_lowercase(),
            rows: scored.len(),
            accuracy: accuracy.overall.accuracy(),
            truncated_responses: truncated,
            skipped_rows: outcome.skipped.len() + stats.failed_rows.len(),
            rewardbench: accuracy.rewardbench(),
            results: accuracy,
        };
        print!("{}", markdown(&report));
        let report_path = self.report.clone().or_else(|| {
            self.output.as_ref().map(|o| {
                let mut p = o.clone().into_os_string();
                p.push(".report.json");
                PathBuf::from(p)
            })
        });
        if let Some(path) = report_path {
            write_json(&path, &report)?;
            eprintln!("cdr: report in {}", path.display());
        }
        Ok(())
    }
}

impl BackendJob for AnnotateArgs {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let outcome = read_best_of_n(&self.io.input, &read_options(&self.io))?;
        report_skipped(&outcome);
        let mut writer = RecordWriter::open(&self.output, &write_options(&self.io))?;
        let done = writer.ids().clone();
        let pair = load_pair::<B>(&self.models, &device)?;
        let strategy = match self.pair_strategy {
            PairStrategyArg::BestWorst => PairStrategy::BestWorst,
            PairStrategyArg::BestRandom => PairStrategy::BestRandom { seed: self.seed },
        };
        let mut progress = Progress::new(
            todo(&outcome.rows, &done, |r| &r.id),
            "annotate",
            self.quiet,
        );
        let mut dropped: std::collections::BTreeMap<String, usize> = Default::default();
        let stats = score_rows(
            &pair,
            &outcome.rows,
            |r| &r.id,
            bon_items,
            &done,
            self.io.skip_invalid,
            self.io.chunk_rows,
            &self.io.input,
            &mut progress,
            |r, s| {
                let rewards: Vec<f64> = s.iter().map(|x| x.reward).collect();
                let texts: Vec<&str> = r.responses.iter().map(String::as_str).collect();
                match select_pair(&r.id, &texts, &rewards, strategy) {
                    Ok(sel) => {
                        let mut pair = PreferencePair::new(
                            &r.id,
                            r.prompt.clone(),
                            &r.responses[sel.chosen],
                            &r.responses[sel.rejected],
                            rewards[sel.chosen],
                            rewards[sel.rejected],
                        );
                        if let Some(subset) = &r.subset {
                            pair = pair.with_extra("subset", subset.as_str());
                        }
                        if let Some(domain) = &r.domain {
                            pair = pair.with_extra("domain", domain.as_str());
                        }
                        writer.write(&pair)?;
                    }
                    Err(why) => {
                        *dropped.entry(format!("{why:?}")).or_default() += 1;
                    }
                }
                Ok(())
            },
        )?;
        progress.finish();
        let written = writer.finish()?;
        summary(&stats, &progress);
        for (why, n) in &dropped {
            eprintln!("cdr: {n} rows gave no pair ({why})");
        }
        eprintln!(
            "cdr: {written} preference pairs in {}",
            self.output.display()
        );
        Ok(())
    }
}

fn todo<R>(rows: &[R], done: &std::collections::HashSet<String>, id: impl Fn(&R) -> &str) -> usize {
    rows.iter().filter(|r| !done.contains(id(r))).count()
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

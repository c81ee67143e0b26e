//! `cdr score`, `cdr eval`, `cdr annotate`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use cdr_core::backend::Backend;
use cdr_core::best_of_n::{PairStrategy, select_pair};
use cdr_data::{
    PreferencePair, ReadOutcome, RecordWriter, Row, read_best_of_n, read_pairwise, read_records,
    read_rows,
};

use crate::backend::BackendJob;
use crate::cli::{AnnotateArgs, EvalArgs, PairStrategyArg, RouteArgs, ScoreArgs};
use crate::job::{Run, ScoredRow, cache_summary, read_options, summary, write_options};
use crate::records::{PairScore, ResponsesScore, tally};
use crate::report::{EvalReport, markdown};
use crate::routing::{self, RowInfo};
use crate::shard::ShardedOutput;

pub fn report_skipped<T>(outcome: &ReadOutcome<T>) {
    for s in &outcome.skipped {
        eprintln!("cdr: skipped invalid row: {}", s.message);
    }
}

impl BackendJob for ScoreArgs {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let io = &self.run.io;
        let out = ShardedOutput::begin(self.run.shard.resolve()?, &self.output)?;
        let mut outcome = read_rows(&io.input, &read_options(io))?;
        report_skipped(&outcome);
        outcome.rows.retain(|r| out.owns(r.id()));
        let mut writer = RecordWriter::open(&out.path, &write_options(io))?;
        let run = Run::<B>::start(&self.run, &outcome.rows, writer.ids().clone(), &device)?;
        let mut progress = run.progress(&outcome.rows, "score");
        let stats = run.score(&outcome.rows, &mut progress, |r, s| {
            let domain = run.domain(r);
            match r {
                Row::Pairwise(p) => writer.write(&PairScore::new(p, s, domain))?,
                Row::BestOfN(b) => writer.write(&ResponsesScore {
                    id: b.id.clone(),
                    subset: b.subset.clone(),
                    domain,
                    rewards: s.iter().map(|x| x.reward).collect(),
                    scores: s.to_vec(),
                })?,
            }
            Ok(())
        })?;
        progress.finish();
        let written = writer.finish()?;
        out.finish(&io.input, written)?;
        summary(&stats, &progress);
        cache_summary(&run.pair);
        eprintln!("cdr: {written} rows in {}", out.path.display());
        Ok(())
    }
}

impl BackendJob for EvalArgs {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let io = &self.run.io;
        let shard = self.run.shard.resolve()?;
        let out = match &self.output {
            Some(path) => Some(ShardedOutput::begin(shard, path)?),
            None => None,
        };
        let mut outcome = read_pairwise(&io.input, &read_options(io))?;
        report_skipped(&outcome);
        outcome
            .rows
            .retain(|r| shard.is_none_or(|s| s.contains(&r.id)));
        let mut writer = match &out {
            Some(out) => Some(RecordWriter::open(&out.path, &write_options(io))?),
            None => None,
        };
        let done = writer.as_ref().map(|w| w.ids().clone()).unwrap_or_default();
        let run = Run::<B>::start(&self.run, &outcome.rows, done, &device)?;
        let mut progress = run.progress(&outcome.rows, "eval");
        let mut scored: Vec<PairScore> = Vec::new();
        let stats = run.score(&outcome.rows, &mut progress, |r, s| {
            let record = PairScore::new(r, s, run.domain(r));
            if let Some(w) = writer.as_mut() {
                w.write(&record)?;
            }
            scored.push(record);
            Ok(())
        })?;
        progress.finish();
        if let Some(w) = writer {
            let written = w.finish()?;
            if let Some(out) = &out {
                out.finish(&io.input, written)?;
            }
        }
        summary(&stats, &progress);
        cache_summary(&run.pair);

        // The report covers every row of the input, including rows scored by an earlier run.
        if let Some(path) = out.as_ref().map(|o| &o.path) {
            let mut earlier: Vec<PairScore> = read_records(path, None)
                .with_context(|| format!("reading back {}", path.display()))?;
            let fresh: HashSet<&str> = scored.iter().map(|s| s.id.as_str()).collect();
            earlier.retain(|s| !fresh.contains(s.id.as_str()));
            scored.extend(earlier);
        }
        let (accuracy, truncated) = tally(&scored);
        let pair = &run.pair;
        let report = EvalReport {
            input: io.input.display().to_string(),
            strong: self.run.models.strong.clone(),
            weak: self.run.models.weak.clone(),
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
        // Shards of one run share the command line: each names its own reports, or they would
        // overwrite each other.
        let per_shard = |p: &PathBuf| match shard {
            Some(s) => s.output_path(p),
            None => p.clone(),
        };
        let report_path = self.report.as_ref().map(per_shard).or_else(|| {
            out.as_ref().map(|o| &o.path).map(|o| {
                let mut p = o.clone().into_os_string();
                p.push(".report.json");
                PathBuf::from(p)
            })
        });
        if let Some(path) = report_path {
            write_json(&path, &report)?;
            eprintln!("cdr: report in {}", path.display());
        }
        if let Some(dir) = self.report_dir.as_ref().map(per_shard) {
            crate::report_dir::write_eval(&dir, &report, &scored)?;
            eprintln!("cdr: report with plots in {}", dir.display());
        }
        Ok(())
    }
}

impl BackendJob for AnnotateArgs {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let io = &self.run.io;
        let out = ShardedOutput::begin(self.run.shard.resolve()?, &self.output)?;
        let mut outcome = read_best_of_n(&io.input, &read_options(io))?;
        report_skipped(&outcome);
        outcome.rows.retain(|r| out.owns(&r.id));
        let mut writer = RecordWriter::open(&out.path, &write_options(io))?;
        let run = Run::<B>::start(&self.run, &outcome.rows, writer.ids().clone(), &device)?;
        let strategy = match self.pair_strategy {
            PairStrategyArg::BestWorst => PairStrategy::BestWorst,
            PairStrategyArg::BestRandom => PairStrategy::BestRandom { seed: self.seed },
        };
        let mut progress = run.progress(&outcome.rows, "annotate");
        let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
        let stats = run.score(&outcome.rows, &mut progress, |r, s| {
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
                    if let Some(domain) = run.domain(r) {
                        pair = pair.with_extra("domain", domain);
                    }
                    writer.write(&pair)?;
                }
                Err(why) => *dropped.entry(format!("{why:?}")).or_default() += 1,
            }
            Ok(())
        })?;
        progress.finish();
        let written = writer.finish()?;
        out.finish(&io.input, written)?;
        summary(&stats, &progress);
        cache_summary(&run.pair);
        for (why, n) in &dropped {
            eprintln!("cdr: {n} rows gave no pair ({why})");
        }
        eprintln!("cdr: {written} preference pairs in {}", out.path.display());
        Ok(())
    }
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[derive(serde::Serialize)]
struct RoutedRow<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<&'a str>,
    domain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gold: Option<String>,
}

impl BackendJob for RouteArgs {
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let outcome = read_rows(&self.io.input, &read_options(&self.io))?;
        report_skipped(&outcome);
        let custom = match routing::customization(&self.customize)? {
            Some(c) => c,
            None => cdr_core::Customization::default_config()?,
        };
        let infos: Vec<RowInfo<'_>> = outcome.rows.iter().map(ScoredRow::info).collect();
        let model = self
            .customize
            .router_model
            .as_deref()
            .or(self.strong.as_deref());
        let router = routing::router::<B>(
            &self.customize,
            model,
            None,
            self.template.as_deref(),
            &device,
            self.compute.dtype_for(&[])?,
            self.compute.max_batch_tokens,
        )?;
        let domains = routing::route(
            &custom,
            self.customize.router,
            &infos,
            router.as_ref(),
            &self.io.input,
            self.quiet,
        )?;
        let gold = |r: &Row| -> Option<String> {
            let field = self.gold_field.as_deref()?;
            let label = if field == self.io.domain_field {
                r.domain().map(str::to_string)
            } else {
                r.extra()
                    .get(field)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            }?;
            Some(
                custom
                    .canonical_domain(&label)
                    .unwrap_or(&label)
                    .to_string(),
            )
        };

        let mut writer = match &self.output {
            Some(path) => Some(RecordWriter::open(
                path,
                &cdr_data::WriteOptions {
                    fresh: true,
                    ..Default::default()
                },
            )?),
            None => None,
        };
        // subset -> domain -> count, and gold -> predicted -> count.
        let mut by_subset: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<String, usize>,
        > = Default::default();
        let mut confusion: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<String, usize>,
        > = Default::default();
        let (mut correct, mut with_gold) = (0usize, 0usize);
        for r in &outcome.rows {
            let domain = domains.get(r.id()).map(String::as_str).unwrap_or("?");
            let g = gold(r);
            *by_subset
                .entry(r.subset().unwrap_or("(none)").to_string())
                .or_default()
                .entry(domain.to_string())
                .or_default() += 1;
            if let Some(g) = &g {
                with_gold += 1;
                correct += usize::from(g == domain);
                *confusion
                    .entry(g.clone())
                    .or_default()
                    .entry(domain.to_string())
                    .or_default() += 1;
            }
            if let Some(w) = writer.as_mut() {
                w.write(&RoutedRow {
                    id: r.id(),
                    subset: r.subset(),
                    domain,
                    gold: g,
                })?;
            }
        }
        if let Some(w) = writer {
            w.finish()?;
        }
        let names: Vec<&str> = custom.domain_names().collect();
        println!("| subset | rows | {} |", names.join(" | "));
        println!("|---|---:|{}", "---:|".repeat(names.len()));
        for (subset, counts) in &by_subset {
            let total: usize = counts.values().sum();
            let cells: Vec<String> = names
                .iter()
                .map(|d| {
                    format!(
                        "{:.1}%",
                        100.0 * *counts.get(*d).unwrap_or(&0) as f64 / total as f64
                    )
                })
                .collect();
            println!("| {subset} | {total} | {} |", cells.join(" | "));
        }
        if with_gold > 0 {
            println!(
                "\nrouting accuracy: {:.2}% ({correct} of {with_gold} rows with a gold domain)\n",
                100.0 * correct as f64 / with_gold as f64
            );
            println!("| gold \\ routed | {} |", names.join(" | "));
            println!("|---|{}", "---:|".repeat(names.len()));
            for (g, row) in &confusion {
                let cells: Vec<String> = names
                    .iter()
                    .map(|d| row.get(*d).unwrap_or(&0).to_string())
                    .collect();
                println!("| {g} | {} |", cells.join(" | "));
            }
        }
        Ok(())
    }
}

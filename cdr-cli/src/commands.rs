//! `cdr score`, `cdr eval`, `cdr annotate`, `cdr route`: flags to settings, the library's
//! engine, and the printer.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cdr_core::best_of_n::PairStrategy;
use cdr_core::engine::{self, RowInfo, ScoredRow, annotate_file, eval_file, score_file};
use cdr_data::{ReadOutcome, RecordWriter, Row, read_rows};

use crate::cli::{AnnotateArgs, EvalArgs, PairStrategyArg, RouteArgs, ScoreArgs};
use crate::job::{Printer, input, load_engine, output, read_options, with_hint};
use crate::report::markdown;

pub fn report_skipped<T>(outcome: &ReadOutcome<T>) {
    for s in &outcome.skipped {
        eprintln!("cdr: skipped invalid row: {}", s.message);
    }
}

impl ScoreArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let shard = self.run.shard.resolve()?;
        let out = output(&self.run.io, &self.output, shard);
        let mut printer = Printer::new(self.run.quiet);
        let engine = load_engine(&self.run, &mut printer)?;
        let summary =
            score_file(&engine, &input(&self.run.io), &out, &mut printer).map_err(with_hint)?;
        printer.file_summary(&summary);
        printer.cache_summary(engine.pair());
        eprintln!(
            "cdr: {} rows in {}",
            summary.written,
            summary.path.display()
        );
        Ok(())
    }
}

impl EvalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let io = &self.run.io;
        let shard = self.run.shard.resolve()?;
        let out = self.output.as_ref().map(|p| output(io, p, shard));
        let mut printer = Printer::new(self.run.quiet);
        let engine = load_engine(&self.run, &mut printer)?;
        let (report, scored, summary) =
            eval_file(&engine, &input(io), out.as_ref(), shard, &mut printer).map_err(with_hint)?;
        printer.file_summary(&summary);
        printer.cache_summary(engine.pair());
        print!("{}", markdown(&report));
        // Shards of one run share the command line: each names its own reports, or they would
        // overwrite each other.
        let per_shard = |p: &PathBuf| match shard {
            Some(s) => s.output_path(p),
            None => p.clone(),
        };
        let report_path = self.report.as_ref().map(per_shard).or_else(|| {
            out.as_ref().map(|o| {
                let mut p = o.file().into_os_string();
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

impl AnnotateArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let shard = self.run.shard.resolve()?;
        let out = output(&self.run.io, &self.output, shard);
        let strategy = match self.pair_strategy {
            PairStrategyArg::BestWorst => PairStrategy::BestWorst,
            PairStrategyArg::BestRandom => PairStrategy::BestRandom { seed: self.seed },
        };
        let mut printer = Printer::new(self.run.quiet);
        let engine = load_engine(&self.run, &mut printer)?;
        let summary = annotate_file(&engine, &input(&self.run.io), &out, strategy, &mut printer)
            .map_err(with_hint)?;
        printer.file_summary(&summary.file);
        printer.cache_summary(engine.pair());
        for (why, n) in &summary.no_pair {
            eprintln!("cdr: {n} rows gave no pair ({why})");
        }
        eprintln!(
            "cdr: {} preference pairs in {}",
            summary.file.written,
            summary.file.path.display()
        );
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

impl RouteArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let device = self.compute.device;
        let outcome = read_rows(&self.io.input, &read_options(&self.io))?;
        report_skipped(&outcome);
        let mut settings = crate::job::routing(&self.customize);
        let custom = match engine::customization(&settings)? {
            Some(c) => c,
            None => cdr_core::Customization::default_config()?,
        };
        let infos: Vec<RowInfo<'_>> = outcome.rows.iter().map(ScoredRow::info).collect();
        settings.router_model = settings.router_model.or(self.strong.clone());
        if settings.router != engine::RouterKind::Field && settings.router_model.is_none() {
            anyhow::bail!(
                "--router {:?} needs a router model (--router-model or --strong)",
                settings.router
            );
        }
        let router = engine::router(
            &settings,
            None,
            engine::RouterCompute {
                device: &device,
                dtype: self.compute.dtype_for(&[])?,
                max_batch_tokens: self.compute.max_batch_tokens,
                template: self.template.as_deref(),
            },
        )?;
        let domains = engine::route(
            &custom,
            settings.router,
            &infos,
            router.as_ref(),
            &self.io.input.display().to_string(),
            &mut Printer::new(self.quiet),
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

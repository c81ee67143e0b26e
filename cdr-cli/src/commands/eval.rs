//! `cdr eval`: pairwise accuracy per subset and domain, RewardBench sections (v1) or RewardBench
//! 2 scores (rows with lists of chosen and rejected), a JSON report, plots and a RewardBench
//! results file, from rows scored resumably.

use std::path::PathBuf;

use cdr_core::engine::{EvalReport, eval_file, eval_rewardbench2_file, results_name};

use crate::cli::EvalArgs;
use crate::printer::Printer;
use crate::report::{markdown, write_json};
use crate::settings::{input, load_engine, output, with_hint};

pub fn run(args: EvalArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.run.models.scoring.compute.validate()?;
    let io = &args.run.io;
    let shard = args.run.shard.resolve()?;
    let out = args.output.as_ref().map(|p| output(io, p, shard));
    let input = input(io);
    let multi = cdr_data::has_multi_rows(&input.path, &input.read)?;
    let engine = load_engine(&args.run, printer)?;
    let (report, scored) = if multi {
        printer.note("lists of chosen and rejected completions: scoring as RewardBench 2");
        let (report, _, summary) =
            eval_rewardbench2_file(&engine, &input, out.as_ref(), shard, printer)
                .map_err(with_hint)?;
        printer.file_summary(&summary);
        (report, None)
    } else {
        let (report, scored, summary) =
            eval_file(&engine, &input, out.as_ref(), shard, printer).map_err(with_hint)?;
        printer.file_summary(&summary);
        (report, Some(scored))
    };
    printer.cache_summary(engine.pair());
    printer.out(markdown(&report));
    // Shards of one run share the command line: each names its own reports, or they would
    // overwrite each other.
    let per_shard = |p: &PathBuf| match shard {
        Some(s) => s.output_path(p),
        None => p.clone(),
    };
    let report_path = args.report.as_ref().map(per_shard).or_else(|| {
        out.as_ref().map(|o| {
            let mut p = o.file().into_os_string();
            p.push(".report.json");
            PathBuf::from(p)
        })
    });
    if let Some(path) = report_path {
        write_json(&path, &report)?;
        printer.note(format_args!("report in {}", path.display()));
    }
    if let Some(dir) = args.report_dir.as_ref().map(per_shard) {
        match &scored {
            Some(scored) => crate::report_dir::write_eval(&dir, &report, scored)?,
            None => crate::report_dir::write_eval_multi(&dir, &report)?,
        }
        printer.note(format_args!("report with plots in {}", dir.display()));
    }
    if let Some(dir) = args.results_dir.as_ref().map(per_shard) {
        let path = write_results(&dir, &report)?;
        printer.note(format_args!(
            "RewardBench {} results in {}",
            if multi { "2" } else { "v1" },
            path.display()
        ));
    }
    Ok(())
}

/// `DIR/<strong model>.json` in RewardBench's results format.
fn write_results(dir: &std::path::Path, report: &EvalReport) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}.json", results_name(&report.strong)));
    if let Some(parent) = path.parent() {
        anyhow::Context::with_context(std::fs::create_dir_all(parent), || {
            format!("creating {}", parent.display())
        })?;
    }
    write_json(&path, &report.rewardbench_results())?;
    Ok(path)
}

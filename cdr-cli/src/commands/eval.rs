//! `cdr eval`: pairwise accuracy per subset and domain, RewardBench sections, a JSON report and
//! plots, from rows scored resumably.

use std::path::PathBuf;

use cdr_core::engine::eval_file;

use crate::cli::EvalArgs;
use crate::printer::Printer;
use crate::report::{markdown, write_json};
use crate::settings::{input, load_engine, output, with_hint};

pub fn run(args: EvalArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.run.models.scoring.compute.validate()?;
    let io = &args.run.io;
    let shard = args.run.shard.resolve()?;
    let out = args.output.as_ref().map(|p| output(io, p, shard));
    let engine = load_engine(&args.run, printer)?;
    let (report, scored, summary) =
        eval_file(&engine, &input(io), out.as_ref(), shard, printer).map_err(with_hint)?;
    printer.file_summary(&summary);
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
        crate::report_dir::write_eval(&dir, &report, &scored)?;
        printer.note(format_args!("report with plots in {}", dir.display()));
    }
    Ok(())
}

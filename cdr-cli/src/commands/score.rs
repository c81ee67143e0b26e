//! `cdr score`: every response of every row scored into an output file, resumably.

use cdr_core::engine::score_file;

use crate::cli::ScoreArgs;
use crate::printer::Printer;
use crate::settings::{input, load_engine, output, with_hint};

pub fn run(args: ScoreArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.run.models.scoring.compute.validate()?;
    let out = output(&args.run.io, &args.output, args.run.shard.resolve()?);
    let engine = load_engine(&args.run, printer)?;
    let summary = score_file(&engine, &input(&args.run.io), &out, printer).map_err(with_hint)?;
    printer.file_summary(&summary);
    printer.cache_summary(engine.pair());
    printer.note(format_args!(
        "{} rows in {}",
        summary.written,
        summary.path.display()
    ));
    Ok(())
}

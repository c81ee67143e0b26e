//! `cdr pairs`: every ordered strong/weak pair of several models, ranked (the library's pair
//! search), printed as a table, with a JSON report and plots when asked.

use anyhow::Context;
use cdr_core::engine::{SearchSettings, search_pairs};

use crate::cli::PairsArgs;
use crate::printer::Printer;
use crate::report::{pairs_markdown, write_json};
use crate::report_dir;
use crate::settings::{input, routing, scoring_settings, with_hint};

pub fn run(args: PairsArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.scoring.compute.validate()?;
    for m in &args.models {
        cdr_models::resolve_model(m).with_context(|| format!("--models {m}"))?;
    }
    let mut scoring = scoring_settings(&args.scoring)?;
    // A search fills the cache, so a second search over more models reuses it.
    scoring.cache = args.scoring.cache.dir(true);
    let settings = SearchSettings {
        models: args.models.clone(),
        scoring,
        routing: routing(&args.customize),
        chunk_rows: args.io.chunk_rows,
        skip_invalid: args.io.skip_invalid,
    };
    let search = search_pairs(&settings, &input(&args.io), printer).map_err(with_hint)?;
    let report = &search.report;
    printer.out(pairs_markdown(report));
    printer.skipped_rows(&search.failed);
    if let Some(path) = &args.report {
        write_json(path, report)?;
        printer.note(format_args!("report in {}", path.display()));
    }
    if let Some(dir) = &args.report_dir {
        let best = report.pairs.first().zip(search.best.as_deref());
        let best = best.map(|(p, rows)| (p.strong.as_str(), p.weak.as_str(), rows));
        report_dir::write_pairs(dir, report, &search.names, best)?;
        printer.note(format_args!("report with plots in {}", dir.display()));
    }
    Ok(())
}

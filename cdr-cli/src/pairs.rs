//! `cdr pairs`: every ordered strong/weak pair of several models, ranked (the library's pair
//! search), printed as a table, with a JSON report and plots when asked.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::Context;
use cdr_core::engine::{PairsReport, SearchSettings, search_pairs};

use crate::cli::PairsArgs;
use crate::commands::write_json;
use crate::job::{Printer, input, routing, scoring_settings, with_hint};
use crate::report_dir;

impl PairsArgs {
    pub fn run(self) -> anyhow::Result<()> {
        for m in &self.models {
            cdr_models::resolve_model(m).with_context(|| format!("--models {m}"))?;
        }
        let mut scoring = scoring_settings(&self.scoring)?;
        // A search fills the cache, so a second search over more models reuses it.
        scoring.cache = self.scoring.cache.dir(true);
        let settings = SearchSettings {
            models: self.models.clone(),
            scoring,
            routing: routing(&self.customize),
            chunk_rows: self.io.chunk_rows,
            skip_invalid: self.io.skip_invalid,
        };
        let mut printer = Printer::new(self.quiet);
        let search = search_pairs(&settings, &input(&self.io), &mut printer).map_err(with_hint)?;
        let report = &search.report;
        print!("{}", markdown(report));
        for (id, why) in &search.failed {
            eprintln!("  skipped row `{id}`: {why}");
        }
        if let Some(path) = &self.report {
            write_json(path, report)?;
            eprintln!("cdr: report in {}", path.display());
        }
        if let Some(dir) = &self.report_dir {
            let best = report.pairs.first().zip(search.best.as_deref());
            let best = best.map(|(p, rows)| (p.strong.as_str(), p.weak.as_str(), rows));
            report_dir::write_pairs(dir, report, &search.names, best)?;
            eprintln!("cdr: report with plots in {}", dir.display());
        }
        Ok(())
    }
}

/// The ranked pairs as a Markdown table (overall and per subset), then the skipped pairs.
pub fn markdown(r: &PairsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## cdr pairs: {}\n\n{} models, {} rows, reduction {}; {} scoring passes ({} texts computed, {} from the cache)\n",
        r.input,
        r.models.len(),
        r.rows,
        r.reduction,
        r.passes.len(),
        r.passes.iter().map(|p| p.stats.computed).sum::<usize>(),
        r.passes.iter().map(|p| p.stats.cached).sum::<usize>(),
    );
    let subsets: BTreeSet<&String> = r
        .pairs
        .iter()
        .flat_map(|p| p.results.by_subset.keys())
        .collect();
    let head: Vec<&str> = subsets.iter().map(|s| s.as_str()).collect();
    let _ = writeln!(
        out,
        "| rank | strong | weak | overall | mean margin | {} |\n|---:|---|---|---:|---:|{}",
        head.join(" | "),
        "---:|".repeat(head.len())
    );
    for p in &r.pairs {
        let cells: Vec<String> = head
            .iter()
            .map(|s| {
                p.results
                    .by_subset
                    .get(*s)
                    .map_or("–".into(), |t| format!("{:.1}%", 100.0 * t.accuracy()))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2}% | {:.3} | {} |",
            p.rank,
            p.strong,
            p.weak,
            100.0 * p.accuracy,
            p.mean_margin,
            cells.join(" | ")
        );
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(out, "\n| skipped strong | weak | why |\n|---|---|---|");
        for s in &r.skipped {
            let _ = writeln!(out, "| {} | {} | {} |", s.strong, s.weak, s.reason);
        }
    }
    out
}

//! The `cdr eval` report: a Markdown table on stdout and a JSON file.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

pub use cdr_core::engine::{EvalReport, PairsReport};

fn table(
    out: &mut String,
    title: &str,
    groups: &std::collections::BTreeMap<String, cdr_core::eval::Tally>,
) {
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(out, "| {title} | rows | accuracy |\n|---|---:|---:|");
    for (name, t) in groups {
        let _ = writeln!(
            out,
            "| {name} | {} | {:.2}% |",
            t.total,
            100.0 * t.accuracy()
        );
    }
    out.push('\n');
}

pub use cdr_core::engine::model_name;

pub fn markdown(r: &EvalReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## cdr eval: {}\n\nstrong `{}` over weak `{}`, template `{}`, reduction {}\n",
        r.input, r.strong, r.weak, r.template, r.reduction
    );
    table(&mut out, "subset", &r.results.by_subset);
    table(&mut out, "domain", &r.results.by_domain);
    if let Some(rb) = &r.rewardbench {
        let _ = writeln!(
            out,
            "| RewardBench section | score | subsets present |\n|---|---:|---|"
        );
        for s in &rb.sections {
            let missing = if s.missing.is_empty() {
                String::new()
            } else {
                format!(" (missing: {})", s.missing.join(", "))
            };
            let _ = writeln!(
                out,
                "| {} | {:.2} | {}{missing} |",
                s.section,
                s.score,
                s.present.len()
            );
        }
        match rb.score {
            Some(score) => {
                let _ = writeln!(out, "| **score** | **{score:.2}** | |");
            }
            None => {
                let _ = writeln!(out, "| score | n/a | needs all four sections |");
            }
        }
        out.push('\n');
    }
    if let Some(rb) = &r.rewardbench2 {
        let _ = writeln!(
            out,
            "| RewardBench 2 subset | rows | score |\n|---|---:|---:|"
        );
        for s in &rb.subsets {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} |",
                s.subset,
                s.rows,
                100.0 * s.score
            );
        }
        match rb.score {
            Some(score) => {
                let _ = writeln!(out, "| **score** | | **{:.2}** |", 100.0 * score);
            }
            None => {
                let _ = writeln!(
                    out,
                    "| mean of subsets present | | {:.2} (score needs all six; missing: {}) |",
                    100.0 * rb.mean,
                    rb.missing.join(", ")
                );
            }
        }
        if let Some(t) = &rb.ties {
            let _ = writeln!(
                out,
                "\nTies: ref accuracy {:.4}, tied accuracy {:.4}, correctness preferred {:.4} (hard {:.4}), margin {:.4} over {} paired prompts",
                t.ref_accuracy,
                t.tied_accuracy,
                t.correctness_preferred,
                t.correctness_preferred_hard,
                t.margin_score,
                t.paired_prompts
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "**overall: {:.2}% of {} rows** ({} truncated responses, {} rows skipped)",
        100.0 * r.accuracy,
        r.rows,
        r.truncated_responses,
        r.skipped_rows
    );
    out
}

/// The ranked pairs as a Markdown table (overall and per subset), then the skipped pairs.
pub fn pairs_markdown(r: &PairsReport) -> String {
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

/// `value` as pretty JSON in `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    anyhow::Context::with_context(std::fs::write(path, text + "\n"), || {
        format!("writing {}", path.display())
    })
}

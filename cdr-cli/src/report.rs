//! The `cdr eval` report: a Markdown table on stdout and a JSON file.

use std::fmt::Write as _;

pub use cdr_core::engine::EvalReport;

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

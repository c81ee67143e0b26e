//! Reports with plots (`--report-dir DIR`): `README.md` (Markdown linking the SVGs, which is what
//! a code host shows when browsing the folder), `report.html` (one self-contained file, the SVGs
//! inlined), `report.json` and the SVG files.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use cdr_core::eval::Tally;
use serde::Serialize;

use crate::plots;
use crate::report::model_name;
use cdr_core::engine::EvalReport;
use cdr_core::engine::PairsReport;
use cdr_core::engine::{PairScore, tally};

struct Figure {
    file: String,
    title: String,
    svg: String,
    note: String,
}

fn bars(groups: &std::collections::BTreeMap<String, Tally>) -> Vec<(String, f64, usize)> {
    groups
        .iter()
        .map(|(k, t)| (k.clone(), t.accuracy(), t.total))
        .collect()
}

/// What a length bias would show: reward rising with length, longer responses winning.
fn length_note(rows: &[PairScore]) -> String {
    let points: Vec<(f64, f64)> = rows
        .iter()
        .flat_map(|r| {
            [
                (r.chosen.n_response_tokens as f64, r.reward_chosen),
                (r.rejected.n_response_tokens as f64, r.reward_rejected),
            ]
        })
        .collect();
    let unequal: Vec<&PairScore> = rows
        .iter()
        .filter(|r| r.chosen.n_response_tokens != r.rejected.n_response_tokens)
        .collect();
    let longer_won = unequal
        .iter()
        .filter(|r| (r.chosen.n_response_tokens > r.rejected.n_response_tokens) == (r.margin > 0.0))
        .count();
    let chosen_longer = unequal
        .iter()
        .filter(|r| r.chosen.n_response_tokens > r.rejected.n_response_tokens)
        .count();
    let r = plots::fit(&points).map_or("n/a".to_string(), |(_, _, r)| format!("{r:.2}"));
    format!(
        "Correlation of reward with response length over {} responses: r = {r}. Of the {} rows whose \
         responses differ in length, the longer response got the higher reward in {longer_won} \
         (the chosen response is the longer one in {chosen_longer}).",
        points.len(),
        unequal.len()
    )
}

/// The plots of one pair's scored rows.
fn pair_figures(rows: &[PairScore], pair: &str) -> anyhow::Result<Vec<Figure>> {
    let (accuracy, _) = tally(rows);
    let mut figures = Vec::new();
    for (groups, what) in [
        (&accuracy.by_subset, "subset"),
        (&accuracy.by_domain, "domain"),
    ] {
        // One group is the overall accuracy again; a bar chart of it says nothing new.
        if groups.len() < 2 {
            continue;
        }
        let title = format!("Accuracy per {what} — {pair}");
        figures.push(Figure {
            file: format!("accuracy-per-{what}.svg"),
            svg: plots::accuracy_bars(&title, &bars(groups))?,
            title,
            note: "The line marks 50%, a coin flip on pairwise data.".into(),
        });
    }
    let margins: Vec<f64> = rows.iter().map(|r| r.margin).collect();
    let correct = rows.iter().filter(|r| r.correct).count();
    let title = format!("Reward margins — {pair}");
    figures.push(Figure {
        file: "margins.svg".into(),
        svg: plots::margin_histogram(&title, &margins)?,
        title,
        note: format!(
            "r(chosen) − r(rejected) per row; {correct} of {} rows right of zero (correct).",
            rows.len()
        ),
    });
    let chosen: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.chosen.n_response_tokens as f64, r.reward_chosen))
        .collect();
    let rejected: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.rejected.n_response_tokens as f64, r.reward_rejected))
        .collect();
    let title = format!("Reward vs response length — {pair}");
    figures.push(Figure {
        file: "reward-vs-length.svg".into(),
        svg: plots::reward_vs_length(&title, &chosen, &rejected)?,
        title,
        note: length_note(rows),
    });
    Ok(figures)
}

/// `cdr eval --report-dir`.
pub fn write_eval(dir: &Path, report: &EvalReport, rows: &[PairScore]) -> anyhow::Result<()> {
    let pair = format!(
        "{} over {}",
        model_name(&report.strong),
        model_name(&report.weak)
    );
    let figures = pair_figures(rows, &pair)?;
    write(dir, &crate::report::markdown(report), &figures, report)
}

/// `cdr eval --report-dir` on RewardBench 2 rows: the report, without the pairwise plots.
pub fn write_eval_multi(dir: &Path, report: &EvalReport) -> anyhow::Result<()> {
    write(dir, &crate::report::markdown(report), &[], report)
}

/// `cdr pairs --report-dir`: the heat map, then the best pair's plots.
pub fn write_pairs(
    dir: &Path,
    report: &PairsReport,
    names: &[String],
    best: Option<(&str, &str, &[PairScore])>,
) -> anyhow::Result<()> {
    let mut cells = vec![vec![None; names.len()]; names.len()];
    for p in &report.pairs {
        let s = names.iter().position(|n| *n == p.strong);
        let w = names.iter().position(|n| *n == p.weak);
        if let (Some(s), Some(w)) = (s, w) {
            cells[s][w] = Some(p.accuracy);
        }
    }
    let title = "Pairwise accuracy, strong × weak".to_string();
    let mut figures = vec![Figure {
        file: "pairs-heat-map.svg".into(),
        svg: plots::pair_heat_map(&title, names, &cells)?,
        title,
        note: "Grey cells: the diagonal, and pairs skipped (see the table above for why).".into(),
    }];
    if let Some((strong, weak, rows)) = best {
        figures.extend(pair_figures(
            rows,
            &format!("best pair, {strong} over {weak}"),
        )?);
    }
    write(
        dir,
        &crate::report::pairs_markdown(report),
        &figures,
        report,
    )
}

fn write(dir: &Path, body: &str, figures: &[Figure], json: &impl Serialize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut md = body.to_string();
    for f in figures {
        let _ = write!(
            md,
            "\n### {}\n\n![{}]({})\n\n{}\n",
            f.title, f.title, f.file, f.note
        );
        let path = dir.join(&f.file);
        std::fs::write(&path, &f.svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let files = [
        ("README.md", md),
        ("report.html", html(body, figures)),
        ("report.json", serde_json::to_string_pretty(json)? + "\n"),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `**bold**` and `` `code` `` spans of an escaped line.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let mut rest = escape(s);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = r.to_string();
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r.to_string();
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str().to_string();
        }
    }
    out
}

/// The report's Markdown (headings, pipe tables, paragraphs) as HTML, the figures inlined.
fn html(body: &str, figures: &[Figure]) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>cdr report</title>\n<style>\
         body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em}\
         td{text-align:right}td:first-child{text-align:left}figure{margin:2em 0}\
         </style></head><body>\n",
    );
    let mut in_table = false;
    for line in body.lines() {
        let cells = line
            .strip_prefix('|')
            .and_then(|l| l.strip_suffix('|'))
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>());
        match cells {
            Some(cells) if cells.iter().all(|c| c.chars().all(|ch| "-:".contains(ch))) => {}
            Some(cells) => {
                let tag = if in_table { "td" } else { "th" };
                if !in_table {
                    out.push_str("<table>\n");
                    in_table = true;
                }
                out.push_str("<tr>");
                for c in cells {
                    let _ = write!(out, "<{tag}>{}</{tag}>", inline(c));
                }
                out.push_str("</tr>\n");
            }
            None => {
                if in_table {
                    out.push_str("</table>\n");
                    in_table = false;
                }
                if let Some(h) = line.strip_prefix("## ") {
                    let _ = writeln!(out, "<h1>{}</h1>", inline(h));
                } else if !line.trim().is_empty() {
                    let _ = writeln!(out, "<p>{}</p>", inline(line));
                }
            }
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    for f in figures {
        let svg = f.svg.find("<svg").map_or(f.svg.as_str(), |i| &f.svg[i..]);
        let _ = writeln!(
            out,
            "<figure><h2>{}</h2>\n{svg}\n<figcaption>{}</figcaption></figure>",
            escape(&f.title),
            inline(&f.note)
        );
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_become_html_tables() {
        let page = html(
            "## cdr eval: x\n\n| subset | rows |\n|---|---:|\n| a<b | 2 |\n\n**overall: 50%**\n",
            &[],
        );
        assert!(page.contains("<h1>cdr eval: x</h1>"));
        assert!(page.contains("<tr><th>subset</th><th>rows</th></tr>"));
        assert!(page.contains("<tr><td>a&lt;b</td><td>2</td></tr>"));
        assert!(page.contains("<p><b>overall: 50%</b></p>"));
    }
}

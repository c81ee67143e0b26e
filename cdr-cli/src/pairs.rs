//! `cdr pairs`: every ordered strong/weak pair of several models, ranked, from one scoring pass
//! per model (per chat template, when the strong models' templates differ).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use cdr_core::Device;
use cdr_core::cache::template_key;
use cdr_core::eval::Accuracy;
use cdr_core::pairs::{PairAccuracy, SkippedPair, pair_scores, plan, rank};
use cdr_core::{ChatTemplate, LogprobCache, ModelScorer, PassStats};
use cdr_data::read_pairwise;
use cdr_models::ModelDir;
use serde::Serialize;

use crate::cli::PairsArgs;
use crate::commands::{report_skipped, write_json};
use crate::job::{cache_table, read_options, score_options};
use crate::passes::{PassOptions, Rendering, all_cached, score_pass};
use crate::progress::Progress;
use crate::report::model_name;
use crate::report_dir;
use crate::routing;
use cdr_core::engine::{PairScore, tally};
use cdr_core::engine::{RowInfo, ScoredRow};

#[derive(Debug, Serialize)]
pub struct ModelEntry {
    pub name: String,
    pub path: String,
    /// The chat template the model renders with when it is the strong one.
    pub template: String,
}

#[derive(Debug, Serialize)]
pub struct PassEntry {
    pub model: String,
    pub template: String,
    #[serde(flatten)]
    pub stats: PassStats,
}

#[derive(Debug, Serialize)]
pub struct PairEntry {
    pub rank: usize,
    pub strong: String,
    pub weak: String,
    pub accuracy: f64,
    pub rows: usize,
    pub mean_margin: f64,
    pub truncated_responses: usize,
    pub results: Accuracy,
}

#[derive(Debug, Serialize)]
pub struct SkippedEntry {
    pub strong: String,
    pub weak: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct PairsReport {
    pub input: String,
    pub reduction: String,
    pub rows: usize,
    pub skipped_rows: usize,
    pub models: Vec<ModelEntry>,
    /// The scoring passes run (or answered by the cache), one per model and template needed.
    pub passes: Vec<PassEntry>,
    /// Best first.
    pub pairs: Vec<PairEntry>,
    pub skipped: Vec<SkippedEntry>,
}

/// Short names for the report: file or directory names, unless two models share one.
fn names(specs: &[String]) -> Vec<String> {
    let short: Vec<String> = specs.iter().map(|s| model_name(s)).collect();
    let unique: BTreeSet<&String> = short.iter().collect();
    if unique.len() == short.len() {
        short
    } else {
        specs.to_vec()
    }
}

impl PairsArgs {
    pub fn run(self, device: Device) -> anyhow::Result<()> {
        let io = &self.io;
        let outcome = read_pairwise(&io.input, &read_options(io))?;
        report_skipped(&outcome);
        let unique: BTreeSet<&String> = self.models.iter().collect();
        if unique.len() != self.models.len() {
            bail!("--models names a model twice");
        }
        let paths: Vec<PathBuf> = self
            .models
            .iter()
            .map(|m| cdr_models::resolve_model(m).with_context(|| format!("--models {m}")))
            .collect::<anyhow::Result<_>>()?;
        let names = names(&self.models);
        let model_paths: Vec<&std::path::Path> = paths.iter().map(PathBuf::as_path).collect();
        let options = score_options(&self.scoring, &model_paths)?;

        // Each model's template as the strong one (as `cdr eval` would pick it); equal templates
        // are one, so models sharing a template are each scored once.
        let mut templates: Vec<ChatTemplate> = Vec::new();
        let mut template_of = Vec::new();
        for path in &paths {
            let t = match &self.scoring.template {
                Some(spec) => ChatTemplate::resolve(spec, Some(path))?,
                None => cdr_core::model_template(path)?,
            };
            let key = template_key(&t);
            let index = match templates.iter().position(|x| template_key(x) == key) {
                Some(i) => i,
                None => {
                    templates.push(t);
                    templates.len() - 1
                }
            };
            template_of.push(index);
        }
        let tokenizers = paths
            .iter()
            .map(|p| ModelDir::new(p).tokenizer())
            .collect::<Result<Vec<_>, _>>()?;

        let infos: Vec<RowInfo<'_>> = outcome.rows.iter().map(ScoredRow::info).collect();
        if self.customize.customize.is_some()
            && self.customize.router == crate::cli::RouterKind::Likelihood
            && self.customize.router_model.is_none()
        {
            bail!(
                "cdr pairs --router likelihood needs --router-model (there is no one strong model)"
            );
        }
        let routed = routing::customize_rows(
            &self.customize,
            &infos,
            None,
            &device,
            &options,
            &io.input,
            self.quiet,
        )?;
        let tokenizer_refs: Vec<_> = tokenizers.iter().collect();
        let texts = Rendering {
            templates: &templates,
            tokenizers: &tokenizer_refs,
            routed: routed.as_ref(),
            limits: options.limits,
        }
        .prepare(&outcome.rows, io)?;

        // Templates that render every text alike give the same texts, hence the same log-probs:
        // one pass serves both (the Qwen2.5-Coder 0.5B and 1.5B GGUFs' templates differ by two
        // bytes, yet render these texts identically).
        let same_as: Vec<usize> = (0..templates.len())
            .map(|t| {
                (0..t)
                    .find(|&u| texts.keys[u] == texts.keys[t])
                    .unwrap_or(t)
            })
            .collect();
        let template_of: Vec<usize> = template_of.iter().map(|&t| same_as[t]).collect();
        let describe = |i: usize| {
            let row = texts.spans.iter().position(|s| s.contains(&i)).unwrap_or(0);
            let side = if i.is_multiple_of(2) {
                "chosen"
            } else {
                "rejected"
            };
            let id = texts
                .rows
                .get(row)
                .map_or("?", |&r| outcome.rows[r].id.as_str());
            format!("row `{id}` ({side})")
        };
        let lookup = |m: usize, t: usize| texts.ids[m][t].as_slice();
        let planned = plan(&template_of, &lookup, &describe);
        for s in &planned.skipped {
            eprintln!(
                "cdr: skipping {} over {}: {}",
                names[s.strong], names[s.weak], s.reason
            );
        }

        let cache = match self.scoring.cache.dir(true) {
            Some(dir) => Some(LogprobCache::open(dir)?),
            None => None,
        };
        let mut sums: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        let mut passes = Vec::new();
        let n_passes = planned.passes.len();
        for (k, &(m, t)) in planned.passes.iter().enumerate() {
            let table = match &cache {
                Some(c) => Some(cache_table(
                    c,
                    &paths[m],
                    &templates[t],
                    routed.as_ref().map(|r| &r.customization),
                    &options,
                )?),
                None => None,
            };
            let label = format!(
                "pass {}/{n_passes} {} (template {})",
                k + 1,
                names[m],
                model_name(templates[t].name())
            );
            // A model whose texts are all cached is not even loaded.
            let (logprobs, stats) = match table
                .as_ref()
                .and_then(|tab| all_cached(tab, &texts, (m, t)))
            {
                Some(done) => done,
                None => {
                    // Passes are ordered by model: the previous model is dropped by now, so
                    // only one model is in memory at a time.
                    let scorer = ModelScorer::load(&paths[m], &device, options.dtype)
                        .with_context(|| format!("loading {}", paths[m].display()))?;
                    let mut progress = Progress::new(texts.rows.len(), &label, self.quiet);
                    let scored = score_pass(
                        &scorer,
                        &texts,
                        (m, t),
                        &PassOptions {
                            table: table.as_ref(),
                            per_token: false,
                            chunk_rows: io.chunk_rows,
                            max_batch_tokens: options.max_batch_tokens,
                        },
                        &mut progress,
                    )?;
                    progress.finish();
                    scored
                }
            };
            eprintln!(
                "cdr: {label}: {} cached, {} computed",
                stats.cached, stats.computed
            );
            sums.insert((m, t), logprobs.iter().map(|l| l.logprob).collect());
            passes.push(PassEntry {
                model: names[m].clone(),
                template: model_name(templates[t].name()),
                stats,
            });
        }

        let mut evaluated = Vec::new();
        let mut records: BTreeMap<(usize, usize), Vec<PairScore>> = BTreeMap::new();
        for &(s, w) in &planned.pairs {
            let t = template_of[s];
            let (Some(strong), Some(weak)) = (sums.get(&(s, t)), sums.get(&(w, t))) else {
                bail!("internal: a planned pass is missing");
            };
            let scores = pair_scores(&texts.encoded[s][t], strong, weak, options.reduction);
            let rows: Vec<PairScore> = texts
                .rows
                .iter()
                .zip(&texts.spans)
                .map(|(&r, span)| {
                    let row = &outcome.rows[r];
                    let domain = match &routed {
                        Some(r) => r.domains.get(&row.id).cloned(),
                        None => row.domain.clone(),
                    };
                    PairScore::new(row, &scores[span.clone()], domain)
                })
                .collect();
            let (accuracy, _) = tally(&rows);
            let mean_margin = rows.iter().map(|r| r.margin).sum::<f64>() / rows.len().max(1) as f64;
            evaluated.push(PairAccuracy {
                strong: s,
                weak: w,
                accuracy,
                mean_margin,
            });
            records.insert((s, w), rows);
        }
        rank(&mut evaluated);

        let report = PairsReport {
            input: io.input.display().to_string(),
            reduction: format!("{:?}", options.reduction).to_lowercase(),
            rows: texts.rows.len(),
            skipped_rows: outcome.skipped.len() + texts.failed.len(),
            models: names
                .iter()
                .zip(&paths)
                .zip(&template_of)
                .map(|((n, p), &t)| ModelEntry {
                    name: n.clone(),
                    path: p.display().to_string(),
                    template: model_name(templates[t].name()),
                })
                .collect(),
            passes,
            pairs: evaluated
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let rows = &records[&(p.strong, p.weak)];
                    PairEntry {
                        rank: i + 1,
                        strong: names[p.strong].clone(),
                        weak: names[p.weak].clone(),
                        accuracy: p.accuracy.overall.accuracy(),
                        rows: p.accuracy.overall.total,
                        mean_margin: p.mean_margin,
                        truncated_responses: tally(rows).1,
                        results: p.accuracy.clone(),
                    }
                })
                .collect(),
            skipped: planned
                .skipped
                .iter()
                .map(|s: &SkippedPair| SkippedEntry {
                    strong: names[s.strong].clone(),
                    weak: names[s.weak].clone(),
                    reason: s.reason.clone(),
                })
                .collect(),
        };
        print!("{}", markdown(&report));
        for (id, why) in &texts.failed {
            eprintln!("  skipped row `{id}`: {why}");
        }
        if let Some(path) = &self.report {
            write_json(path, &report)?;
            eprintln!("cdr: report in {}", path.display());
        }
        if let Some(dir) = &self.report_dir {
            let best = evaluated.first().map(|p| {
                (
                    names[p.strong].as_str(),
                    names[p.weak].as_str(),
                    &records[&(p.strong, p.weak)][..],
                )
            });
            report_dir::write_pairs(dir, &report, &names, best)?;
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

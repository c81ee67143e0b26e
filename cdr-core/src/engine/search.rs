//! `cdr pairs` as a library call: every ordered strong/weak pair of several models, ranked, from
//! one scoring pass per model (per chat template, when the strong models' templates differ).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cdr_data::read_pairwise;
use cdr_models::ModelDir;
use cdr_prompt::ChatTemplate;
use serde::Serialize;

use crate::cache::{LogprobCache, template_key};
use crate::error::{CoreError, Result};
use crate::eval::Accuracy;
use crate::pairs::{PairAccuracy, SkippedPair, pair_scores, plan, rank};
use crate::scorer::{ModelScorer, PassStats, model_template};

use super::jobs::{Input, report_read_skips};
use super::passes::{PassOptions, Rendering, all_cached, score_pass};
use super::records::{PairScore, tally};
use super::reporter::{Reporter, in_stage};
use super::routing::{RouterCompute, RowInfo, customize_rows};
use super::run::{ScoredRow, cache_table};
use super::settings::{RouterKind, Routing, ScoringSettings, resolve};

/// A pair search: the models, how they compute (their `cache` on by default in the CLI), the
/// customization.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// Two or more model directories, GGUF files or hub ids.
    pub models: Vec<String>,
    /// How the models compute; `cache` keeps each pass for later searches.
    pub scoring: ScoringSettings,
    /// Routing needs a router model here (there is no one strong model).
    pub routing: Routing,
    /// Rows per batch plan.
    pub chunk_rows: usize,
    /// Report and leave out rows that cannot be scored instead of stopping.
    pub skip_invalid: bool,
}

/// A model of the search.
#[derive(Debug, Serialize)]
pub struct ModelEntry {
    /// Its short name in the report.
    pub name: String,
    /// Its path.
    pub path: String,
    /// The chat template the model renders with when it is the strong one.
    pub template: String,
}

/// One scoring pass: a model under a template.
#[derive(Debug, Serialize)]
pub struct PassEntry {
    /// The model's short name.
    pub model: String,
    /// The template's short name.
    pub template: String,
    /// Texts from the cache and texts computed.
    #[serde(flatten)]
    pub stats: PassStats,
}

/// One evaluated pair.
#[derive(Debug, Serialize)]
pub struct PairEntry {
    /// 1 for the best pair.
    pub rank: usize,
    /// The strong model's short name.
    pub strong: String,
    /// The weak model's short name.
    pub weak: String,
    /// Overall accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// Rows evaluated.
    pub rows: usize,
    /// Mean of `r(chosen) - r(rejected)`.
    pub mean_margin: f64,
    /// Responses cut to the token limits.
    pub truncated_responses: usize,
    /// Accuracy overall, per subset and per domain.
    pub results: Accuracy,
}

/// A pair that was not evaluated.
#[derive(Debug, Serialize)]
pub struct SkippedEntry {
    /// The strong model's short name.
    pub strong: String,
    /// The weak model's short name.
    pub weak: String,
    /// Why (the tokenizers disagree on a text, ...).
    pub reason: String,
}

/// The result of a pair search, as `cdr pairs --report` writes it.
#[derive(Debug, Serialize)]
pub struct PairsReport {
    /// The rows' origin (a file path).
    pub input: String,
    /// `sum` or `mean`.
    pub reduction: String,
    /// Rows evaluated.
    pub rows: usize,
    /// Rows left out (while reading and while scoring).
    pub skipped_rows: usize,
    /// The models, in the order given.
    pub models: Vec<ModelEntry>,
    /// The scoring passes run (or answered by the cache), one per model and template needed.
    pub passes: Vec<PassEntry>,
    /// Best first.
    pub pairs: Vec<PairEntry>,
    /// Pairs that were not evaluated.
    pub skipped: Vec<SkippedEntry>,
}

/// A search's result: the report, the display names of the models (report order) and the
/// scored rows of the best pair.
#[derive(Debug)]
pub struct Search {
    /// The report.
    pub report: PairsReport,
    /// The models' short names, in the order given.
    pub names: Vec<String>,
    /// The best pair's per-row records, if any pair was evaluated.
    pub best: Option<Vec<PairScore>>,
    /// Rows left out under `skip_invalid`: id and why.
    pub failed: Vec<(String, String)>,
}

/// A model's short name for reports: its file stem (`.gguf`) or directory name.
pub fn model_name(spec: &str) -> String {
    let p = std::path::Path::new(spec.trim_end_matches('/'));
    let name = if p.extension().is_some_and(|e| e == "gguf") {
        p.file_stem()
    } else {
        p.file_name()
    };
    name.map_or_else(|| spec.to_string(), |n| n.to_string_lossy().into_owned())
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

/// Ranks every ordered pair of `settings.models` on the pairwise rows of `input`.
pub fn search_pairs(
    settings: &SearchSettings,
    input: &Input,
    reporter: &mut dyn Reporter,
) -> Result<Search> {
    let outcome = read_pairwise(&input.path, &input.read)?;
    report_read_skips(&outcome, reporter);
    let unique: BTreeSet<&String> = settings.models.iter().collect();
    if unique.len() != settings.models.len() {
        return Err(CoreError::Invalid("a model is named twice".into()));
    }
    let paths: Vec<PathBuf> = settings
        .models
        .iter()
        .map(|m| resolve(m, "a"))
        .collect::<Result<_>>()?;
    let names = names(&settings.models);
    let model_paths: Vec<&std::path::Path> = paths.iter().map(PathBuf::as_path).collect();
    let options = settings.scoring.score_options(&model_paths)?;
    let device = settings.scoring.device;

    // Each model's template as the strong one (as `cdr eval` would pick it); equal templates
    // are one, so models sharing a template are each scored once.
    let mut templates: Vec<ChatTemplate> = Vec::new();
    let mut template_of = Vec::new();
    for path in &paths {
        let t = match &settings.scoring.template {
            Some(spec) => ChatTemplate::resolve(spec, Some(path))?,
            None => model_template(path)?,
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
        .collect::<std::result::Result<Vec<_>, _>>()?;

    let infos: Vec<RowInfo<'_>> = outcome.rows.iter().map(ScoredRow::info).collect();
    if settings.routing.customize.is_some()
        && settings.routing.router != RouterKind::Field
        && settings.routing.router_model.is_none()
    {
        return Err(CoreError::Invalid(
            "a pair search routes with a router model only (there is no one strong model)".into(),
        ));
    }
    let source = input.path.display().to_string();
    let routed = customize_rows(
        &settings.routing,
        &infos,
        None,
        RouterCompute {
            device: &device,
            dtype: options.dtype,
            max_batch_tokens: options.max_batch_tokens,
            template: None,
        },
        &source,
        reporter,
    )?;
    let tokenizer_refs: Vec<_> = tokenizers.iter().collect();
    let texts = Rendering {
        templates: &templates,
        tokenizers: &tokenizer_refs,
        routed: routed.as_ref(),
        limits: options.limits,
    }
    .prepare(&outcome.rows, &source, settings.skip_invalid, reporter)?;

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
        reporter.notice(&format!(
            "skipping {} over {}: {}",
            names[s.strong], names[s.weak], s.reason
        ));
    }

    let cache = match &settings.scoring.cache {
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
                reporter,
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
                let scorer = ModelScorer::load(&paths[m], &device, options.dtype).map_err(|e| {
                    CoreError::Invalid(format!("loading {}: {e}", paths[m].display()))
                })?;
                in_stage(reporter, &label, texts.rows.len(), |reporter| {
                    score_pass(
                        &scorer,
                        &texts,
                        (m, t),
                        &PassOptions {
                            table: table.as_ref(),
                            per_token: false,
                            chunk_rows: settings.chunk_rows,
                            max_batch_tokens: options.max_batch_tokens,
                        },
                        reporter,
                    )
                })?
            }
        };
        reporter.notice(&format!(
            "{label}: {} cached, {} computed",
            stats.cached, stats.computed
        ));
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
            return Err(CoreError::Invalid(
                "internal: a planned pass is missing".into(),
            ));
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
        input: source.clone(),
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
    let best = evaluated
        .first()
        .and_then(|p| records.remove(&(p.strong, p.weak)));
    Ok(Search {
        report,
        names,
        best,
        failed: texts.failed,
    })
}

//! The scoring loop every run shares: a loaded pair (customized, cached), rows routed, then
//! scored in chunks with token-budgeted batches, results handed over in input order.

use std::collections::{HashMap, HashSet};

use cdr_data::{BestOfNRow, MultiRow, PairwiseRow, Row};
use cdr_prompt::Customization;
use tracing::debug;

use crate::cache::{CacheKey, CacheTable, LogprobCache};
use crate::error::{CoreError, Result};
use crate::scorer::{DensityRatio, Item, ItemScore, Prepared, pair_template};

use super::reporter::{Reporter, in_stage};
use super::routing::{self, RouterCompute, RowInfo};
use super::settings::{RunSettings, load_scorer, resolve};

/// A row of any input shape, as the scoring loop sees it.
pub trait ScoredRow {
    /// What routing needs of the row.
    fn info(&self) -> RowInfo<'_>;
    /// The responses to score, each in the row's conversation.
    fn items(&self) -> Vec<Item>;
}

impl ScoredRow for PairwiseRow {
    fn info(&self) -> RowInfo<'_> {
        RowInfo {
            id: &self.id,
            prompt: &self.prompt,
            domain: self.domain.as_deref(),
            subset: self.subset.as_deref(),
        }
    }

    fn items(&self) -> Vec<Item> {
        vec![
            Item::new(self.prompt.clone(), self.chosen.clone()),
            Item::new(self.prompt.clone(), self.rejected.clone()),
        ]
    }
}

impl ScoredRow for BestOfNRow {
    fn info(&self) -> RowInfo<'_> {
        RowInfo {
            id: &self.id,
            prompt: &self.prompt,
            domain: self.domain.as_deref(),
            subset: self.subset.as_deref(),
        }
    }

    fn items(&self) -> Vec<Item> {
        self.responses
            .iter()
            .map(|r| Item::new(self.prompt.clone(), r.clone()))
            .collect()
    }
}

impl ScoredRow for MultiRow {
    fn info(&self) -> RowInfo<'_> {
        self.row.info()
    }

    fn items(&self) -> Vec<Item> {
        self.row.items()
    }
}

impl ScoredRow for Row {
    fn info(&self) -> RowInfo<'_> {
        match self {
            Row::Pairwise(r) => r.info(),
            Row::BestOfN(r) => r.info(),
        }
    }

    fn items(&self) -> Vec<Item> {
        match self {
            Row::Pairwise(r) => r.items(),
            Row::BestOfN(r) => r.items(),
        }
    }
}

/// What a run did, for its summary.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Rows left alone because the output already held them.
    pub resumed: usize,
    /// Rows scored by this run.
    pub scored_rows: usize,
    /// Responses cut to the token limits.
    pub truncated_items: usize,
    /// Rows left out under `skip_invalid`: id and why.
    pub failed_rows: Vec<(String, String)>,
    /// Forward-pass tokens computed (both models).
    pub tokens: usize,
}

/// One call of [`Engine::score`].
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    /// Ids already in the output (resume): these rows are left alone.
    pub done: &'a HashSet<String>,
    /// The rows' origin, named in errors (a file path).
    pub source: &'a str,
    /// The progress label (`score`, `eval`, `annotate`).
    pub stage: &'a str,
    /// Report and leave out rows that cannot be scored instead of stopping.
    pub skip_invalid: bool,
}

/// A loaded, customized (and cached) pair: what scores rows.
///
/// A router model is loaded for each [`Engine::route`] and dropped after it, so it never sits in
/// memory beside the scoring weights (the old run's peak: one router, or one pair).
pub struct Engine {
    pair: DensityRatio,
    settings: RunSettings,
}

impl Engine {
    /// Loads the pair `settings` names, its customization and log-prob cache (a router model is
    /// only resolved here). Cache notices (corrupt entries dropped) go to `reporter`.
    pub fn load(settings: RunSettings, reporter: &mut dyn Reporter) -> Result<Self> {
        let strong = resolve(&settings.pair.strong, "strong")?;
        let weak = resolve(&settings.pair.weak, "weak")?;
        let options = settings.pair.scoring.score_options(&[&strong, &weak])?;
        let device = settings.pair.scoring.device;
        let scoring = &settings.pair.scoring;
        let pair = match &scoring.remote {
            None => DensityRatio::load(&strong, &weak, &device, options)?,
            Some(_) => {
                let template = pair_template(&strong, &options)?;
                let dtype = options.dtype;
                DensityRatio::from_parts(
                    load_scorer(&settings.pair.strong, &strong, scoring, dtype)?,
                    load_scorer(&settings.pair.weak, &weak, scoring, dtype)?,
                    template,
                    options,
                )
            }
        };
        let customization = routing::customization(&settings.routing)?;
        if let Some(spec) = &settings.routing.router_model {
            resolve(spec, "router")?;
        }
        let pair = match customization {
            Some(c) => pair.with_customization(c),
            None => pair,
        };
        let pair = match &settings.pair.scoring.cache {
            None => pair,
            Some(dir) => {
                let cache = LogprobCache::open(dir)?;
                let (t, c, o) = (pair.template(), pair.customization(), pair.options());
                let s_tag = pair.strong().remote_name();
                let w_tag = pair.weak().remote_name();
                let strong = tagged_cache_table(&cache, &strong, s_tag, t, c, o, reporter)?;
                let weak = tagged_cache_table(&cache, &weak, w_tag, t, c, o, reporter)?;
                tracing::info!(dir = %dir.display(), "log-prob cache");
                pair.with_cache(strong, weak)
            }
        };
        Ok(Self { pair, settings })
    }

    /// The pair (template, options, cache statistics).
    pub fn pair(&self) -> &DensityRatio {
        &self.pair
    }

    /// The settings the engine was loaded with.
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// Each row's domain (by id) when the pair is customized, routed as the settings say;
    /// `None` without customization. `source` names the rows' origin in errors.
    pub fn route<R: ScoredRow>(
        &self,
        rows: &[&R],
        source: &str,
        reporter: &mut dyn Reporter,
    ) -> Result<Option<HashMap<String, String>>> {
        let Some(c) = self.pair.customization() else {
            return Ok(None);
        };
        if rows.is_empty() {
            return Ok(Some(HashMap::new()));
        }
        let infos: Vec<RowInfo<'_>> = rows.iter().map(|r| r.info()).collect();
        let options = self.pair.options();
        // Dropped when this call returns: its weights never stay beside the pair's.
        let router = routing::router(
            &self.settings.routing,
            Some((self.pair.strong(), self.pair.template())),
            RouterCompute {
                device: &self.settings.pair.scoring.device,
                dtype: options.dtype,
                max_batch_tokens: options.max_batch_tokens,
                template: None,
            },
        )?;
        routing::route(
            c,
            self.settings.routing.router,
            &infos,
            router.as_ref(),
            source,
            reporter,
        )
        .map(Some)
    }

    /// Scores the rows whose id is not in `pass.done`, calling `emit(row, scores, domain)` in
    /// input order, `chunk_rows` rows per batch plan. `domain` is the routed domain when the pair
    /// is customized, else the row's own. A row whose items cannot be prepared is an error
    /// ([`CoreError::Row`]), or under `pass.skip_invalid` reported and left out.
    pub fn score<R: ScoredRow>(
        &self,
        rows: &[R],
        pass: &Pass<'_>,
        reporter: &mut dyn Reporter,
        mut emit: impl FnMut(&R, &[ItemScore], Option<&str>) -> Result<()>,
    ) -> Result<RunStats> {
        let Pass {
            done,
            source,
            stage,
            skip_invalid,
        } = *pass;
        let mut stats = RunStats::default();
        let todo: Vec<&R> = rows
            .iter()
            .filter(|r| !done.contains(r.info().id))
            .collect();
        stats.resumed = rows.len() - todo.len();
        if stats.resumed > 0 {
            tracing::info!(
                rows = stats.resumed,
                "resuming: rows already in the output are skipped"
            );
        }
        let domains = self.route(&todo, source, reporter)?;
        in_stage(reporter, stage, todo.len(), |reporter| {
            let mut plan = TokenPlan::new(todo.len());
            for chunk in todo.chunks(self.settings.chunk_rows.max(1)) {
                let mut kept = Vec::new();
                let mut prepared = Vec::new();
                let mut spans = Vec::new();
                for &row in chunk {
                    let id = row.info().id;
                    let domain = domains.as_ref().and_then(|d| d.get(id)).cloned();
                    let attempt: Result<Vec<_>> = row
                        .items()
                        .into_iter()
                        .map(|i| self.pair.prepare(&i.in_row(id, domain.clone())))
                        .collect();
                    match attempt {
                        Ok(p) => {
                            spans.push((prepared.len(), p.len()));
                            prepared.extend(p);
                            kept.push((row, domain));
                        }
                        Err(e) if skip_invalid => {
                            debug!(id, "skipped: {e}");
                            reporter.skipped(id, &e.to_string());
                            stats.failed_rows.push((id.to_string(), e.to_string()));
                            reporter.rows(1);
                        }
                        Err(e) => {
                            return Err(CoreError::Row {
                                source_name: source.to_string(),
                                id: id.to_string(),
                                error: Box::new(e),
                            });
                        }
                    }
                }
                let planned: usize = prepared.iter().map(forward_tokens).sum();
                reporter.planned_tokens(plan.prepared(chunk.len(), planned));
                let mut tokens = 0;
                let scores = self.pair.score_prepared_with(&prepared, &mut |_, n| {
                    tokens += n;
                    reporter.tokens(n);
                })?;
                stats.tokens += tokens;
                if tokens != planned {
                    // Cache hits computed nothing.
                    reporter.planned_tokens(plan.computed(planned, tokens));
                }
                for ((row, domain), (offset, n)) in kept.iter().zip(&spans) {
                    let row_scores = &scores[*offset..offset + n];
                    stats.truncated_items += row_scores.iter().filter(|s| s.truncated).count();
                    emit(row, row_scores, domain.as_deref().or(row.info().domain))?;
                    stats.scored_rows += 1;
                    reporter.rows(1);
                }
            }
            Ok(())
        })?;
        Ok(stats)
    }
}

/// `model`'s cache table for texts rendered with `template` and `customization` under `options`.
pub fn cache_table(
    cache: &LogprobCache,
    model: &std::path::Path,
    template: &cdr_prompt::ChatTemplate,
    customization: Option<&Customization>,
    options: &crate::scorer::ScoreOptions,
    reporter: &mut dyn Reporter,
) -> Result<CacheTable> {
    tagged_cache_table(
        cache,
        model,
        None,
        template,
        customization,
        options,
        reporter,
    )
}

/// [`cache_table`] for a model whose log-probs come from the server serving `remote` (by name):
/// its entries are kept apart from local ones, whose dtype and kernels may differ.
pub(crate) fn tagged_cache_table(
    cache: &LogprobCache,
    model: &std::path::Path,
    remote: Option<&str>,
    template: &cdr_prompt::ChatTemplate,
    customization: Option<&Customization>,
    options: &crate::scorer::ScoreOptions,
    reporter: &mut dyn Reporter,
) -> Result<CacheTable> {
    let id = cache.model_id(model)?;
    let mut key = CacheKey::new(&id, options.dtype, template, customization, options.limits)?;
    if let Some(name) = remote {
        key.dtype = format!("remote:{name}");
    }
    let table = cache.table(&key)?;
    if table.dropped() > 0 {
        reporter.notice(&format!(
            "{} corrupt entries in {} were dropped and will be recomputed",
            table.dropped(),
            table.path().display()
        ));
    }
    Ok(table)
}

/// Both models' forward tokens for one prepared item (what the scorer reports as progress).
fn forward_tokens(p: &Prepared) -> usize {
    p.strong.ids.len() + p.weak.as_ref().unwrap_or(&p.strong).ids.len()
}

/// The forward tokens a scoring stage expects to compute: exact for the chunks tokenized so far
/// (less what the cache saved), extrapolated per row for the rest. Tokenizing every row up
/// front would hold all of a large dataset's token ids at once, or tokenize it twice.
struct TokenPlan {
    rows: usize,
    rows_seen: usize,
    tokens_seen: usize,
}

impl TokenPlan {
    fn new(rows: usize) -> Self {
        Self {
            rows,
            rows_seen: 0,
            tokens_seen: 0,
        }
    }

    /// A chunk of `rows` rows tokenized into `tokens` forward tokens; returns the new total.
    fn prepared(&mut self, rows: usize, tokens: usize) -> usize {
        self.rows_seen += rows;
        self.tokens_seen += tokens;
        self.total()
    }

    /// A chunk planned at `planned` tokens computed `computed`; returns the new total.
    fn computed(&mut self, planned: usize, computed: usize) -> usize {
        self.tokens_seen = (self.tokens_seen + computed).saturating_sub(planned);
        self.total()
    }

    fn total(&self) -> usize {
        let left = self.rows.saturating_sub(self.rows_seen);
        match self.rows_seen {
            0 => 0,
            seen => {
                self.tokens_seen + (self.tokens_seen as f64 / seen as f64 * left as f64) as usize
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenPlan;

    #[test]
    fn token_plan_extrapolates_then_corrects() {
        let mut plan = TokenPlan::new(10);
        // 4 rows of 100 tokens: the other 6 are expected to be alike.
        assert_eq!(plan.prepared(4, 400), 1000);
        // The cache saved half of that chunk: the rest is expected to hit as often.
        assert_eq!(plan.computed(400, 200), 500);
        assert_eq!(plan.prepared(6, 300), 500);
        assert_eq!(plan.computed(300, 300), 500);
    }
}

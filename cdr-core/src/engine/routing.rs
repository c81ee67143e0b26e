//! Customization and domain routing: which domain's criteria and exemplars each row's prompt
//! gets.

use std::collections::HashMap;

use cdr_data::Message;
use cdr_models::{ComputeDtype, Device};

use crate::encode::Limits;
use crate::error::{CoreError, Result};
use crate::generation::Policy;
use crate::llm_router::LlmRouter;
use crate::router::LikelihoodRouter;
use crate::scorer::{ModelScorer, model_template};
use cdr_prompt::{ChatTemplate, Customization};

use super::reporter::{Reporter, in_stage};
use super::settings::{RouterKind, Routing, resolve};

/// What routing needs of a row.
#[derive(Debug, Clone, Copy)]
pub struct RowInfo<'a> {
    /// The row's id.
    pub id: &'a str,
    /// The conversation before the response.
    pub prompt: &'a [Message],
    /// The row's `domain` field, if any.
    pub domain: Option<&'a str>,
    /// The row's `subset` field, if any.
    pub subset: Option<&'a str>,
}

/// The customization of a run and the domain each row was routed to (by row id).
pub struct Routed {
    /// The customization config.
    pub customization: Customization,
    /// Each row's domain, by row id.
    pub domains: HashMap<String, String>,
}

/// The customization `routing` names and, with one, each row's domain, routed as it says (a
/// router model is `routing.router_model`, else `fallback`); `None` without customization.
pub fn customize_rows(
    routing: &Routing,
    rows: &[RowInfo<'_>],
    fallback: Option<(&ModelScorer, &ChatTemplate)>,
    compute: RouterCompute<'_>,
    source: &str,
    reporter: &mut dyn Reporter,
) -> Result<Option<Routed>> {
    let Some(customization) = customization(routing)? else {
        return Ok(None);
    };
    let router = router(routing, fallback, compute)?;
    let domains = route(
        &customization,
        routing.router,
        rows,
        router.as_ref(),
        source,
        reporter,
    )?;
    Ok(Some(Routed {
        customization,
        domains,
    }))
}

/// Most tokens of an `llm` router's answer: a domain name, or a short sentence naming one.
const ROUTER_ANSWER_TOKENS: usize = 16;

/// The customization `routing` names, if any.
pub fn customization(routing: &Routing) -> Result<Option<Customization>> {
    Ok(routing
        .customize
        .as_deref()
        .map(Customization::resolve)
        .transpose()?)
}

/// A loaded router model.
pub enum Router {
    // Boxed: both hold a model and a tokenizer, and differ in size.
    /// Scores each domain name as the answer.
    Likelihood(Box<LikelihoodRouter>),
    /// Generates an answer and parses the domain from it.
    Llm(Box<LlmRouter>),
}

/// How a router model computes.
#[derive(Debug, Clone, Copy)]
pub struct RouterCompute<'a> {
    /// Where the router model runs.
    pub device: &'a Device,
    /// Its compute dtype.
    pub dtype: ComputeDtype,
    /// Most tokens in one forward pass.
    pub max_batch_tokens: usize,
    /// A template for a router model given by path; `None` uses its own.
    pub template: Option<&'a str>,
}

/// The router model `routing.router` needs: `routing.router_model`, else `fallback` (a loaded
/// model and its template, e.g. the strong model); `None` for field routing.
pub fn router(
    routing: &Routing,
    fallback: Option<(&ModelScorer, &ChatTemplate)>,
    compute: RouterCompute<'_>,
) -> Result<Option<Router>> {
    let model = routing.router_model.as_deref();
    let missing = |kind: &str| {
        CoreError::Invalid(format!(
            "the {kind} router needs a router model (a router model or the strong model)"
        ))
    };
    Ok(match routing.router {
        RouterKind::Field => None,
        RouterKind::Likelihood => {
            let limits = Limits {
                max_prompt_tokens: 4096,
                max_response_tokens: 64,
            };
            let (scorer, template) = match (model, fallback) {
                (Some(spec), _) => {
                    let dir = resolve(spec, "router")?;
                    let scorer = ModelScorer::load(&dir, compute.device, compute.dtype)?;
                    let template = match compute.template {
                        Some(t) => ChatTemplate::resolve(t, Some(&dir))?,
                        None => model_template(&dir)?,
                    };
                    (scorer, template)
                }
                (None, Some((scorer, template))) => (scorer.clone(), copy_template(template)?),
                (None, None) => return Err(missing("likelihood")),
            };
            let router = LikelihoodRouter::new(scorer, template, limits, compute.max_batch_tokens)
                .calibrated(routing.calibrate);
            Some(Router::Likelihood(Box::new(router)))
        }
        RouterKind::Llm => {
            let policy = match (model, fallback) {
                (Some(spec), _) => {
                    let dir = resolve(spec, "router")?;
                    Policy::load(&dir, compute.template, compute.device, compute.dtype)?
                }
                (None, Some((scorer, template))) => {
                    Policy::from_scorer(scorer, copy_template(template)?)?
                }
                (None, None) => return Err(missing("llm")),
            };
            Some(Router::Llm(Box::new(LlmRouter::new(
                policy,
                ROUTER_ANSWER_TOKENS,
            ))))
        }
    })
}

fn copy_template(t: &ChatTemplate) -> Result<ChatTemplate> {
    Ok(ChatTemplate::new(
        t.name(),
        t.source(),
        t.bos_token(),
        t.eos_token(),
    )?)
}

/// Each row's domain (by row id) under `kind`; `router` is required for `likelihood` and `llm`.
/// `source` names the rows' origin in errors (a file path).
pub fn route(
    c: &Customization,
    kind: RouterKind,
    rows: &[RowInfo<'_>],
    router: Option<&Router>,
    source: &str,
    reporter: &mut dyn Reporter,
) -> Result<HashMap<String, String>> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    match (kind, router) {
        (RouterKind::Field, _) => rows
            .iter()
            .map(|r| {
                c.route_by_field(r.domain, r.subset)
                    .map(|d| (r.id.to_string(), d))
                    // Not a `CoreError::Row`: skipping invalid rows does not skip routing.
                    .map_err(|e| CoreError::Invalid(format!("{source}: row `{}`: {e}", r.id)))
            })
            .collect(),
        (RouterKind::Likelihood, Some(Router::Likelihood(router))) => {
            let convos: Vec<&[Message]> = rows.iter().map(|r| r.prompt).collect();
            let n_domains = c.domain_names().count().max(1);
            let routed = in_stage(reporter, "route", rows.len(), |reporter| {
                router.route(c, &convos, &mut |items, tokens| {
                    reporter.tokens(tokens);
                    reporter.rows(items / n_domains);
                })
            })?;
            Ok(rows
                .iter()
                .zip(routed)
                .map(|(r, (d, _))| (r.id.to_string(), d))
                .collect())
        }
        (RouterKind::Llm, Some(Router::Llm(router))) => {
            let convos: Vec<&[Message]> = rows.iter().map(|r| r.prompt).collect();
            let routed = in_stage(reporter, "route", rows.len(), |reporter| {
                router.route(c, &convos, &mut |n, tokens| {
                    reporter.tokens(tokens);
                    reporter.rows(n);
                })
            })?;
            let unparsed = routed.iter().filter(|r| !r.parsed).count();
            if unparsed > 0 {
                reporter.notice(&format!(
                    "the router model named no domain for {unparsed} of {} rows; they go to {}",
                    routed.len(),
                    c.default_domain
                ));
            }
            Ok(rows
                .iter()
                .zip(routed)
                .map(|(r, route)| (r.id.to_string(), route.domain))
                .collect())
        }
        (kind, _) => Err(CoreError::Invalid(format!(
            "the {kind} router needs its router model"
        ))),
    }
}

//! Customization and domain routing for the scoring commands and `cdr route`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use cdr_core::backend::Backend;
use cdr_core::{
    ChatTemplate, Customization, LikelihoodRouter, Limits, LlmRouter, ModelScorer, Policy,
};
use cdr_data::Message;

use crate::cli::{CustomizeArgs, RouterKind};
use crate::progress::Progress;

/// What routing needs of a row.
pub struct RowInfo<'a> {
    pub id: &'a str,
    pub prompt: &'a [Message],
    pub domain: Option<&'a str>,
    pub subset: Option<&'a str>,
}

/// The customization named by `--customize`, if any.
pub fn customization(args: &CustomizeArgs) -> anyhow::Result<Option<Customization>> {
    args.customize
        .as_deref()
        .map(|spec| Customization::resolve(spec).context("--customize"))
        .transpose()
}

/// A likelihood router on `model` (a directory or hub id) or, when `None`, on `fallback`.
pub fn likelihood_router<B: Backend>(
    model: Option<&str>,
    fallback: Option<(&ModelScorer<B>, &ChatTemplate)>,
    template: Option<&str>,
    device: &B::Device,
    dtype: cdr_core::ComputeDtype,
    max_batch_tokens: usize,
    calibrate: bool,
) -> anyhow::Result<LikelihoodRouter<B>> {
    let limits = Limits {
        max_prompt_tokens: 4096,
        max_response_tokens: 64,
    };
    if let Some(spec) = model {
        let dir = cdr_models::resolve_model(spec).context("--router-model")?;
        let scorer = ModelScorer::load(&dir, device, dtype)?;
        let template = match template {
            Some(t) => ChatTemplate::resolve(t, Some(&dir))?,
            None => cdr_core::model_template(&dir)?,
        };
        return Ok(
            LikelihoodRouter::new(scorer, template, limits, max_batch_tokens).calibrated(calibrate),
        );
    }
    match fallback {
        Some((scorer, template)) => {
            let template = copy_template(template)?;
            Ok(
                LikelihoodRouter::new(scorer.clone(), template, limits, max_batch_tokens)
                    .calibrated(calibrate),
            )
        }
        None => bail!("--router likelihood needs a router model (--router-model or --strong)"),
    }
}

fn copy_template(t: &ChatTemplate) -> anyhow::Result<ChatTemplate> {
    Ok(ChatTemplate::new(
        t.name(),
        t.source(),
        t.bos_token(),
        t.eos_token(),
    )?)
}

/// Most tokens of an `llm` router's answer: a domain name, or a short sentence naming one.
const ROUTER_ANSWER_TOKENS: usize = 16;

/// An `llm` router on `model` (a directory, .gguf file or hub id) or, when `None`, on `fallback`.
pub fn llm_router<B: Backend>(
    model: Option<&str>,
    fallback: Option<(&ModelScorer<B>, &ChatTemplate)>,
    template: Option<&str>,
    device: &B::Device,
    dtype: cdr_core::ComputeDtype,
) -> anyhow::Result<LlmRouter<B>> {
    let policy = match (model, fallback) {
        (Some(spec), _) => {
            let dir = cdr_models::resolve_model(spec).context("--router-model")?;
            Policy::load(&dir, template, device, dtype)?
        }
        (None, Some((scorer, template))) => Policy::from_scorer(scorer, copy_template(template)?)?,
        (None, None) => bail!("--router llm needs a router model (--router-model or --strong)"),
    };
    Ok(LlmRouter::new(policy, ROUTER_ANSWER_TOKENS))
}

/// A router model.
pub enum Router<B: Backend> {
    // Boxed: both hold a model and a tokenizer (kilobytes), and differ in size.
    Likelihood(Box<LikelihoodRouter<B>>),
    Llm(Box<LlmRouter<B>>),
}

/// The router model `--router` needs, on `model` or else `fallback`; `None` for `--router field`.
#[allow(clippy::too_many_arguments)]
pub fn router<B: Backend>(
    c: &CustomizeArgs,
    model: Option<&str>,
    fallback: Option<(&ModelScorer<B>, &ChatTemplate)>,
    template: Option<&str>,
    device: &B::Device,
    dtype: cdr_core::ComputeDtype,
    max_batch_tokens: usize,
) -> anyhow::Result<Option<Router<B>>> {
    Ok(match c.router {
        RouterKind::Field => None,
        RouterKind::Likelihood => Some(Router::Likelihood(Box::new(likelihood_router(
            model,
            fallback,
            template,
            device,
            dtype,
            max_batch_tokens,
            c.router_calibrate,
        )?))),
        RouterKind::Llm => Some(Router::Llm(Box::new(llm_router(
            model, fallback, template, device, dtype,
        )?))),
    })
}

/// The customization `--customize` names and, with one, the domain of each row, routed by
/// `--router` (a likelihood router runs on `--router-model`, else on `fallback`).
#[allow(clippy::too_many_arguments)]
pub fn customize_rows<B: Backend>(
    c: &CustomizeArgs,
    rows: &[RowInfo<'_>],
    fallback: Option<(&ModelScorer<B>, &ChatTemplate)>,
    device: &B::Device,
    options: &cdr_core::ScoreOptions,
    input: &Path,
    quiet: bool,
) -> anyhow::Result<Option<Routed>> {
    let Some(customization) = customization(c)? else {
        return Ok(None);
    };
    let router = router::<B>(
        c,
        c.router_model.as_deref(),
        fallback,
        None,
        device,
        options.dtype,
        options.max_batch_tokens,
    )?;
    let domains = route(
        &customization,
        c.router,
        rows,
        router.as_ref(),
        input,
        quiet,
    )?;
    Ok(Some(Routed {
        customization,
        domains,
    }))
}

/// The customization of a run and the domain each row was routed to (by row id).
pub struct Routed {
    pub customization: Customization,
    pub domains: HashMap<String, String>,
}

/// Each row's domain, by `kind`. `router` is required for `likelihood` and `llm`.
pub fn route<B: Backend>(
    c: &Customization,
    kind: RouterKind,
    rows: &[RowInfo<'_>],
    router: Option<&Router<B>>,
    input: &Path,
    quiet: bool,
) -> anyhow::Result<HashMap<String, String>> {
    match kind {
        RouterKind::Field => rows
            .iter()
            .map(|r| {
                c.route_by_field(r.domain, r.subset)
                    .map(|d| (r.id.to_string(), d))
                    .with_context(|| format!("{}: row `{}`", input.display(), r.id))
            })
            .collect(),
        RouterKind::Likelihood => {
            let Some(Router::Likelihood(router)) = router else {
                bail!("--router likelihood needs a router model");
            };
            let mut progress = Progress::new(rows.len(), "route", quiet);
            let convos: Vec<&[Message]> = rows.iter().map(|r| r.prompt).collect();
            let n_domains = c.domain_names().count().max(1);
            let routed = router.route(c, &convos, &mut |items, tokens| {
                progress.tokens(tokens);
                progress.rows(items / n_domains);
            })?;
            progress.finish();
            Ok(rows
                .iter()
                .zip(routed)
                .map(|(r, (d, _))| (r.id.to_string(), d))
                .collect())
        }
        RouterKind::Llm => {
            let Some(Router::Llm(router)) = router else {
                bail!("--router llm needs a router model");
            };
            let mut progress = Progress::new(rows.len(), "route", quiet);
            let convos: Vec<&[Message]> = rows.iter().map(|r| r.prompt).collect();
            let routed = router.route(c, &convos, &mut |n, tokens| {
                progress.tokens(tokens);
                progress.rows(n);
            })?;
            progress.finish();
            let unparsed = routed.iter().filter(|r| !r.parsed).count();
            if unparsed > 0 {
                eprintln!(
                    "cdr: the router model named no domain for {unparsed} of {} rows; they go to {}",
                    routed.len(),
                    c.default_domain
                );
            }
            Ok(rows
                .iter()
                .zip(routed)
                .map(|(r, route)| (r.id.to_string(), route.domain))
                .collect())
        }
    }
}

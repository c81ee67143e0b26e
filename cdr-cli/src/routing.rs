//! Routing for the single-model passes (`cdr logprobs`, `cdr pairs`) and `cdr route`, on the
//! library's routers.

use std::collections::HashMap;
use std::path::Path;

use cdr_core::engine::{self, RouterCompute, RowInfo};
use cdr_core::{ChatTemplate, Customization, Device, ModelScorer};

use crate::cli::{CustomizeArgs, RouterKind};
use crate::job::{Printer, routing};

impl From<RouterKind> for engine::RouterKind {
    fn from(kind: RouterKind) -> Self {
        match kind {
            RouterKind::Field => Self::Field,
            RouterKind::Likelihood => Self::Likelihood,
            RouterKind::Llm => Self::Llm,
        }
    }
}

/// The customization of a run and the domain each row was routed to (by row id).
pub struct Routed {
    pub customization: Customization,
    pub domains: HashMap<String, String>,
}

/// The customization `--customize` names and, with one, the domain of each row, routed by
/// `--router` (a router model is `--router-model`, else `fallback`).
pub fn customize_rows(
    c: &CustomizeArgs,
    rows: &[RowInfo<'_>],
    fallback: Option<(&ModelScorer, &ChatTemplate)>,
    device: &Device,
    options: &cdr_core::ScoreOptions,
    input: &Path,
    quiet: bool,
) -> anyhow::Result<Option<Routed>> {
    let settings = routing(c);
    let Some(customization) = engine::customization(&settings)? else {
        return Ok(None);
    };
    let router = engine::router(
        &settings,
        fallback,
        RouterCompute {
            device,
            dtype: options.dtype,
            max_batch_tokens: options.max_batch_tokens,
            template: None,
        },
    )?;
    let domains = engine::route(
        &customization,
        settings.router,
        rows,
        router.as_ref(),
        &input.display().to_string(),
        &mut Printer::new(quiet),
    )?;
    Ok(Some(Routed {
        customization,
        domains,
    }))
}

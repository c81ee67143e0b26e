//! `cdr serve`: flags → server settings → the library's server.

use std::time::Duration;

use anyhow::Context;
use cdr_core::engine::{Engine, PairSettings, RunSettings};
use cdr_core::{ModelScorer, TokenizerPolicy};
use cdr_serve::{Mode, ServeSettings};
use tracing::warn;

use crate::cli::ServeArgs;
use crate::printer::Printer;
use crate::settings::{remote_scoring_settings, routing, scoring_settings, with_hint};

pub fn run(args: ServeArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.scoring.compute.validate()?;
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--token-file {}", path.display()))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                anyhow::bail!("--token-file {} is empty", path.display());
            }
            Some(token)
        }
        None => None,
    };
    let settings = ServeSettings {
        addr: (args.host, args.port).into(),
        token,
        max_body_bytes: args.max_body_bytes,
        max_wait: Duration::from_millis(args.max_wait_ms),
        max_batch_tokens: args.scoring.compute.max_batch_tokens,
        queue_capacity: args.max_queue,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        ..ServeSettings::default()
    };
    let mode = match (&args.strong, &args.weak, &args.model) {
        (Some(strong), Some(weak), None) => {
            cdr_models::resolve_model(strong).context("--strong")?;
            cdr_models::resolve_model(weak).context("--weak")?;
            let scoring = remote_scoring_settings(
                &args.scoring,
                &[
                    (strong, "--strong-url", &args.strong_url),
                    (weak, "--weak-url", &args.weak_url),
                ],
            )?;
            let mut pair = PairSettings {
                strong: strong.clone(),
                weak: weak.clone(),
                scoring,
            };
            if args.allow_tokenizer_mismatch {
                warn!("--allow-tokenizer-mismatch: each model scores its own tokenization");
                pair.scoring.tokenizer_policy = TokenizerPolicy::Separate;
            }
            let run = RunSettings {
                routing: routing(&args.customize),
                ..RunSettings::new(pair)
            };
            let engine = Engine::load(run, printer).map_err(with_hint)?;
            // Loaded now, not on the first request: a client should not time out on it.
            if !engine.pair().one_model_at_a_time()
                && engine.pair().strong().remote_name().is_none()
            {
                engine.pair().strong().model()?;
                engine.pair().weak().model()?;
            }
            Mode::Pair(Box::new(engine))
        }
        (None, None, Some(spec)) => {
            let dir = cdr_models::resolve_model(spec).context("--model")?;
            let scoring = scoring_settings(&args.scoring)?;
            let dtype = scoring.dtype_for(&[&dir]);
            let scorer = ModelScorer::load(&dir, &scoring.device, dtype)?;
            let model = scorer.model()?;
            Mode::Model {
                model: Box::new((*model).clone()),
                tokenizer: Box::new(scorer.tokenizer.clone()),
                name: args
                    .served_model_name
                    .clone()
                    .unwrap_or_else(|| spec.clone()),
            }
        }
        _ => anyhow::bail!("give --strong and --weak (a pair), or --model (one model)"),
    };
    let listener = std::net::TcpListener::bind(settings.addr)
        .with_context(|| format!("listening on {}", settings.addr))?;
    let addr = listener.local_addr()?;
    let routes = match &mode {
        Mode::Pair(_) => "POST /v1/score, POST /get_reward",
        Mode::Model { .. } => "POST /v1/completions, GET /v1/models",
    };
    printer.note(format_args!(
        "listening on http://{addr} ({routes}, GET /health, GET /metrics){}",
        if settings.token.is_some() {
            "; bearer token required"
        } else {
            ""
        }
    ));
    cdr_serve::serve(listener, mode, settings, cdr_serve::shutdown_signal())?;
    printer.note(format_args!("stopped"));
    Ok(())
}

//! The HTTP side: routes, the bearer-token guard, request accounting, body limits, and the
//! accept loop with its timeouts and graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::api::{self, CompletionRequest, RewardRequest, ScoreRequest};
use crate::completions::{RankReply, RankWork, Served};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pair::{PairReply, ScoreItem, estimate_tokens};
use crate::queue::{Queue, Refused};
use crate::settings::ServeSettings;

/// What the handlers share.
pub(crate) struct AppState {
    pub settings: ServeSettings,
    pub metrics: Arc<Metrics>,
    pub backend: Backend,
}

/// The mode's queue and what the handlers need to validate requests for it.
pub(crate) enum Backend {
    Pair {
        queue: Queue<Vec<ScoreItem>, PairReply>,
        /// Domains (and aliases) of the customization, if any (boxed: it is large).
        customization: Option<Box<cdr_core::Customization>>,
        /// The strong model's end-of-turn token, dropped from `/get_reward` responses.
        end_token: String,
    },
    Model {
        queue: Queue<RankWork, RankReply>,
        served: Box<Served>,
    },
}

impl AppState {
    fn depth(&self) -> usize {
        match &self.backend {
            Backend::Pair { queue, .. } => queue.depth(),
            Backend::Model { queue, .. } => queue.depth(),
        }
    }
}

/// The routes of `state`'s mode.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let guarded = match &state.backend {
        Backend::Pair { .. } => Router::new()
            .route("/v1/score", post(score))
            .route("/get_reward", post(get_reward)),
        Backend::Model { .. } => Router::new()
            .route("/v1/completions", post(completions))
            .route("/v1/models", get(models)),
    }
    .route("/metrics", get(metrics))
    .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    guarded
        .route("/health", get(health))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), account))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits (up
/// to the drain timeout) for the requests in flight.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    settings: &ServeSettings,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Past the connection limit, new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        // The header-read timeout closes connections that dribble their request line and
        // headers (slow loris); the body has its own timeout in `read_body`.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    info!("shutting down: no new connections; draining requests in flight");
    tokio::select! {
        () = graceful.shutdown() => info!("drained"),
        () = tokio::time::sleep(settings.drain_timeout) => {
            warn!(seconds = settings.drain_timeout.as_secs(), "drain timed out; exiting with requests in flight");
        }
    }
}

/// Counts and times every answered request by route and status.
async fn account(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    state.metrics.observe(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Requires `Authorization: Bearer <token>` when the server has a token (compared in constant
/// time, so response timing does not leak how much of a guess was right).
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(token) = &state.settings.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header",
        )
        .into_response(),
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response(),
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

async fn health(State(state): State<Arc<AppState>>) -> axum::Json<Value> {
    axum::Json(json!({"status": "ok", "queue_depth": state.depth()}))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.queue_depth.set(state.depth() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The body, at most `max_body_bytes` (413) and within the body timeout (408).
async fn read_body(body: Body, settings: &ServeSettings) -> Result<Vec<u8>, ApiError> {
    let limited = Limited::new(body, settings.max_body_bytes);
    match tokio::time::timeout(settings.body_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                settings.body_timeout.as_secs()
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} bytes", settings.max_body_bytes),
        )),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
    }
}

async fn wait<W, R>(queue: &Queue<W, R>, work: W, tokens: usize) -> Result<R, ApiError> {
    let answer = queue.submit(work, tokens).map_err(|r| match r {
        Refused::Full => ApiError::unavailable("the queue is full; retry shortly", 1),
        Refused::Closed => ApiError::unavailable("the server is shutting down", 5),
    })?;
    answer
        .await
        .map_err(|_| ApiError::internal("the scoring thread stopped"))
}

/// The pair mode's queue, customization and end-of-turn token.
type PairParts<'a> = (
    &'a Queue<Vec<ScoreItem>, PairReply>,
    Option<&'a cdr_core::Customization>,
    &'a str,
);

fn pair_backend(state: &AppState) -> Result<PairParts<'_>, ApiError> {
    match &state.backend {
        Backend::Pair {
            queue,
            customization,
            end_token,
        } => Ok((queue, customization.as_deref(), end_token)),
        Backend::Model { .. } => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this server scores one model's log-probs (/v1/completions)",
        )),
    }
}

async fn score(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    let body = read_body(body, &state.settings).await?;
    let request: ScoreRequest = api::parse(&body)?;
    let (queue, customization, _) = pair_backend(&state)?;
    let domain = match (&request.domain, customization) {
        (Some(label), Some(c)) => Some(
            c.canonical_domain(label)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown domain `{label}`; this server's customization has {}",
                        c.domain_names().collect::<Vec<_>>().join(", ")
                    ))
                })?
                .to_string(),
        ),
        // Without customization a domain changes nothing; it is echoed back.
        _ => None,
    };
    let items: Vec<ScoreItem> = request
        .responses
        .iter()
        .map(|r| ScoreItem {
            prompt: request.prompt.clone(),
            response: r.clone(),
            domain: domain.clone(),
        })
        .collect();
    let tokens = estimate_tokens(&items);
    let scored = wait(queue, items, tokens).await??;
    let rewards: Vec<f64> = scored.iter().map(|(s, _)| s.reward).collect();
    let routed = scored
        .first()
        .and_then(|(_, d)| d.clone())
        .or(request.domain);
    let scores: Vec<_> = scored.into_iter().map(|(s, _)| s).collect();
    Ok(axum::Json(json!({
        "rewards": rewards,
        "scores": scores,
        "domain": routed,
    })))
}

async fn get_reward(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    let body = read_body(body, &state.settings).await?;
    let request: RewardRequest = api::parse(&body)?;
    let (queue, _, end_token) = pair_backend(&state)?;
    let items = request
        .query
        .iter()
        .zip(&request.prompts)
        .enumerate()
        .map(|(i, (query, prompt))| {
            let (prompt, response) = crate::recover::split_query(query, prompt, end_token)
                .map_err(|e| ApiError::bad_request(format!("query {i}: {e}")))?;
            Ok(ScoreItem {
                prompt,
                response,
                domain: None,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let tokens = estimate_tokens(&items);
    let scored = wait(queue, items, tokens).await??;
    let rewards: Vec<f64> = scored.iter().map(|(s, _)| s.reward).collect();
    Ok(axum::Json(json!({
        "rewards": rewards,
        "scores": rewards,
        "extra_logs": {
            "strong_logprob": scored.iter().map(|(s, _)| s.strong_logprob).collect::<Vec<_>>(),
            "weak_logprob": scored.iter().map(|(s, _)| s.weak_logprob).collect::<Vec<_>>(),
            "response_tokens": scored.iter().map(|(s, _)| s.n_response_tokens).collect::<Vec<_>>(),
        },
    })))
}

async fn completions(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    let body = read_body(body, &state.settings).await?;
    let request: CompletionRequest = api::parse(&body)?;
    let Backend::Model { queue, served } = &state.backend else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this server scores a strong/weak pair (/v1/score, /get_reward)",
        ));
    };
    if let Some(name) = &request.model
        && name != &served.name
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "The model `{name}` does not exist (this server has `{}`).",
                served.name
            ),
        ));
    }
    let sequences = served.sequences(&request)?;
    let start = request.prompt_logprobs_start.unwrap_or(1).max(1);
    let top = request
        .prompt_logprobs
        .unwrap_or(0)
        .max(request.logprobs.unwrap_or(0));
    let tokens = sequences.iter().map(Vec::len).sum();
    let work = RankWork {
        sequences: sequences.clone(),
        top,
        start,
    };
    let spans = wait(queue, work, tokens).await??;
    Ok(axum::Json(
        served.response(&request, &sequences, &spans, start),
    ))
}

async fn models(State(state): State<Arc<AppState>>) -> Result<axum::Json<Value>, ApiError> {
    match &state.backend {
        Backend::Model { served, .. } => Ok(axum::Json(served.models())),
        Backend::Pair { .. } => Err(ApiError::new(StatusCode::NOT_FOUND, "no models here")),
    }
}

/// Warns when the server listens beyond this machine with no token.
pub(crate) fn warn_if_open(addr: SocketAddr, token: bool) {
    if !addr.ip().is_loopback() && !token {
        warn!(
            %addr,
            "listening beyond this machine without a token: anyone who can reach this port can \
             use the models (give --token-file, or bind 127.0.0.1)"
        );
    }
}

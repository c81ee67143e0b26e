#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]
// Requests are untrusted: a bad one must be an error answer, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// Without the `server` feature only the request parsers build (for the fuzz targets, which
// would otherwise compile burn and tokio under a sanitizer).
pub mod api;
#[cfg(feature = "server")]
mod completions;
mod error;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
mod pair;
#[cfg(feature = "server")]
mod queue;
pub mod recover;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod settings;

pub use error::ApiError;
#[cfg(feature = "server")]
pub use run::{Mode, ServeError, serve, shutdown_signal};
#[cfg(feature = "server")]
pub use settings::ServeSettings;

#[cfg(feature = "server")]
mod run {
    use std::future::Future;
    use std::sync::Arc;
    use std::thread;

    use cdr_core::engine::Engine;
    use cdr_models::{Model, Tokenizer};
    use tracing::info;

    use crate::completions::{self, Served};
    use crate::metrics;
    use crate::pair;
    use crate::queue::{self, Batching};
    use crate::server::{self, AppState, Backend};
    use crate::settings::ServeSettings;

    /// What a server serves.
    pub enum Mode {
        /// A strong/weak pair: `/v1/score` and `/get_reward`.
        Pair(Box<Engine>),
        /// One model's log-probs: `/v1/completions` and `/v1/models`.
        Model {
            /// The loaded model.
            model: Box<Model>,
            /// Its tokenizer (text prompts, decoded tokens); boxed, it is large.
            tokenizer: Box<Tokenizer>,
            /// The name clients address it by.
            name: String,
        },
    }

    /// Why the server could not run.
    #[derive(Debug, thiserror::Error)]
    pub enum ServeError {
        /// Listening, or starting the runtime or the scoring thread, failed.
        #[error("{context}: {source}")]
        Io {
            /// What was being done.
            context: &'static str,
            /// The underlying error.
            source: std::io::Error,
        },
    }

    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> ServeError {
        move |source| ServeError::Io { context, source }
    }

    /// Serves `mode` on `listener` until `shutdown` completes (see [`shutdown_signal`]), then drains
    /// the requests in flight and returns once the scoring thread has answered them.
    pub fn serve(
        listener: std::net::TcpListener,
        mode: Mode,
        settings: ServeSettings,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let metrics = Arc::new(metrics::Metrics::default());
        let batching = Batching {
            max_wait: settings.max_wait,
            max_tokens: settings.max_batch_tokens.max(1),
            max_jobs: settings.max_batch_requests.max(1),
        };
        let m = metrics.clone();
        let (backend, worker) = match mode {
            Mode::Pair(engine) => {
                let (queue, worker) = queue::bounded(settings.queue_capacity);
                let customization = engine.pair().customization().cloned().map(Box::new);
                let end_token = engine.pair().template().eos_token().to_string();
                let handle = thread::Builder::new()
                    .name("cdr-score".into())
                    .spawn(move || pair::run(*engine, worker, batching, m))
                    .map_err(io("starting the scoring thread"))?;
                let backend = Backend::Pair {
                    queue,
                    customization,
                    end_token,
                };
                (backend, handle)
            }
            Mode::Model {
                model,
                tokenizer,
                name,
            } => {
                let (queue, worker) = queue::bounded(settings.queue_capacity);
                let served = Box::new(Served {
                    name,
                    tokenizer: *tokenizer,
                    vocab: model.config().vocab_size,
                    max_model_len: model.config().max_position_embeddings(),
                });
                let handle = thread::Builder::new()
                    .name("cdr-rank".into())
                    .spawn(move || completions::run(*model, worker, batching, m))
                    .map_err(io("starting the scoring thread"))?;
                (Backend::Model { queue, served }, handle)
            }
        };
        let addr = listener.local_addr().map_err(io("reading the address"))?;
        server::warn_if_open(addr, settings.token.is_some());
        listener
            .set_nonblocking(true)
            .map_err(io("configuring the listener"))?;
        // Two threads are plenty for the HTTP side: requests only parse, queue and wait.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cdr-http")
            .enable_all()
            .build()
            .map_err(io("starting the async runtime"))?;
        let state = Arc::new(AppState {
            settings: settings.clone(),
            metrics,
            backend,
        });
        let app = server::router(state);
        info!(%addr, "listening");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(io("listening"))?;
            server::accept_loop(listener, app, &settings, shutdown).await;
            Ok::<(), ServeError>(())
        })?;
        // Connections still open after the drain hold queue handles; dropping their tasks lets the
        // scoring thread see the queue close once it has answered what it holds.
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        if worker.join().is_err() {
            tracing::error!("the scoring thread panicked");
        }
        info!("stopped");
        Ok(())
    }

    /// Completes on SIGTERM or SIGINT (Ctrl-C).
    pub async fn shutdown_signal() {
        let interrupt = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = interrupt => info!("interrupted"),
            () = terminate => info!("SIGTERM"),
        }
    }
}

//! `GET /metrics`: requests by route and status, queue depth, scored tokens (a counter, so
//! `rate(cdr_tokens_total[1m])` is tokens/s), the last batch's tokens/s, and request latency.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A request's route and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route (`/v1/score`, ...).
    pub route: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// The route of a latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route (`/v1/score`, ...).
    pub route: String,
}

/// The server's metrics, shared by the handlers and the worker.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from a request's arrival to its answer, by route.
    pub latency: Family<RouteLabels, Histogram>,
    /// Jobs queued and not yet taken by the worker.
    pub queue_depth: Gauge,
    /// Forward-pass tokens computed.
    pub tokens: Counter,
    /// Tokens per second of the last batch.
    pub tokens_per_second: Gauge<f64, AtomicU64>,
    /// Batches run.
    pub batches: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cdr");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 5 ms to ~80 s: a tiny model on loopback up to a long queue on a 7B pair.
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
            ])
        });
        registry.register(
            "request_duration_seconds",
            "Seconds from a request's arrival to its answer",
            latency.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Requests waiting for the scoring thread",
            queue_depth.clone(),
        );
        let tokens = Counter::default();
        registry.register("tokens", "Forward-pass tokens computed", tokens.clone());
        let tokens_per_second = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "batch_tokens_per_second",
            "Tokens per second of the last batch",
            tokens_per_second.clone(),
        );
        let batches = Counter::default();
        registry.register("batches", "Batches scored", batches.clone());
        Self {
            registry,
            requests,
            latency,
            queue_depth,
            tokens,
            tokens_per_second,
            batches,
        }
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// Records one scored batch.
    pub fn batch(&self, tokens: usize, seconds: f64) {
        self.batches.inc();
        self.tokens.inc_by(tokens as u64);
        if seconds > 0.0 {
            self.tokens_per_second.set(tokens as f64 / seconds);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

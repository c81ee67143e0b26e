//! How the server listens, guards and batches: resolved once by the CLI from its flags.

use std::net::SocketAddr;
use std::time::Duration;

/// The server's settings; [`ServeSettings::default`] is `cdr serve`'s defaults.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Where to listen (loopback by default).
    pub addr: SocketAddr,
    /// The bearer token every route but `/health` requires; `None` leaves them open.
    pub token: Option<String>,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Longest a request waits for others to share its batch.
    pub max_wait: Duration,
    /// A batch stops gathering requests at about this many tokens (and each forward pass stays
    /// under the scorer's own budget).
    pub max_batch_tokens: usize,
    /// Requests waiting beyond this many are answered 503 with `Retry-After`.
    pub queue_capacity: usize,
    /// A batch holds at most this many requests.
    pub max_batch_requests: usize,
    /// A connection must send its request head within this (slow clients are dropped).
    pub header_timeout: Duration,
    /// A request body must arrive within this (408 after).
    pub body_timeout: Duration,
    /// On SIGTERM, how long requests in flight may take to finish.
    pub drain_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            token: None,
            max_body_bytes: 8 << 20,
            max_wait: Duration::from_millis(10),
            max_batch_tokens: 8192,
            queue_capacity: 1024,
            max_batch_requests: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(120),
            max_connections: 1024,
        }
    }
}

//! The bounded queue between the HTTP handlers and the one scoring thread, and how that thread
//! gathers a batch from it.
//!
//! Scoring is CPU- (or GPU-) bound and runs on a dedicated OS thread, not on the async runtime:
//! a forward pass would stall every connection the runtime serves. Handlers `submit` a job and
//! await its reply; a full queue is answered at once (503) instead of holding the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// A unit of work and where its answer goes.
pub struct Job<W, R> {
    /// What to compute.
    pub work: W,
    /// Its estimated cost in tokens (for the batch budget).
    pub tokens: usize,
    /// The waiting handler; dropped unanswered only if the worker dies.
    pub reply: oneshot::Sender<R>,
}

/// The handlers' end of the queue.
pub struct Queue<W, R> {
    sender: SyncSender<Job<W, R>>,
    depth: Arc<AtomicUsize>,
}

impl<W, R> Clone for Queue<W, R> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            depth: self.depth.clone(),
        }
    }
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its capacity already.
    Full,
    /// The worker has stopped.
    Closed,
}

/// The worker's end of the queue.
pub struct Worker<W, R> {
    receiver: Receiver<Job<W, R>>,
    depth: Arc<AtomicUsize>,
}

/// A queue holding at most `capacity` jobs.
pub fn bounded<W, R>(capacity: usize) -> (Queue<W, R>, Worker<W, R>) {
    let (sender, receiver) = sync_channel(capacity.max(1));
    let depth = Arc::new(AtomicUsize::new(0));
    (
        Queue {
            sender,
            depth: depth.clone(),
        },
        Worker { receiver, depth },
    )
}

impl<W, R> Queue<W, R> {
    /// Queues `work`; the answer arrives on the returned receiver.
    pub fn submit(&self, work: W, tokens: usize) -> Result<oneshot::Receiver<R>, Refused> {
        let (reply, answer) = oneshot::channel();
        // Counted before the send so the worker's decrement never runs first.
        self.depth.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(Job {
            work,
            tokens,
            reply,
        }) {
            Ok(()) => Ok(answer),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Disconnected(_) => Refused::Closed,
                })
            }
        }
    }

    /// Jobs waiting (not yet taken by the worker).
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

/// How a batch is gathered.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Longest a first job waits for company.
    pub max_wait: Duration,
    /// A batch stops growing once its jobs' tokens reach this.
    pub max_tokens: usize,
    /// A batch stops growing at this many jobs.
    pub max_jobs: usize,
}

impl<W, R> Worker<W, R> {
    /// The next batch: blocks for a first job, then takes more until the wait, the token budget
    /// or the job count runs out. `None` once every handle is dropped and the queue is empty.
    pub fn next_batch(&self, batching: Batching) -> Option<Vec<Job<W, R>>> {
        let first = self.receiver.recv().ok()?;
        self.depth.fetch_sub(1, Ordering::SeqCst);
        let deadline = Instant::now() + batching.max_wait;
        let mut tokens = first.tokens;
        let mut batch = vec![first];
        while tokens < batching.max_tokens && batch.len() < batching.max_jobs {
            let left = deadline.saturating_duration_since(Instant::now());
            // Jobs already queued join even when the wait is over: they cost no latency.
            let next = if left.is_zero() {
                self.receiver.try_recv().ok()
            } else {
                // A timeout and a closed queue both end the gathering.
                self.receiver.recv_timeout(left).ok()
            };
            let Some(job) = next else { break };
            self.depth.fetch_sub(1, Ordering::SeqCst);
            tokens += job.tokens;
            batch.push(job);
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_and_batches_respect_the_budget() {
        let (queue, worker) = bounded::<u32, u32>(3);
        let _a = queue.submit(1, 10).unwrap();
        let _b = queue.submit(2, 10).unwrap();
        let _c = queue.submit(3, 10).unwrap();
        assert_eq!(queue.submit(4, 10).unwrap_err(), Refused::Full);
        assert_eq!(queue.depth(), 3);
        let batching = Batching {
            max_wait: Duration::from_millis(1),
            max_tokens: 20,
            max_jobs: 8,
        };
        let batch = worker.next_batch(batching).unwrap();
        assert_eq!(batch.iter().map(|j| j.work).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(queue.depth(), 1);
        let batch = worker.next_batch(batching).unwrap();
        assert_eq!(batch.len(), 1);
        drop(queue);
        assert!(worker.next_batch(batching).is_none());
    }
}

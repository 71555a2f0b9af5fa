//! The work queue for the asynchronous reply step: IDs only, the worker re-reads the row.
//!
//! The database stays the source of truth. The queue only says "look at this message soon";
//! a message whose job was lost (Redis flushed, process killed) is found again by
//! [`Store::unanswered_inbound`](crate::Store::unanswered_inbound) and re-enqueued, and a job
//! delivered twice is harmless because [`Store::claim_inbound`](crate::Store::claim_inbound)
//! lets only one worker process a message.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::StoreError;

mod breaker;
mod in_process;
mod redis;

pub use in_process::InProcessQueue;
pub use redis::{RedisQueue, RedisQueueOptions};

/// A boxed future, so that [`WorkQueue`] can be used as `Arc<dyn WorkQueue>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One unit of work: "answer this inbound message".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The inbound message to process.
    pub message_sid: String,
    /// Queue-specific entry id (the Redis stream entry id); pass the job back to `ack`.
    pub id: String,
    /// How many times this entry has been handed out, this time included.
    pub deliveries: u64,
}

/// A queue of message SIDs waiting for their reply step.
///
/// Delivery is at least once: a job received but not acknowledged may be delivered again (to
/// another consumer after the reclaim timeout, for Redis). Acknowledge only after the outcome is
/// recorded in the database.
pub trait WorkQueue: Send + Sync {
    /// Adds a job for `message_sid`.
    fn enqueue<'a>(&'a self, message_sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Takes up to `max` jobs, waiting up to `block` for the first one. Returns an empty vector
    /// when nothing arrived in time. After a failure the next call waits a growing backoff
    /// first, so a loop around `receive` cannot spin while Redis is down.
    fn receive(&self, max: usize, block: Duration) -> BoxFuture<'_, Result<Vec<Job>, StoreError>>;

    /// Marks a job done; it will not be delivered again.
    fn ack<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Marks several jobs done at once (one round trip on Redis). The default acknowledges them
    /// one by one and reports the first error after trying all.
    fn ack_many<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut first_error = None;
            for job in jobs {
                if let Err(e) = self.ack(job).await {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    /// Gives back jobs that were received but will not be finished now (their batch could not
    /// be written). A queue that redelivers unacknowledged jobs keeps them: Redis hands them
    /// out again after the reclaim timeout, so the default does nothing. The in-process queue
    /// cannot redeliver (the database sweep finds those messages again), so it stops counting
    /// them in [`WorkQueue::depth`].
    fn release<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = jobs;
        Box::pin(async { Ok(()) })
    }

    /// Jobs waiting or in flight (not yet acknowledged or released).
    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The SIDs of the oldest `limit` jobs waiting to be handed out, for a queue that would take
    /// a SID it already holds a second time: the database sweep leaves those out instead of
    /// queuing them again. Jobs already handed out and not acknowledged are not listed (their
    /// messages, when still unanswered, need the sweep). `None` (the default): the queue does
    /// not list them, because it does not queue a waiting SID twice anyway (the in-process
    /// queue).
    fn waiting_sids(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<Option<HashSet<String>>, StoreError>> {
        let _ = limit;
        Box::pin(async { Ok(None) })
    }

    /// Jobs dropped since the queue was created because it was full (their messages are in the
    /// database; the sweep queues them again once there is room). Only a bounded queue drops.
    fn dropped(&self) -> u64 {
        0
    }

    /// Checks that the queue's backing service answers (for `/readyz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// `"redis"` or `"in-process"`, for logs and metrics.
    fn kind(&self) -> &'static str;
}

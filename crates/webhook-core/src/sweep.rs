//! The safety net: find recorded messages that were never answered and queue them again.
//!
//! The database is the source of truth. A message acknowledged to Twilio is in
//! `inbound_messages` before the 200 goes out; if the process dies before answering it, or Redis
//! loses the queue entry, this sweep finds it (state `received`, or `processing` with an expired
//! claim) at start and every `SWEEP_INTERVAL_SECS`, and queues it again. The claim in the database
//! keeps a re-queued message from being answered twice.
//!
//! When the queue itself is unavailable (Redis down), re-queuing cannot work: the sweep then
//! answers the messages it found itself, through the worker's batch step, so replies go on at
//! the sweep's pace instead of stopping until Redis is back.

use crate::app::App;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Messages younger than this are left alone: they are most likely still in the queue.
pub const GRACE: Duration = Duration::from_secs(10);
/// How many messages one sweep re-queues at most.
pub const BATCH: u64 = 500;

/// Re-queues unanswered messages once, or answers them itself when the queue is unavailable;
/// returns how many it queued or answered.
pub async fn sweep_once(app: &Arc<App>, older_than: Duration) -> usize {
    let sids = match app.store.unanswered_inbound(older_than, BATCH).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "⚠️ sweep could not read the database; will try again");
            return 0;
        }
    };
    let mut queued = 0;
    let mut unqueued: &[String] = &[];
    for (i, sid) in sids.iter().enumerate() {
        match app.queue.enqueue(sid).await {
            Ok(()) => queued += 1,
            Err(e) if e.is_unavailable() => {
                unqueued = &sids[i..];
                tracing::warn!(
                    messages = unqueued.len(),
                    error = %e,
                    "⚠️ work queue unavailable: the sweep answers the unanswered messages itself"
                );
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "⚠️ sweep could not queue messages; will try again");
                break;
            }
        }
    }
    if queued > 0 {
        tracing::info!(queued, "sweep re-queued unanswered messages");
    }
    if !unqueued.is_empty() {
        crate::worker::process_directly(app, unqueued).await;
    }
    queued + unqueued.len()
}

/// Sweeps at start (everything unanswered, whatever its age) and then every `interval`.
pub async fn run(app: Arc<App>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    sweep_once(&app, Duration::ZERO).await;
    let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => { sweep_once(&app, GRACE).await; }
            _ = shutdown.changed() => break,
        }
    }
}

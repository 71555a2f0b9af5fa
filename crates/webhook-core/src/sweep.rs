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
//!
//! A sweep that finds a full batch has found a backlog: a restart after downtime, or a burst
//! that overflowed the in-process queue while acknowledgements had priority (see
//! [`crate::pace`]). It then does not wait for the next interval: it sweeps again as soon as the
//! queue has room (fewer than [`BATCH`] jobs left), so the backlog is answered at the worker's
//! speed, [`BACKLOG_BATCH`] at a time, instead of one batch per interval, until nothing is left.

use crate::app::App;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Messages younger than this are left alone: they are most likely still in the queue.
pub const GRACE: Duration = Duration::from_secs(10);
/// How many messages one sweep re-queues at most.
pub const BATCH: u64 = 500;
/// How many messages one sweep re-queues at most while it works through a backlog.
pub const BACKLOG_BATCH: u64 = 5_000;
/// How often a sweep working through a backlog looks whether the queue has room again.
const BACKLOG_POLL: Duration = Duration::from_millis(100);

/// Re-queues unanswered messages once (at most [`BATCH`]), or answers them itself when the
/// queue is unavailable; returns how many it queued or answered.
pub async fn sweep_once(app: &Arc<App>, older_than: Duration) -> usize {
    sweep_up_to(app, older_than, BATCH).await
}

async fn sweep_up_to(app: &Arc<App>, older_than: Duration, limit: u64) -> usize {
    let sids = match app.store.unanswered_inbound(older_than, limit).await {
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
        if limit > BATCH {
            // One of many passes through a backlog: `run` logs the backlog's start and end.
            tracing::debug!(queued, "sweep re-queued unanswered messages");
        } else {
            tracing::info!(queued, "sweep re-queued unanswered messages");
        }
    }
    if !unqueued.is_empty() {
        crate::worker::process_directly(app, unqueued).await;
    }
    queued + unqueued.len()
}

/// Sweeps at start (everything unanswered, whatever its age), then every `interval`, and as
/// soon as the queue has room after it dropped jobs for being full. After a sweep that found a
/// full batch (a backlog), it sweeps again whenever the queue has room, until a sweep finds
/// nothing and one more, [`GRACE`] later, finds nothing either (for messages that were too young
/// for the first).
pub async fn run(app: Arc<App>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    /// What the sweep waits for before its next look.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Next {
        /// The interval, or room in the queue after it dropped jobs.
        Tick,
        /// Room in the queue: a backlog is being worked through.
        Room,
        /// [`GRACE`]: the backlog looked done; one more look once the youngest have aged.
        Tail,
    }
    let mut dropped = app.queue.dropped();
    let mut found = sweep_once(&app, Duration::ZERO).await;
    // At start and after an overflow every unanswered message counts, young ones included:
    // none of them is waiting in the queue.
    let mut older_than = Duration::ZERO;
    let mut next = Next::Tick;
    // Messages queued or answered since the backlog was found (for its closing line).
    let mut backlog = 0;
    let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        next = match next {
            Next::Tick if found as u64 >= BATCH => {
                tracing::info!(
                    found,
                    "sweep found a backlog of unanswered messages; it queues more as the worker answers them"
                );
                Next::Room
            }
            Next::Tick => Next::Tick,
            Next::Room | Next::Tail if found > 0 => Next::Room,
            Next::Room => Next::Tail,
            Next::Tail => {
                tracing::info!(
                    messages = backlog,
                    "sweep worked through the backlog of unanswered messages"
                );
                backlog = 0;
                Next::Tick
            }
        };
        if next != Next::Room {
            older_than = GRACE;
        }
        let woke = match next {
            Next::Tick => tokio::select! {
                _ = tick.tick() => Some(Next::Tick),
                () = overflow_drained(&app, dropped) => Some(Next::Room),
                _ = shutdown.changed() => None,
            },
            Next::Room => tokio::select! {
                () = queue_has_room(&app) => Some(Next::Room),
                _ = shutdown.changed() => None,
            },
            Next::Tail => tokio::select! {
                () = tokio::time::sleep(GRACE) => Some(Next::Tail),
                _ = shutdown.changed() => None,
            },
        };
        let Some(woke) = woke else { break };
        if next == Next::Tick && woke == Next::Room {
            tracing::info!(
                dropped = app.queue.dropped() - dropped,
                "sweep queues the messages the full work queue dropped"
            );
            older_than = Duration::ZERO;
            next = Next::Room;
        }
        dropped = app.queue.dropped();
        let limit = if next == Next::Tick {
            BATCH
        } else {
            BACKLOG_BATCH
        };
        found = sweep_up_to(&app, older_than, limit).await;
        if next != Next::Tick {
            backlog += found;
        }
    }
}

/// Returns once the queue has dropped jobs since `seen` (it was full) and has room again.
async fn overflow_drained(app: &App, seen: u64) {
    loop {
        if app.queue.dropped() > seen {
            queue_has_room(app).await;
            return;
        }
        tokio::time::sleep(BACKLOG_POLL).await;
    }
}

/// Returns once fewer than [`BATCH`] jobs are waiting or in flight. A queue that cannot say
/// (Redis down) counts as having room: the sweep then answers the messages itself.
async fn queue_has_room(app: &App) {
    loop {
        match app.queue.depth().await {
            Ok(depth) if depth >= BATCH => tokio::time::sleep(BACKLOG_POLL).await,
            _ => return,
        }
    }
}

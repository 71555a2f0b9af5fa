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
/// How many of the queue's waiting jobs a pass reads to leave their messages out (Redis:
/// `XRANGE` by pages of 10,000; the in-process queue never queues a waiting message twice).
pub const WAITING_LIMIT: usize = 50_000;

/// Re-queues unanswered messages once (at most [`BATCH`]), or answers them itself when the
/// queue is unavailable; returns how many it queued or answered.
pub async fn sweep_once(app: &Arc<App>, older_than: Duration) -> usize {
    sweep_up_to(app, older_than, BATCH, None).await
}

/// One pass over at most `limit` messages. Messages the queue cannot take (it is unavailable)
/// are answered here, [`BATCH`] at a time, stopping between batches once `stop` is set.
async fn sweep_up_to(
    app: &Arc<App>,
    older_than: Duration,
    limit: u64,
    stop: Option<&watch::Receiver<bool>>,
) -> usize {
    let sids = match app.store.unanswered_inbound(older_than, limit).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "⚠️ sweep could not read the database; will try again");
            return 0;
        }
    };
    // A message still waiting in the queue (a worker slower than the inflow: Twilio down, or
    // acknowledgements first during a burst) is not queued again: Redis would hold it twice,
    // and the stream would grow by every unanswered message at every pass.
    let waiting = if sids.is_empty() {
        Default::default()
    } else {
        match app.queue.waiting_sids(WAITING_LIMIT).await {
            Ok(waiting) => waiting.unwrap_or_default(),
            Err(_) => Default::default(), // the enqueues below meet the same error and say so
        }
    };
    let sids: Vec<String> = sids.into_iter().filter(|s| !waiting.contains(s)).collect();
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
    let mut answered = 0;
    for chunk in unqueued.chunks(BATCH as usize) {
        if stop.is_some_and(|s| *s.borrow()) {
            break; // the rest waits for the next start's sweep
        }
        crate::worker::process_directly(app, chunk).await;
        answered += chunk.len();
    }
    queued + answered
}

/// Sweeps at start (everything unanswered, whatever its age), then every `interval`, and as
/// soon as the queue has room after it dropped jobs for being full.
///
/// A pass that finds a full batch has found a backlog. The sweep then takes [`BACKLOG_BATCH`]
/// at a time, each time the queue is down to fewer than [`BATCH`] jobs (or the interval has
/// passed, while it stays fuller), for as long as passes come back full or overfill the queue;
/// then it looks again [`GRACE`] later, for messages that were too young for the last pass,
/// until a look finds nothing. Every pass leaves out the messages the queue still holds
/// ([`WorkQueue::waiting_sids`](store::WorkQueue::waiting_sids); the in-process queue does not
/// take a waiting one twice), so a queue that stays full (a Redis stream that kept its jobs
/// across a restart) is not lengthened by copies. A queue that cannot tell its depth (Redis
/// down) counts as having room, and the sweep answers what it finds itself.
pub async fn run(app: Arc<App>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    /// What the sweep waits for before its next pass.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Next {
        /// The interval, or room in the queue after it dropped jobs.
        Tick,
        /// Room in the queue: a backlog is being worked through.
        Room,
        /// [`GRACE`]: the backlog looked done; another look once the youngest have aged.
        Tail,
    }
    // Drops up to the last pass that looked at messages of every age.
    let mut dropped = app.queue.dropped();
    let mut found = sweep_up_to(&app, Duration::ZERO, BATCH, Some(&shutdown)).await;
    // Whether the last pass itself overfilled the queue: what it dropped needs another pass.
    let mut overflowed = app.queue.dropped() > dropped;
    let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut limit = BATCH;
    let mut next = Next::Tick;
    // Messages queued or answered since the backlog was found (for its closing line).
    let mut backlog = 0;
    // A backlog found by the start's pass or after an overflow: none of it is in the queue, so
    // its passes take messages of every age; other passes leave the youngest (`GRACE`) alone.
    let mut every_age = true;
    loop {
        let full = found as u64 >= limit || overflowed;
        if overflowed {
            every_age = true;
        }
        next = match next {
            Next::Tick if full => {
                tracing::info!(
                    found,
                    "sweep found a backlog of unanswered messages; it queues more as the worker answers them"
                );
                Next::Room
            }
            Next::Tick => Next::Tick,
            Next::Room | Next::Tail if full => Next::Room,
            Next::Room => {
                every_age = false;
                Next::Tail
            }
            Next::Tail if found > 0 => Next::Tail,
            Next::Tail => {
                tracing::info!(
                    messages = backlog,
                    "sweep worked through the backlog of unanswered messages"
                );
                backlog = 0;
                tick.reset();
                Next::Tick
            }
        };
        if next == Next::Tick {
            every_age = false;
        }
        let woke = match next {
            Next::Tick => tokio::select! {
                _ = tick.tick() => Some(Next::Tick),
                () = overflow_drained(&app, dropped) => Some(Next::Room),
                _ = shutdown.changed() => None,
            },
            Next::Room => tokio::select! {
                () = queue_has_room(&app) => Some(Next::Room),
                _ = tick.tick() => Some(Next::Room),
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
            every_age = true;
            next = Next::Room;
        }
        let before = app.queue.dropped();
        let older_than = if every_age && next == Next::Room {
            dropped = before;
            Duration::ZERO
        } else {
            GRACE
        };
        limit = if next == Next::Tick {
            BATCH
        } else {
            BACKLOG_BATCH
        };
        found = sweep_up_to(&app, older_than, limit, Some(&shutdown)).await;
        overflowed = app.queue.dropped() > before;
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

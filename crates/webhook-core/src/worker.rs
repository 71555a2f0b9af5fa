//! Step 5 of the pipeline, off the request path: answer recorded messages.
//!
//! The worker takes message SIDs from the queue in batches and claims them in the database with
//! one statement (so two instances never answer the same message). For each claimed message the
//! [`Handler`](crate::reply::Handler) decides the reply. What needs no call to Twilio (dry runs,
//! messages without a reply, probes, messages given up on) is recorded for the whole batch in
//! one transaction: a handful of commits per batch instead of four per message, which is what
//! lets the worker keep up with the acknowledgement path. A real reply is sent by its own task:
//! the outbound row is created *before* sending (a crash mid-send leaves a trace instead of a
//! silent second message), Twilio is called on a blocking thread, the outcome is recorded, and
//! only then is the queue entry acknowledged. `WORKER_CONCURRENCY` bounds the sends in flight;
//! shutdown stops taking new jobs and waits for in-flight ones up to a deadline.
//!
//! Acknowledgements come first: while many webhooks are being recorded at once the worker takes
//! its jobs at the reduced pace of [`crate::pace`], and catches up when the burst has passed.
//!
//! A database step that fails because the database is unavailable (an outage, a restart) is
//! retried with backoff for up to [`STORE_RETRY_WINDOW`] while the worker still holds the claim,
//! so a short outage delays the reply by the outage, not by a whole [`CLAIM_LEASE`].

use crate::app::App;
use crate::inbound::InboundMessage;
use crate::pace::{Allowance, Pace};
use crate::reply::Reply;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::{InboundState, Job, NewOutbound, OutboundUpdate, StoreError, WorkQueue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant as Deadline;
use twilio_client::{RetryPolicy, SendMessage, TwilioError};

/// How long a claim on a message lasts before another worker may take it over. A live worker is
/// never overtaken mid-send: a send gets what is left of the lease minus [`LEASE_MARGIN`] as its
/// time budget (`RetryPolicy::within`), so its last `POST` has ended before the lease does, even
/// when retries and `Retry-After` waits would take longer (the default policy's worst case with
/// 10 s requests is 180 s). A send stopped by its budget with nothing sent is left to the next
/// attempt (after the lease, with a new budget; [`MAX_CLAIMS`] bounds the attempts).
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// The longest one database step of the worker may take before it is given up as unavailable
/// (see `retry_unavailable`): far above any step's normal milliseconds, far below the claim
/// lease.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Time kept between the end of a worker's last possible `POST` and its claim's expiry. Another
/// instance compares the lease written with this instance's clock against its own clock, so the
/// margin covers the clocks' difference as well as the scheduling of the blocking send.
pub const LEASE_MARGIN: Duration = Duration::from_secs(15);

/// Per-request timeout of the Twilio client (connect to last byte).
pub const TWILIO_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

// A claim must leave room for the database retries before a send and one request after them.
const _: () = assert!(
    CLAIM_LEASE.as_secs()
        > STORE_RETRY_WINDOW.as_secs() + LEASE_MARGIN.as_secs() + TWILIO_REQUEST_TIMEOUT.as_secs()
);

/// A message claimed this many times without an outcome is given up (state `failed`), so a
/// message whose processing keeps dying is not re-queued by the sweep forever.
pub const MAX_CLAIMS: i32 = 10;

/// How long one job keeps retrying a database step while the database is unavailable. Well
/// inside [`CLAIM_LEASE`], so the claim is still this worker's while it retries; after it the
/// job gives up and the lease expiring hands the message to the sweep.
pub const STORE_RETRY_WINDOW: Duration = Duration::from_secs(60);

/// Most jobs taken from the queue at once in dry run, where no Twilio call limits the pace:
/// one claim statement and one outcome transaction serve them all. With a sender configured a
/// batch is at most the free send slots, so no message waits claimed behind others' sends.
pub const BATCH_MAX: usize = 256;

/// Batches whose database steps may run at the same time on PostgreSQL (one claims while
/// another records). On SQLite one: a second batch would only queue for the one write lock.
const BATCHES_IN_FLIGHT: usize = 2;

/// In dry run, how long a small batch (under a quarter of [`BATCH_MAX`]) waits for more jobs
/// before it is answered: replies are not urgent, and every batch costs a commit (an fsync) that
/// the acknowledgements compete with — on SQLite for the one write lock, on PostgreSQL for the
/// database's CPU. Fewer, larger batches leave more room for them. Measured on the load bench
/// with 3 alternating runs each: SQLite 10,631/s against 7,598/s without it; PostgreSQL
/// 14,709/s (14,278–15,086) against 13,945/s (13,824–14,024), postgres CPU per webhook −11 %.
pub const DRY_RUN_GATHER: Duration = Duration::from_millis(5);

/// Runs the worker until `shutdown` flips to true, then drains in-flight jobs for up to `drain`.
/// `WORKER_CONCURRENCY` bounds the replies being sent to Twilio at the same time: the send slots
/// are the `App`'s, shared with [`process_directly`].
///
/// At shutdown the in-process queue's jobs would vanish with the process (their messages would
/// wait for the next start's sweep), so the worker first takes what it holds, without waiting
/// for more, until it is empty or half of `drain` has passed. Redis keeps its jobs for the next
/// consumer.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>, drain: Duration) {
    let sends = app.send_slots();
    let concurrency = app.send_concurrency();
    let sqlite = app.store.backend_kind() == store::Backend::Sqlite;
    let in_flight = if sqlite { 1 } else { BATCHES_IN_FLIGHT };
    let batches = Arc::new(Semaphore::new(in_flight));
    let mut backoff = Duration::from_millis(100);
    let drains_queue = app.queue.kind() == "in-process";
    // When the stop signal was seen; the queue drain ends half a `drain` later.
    let mut stopped_at: Option<Deadline> = None;
    let mut pace = Pace::new();
    tracing::info!(worker = %app.worker_id, concurrency, dry_run = app.is_dry_run(), "worker started");
    loop {
        app.beat();
        if *shutdown.borrow() {
            let at = *stopped_at.get_or_insert_with(Deadline::now);
            // Sends in flight retry only while they can end by the deadline below.
            let _ = app.sends_end_by.set((at + drain).into_std());
            if !drains_queue || Deadline::now() >= at + drain / 2 {
                break;
            }
        }
        let drain_until = stopped_at.map(|at| at + drain / 2);
        let batch_slot = match permit(|| app.beat(), &batches, drain_until, &mut shutdown).await {
            Permit::Got(p) => p,
            Permit::Signal => continue,
            Permit::Over => break,
        };
        // With a sender, take the free send slots first and at most that many jobs, so that
        // no message sits claimed while it waits for a slot (a crash would leave it waiting
        // for its lease to expire).
        let mut send_slots = Vec::new();
        if !app.is_dry_run() {
            match permit(|| app.beat(), &sends, drain_until, &mut shutdown).await {
                Permit::Got(p) => send_slots.push(p),
                Permit::Signal => continue,
                Permit::Over => break,
            }
            while let Ok(p) = sends.clone().try_acquire_owned() {
                send_slots.push(p);
            }
        }
        let mut max = if app.is_dry_run() {
            BATCH_MAX
        } else {
            send_slots.len()
        };
        // Acknowledgements first (not while stopping: no new webhooks are coming then).
        let mut paced = false;
        if stopped_at.is_none() {
            let allowance = pace.allowance(max, || app.acks_busy(), &mut shutdown).await;
            app.metrics.worker_paced(pace.take_waited());
            match allowance {
                Allowance::Full(_) => {}
                Allowance::Paced(n) => {
                    paced = true;
                    max = n;
                    send_slots.truncate(n);
                }
                Allowance::Stopping => continue,
            }
        }
        let received = match stopped_at {
            // Draining: what is there now, no waiting for more.
            Some(_) => app.queue.receive(max, Duration::ZERO).await,
            None => tokio::select! {
                r = app.queue.receive(max, Duration::from_secs(1)) => r,
                _ = shutdown.changed() => continue,
            },
        };
        let mut jobs = match received {
            Ok(jobs) => {
                backoff = Duration::from_millis(100);
                jobs
            }
            Err(_) if stopped_at.is_some() => break,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "⚠️ Work queue unavailable; the database sweep keeps messages safe");
                // The send slots are shared with the sweep's fallback, which answers messages
                // while the queue is down: give them back before waiting.
                send_slots.clear();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.changed() => {},
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        if jobs.is_empty() {
            if stopped_at.is_some() {
                break; // drained
            }
            continue;
        }
        if app.is_dry_run() && jobs.len() < max.min(BATCH_MAX / 4) {
            tokio::time::sleep(DRY_RUN_GATHER).await;
            // Without blocking; an error here is the next receive's to report.
            if let Ok(more) = app.queue.receive(max - jobs.len(), Duration::ZERO).await {
                jobs.extend(more);
            }
        }
        if paced {
            pace.spend(jobs.len());
        }
        let app = app.clone();
        let sends = sends.clone();
        tokio::spawn(async move {
            process_batch(&app, jobs, send_slots, &sends).await;
            drop(batch_slot);
        });
    }
    // The whole shutdown, queue drain included, stays within `drain` of the stop signal.
    let deadline = stopped_at.unwrap_or_else(Deadline::now) + drain;
    let _ = app.sends_end_by.set(deadline.into_std());
    let drained = tokio::time::timeout_at(deadline, async {
        let _b = batches.acquire_many(in_flight as u32).await;
        let _s = sends.acquire_many(concurrency as u32).await;
    })
    .await;
    // What the in-process queue still holds dies with the process (Redis keeps its jobs);
    // the messages are recorded, so the next start's sweep answers them.
    let left = if drains_queue {
        app.queue.depth().await.unwrap_or(0)
    } else {
        0
    };
    match (drained, left) {
        (Ok(()), 0) => tracing::info!("worker stopped: in-flight replies finished"),
        (Ok(()), left) => tracing::warn!(
            unanswered = left,
            "⚠️ worker stopped with {left} queued messages unanswered (a shutdown takes work from the queue for its first {} s, then finishes what it took); they are recorded, and the next start's sweep answers them",
            (drain / 2).as_secs()
        ),
        (Err(_), left) => tracing::warn!(
            unanswered = left,
            "⚠️ worker stopped with replies still in flight after {} s; they and any queued messages are answered by the next start's sweep",
            drain.as_secs()
        ),
    }
}

/// The outcome of [`permit`].
enum Permit {
    Got(OwnedSemaphorePermit),
    /// The stop signal changed while waiting: look at it again.
    Signal,
    /// The queue drain's time is over (or the semaphore closed): stop taking work.
    Over,
}

/// Waits for a permit of `slots`: raced against the stop signal while running, bounded by the
/// end of the queue drain (`drain_until`) once stopping.
///
/// Waiting here is not being stuck: every slot is held by a batch or a send, each bounded by its
/// own deadlines (a Twilio that does not answer holds a send for about 80 s). The wait beats the
/// heartbeat, so `/readyz` does not call the worker stuck (and take the instance out of
/// routing, where webhooks would be lost) while Twilio is slow.
async fn permit(
    heartbeat: impl Fn(),
    slots: &Arc<Semaphore>,
    drain_until: Option<Deadline>,
    shutdown: &mut watch::Receiver<bool>,
) -> Permit {
    let acquire = slots.clone().acquire_owned();
    let drained = async {
        match drain_until {
            Some(until) => tokio::time::sleep_until(until).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(acquire, drained);
    let mut beat = tokio::time::interval(crate::app::WORKER_STALE_AFTER / 4);
    let acquired = loop {
        tokio::select! {
            p = &mut acquire => break p,
            _ = beat.tick() => heartbeat(),
            () = &mut drained => return Permit::Over,
            _ = shutdown.changed(), if drain_until.is_none() => return Permit::Signal,
        }
    };
    acquired.map_or(Permit::Over, Permit::Got)
}

/// A batch the database refused for a reason other than being unavailable (one message it will
/// not take, whatever the cause) is processed again one message at a time: otherwise that one
/// message would hold back every message batched with it, at every redelivery and sweep.
///
/// The jobs stay in `held` until their turn, so a panic gives the rest back; each takes one of
/// the batch's send slots while they last, so a message is not claimed and then kept waiting
/// for a slot the next batch took.
fn one_at_a_time<'a>(
    app: &'a Arc<App>,
    mut held: Held,
    send_slots: Vec<OwnedSemaphorePermit>,
    sends: &'a Arc<Semaphore>,
    error: &StoreError,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
    tracing::warn!(
        jobs = held.jobs.len(),
        error = %error,
        "⚠️ the database refused a batch of messages; processing them one at a time so that only the message at fault waits"
    );
    Box::pin(async move {
        let mut slots = send_slots.into_iter();
        while !held.jobs.is_empty() {
            let job = held.jobs.remove(0);
            process_batch(app, vec![job], slots.next().into_iter().collect(), sends).await;
        }
    })
}

/// What the handler decided for one claimed message.
enum Decision {
    /// No reply: record this state with the batch's outcomes.
    Finish(InboundState),
    /// Answer with this reply: recorded as a dry run, or sent through Twilio.
    Reply(Box<(InboundMessage, Reply)>),
}

/// Claims the jobs' messages with one statement, records every outcome that needs no Twilio
/// call in one transaction, acknowledges those jobs, and starts a task per real send. A send
/// uses one of `send_slots` (taken from `sends` by the caller), or waits for a slot of `sends`
/// when none is left. Never panics; logs every outcome.
pub async fn process_batch(
    app: &Arc<App>,
    jobs: Vec<Job>,
    mut send_slots: Vec<OwnedSemaphorePermit>,
    sends: &Arc<Semaphore>,
) {
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    let started = Instant::now();
    let until = Deadline::now() + STORE_RETRY_WINDOW;
    // The claim below is written with a lease of CLAIM_LEASE from a moment after this one.
    let lease_end = Deadline::now() + CLAIM_LEASE;
    // A name unique to this attempt: a retry after a lost answer gets its own rows back.
    let claim_id = format!(
        "{}#{}",
        app.worker_id,
        ATTEMPTS.fetch_add(1, Ordering::Relaxed)
    );
    let mut held = Held::new(app.queue.clone(), jobs);
    let sids: Vec<&str> = held.jobs.iter().map(|j| j.message_sid.as_str()).collect();
    let label = if sids.len() == 1 {
        sids[0].to_owned()
    } else {
        "(batch)".to_owned()
    };
    let label = label.as_str();
    if app.is_dry_run() {
        // Nothing leaves the process: claim, decide and record in one transaction.
        let answered = retry_unavailable(label, "answering messages", until, || {
            app.store
                .answer_inbound_many(&sids, &claim_id, |row| match decide(app, row) {
                    Decision::Finish(state) => (state, None),
                    Decision::Reply(pair) => {
                        (InboundState::DryRun, Some(dry_run_reply(app, *pair)))
                    }
                })
        })
        .await;
        match answered {
            Ok(outcomes) => {
                log_finished(app, &outcomes, started);
                held.ack().await;
            }
            Err(e) if !e.is_unavailable() && held.jobs.len() > 1 => {
                one_at_a_time(app, held, send_slots, sends, &e).await;
            }
            Err(e) => {
                // Nothing was written: the jobs come back (Redis redelivers them, the sweep
                // finds them in the database).
                tracing::warn!(jobs = held.jobs.len(), error = %e, "⚠️ could not answer messages; will retry");
                held.release().await;
            }
        }
        return;
    }
    let claimed = match retry_unavailable(label, "claiming messages", until, || {
        app.store.claim_inbound_many(&sids, &claim_id, CLAIM_LEASE)
    })
    .await
    {
        Ok(rows) => rows,
        Err(e) if !e.is_unavailable() && held.jobs.len() > 1 => {
            one_at_a_time(app, held, send_slots, sends, &e).await;
            return;
        }
        Err(e) => {
            // Nothing was claimed: the jobs come back (Redis redelivers them, the sweep finds
            // them in the database).
            tracing::warn!(jobs = held.jobs.len(), error = %e, "⚠️ could not claim messages; will retry");
            held.release().await;
            return;
        }
    };

    let mut finished: Vec<(String, InboundState)> = Vec::with_capacity(claimed.len());
    let mut to_send: Vec<(InboundMessage, Reply)> = Vec::new();
    for row in claimed {
        match decide(app, &row) {
            Decision::Finish(state) => finished.push((row.message_sid, state)),
            Decision::Reply(pair) => to_send.push(*pair),
        }
    }

    if !finished.is_empty() {
        let pairs: Vec<(&str, InboundState)> =
            finished.iter().map(|(s, st)| (s.as_str(), *st)).collect();
        match retry_unavailable(label, "recording outcomes", until, || {
            app.store.finish_inbound_many(&pairs)
        })
        .await
        {
            Ok(()) => log_finished(app, &finished, started),
            Err(e) => {
                // The claims stay until their lease expires; the sweep then retries them.
                tracing::warn!(messages = finished.len(), error = %e, "⚠️ could not record the outcome; the sweep will retry");
            }
        }
    }

    // Every job not waiting for a send is done: finished above, already answered elsewhere,
    // held by another worker, or unknown.
    let mut send_jobs =
        held.split_off(|j| to_send.iter().any(|(m, _)| m.message_sid == j.message_sid));
    held.ack().await;

    let (Some(client), Some(sender)) = (app.client.clone(), app.sender.clone()) else {
        return; // not dry run, so both are configured (`send_jobs` gives its jobs back)
    };
    for (msg, reply) in to_send {
        let slot = match send_slots.pop() {
            Some(slot) => slot,
            None => match sends.clone().acquire_owned().await {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let jobs = send_jobs.split_off(|j| j.message_sid == msg.message_sid);
        let app = app.clone();
        let (client, sender) = (client.clone(), sender.clone());
        tokio::spawn(async move {
            let state = send_reply(&app, &client, sender, &msg, reply, until, lease_end).await;
            let sid = msg.message_sid.as_str();
            finish(&app, sid, state, until).await;
            jobs.ack().await;
            if state != InboundState::Failed && state != InboundState::Processing {
                let dry_run = state == InboundState::DryRun;
                tracing::info!(
                    message_sid = sid,
                    latency_ms = crate::metrics::latency_ms(started.elapsed()),
                    dry_run,
                    reply = if dry_run { "dry_run" } else { "sent" },
                    "✅ Message processed successfully"
                );
            }
            drop(slot);
        });
    }
}

/// Counts and logs every message the batch finished, once its outcomes are committed (a batch
/// that is retried or given back decides its messages again; failures were logged when
/// decided). Finished without a Twilio call, `Answered` means no reply was due: `skipped`.
fn log_finished(app: &App, finished: &[(String, InboundState)], started: Instant) {
    let latency_ms = crate::metrics::latency_ms(started.elapsed());
    for (sid, state) in finished {
        match state {
            InboundState::DryRun => app.metrics.send_outcome("dry_run"),
            InboundState::Answered => app.metrics.send_outcome("skipped"),
            InboundState::Failed => app.metrics.send_outcome("failed"),
            _ => {}
        }
        if matches!(state, InboundState::DryRun | InboundState::Answered) {
            tracing::info!(
                message_sid = %sid,
                latency_ms,
                dry_run = *state == InboundState::DryRun,
                // A message finished without a Twilio call needed no reply (the handler gave
                // none, or it is validate-webhook's test message).
                reply = if *state == InboundState::DryRun { "dry_run" } else { "none" },
                "✅ Message processed successfully"
            );
        }
    }
}

/// What to do with one claimed message; logs the reason for anything but a normal reply. Counts
/// nothing: the outcome may not be committed (see `log_finished`).
fn decide(app: &App, row: &store::InboundMessage) -> Decision {
    let sid = row.message_sid.as_str();
    if row.attempts > MAX_CLAIMS {
        tracing::error!(
            message_sid = sid,
            attempts = row.attempts,
            "❌ giving up on this message after {MAX_CLAIMS} attempts without an outcome; marked failed (see outbound_messages for the last error)"
        );
        return Decision::Finish(InboundState::Failed);
    }
    let msg = match InboundMessage::from_params(json_to_params(&row.params_json)) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(message_sid = sid, error = %e, "❌ stored message cannot be parsed; marking failed");
            return Decision::Finish(InboundState::Failed);
        }
    };
    if App::is_probe(&msg) {
        tracing::info!(
            message_sid = sid,
            "validate-webhook probe recorded; not answering it"
        );
        return Decision::Finish(InboundState::Answered);
    }
    // The handler is the application's code: a panic in it must cost this message only. Left
    // to unwind, it would end the whole batch's task mid-way (the other messages waiting for
    // their claim's lease, or in dry run rolled back and swept into the same panic again).
    let decided =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.handler.reply(&msg)));
    let reply = match decided {
        Ok(Some(reply)) => reply,
        Ok(None) => return Decision::Finish(InboundState::Answered),
        Err(panic) => {
            tracing::error!(
                message_sid = sid,
                panic = panic_message(panic.as_ref()),
                "❌ the reply handler panicked on this message; marked failed, not retried (the other messages of its batch are answered)"
            );
            return Decision::Finish(InboundState::Failed);
        }
    };
    Decision::Reply(Box::new((msg, reply)))
}

/// The text a panic was raised with (`panic!("…")` carries a `&str` or a `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(not a text)"
    }
}

/// The row that records `reply` as a dry run (no sender configured).
fn dry_run_reply(app: &App, (msg, reply): (InboundMessage, Reply)) -> NewOutbound {
    NewOutbound {
        from: reply_from(app, &msg),
        inbound_message_sid: msg.message_sid,
        to: msg.from,
        body: reply.body.unwrap_or_default(),
    }
}

/// The `From` recorded on a reply: the configured WhatsApp sender, or the number the message
/// was sent to (a Messaging Service picks its sender itself).
fn reply_from(app: &App, msg: &InboundMessage) -> String {
    match &app.sender {
        Some(config::Sender::WhatsAppFrom(f)) => f.clone(),
        _ => msg.to.clone(),
    }
}

/// Looks for the Twilio messages `request` may already have created (since `outbound` was
/// created) and records the first that no other reply has recorded, counting `posts`.
/// Identical replies to one person all match, so each takes its own; the unique index on
/// `message_sid` settles two takers at once. `Some(state)` when that settled it (answered, or
/// to retry after an error), `None` when nothing was sent yet.
async fn reconcile(
    app: &App,
    client: &Arc<twilio_client::Client>,
    request: &SendMessage,
    outbound: &store::OutboundMessage,
    posts: u32,
    until: Deadline,
) -> Option<InboundState> {
    let sid = outbound.inbound_message_sid.as_str();
    // The first send began after the row was created; each attempt since moved updated_at, so
    // a lookup from updated_at would miss a message an earlier attempt did send.
    let (c, r, since) = (client.clone(), request.clone(), outbound.created_at);
    let candidates = match tokio::task::spawn_blocking(move || c.find_all_sent(&r, since)).await {
        Ok(Ok(candidates)) => candidates,
        Ok(Err(e)) => {
            tracing::warn!(message_sid = sid, error = %e, "⚠️ an earlier try of this reply is checked at Twilio before any resend (its row is still submitting), and the check failed; the reply is tried again after the claim lease");
            return Some(InboundState::Processing);
        }
        Err(e) => {
            tracing::error!(message_sid = sid, error = %e, "❌ the reply lookup panicked; will retry");
            return Some(InboundState::Processing);
        }
    };
    for m in candidates {
        let recorded = retry_unavailable(sid, "recording the sent reply", until, || {
            app.store
                .update_outbound(outbound.id, OutboundUpdate::sent(&m.sid, &m.status, posts))
        })
        .await;
        match recorded {
            Ok(()) => {
                reply_sent(app, sid, &m.sid, posts, true);
                return Some(InboundState::Answered);
            }
            Err(e) if e.is_constraint() => continue,
            Err(e) => {
                tracing::warn!(message_sid = sid, reply_sid = %m.sid, error = %e, "⚠️ reply found but not recorded; will reconcile");
                return Some(InboundState::Processing);
            }
        }
    }
    None
}

/// Counts and logs a reply Twilio accepted (`recovered`: found by a lookup, not sent again).
fn reply_sent(app: &App, sid: &str, reply_sid: &str, attempts: u32, recovered: bool) {
    app.metrics.send_outcome("sent");
    tracing::info!(
        message_sid = sid,
        reply_sid,
        attempts,
        recovered,
        "reply sent"
    );
}

/// How long a send that starts at `now` may take so that it ends [`LEASE_MARGIN`] before the
/// claim expires at `lease_end`; `None` when that leaves no room for one request of `timeout`.
pub fn send_budget(lease_end: Deadline, now: Deadline, timeout: Duration) -> Option<Duration> {
    lease_end
        .checked_duration_since(now)?
        .checked_sub(LEASE_MARGIN)
        .filter(|budget| *budget >= timeout)
}

async fn send_reply(
    app: &App,
    client: &Arc<twilio_client::Client>,
    sender: config::Sender,
    msg: &InboundMessage,
    reply: Reply,
    until: Deadline,
    lease_end: Deadline,
) -> InboundState {
    let sid = msg.message_sid.as_str();
    let new = NewOutbound {
        inbound_message_sid: sid.to_owned(),
        to: msg.from.clone(),
        from: reply_from(app, msg),
        body: reply.body.clone().unwrap_or_default(),
    };
    let outbound = match retry_unavailable(sid, "creating the outbound row", until, || {
        app.store.create_outbound(new.clone())
    })
    .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(message_sid = sid, error = %e, "⚠️ could not create the outbound row; will retry");
            return InboundState::Processing;
        }
    };
    if outbound.is_final() {
        // A previous attempt already got an answer from Twilio (or was a dry run), and a crash
        // kept the message from taking it: it takes it now.
        return if outbound.status == store::outbound_status::DRY_RUN {
            InboundState::DryRun
        } else if outbound.message_sid.is_none() {
            // Terminal without a SID: Twilio refused the send.
            InboundState::Failed
        } else {
            InboundState::Answered
        };
    }
    let client = client.clone();
    let mut request = SendMessage {
        to: msg.from.clone(),
        from: None,
        messaging_service_sid: None,
        body: reply.body,
        media_urls: reply.media_urls,
        content_sid: reply.content_sid,
        content_variables: reply.content_variables,
        status_callback: app
            .settings
            .status_callback_url()
            .map(|url| with_marker(&url, &outbound.callback_marker)),
    };
    match sender {
        config::Sender::WhatsAppFrom(f) => request.from = Some(f),
        config::Sender::MessagingService(mg) => request.messaging_service_sid = Some(mg),
    }
    let in_doubt = outbound.is_in_doubt();
    if send_budget(lease_end, Deadline::now(), client.timeout()).is_none() {
        // The database steps above took most of the lease (an outage): sending now could
        // outlast the claim. Leave the message to the next attempt after the lease.
        tracing::warn!(
            message_sid = sid,
            "⚠️ claim about to expire before the send; the sweep will retry"
        );
        return InboundState::Processing;
    }
    // Mark the attempt before it goes out, so a crash mid-send is visible and is looked up, not resent blindly.
    if let Err(e) = retry_unavailable(sid, "marking the reply as sending", until, || {
        app.store
            .update_outbound(outbound.id, OutboundUpdate::sending())
    })
    .await
    {
        tracing::warn!(message_sid = sid, error = %e, "⚠️ could not mark the reply as sending; will retry");
        return InboundState::Processing;
    }
    if in_doubt {
        // An earlier attempt was interrupted after the request may have gone out: look for
        // what it sent before sending again.
        let posts = u32::from(outbound.attempts == 0);
        if let Some(state) = reconcile(app, &client, &request, &outbound, posts, until).await {
            return state;
        }
    }
    // Kept for a lookup after the send, should another reply's lookup have taken its SID.
    let (lookup, lookup_client) = (request.clone(), client.clone());
    let records = Records {
        runtime: tokio::runtime::Handle::current(),
        store: app.store.clone(),
        outbound_id: outbound.id,
        end_by: app.sends_end_by.clone(),
    };
    let result = tokio::task::spawn_blocking(move || {
        // The budget is taken here, after the lookup, so no POST outlasts the claim.
        let budget = send_budget(lease_end, Deadline::now(), client.timeout()).unwrap_or_default();
        client
            .send_counting_attempts_with(&request, &RetryPolicy::default().within(budget), &records)
            .map(|o| (o.message, o.attempts, o.recovered))
    })
    .await;
    match result {
        Ok(Ok((m, attempts, recovered))) => {
            // The Twilio SID is only in memory now: keep trying to record it rather than
            // leave the next attempt a lookup.
            if let Err(e) = retry_unavailable(sid, "recording the sent reply", until, || {
                app.store.update_outbound(
                    outbound.id,
                    OutboundUpdate::sent(&m.sid, &m.status, attempts),
                )
            })
            .await
            {
                if e.is_constraint() {
                    // Another reply's lookup took this message, which is identical to the one
                    // that reply had sent: take that one now instead of waiting for the lease.
                    if let Some(state) =
                        reconcile(app, &lookup_client, &lookup, &outbound, attempts, until).await
                    {
                        return state;
                    }
                }
                // The row stays "submitting": the next attempt looks the message up instead of resending.
                if e.is_constraint() {
                    // The other reply's own try created nothing (or it is not listed yet): this
                    // one has no message of its own until a later lookup shows one.
                    tracing::warn!(
                        message_sid = sid,
                        reply_sid = %m.sid,
                        "⚠️ the message Twilio created for this reply is recorded on an identical reply to the same person (its lookup took it); this reply is looked up again, and sent if still missing, after its claim lease"
                    );
                } else {
                    tracing::warn!(message_sid = sid, reply_sid = %m.sid, error = %e, "⚠️ reply sent but not recorded; will reconcile");
                }
                return InboundState::Processing;
            }
            reply_sent(app, sid, &m.sid, attempts, recovered);
            InboundState::Answered
        }
        Ok(Err(failure)) if failure.out_of_time && !failure.error.may_have_been_sent() => {
            // The claim's time (or the shutdown's), not the retries, ran out, and nothing went
            // through: the next attempt (after the lease, with a new budget) tries again.
            // MAX_CLAIMS bounds it. The POSTs made and their error are on the row meanwhile.
            if failure.attempts > 0 {
                record_open_try(app, sid, outbound.id, &failure, until).await;
            }
            tracing::warn!(message_sid = sid, attempts = failure.attempts, error = %failure.error, "⚠️ no time left to send or retry (the claim's lease ends, or the server is stopping); the reply is tried again after the claim lease (about 2 minutes), by this process or the next start's sweep");
            InboundState::Processing
        }
        Ok(Err(failure)) if deferral(&failure.error).is_some() => {
            // Nothing was sent, and what stopped it passes by itself: the error and the POSTs
            // are recorded, and the next claim (after the lease) tries again; MAX_CLAIMS bounds
            // it, then the message is given up as `failed`.
            record_open_try(app, sid, outbound.id, &failure, until).await;
            let e = failure.error;
            app.metrics.send_outcome("deferred");
            tracing::warn!(
                message_sid = sid,
                attempts = failure.attempts,
                error = %e,
                error_code = e.code(),
                hint = e.hint(),
                "{}",
                deferral(&e).unwrap_or_default()
            );
            InboundState::Processing
        }
        Ok(Err(failure)) if failure.error.may_have_been_sent() => {
            // Unknown outcome: keep "submitting" so the next try looks the message up first;
            // the row shows the error and the POSTs meanwhile.
            record_open_try(app, sid, outbound.id, &failure, until).await;
            let e = failure.error;
            app.metrics.send_outcome("in_doubt");
            tracing::warn!(message_sid = sid, error = %e, "⚠️ reply outcome unknown (no answer from Twilio that says whether the message was created); it will be looked up before any resend");
            InboundState::Processing
        }
        Ok(Err(failure)) => {
            let e = failure.error;
            let _ = retry_unavailable(sid, "recording the failed send", until, || {
                app.store.update_outbound(
                    outbound.id,
                    OutboundUpdate::failed(e.code(), &e.to_string(), failure.attempts),
                )
            })
            .await;
            app.metrics.send_outcome("failed");
            tracing::error!(
                message_sid = sid,
                error = %e,
                error_code = e.code(),
                hint = e.hint(),
                "❌ Reply could not be sent"
            );
            InboundState::Failed
        }
        Err(join) => {
            tracing::error!(message_sid = sid, error = %join, "❌ send task failed");
            app.metrics.send_outcome("failed");
            InboundState::Processing
        }
    }
}

/// The log line of a send failure after which the reply is tried again by a later claim
/// instead of being failed: Twilio was never reached (DNS, a refused or timed-out connect; not
/// TLS) on the last of the tries, a few seconds in all, with no earlier try in doubt (the retry
/// looked those up), so a network blip does not lose the reply; or Twilio answered 429 to every
/// try (too many concurrent requests, `Retry-After` honoured), a limit that passes with the
/// account's other traffic; or the TLS handshake failed (one try: an intercepting proxy or a
/// clock off at boot is fixed by the operator, not by the next second). `None` for every other
/// failure.
fn deferral(e: &TwilioError) -> Option<&'static str> {
    if e.never_reached() {
        Some("⚠️ Twilio unreachable, nothing sent; the reply is tried again after the claim lease")
    } else if matches!(e, TwilioError::RateLimited { .. }) {
        Some(
            "⚠️ Twilio rate-limited the reply on every try (429), nothing sent; it is tried again after the claim lease",
        )
    } else if matches!(e, TwilioError::Tls { .. }) {
        Some(
            "⚠️ the TLS handshake with Twilio failed (a certificate this server does not trust: a proxy or antivirus intercepting HTTPS?), nothing sent; the reply is tried again after the claim lease",
        )
    } else {
        None
    }
}

/// Adds a send's POSTs and last error to its reply row, whose status stays (`submitting`): the
/// message is tried again, or looked up, after the claim lease.
async fn record_open_try(
    app: &App,
    sid: &str,
    outbound_id: i64,
    failure: &twilio_client::SendFailure,
    until: Deadline,
) {
    let _ = retry_unavailable(sid, "recording the send's error", until, || {
        app.store.update_outbound(
            outbound_id,
            OutboundUpdate {
                add_attempts: failure.attempts,
                error_code: failure.error.code(),
                error_message: Some(failure.error.to_string()),
                ..OutboundUpdate::default()
            },
        )
    })
    .await;
}

/// What the outbound rows say, for the lookups of a send whose response was lost (run on the
/// send's blocking thread): a SID a status callback attached to this reply through its marker
/// is this send's message; a SID another reply recorded is not.
struct Records {
    runtime: tokio::runtime::Handle,
    store: store::Store,
    outbound_id: i64,
    /// Set at shutdown (see `App::sends_end_by`): no retry starts that could end later, and a
    /// wait before one ends when the retry would.
    end_by: Arc<std::sync::OnceLock<std::time::Instant>>,
}

impl twilio_client::SendRecords for Records {
    fn known_sid(&self) -> Option<String> {
        self.runtime
            .block_on(self.store.get_outbound(self.outbound_id))
            .ok()
            .flatten()
            .and_then(|row| row.message_sid)
    }

    fn taken(&self, sid: &str) -> bool {
        // Unreadable counts as not taken: the unique index still refuses a second owner.
        self.runtime
            .block_on(self.store.outbound_by_message_sid(sid))
            .ok()
            .flatten()
            .is_some_and(|row| row.id != self.outbound_id)
    }

    fn time_left(&self) -> Option<Duration> {
        self.end_by
            .get()
            .map(|by| by.saturating_duration_since(std::time::Instant::now()))
    }

    /// A stop during a long wait (a 429's `Retry-After`) is noticed within this, not at its end.
    fn recheck_every(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }
}

/// Adds our `ref=<marker>` to a status callback URL: at the end of its query, before a
/// `#fragment` (Twilio's connection overrides such as `#rc=3`), which is never sent to us.
fn with_marker(url: &str, marker: &str) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let sep = if rest.contains('?') { '&' } else { '?' };
    let mut out = format!(
        "{rest}{sep}{}={marker}",
        crate::routes::CALLBACK_MARKER_PARAM
    );
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

async fn finish(app: &App, sid: &str, state: InboundState, until: Deadline) {
    if state == InboundState::Processing {
        return; // keep the claim; the lease expires and the sweep retries
    }
    if let Err(e) = retry_unavailable(sid, "recording the outcome", until, || {
        app.store.finish_inbound(sid, state)
    })
    .await
    {
        tracing::warn!(message_sid = sid, error = %e, "⚠️ could not record the outcome; the sweep will retry");
    }
}

/// Runs a database step, retrying with backoff (100 ms doubling to 5 s) while it fails because
/// the database is unavailable, until `until`. Other errors return at once. A step with no
/// answer within [`STEP_TIMEOUT`] (a database gone silent: a connection stuck in its statement)
/// ends as unavailable without a retry of its own, so the worker goes on instead of hanging:
/// the statement may still complete, and a second try would count a claim's attempt or a
/// reply's POSTs twice. Its jobs come back through the queue or the sweep.
async fn retry_unavailable<T, F, Fut>(
    sid: &str,
    step: &str,
    until: Deadline,
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        let Ok(answer) = tokio::time::timeout(STEP_TIMEOUT, op()).await else {
            return Err(StoreError::no_answer_within(STEP_TIMEOUT));
        };
        match answer {
            Err(e) if e.is_unavailable() && Deadline::now() + backoff < until => {
                tracing::warn!(
                    message_sid = sid,
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64,
                    "⚠️ database unavailable while {step}; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Processes messages that are not in the queue (the sweep's fallback while the queue is
/// unavailable): the same batch step as queued jobs, in batches of at most [`BATCH_MAX`] (with a
/// sender, at most `WORKER_CONCURRENCY`, each send holding a slot of its own). The slots are the
/// worker's, so sends from both stay within `WORKER_CONCURRENCY` together. Claims in the
/// database keep a message from being answered twice if the queue hands it out as well.
pub async fn process_directly(app: &Arc<App>, message_sids: &[String]) {
    let concurrency = app.send_concurrency();
    let sends = app.send_slots();
    let per_batch = if app.is_dry_run() {
        BATCH_MAX
    } else {
        concurrency
    };
    for chunk in message_sids.chunks(per_batch) {
        let jobs: Vec<Job> = chunk
            .iter()
            .map(|sid| Job {
                message_sid: sid.clone(),
                id: String::new(),
                deliveries: 1,
            })
            .collect();
        let mut slots = Vec::new();
        if !app.is_dry_run() {
            // All of the chunk's slots in one wait: holding some while queueing for more could
            // deadlock with the worker's shutdown drain, which waits for every slot at once.
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            let Ok(mut all) = sends.clone().acquire_many_owned(n).await else {
                return;
            };
            while all.num_permits() > 1 {
                slots.extend(all.split(1));
            }
            slots.push(all);
        }
        process_batch(app, jobs, slots, &sends).await;
    }
}

/// The jobs that came from the queue. Jobs with no queue entry (see `process_directly`) have
/// nothing to acknowledge or release. Only copies the list when there are such jobs: every
/// queued batch passes here.
fn queued(jobs: &[Job]) -> Cow<'_, [Job]> {
    if jobs.iter().all(from_queue) {
        Cow::Borrowed(jobs)
    } else {
        Cow::Owned(jobs.iter().filter(|j| from_queue(j)).cloned().collect())
    }
}

/// Whether `job` has a queue entry (the sweep's jobs have none: an empty id).
fn from_queue(job: &Job) -> bool {
    !job.id.is_empty()
}

/// Jobs a batch received and has not yet acknowledged or given back. Every path of a batch
/// ends its jobs with [`Held::ack`] or [`Held::release`]; one that ends otherwise (a panic in
/// our code, a return that forgot them) drops them, and dropping gives the queue entries back
/// from a spawned task, with an error line. Without that the in-process queue would count them
/// in flight for good: its depth and the sweep's "queue has room" test would be off for the
/// life of the process. (Their messages are safe either way: the sweep finds them in the
/// database once their claim's lease expires.)
struct Held {
    queue: Arc<dyn WorkQueue>,
    jobs: Vec<Job>,
}

impl Held {
    fn new(queue: Arc<dyn WorkQueue>, jobs: Vec<Job>) -> Held {
        Held { queue, jobs }
    }

    /// Moves the jobs matching `pred` into a `Held` of their own.
    fn split_off(&mut self, pred: impl Fn(&Job) -> bool) -> Held {
        let (taken, kept) = std::mem::take(&mut self.jobs).into_iter().partition(pred);
        self.jobs = kept;
        Held::new(self.queue.clone(), taken)
    }

    /// The jobs are done: acknowledged, not delivered again.
    async fn ack(mut self) {
        let jobs = std::mem::take(&mut self.jobs);
        let jobs = queued(&jobs);
        if jobs.is_empty() {
            return;
        }
        if let Err(e) = self.queue.ack_many(&jobs).await {
            tracing::warn!(jobs = jobs.len(), error = %e, "⚠️ could not acknowledge queue entries; they may be redelivered (the database claim prevents a second reply)");
        }
    }

    /// The batch could not be written: gives the jobs back (see [`WorkQueue::release`]).
    async fn release(mut self) {
        let jobs = std::mem::take(&mut self.jobs);
        release(&*self.queue, &jobs).await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut jobs = std::mem::take(&mut self.jobs);
        jobs.retain(from_queue);
        let Some(first) = jobs.first() else {
            return; // nothing to give back (or already acknowledged or released)
        };
        if std::thread::panicking() {
            tracing::error!(jobs = jobs.len(), first = %first.message_sid, "❌ a panic ended a batch; its queue entries are given back and the sweep answers their messages");
        } else {
            // Cancelled (the runtime stopping after the drain deadline), or a path that forgot
            // them: a bug, but the same remedy.
            tracing::warn!(jobs = jobs.len(), first = %first.message_sid, "⚠️ a batch ended without an outcome for its jobs; they are given back if the process goes on, and the sweep answers their messages");
        }
        // Outside a runtime, or on one that is stopping (the task is then dropped unrun), there
        // is no one left to count them: the in-process queue ends with the process.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let queue = self.queue.clone();
            runtime.spawn(async move { release(&*queue, &jobs).await });
        }
    }
}

/// Gives back jobs whose batch could not be written (see [`store::WorkQueue::release`]).
async fn release(queue: &dyn WorkQueue, jobs: &[Job]) {
    let jobs = queued(jobs);
    if jobs.is_empty() {
        return;
    }
    if let Err(e) = queue.release(&jobs).await {
        tracing::warn!(jobs = jobs.len(), error = %e, "⚠️ could not give queue entries back; the sweep finds their messages");
    }
}

/// Turns stored params JSON back into pairs (arrays expand to repeated keys).
pub fn json_to_params(json: &str) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        match v {
            serde_json::Value::Array(values) => {
                for v in values {
                    out.push((k.clone(), json_string(v)));
                }
            }
            v => out.push((k, json_string(v))),
        }
    }
    out
}

fn json_string(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::params_to_json;

    /// Every send slot held by slow sends (Twilio not answering) for longer than the stale
    /// limit: the worker waiting for one still beats, so `/readyz` does not call it stuck; the
    /// wait ends with the slot.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_slot_beats_the_heartbeat() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let slots = Arc::new(Semaphore::new(0));
        let beats = Arc::new(AtomicU32::new(0));
        let (stop, mut shutdown) = watch::channel(false);
        let waiting = {
            let (slots, beats) = (slots.clone(), beats.clone());
            tokio::spawn(async move {
                let heartbeat = || {
                    beats.fetch_add(1, Ordering::Relaxed);
                };
                matches!(
                    permit(heartbeat, &slots, None, &mut shutdown).await,
                    Permit::Got(_)
                )
            })
        };
        tokio::time::sleep(crate::app::WORKER_STALE_AFTER * 2).await;
        let seen = beats.load(Ordering::Relaxed);
        assert!(
            seen >= 8,
            "a beat at least every quarter of the stale limit: {seen}"
        );
        slots.add_permits(1);
        assert!(waiting.await.unwrap(), "the slot ends the wait");
        drop(stop); // kept until here: a closed channel would end the wait as a stop signal
    }

    /// A database step that never answers (a connection stuck in its statement) ends with
    /// "unavailable" after STEP_TIMEOUT instead of holding the worker, and is not tried again
    /// (the statement may still complete: a second try could count a claim twice).
    #[tokio::test(start_paused = true)]
    async fn a_database_step_without_an_answer_does_not_hold_the_worker() {
        let started = Deadline::now();
        let mut tries = 0;
        let err = retry_unavailable(
            "SM1",
            "claiming",
            started + Duration::from_secs(300),
            || {
                tries += 1;
                std::future::pending::<Result<(), StoreError>>()
            },
        )
        .await
        .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(
            err.to_string().contains("did not answer within 30 s"),
            "{err}"
        );
        assert_eq!(started.elapsed(), STEP_TIMEOUT);
        assert_eq!(tries, 1);
    }

    #[test]
    fn a_failed_tls_handshake_defers_the_reply_like_an_unreachable_twilio() {
        let tls = TwilioError::Tls {
            detail: "invalid peer certificate: UnknownIssuer".to_owned(),
        };
        assert!(deferral(&tls).is_some_and(|line| line.contains("TLS handshake")));
        let unreachable = TwilioError::Connection {
            detail: "connection failed".to_owned(),
            may_have_been_sent: false,
        };
        assert!(deferral(&unreachable).is_some());
        // A connection lost after the request went out is in doubt, not deferred.
        let lost = TwilioError::Connection {
            detail: "i/o error".to_owned(),
            may_have_been_sent: true,
        };
        assert_eq!(deferral(&lost), None);
    }

    /// An in-process queue whose `n` jobs (`SM0`, `SM1`, …) were received by a batch.
    async fn received(n: usize) -> (Arc<store::InProcessQueue>, Vec<Job>) {
        let queue = Arc::new(store::InProcessQueue::new());
        for i in 0..n {
            queue.enqueue(&format!("SM{i}")).await.unwrap();
        }
        let jobs = queue.receive(n, Duration::ZERO).await.unwrap();
        assert_eq!(jobs.len(), n);
        (queue, jobs)
    }

    async fn depth_settles(queue: &store::InProcessQueue) -> u64 {
        // The release of a dropped `Held` runs in a task of its own.
        tokio::time::sleep(Duration::from_millis(50)).await;
        queue.depth().await.unwrap()
    }

    #[tokio::test]
    async fn jobs_whose_send_task_panics_stop_counting_as_in_flight() {
        let (queue, jobs) = received(3).await;
        let mut held = Held::new(queue.clone(), jobs);
        let sending = held.split_off(|j| j.message_sid == "SM1");
        held.ack().await;
        assert_eq!(
            depth_settles(&queue).await,
            1,
            "acknowledged once, the one being sent left"
        );

        let task = tokio::spawn(async move {
            let _jobs = sending;
            panic!("a bug in a send task");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(
            depth_settles(&queue).await,
            0,
            "the panicked task's job still counted in the queue's depth"
        );
    }

    #[tokio::test]
    async fn jobs_given_back_or_not_from_the_queue_are_not_given_back_twice() {
        let (queue, jobs) = received(2).await;
        let mut held = Held::new(queue.clone(), jobs);
        held.split_off(|j| j.message_sid == "SM0").release().await;
        // The sweep's jobs have no queue entry: dropping them touches no count.
        drop(Held::new(
            queue.clone(),
            vec![Job {
                message_sid: "SM9".to_owned(),
                id: String::new(),
                deliveries: 1,
            }],
        ));
        assert_eq!(depth_settles(&queue).await, 1, "SM1 is still in flight");
        drop(held);
        assert_eq!(depth_settles(&queue).await, 0);
    }

    #[test]
    fn the_marker_goes_into_the_query_before_any_fragment() {
        let base = "https://bot.example.com/api/v1/whatsapp/status";
        assert_eq!(with_marker(base, "reSM1"), format!("{base}?ref=reSM1"));
        assert_eq!(
            with_marker(&format!("{base}?src=tw"), "reSM1"),
            format!("{base}?src=tw&ref=reSM1")
        );
        assert_eq!(
            with_marker(&format!("{base}#rc=3&rp=all"), "reSM1"),
            format!("{base}?ref=reSM1#rc=3&rp=all")
        );
        assert_eq!(
            with_marker(&format!("{base}?src=tw#rc=3"), "reSM1"),
            format!("{base}?src=tw&ref=reSM1#rc=3")
        );
    }

    #[test]
    fn a_send_ends_a_margin_before_the_claim_expires() {
        let now = Deadline::now();
        let timeout = TWILIO_REQUEST_TIMEOUT;
        assert_eq!(
            send_budget(now + CLAIM_LEASE, now, timeout),
            Some(CLAIM_LEASE - LEASE_MARGIN),
            "a fresh claim leaves the send all but the margin"
        );
        // Less than one request left after the margin: no send at all.
        let nearly_over = now + LEASE_MARGIN + timeout - Duration::from_millis(1);
        assert_eq!(send_budget(nearly_over, now, timeout), None);
        assert_eq!(
            send_budget(now + LEASE_MARGIN + timeout, now, timeout),
            Some(timeout)
        );
        assert_eq!(
            send_budget(now, now + Duration::from_secs(1), timeout),
            None
        );
        // The default policy's worst case would outlast the claim: the budget is what bounds it.
        assert!(RetryPolicy::default().worst_case(timeout) > CLAIM_LEASE);
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_database_steps_are_retried_until_the_deadline() {
        use std::sync::atomic::AtomicU32;
        let calls = AtomicU32::new(0);
        let until = Deadline::now() + Duration::from_secs(60);
        let ok = retry_unavailable("SM1", "testing", until, || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err(StoreError::Unavailable("down".into())),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(ok, Ok(2), "succeeds on the third try");

        let calls = AtomicU32::new(0);
        let bug = retry_unavailable("SM1", "testing", until, || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(StoreError::Bug("no such table".into()))
        })
        .await;
        assert!(bug.is_err());
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "other errors are not retried"
        );

        let start = Deadline::now();
        let until = start + Duration::from_secs(60);
        let calls = AtomicU32::new(0);
        let down = retry_unavailable("SM1", "testing", until, || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(StoreError::Unavailable("down".into()))
        })
        .await;
        assert!(down.is_err_and(|e| e.is_unavailable()));
        let waited = Deadline::now() - start;
        assert!(
            waited > Duration::from_secs(50) && waited <= Duration::from_secs(60),
            "keeps trying for the window, then gives up: {waited:?}"
        );
        // 100 ms doubling to 5 s: 0.1+0.2+…+3.2 = 6.3 s in 7 tries, then every 5 s.
        assert!(calls.load(Ordering::Relaxed) < 20, "backs off");
    }

    #[test]
    fn params_round_trip_through_json() {
        let params = vec![
            ("MediaUrl".to_owned(), "a".to_owned()),
            ("Body".to_owned(), "hi ✅".to_owned()),
            ("MediaUrl".to_owned(), "b".to_owned()),
        ];
        let mut back = json_to_params(&params_to_json(&params));
        back.sort();
        let mut want = params;
        want.sort();
        assert_eq!(back, want);
    }
}

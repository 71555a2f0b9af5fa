//! Step 5 of the pipeline, off the request path: answer recorded messages.
//!
//! The worker takes message SIDs from the queue, claims each message in the database (so two
//! instances never answer the same message), asks the [`Handler`](crate::reply::Handler) for a
//! reply, creates the outbound row *before* sending (a crash mid-send leaves a trace instead of a
//! silent second message), sends through Twilio on a blocking thread, records the outcome and only
//! then acknowledges the queue entry. Concurrency is bounded by a semaphore; shutdown stops taking
//! new jobs and waits for in-flight ones up to a deadline.
//!
//! A database step that fails because the database is unavailable (an outage, a restart) is
//! retried with backoff for up to [`STORE_RETRY_WINDOW`] while the worker still holds the claim,
//! so a short outage delays the reply by the outage, not by a whole [`CLAIM_LEASE`].

use crate::app::App;
use crate::inbound::InboundMessage;
use crate::reply::Reply;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::{InboundState, Job, NewOutbound, OutboundUpdate, StoreError};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant as Deadline;
use twilio_client::{RetryPolicy, SendMessage};

/// How long a claim on a message lasts before another worker may take it over. Longer than the
/// worst-case send with retries, so a live worker is never overtaken.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// A message claimed this many times without an outcome is given up (state `failed`), so a
/// message whose processing keeps dying is not re-queued by the sweep forever.
pub const MAX_CLAIMS: i32 = 10;

/// How long one job keeps retrying a database step while the database is unavailable. Well
/// inside [`CLAIM_LEASE`], so the claim is still this worker's while it retries; after it the
/// job gives up and the lease expiring hands the message to the sweep.
pub const STORE_RETRY_WINDOW: Duration = Duration::from_secs(60);

/// Runs the worker until `shutdown` flips to true, then drains in-flight jobs for up to `drain`.
pub async fn run(
    app: Arc<App>,
    concurrency: usize,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let concurrency = concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut backoff = Duration::from_millis(100);
    tracing::info!(worker = %app.worker_id, concurrency, dry_run = app.is_dry_run(), "worker started");
    loop {
        app.beat();
        if *shutdown.borrow() {
            break;
        }
        let free = permits.available_permits().max(1);
        let received = tokio::select! {
            r = app.queue.receive(free, Duration::from_secs(1)) => r,
            _ = shutdown.changed() => continue,
        };
        let jobs = match received {
            Ok(jobs) => {
                backoff = Duration::from_millis(100);
                jobs
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "⚠️ Work queue unavailable; the database sweep keeps messages safe");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.changed() => {},
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        for job in jobs {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let app = app.clone();
            tokio::spawn(async move {
                process(&app, &job).await;
                drop(permit);
            });
        }
    }
    let deadline = tokio::time::timeout(drain, permits.acquire_many(concurrency as u32)).await;
    match deadline {
        Ok(_) => tracing::info!("worker stopped: in-flight replies finished"),
        Err(_) => tracing::warn!(
            "⚠️ worker stopped with replies still in flight after {} s; they will be retried by the next start's sweep",
            drain.as_secs()
        ),
    }
}

/// Handles one job end to end; never panics, logs every outcome.
pub async fn process(app: &App, job: &Job) {
    let started = Instant::now();
    let until = Deadline::now() + STORE_RETRY_WINDOW;
    let sid = job.message_sid.as_str();
    let claimed = match claim(app, sid, until).await {
        Ok(c) => c,
        Err(e) => {
            // Leave the job unacknowledged: it is redelivered or swept later.
            tracing::warn!(message_sid = sid, error = %e, "⚠️ could not claim message; will retry");
            return;
        }
    };
    let Some(row) = claimed else {
        // Already answered, or another worker holds it: nothing to do here.
        ack(app, job).await;
        return;
    };
    if row.attempts > MAX_CLAIMS {
        tracing::error!(
            message_sid = sid,
            attempts = row.attempts,
            "❌ giving up on this message after {MAX_CLAIMS} attempts without an outcome; marked failed (see outbound_messages for the last error)"
        );
        finish(app, sid, InboundState::Failed, until).await;
        ack(app, job).await;
        return;
    }
    let msg = match InboundMessage::from_params(json_to_params(&row.params_json)) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(message_sid = sid, error = %e, "❌ stored message cannot be parsed; marking failed");
            finish(app, sid, InboundState::Failed, until).await;
            ack(app, job).await;
            return;
        }
    };
    let state = if App::is_probe(&msg) {
        tracing::info!(
            message_sid = sid,
            "validate-webhook probe recorded; not answering it"
        );
        app.metrics.send_outcome("skipped");
        InboundState::Answered
    } else {
        match app.handler.reply(&msg) {
            None => {
                app.metrics.send_outcome("skipped");
                InboundState::Answered
            }
            Some(reply) => send_reply(app, &msg, reply, until).await,
        }
    };
    finish(app, sid, state, until).await;
    ack(app, job).await;
    if state != InboundState::Failed {
        tracing::info!(
            message_sid = sid,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            dry_run = app.is_dry_run(),
            "✅ Message processed successfully"
        );
    }
}

async fn send_reply(
    app: &App,
    msg: &InboundMessage,
    reply: Reply,
    until: Deadline,
) -> InboundState {
    let sid = msg.message_sid.as_str();
    let from = match &app.sender {
        Some(config::Sender::WhatsAppFrom(f)) => f.clone(),
        _ => msg.to.clone(),
    };
    let new = NewOutbound {
        inbound_message_sid: sid.to_owned(),
        to: msg.from.clone(),
        from: from.clone(),
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
        // A previous attempt already got an answer from Twilio (or was a dry run).
        return InboundState::Answered;
    }
    let (Some(client), Some(sender)) = (app.client.clone(), app.sender.clone()) else {
        let _ = retry_unavailable(sid, "recording a dry run", until, || {
            app.store
                .update_outbound(outbound.id, OutboundUpdate::dry_run())
        })
        .await;
        app.metrics.send_outcome("dry_run");
        tracing::info!(message_sid = sid, to = %msg.from, "reply recorded as dry run (no TWILIO_WHATSAPP_FROM / TWILIO_MESSAGING_SERVICE_SID or credentials)");
        return InboundState::DryRun;
    };
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
    let since = outbound.updated_at;
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
    let policy = RetryPolicy::default();
    let result = tokio::task::spawn_blocking(move || {
        if in_doubt {
            // An earlier attempt was interrupted after the request may have gone out.
            match client.find_sent(&request, since) {
                Ok(Some(message)) => return Ok((message, 0, true)),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        client
            .send_with_retry(&request, &policy)
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
                // The row stays "submitting": the next attempt looks the message up instead of resending.
                tracing::warn!(message_sid = sid, reply_sid = %m.sid, error = %e, "⚠️ reply sent but not recorded; will reconcile");
                return InboundState::Processing;
            }
            app.metrics.send_outcome("sent");
            tracing::info!(
                message_sid = sid,
                reply_sid = %m.sid,
                attempts,
                recovered,
                "reply sent"
            );
            InboundState::Answered
        }
        Ok(Err(e)) if e.may_have_been_sent() => {
            // Unknown outcome: keep "submitting" so the next try looks the message up first.
            app.metrics.send_outcome("in_doubt");
            tracing::warn!(message_sid = sid, error = %e, "⚠️ reply outcome unknown (Twilio did not answer); it will be looked up before any resend");
            InboundState::Processing
        }
        Ok(Err(e)) => {
            let _ = retry_unavailable(sid, "recording the failed send", until, || {
                app.store.update_outbound(
                    outbound.id,
                    OutboundUpdate::failed(e.code(), &e.to_string(), 1),
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

/// Adds our `ref=<marker>` to a status callback URL.
fn with_marker(url: &str, marker: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}{}={marker}",
        crate::routes::CALLBACK_MARKER_PARAM
    )
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

/// Claims the message under a name unique to this attempt (`<worker id>#<n>`), retrying while
/// the database is unavailable. A claim whose commit went through but whose answer was lost
/// (the connection dropped) looks like "held by someone else" to the retry; the row's
/// `claimed_by` tells whether that someone is this very attempt.
async fn claim(
    app: &App,
    sid: &str,
    until: Deadline,
) -> Result<Option<store::InboundMessage>, StoreError> {
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    let claim_id = format!(
        "{}#{}",
        app.worker_id,
        ATTEMPTS.fetch_add(1, Ordering::Relaxed)
    );
    let tries = AtomicU64::new(0);
    let claimed = retry_unavailable(sid, "claiming the message", until, || {
        tries.fetch_add(1, Ordering::Relaxed);
        app.store.claim_inbound(sid, &claim_id, CLAIM_LEASE)
    })
    .await?;
    if claimed.is_some() || tries.load(Ordering::Relaxed) == 1 {
        return Ok(claimed);
    }
    let row = retry_unavailable(sid, "checking the claim", until, || {
        app.store.get_inbound(sid)
    })
    .await?;
    Ok(row.filter(|r| {
        r.state == InboundState::Processing && r.claimed_by.as_deref() == Some(claim_id.as_str())
    }))
}

/// Runs a database step, retrying with backoff (100 ms doubling to 5 s) while it fails because
/// the database is unavailable, until `until`. Other errors return at once.
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
        match op().await {
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

async fn ack(app: &App, job: &Job) {
    if let Err(e) = app.queue.ack(job).await {
        tracing::warn!(message_sid = %job.message_sid, error = %e, "⚠️ could not acknowledge the queue entry; it may be redelivered (the database claim prevents a second reply)");
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

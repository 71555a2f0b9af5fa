//! Step 5 of the pipeline, off the request path: answer recorded messages.
//!
//! The worker takes message SIDs from the queue, claims each message in the database (so two
//! instances never answer the same message), asks the [`Handler`](crate::reply::Handler) for a
//! reply, creates the outbound row *before* sending (a crash mid-send leaves a trace instead of a
//! silent second message), sends through Twilio on a blocking thread, records the outcome and only
//! then acknowledges the queue entry. Concurrency is bounded by a semaphore; shutdown stops taking
//! new jobs and waits for in-flight ones up to a deadline.

use crate::app::App;
use crate::inbound::InboundMessage;
use crate::reply::Reply;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{InboundState, Job, NewOutbound, OutboundUpdate};
use tokio::sync::{Semaphore, watch};
use twilio_client::{RetryPolicy, SendMessage};

/// How long a claim on a message lasts before another worker may take it over. Longer than the
/// worst-case send with retries, so a live worker is never overtaken.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

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
    let sid = job.message_sid.as_str();
    let claimed = match app
        .store
        .claim_inbound(sid, &app.worker_id, CLAIM_LEASE)
        .await
    {
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
    let msg = match InboundMessage::from_params(json_to_params(&row.params_json)) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(message_sid = sid, error = %e, "❌ stored message cannot be parsed; marking failed");
            finish(app, sid, InboundState::Failed).await;
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
            Some(reply) => send_reply(app, &msg, reply).await,
        }
    };
    finish(app, sid, state).await;
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

async fn send_reply(app: &App, msg: &InboundMessage, reply: Reply) -> InboundState {
    let sid = msg.message_sid.as_str();
    let from = match &app.sender {
        Some(config::Sender::WhatsAppFrom(f)) => f.clone(),
        _ => msg.to.clone(),
    };
    let outbound = match app
        .store
        .create_outbound(NewOutbound {
            inbound_message_sid: sid.to_owned(),
            to: msg.from.clone(),
            from: from.clone(),
            body: reply.body.clone().unwrap_or_default(),
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
        let _ = app
            .store
            .update_outbound(outbound.id, OutboundUpdate::dry_run())
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
    if let Err(e) = app
        .store
        .update_outbound(outbound.id, OutboundUpdate::sending())
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
            if let Err(e) = app
                .store
                .update_outbound(
                    outbound.id,
                    OutboundUpdate::sent(&m.sid, &m.status, attempts),
                )
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
            let _ = app
                .store
                .update_outbound(
                    outbound.id,
                    OutboundUpdate::failed(e.code(), &e.to_string(), 1),
                )
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

async fn finish(app: &App, sid: &str, state: InboundState) {
    if state == InboundState::Processing {
        return; // keep the claim; the lease expires and the sweep retries
    }
    if let Err(e) = app.store.finish_inbound(sid, state).await {
        tracing::warn!(message_sid = sid, error = %e, "⚠️ could not record the outcome; the sweep will retry");
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

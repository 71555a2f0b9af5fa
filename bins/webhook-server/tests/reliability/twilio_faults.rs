//! Twilio failing while messages arrive: 429 with `Retry-After`, 5xx, a response that never
//! comes back in time (the message was created), and a permanent 400. Retries stop at the
//! policy's 4 tries, every outcome is recorded on `outbound_messages`, a rate-limited reply is
//! tried again by a later claim, a lost response is found by lookup instead of being sent
//! twice, and every webhook is still acknowledged.

use std::time::Duration;

use store::InboundState;
use test_support::{FakeTwilio, TestDb};

use crate::support::{DbView, Msg, ServerProcess, base_env, per_to, post_all, wait_for};

/// `twilio_client::RetryPolicy::default().max_attempts`, the server's policy.
const MAX_TRIES: usize = 4;
/// Messages in the burst.
const BURST: usize = 40;

fn posts_to(fake: &FakeTwilio, to: &str) -> usize {
    fake.sent_messages()
        .iter()
        .filter(|r| r.form_value("To") == Some(to))
        .count()
}

async fn outbound_of(db: &DbView, sid: &str) -> store::OutboundMessage {
    db.store
        .outbound_for_inbound(sid)
        .await
        .expect("read outbound")
        .expect("outbound row")
}

async fn state_of(db: &DbView, sid: &str) -> InboundState {
    db.store
        .get_inbound(sid)
        .await
        .expect("read inbound")
        .expect("row exists")
        .state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_outcomes_recorded_and_webhooks_unaffected() {
    let db = TestDb::sqlite();
    let fake = FakeTwilio::start().await;
    let server = ServerProcess::start(&base_env(&db.url(), Some(&fake))).await;
    let view = DbView::open(&db.url()).await;

    // 1. Rate limited on every try: 4 POSTs honouring Retry-After. Nothing was sent and a 429
    //    passes, so the reply is not failed for good: it keeps its claim, and a later claim
    //    (after the lease) sends it.
    let limited = Msg::new("twilio-429", 1);
    fake.rate_limit_next(MAX_TRIES + 2, 1);
    assert_eq!(server.post(&limited).await, 200);
    wait_for(
        "the rate-limited reply is deferred",
        Duration::from_secs(20),
        || async {
            server
                .logs()
                .contains("rate-limited the reply on every try")
        },
    )
    .await;
    assert_eq!(posts_to(&fake, &limited.from), MAX_TRIES);
    let out = outbound_of(&view, &limited.sid).await;
    assert_eq!(
        (
            out.status.as_str(),
            out.message_sid.as_deref(),
            out.attempts
        ),
        ("submitting", None, MAX_TRIES as i32),
        "the reply records every POST it took, and stays open"
    );
    assert!(
        out.error_message
            .as_deref()
            .is_some_and(|e| e.contains("rate-limited")),
        "the row says why: {:?}",
        out.error_message
    );
    assert_eq!(
        state_of(&view, &limited.sid).await,
        InboundState::Processing
    );
    fake.clear_requests();
    // The two rules left over would only hit the next sends: use them up harmlessly.
    let spare = Msg::new("twilio-spare", 2);
    assert_eq!(server.post(&spare).await, 200);
    wait_for(
        "the spare reply is sent",
        Duration::from_secs(20),
        || async { state_of(&view, &spare.sid).await == InboundState::Answered },
    )
    .await;
    // The claim's lease ends (as 120 s later): the sweep hands the message to the worker again,
    // which looks for an earlier send, finds none, and sends the reply once.
    assert_eq!(view.expire_leases_of(&server.worker_id()).await, 1);
    wait_for(
        "the rate-limited reply is sent by a later claim",
        Duration::from_secs(20),
        || async { state_of(&view, &limited.sid).await == InboundState::Answered },
    )
    .await;
    assert_eq!(posts_to(&fake, &limited.from), 1, "sent once, not again");
    let out = outbound_of(&view, &limited.sid).await;
    assert!(out.message_sid.is_some(), "{out:?}");
    assert_eq!(out.attempts, MAX_TRIES as i32 + 1, "every POST counted");
    fake.clear_requests();

    // 2. 5xx on every try: a 5xx does not prove the message was not created, so each retry is
    //    preceded by a lookup; after 4 POSTs the reply stays "submitting" (in doubt, to be looked
    //    up again after the claim lease) instead of being sent blindly.
    let broken = Msg::new("twilio-500", 3);
    fake.fail_next_sends(MAX_TRIES, 500, "error-500.json");
    assert_eq!(server.post(&broken).await, 200);
    wait_for(
        "the 5xx reply is in doubt",
        Duration::from_secs(30),
        || async { server.logs().contains("reply outcome unknown") },
    )
    .await;
    assert_eq!(posts_to(&fake, &broken.from), MAX_TRIES);
    let lookups = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.query_value("To") == Some(broken.from.as_str()))
        .count();
    assert_eq!(
        lookups, MAX_TRIES,
        "a lookup before each retry and one at the end"
    );
    let out = outbound_of(&view, &broken.sid).await;
    assert_eq!((out.status.as_str(), out.message_sid), ("submitting", None));
    assert_eq!(state_of(&view, &broken.sid).await, InboundState::Processing);

    // 3. A burst while Twilio misbehaves: one response held past the client's 10 s timeout
    //    (Twilio created that message), one 429, one 500, two permanent 400s (21211).
    let lost = Msg::new("twilio-timeout", 4);
    fake.delay_next_sends(1, Duration::from_secs(11));
    assert_eq!(server.post(&lost).await, 200);
    wait_for(
        "the held send reached Twilio",
        Duration::from_secs(10),
        || async { posts_to(&fake, &lost.from) == 1 },
    )
    .await;
    fake.rate_limit_next(1, 1);
    fake.fail_next_sends(1, 500, "error-500.json");
    fake.fail_next_sends(2, 400, "error-21211.json");
    let burst = Msg::batch("twilio-burst", 100, BURST);
    let statuses = post_all(&[server.addr], &burst, 8).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "webhooks are acknowledged while Twilio fails: {statuses:?}"
    );

    let mut all = burst.clone();
    all.push(lost.clone());
    wait_for(
        "every reply reaches a final state",
        Duration::from_secs(40),
        || async {
            for m in &all {
                if !matches!(
                    state_of(&view, &m.sid).await,
                    InboundState::Answered | InboundState::Failed
                ) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let created = per_to(
        fake.created_messages()
            .iter()
            .map(|m| m["to"].as_str().unwrap_or_default().to_owned()),
    );
    let mut failed = 0;
    for m in &all {
        let posts = posts_to(&fake, &m.from);
        assert!(
            (1..=MAX_TRIES).contains(&posts),
            "{posts} POSTs for {}",
            m.sid
        );
        let out = outbound_of(&view, &m.sid).await;
        match state_of(&view, &m.sid).await {
            InboundState::Failed => {
                failed += 1;
                assert_eq!(
                    (out.status.as_str(), out.error_code),
                    ("failed", Some(21211))
                );
                assert_eq!(created.get(&m.from), None, "nothing was created");
            }
            _ => {
                assert_eq!(created.get(&m.from), Some(&1), "one reply for {}", m.sid);
                assert!(out.message_sid.is_some(), "{out:?}");
                assert_eq!(
                    out.attempts as usize, posts,
                    "attempts recorded for {}",
                    m.sid
                );
            }
        }
    }
    assert_eq!(failed, 2, "exactly the two 21211s failed");
    assert_eq!(
        posts_to(&fake, &lost.from),
        1,
        "the lost response was looked up, not resent"
    );
    assert!(
        server
            .logs()
            .contains("lost response, message found by lookup")
    );
    server.assert_no_secrets(&[]);
}

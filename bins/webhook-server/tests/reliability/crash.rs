//! Crash safety: `kill -9` right after the last 200, restart on the same database, and every
//! acknowledged message is there and answered exactly once — including the replies whose send
//! was in flight when the process died (their outcome is looked up at Twilio, never resent).

use std::time::Duration;

use test_support::{FakeTwilio, TestDb};

use crate::support::{
    DbView, Msg, ServerProcess, assert_answered_once, base_env, post_all, set, wait_for,
};

/// Messages per run.
const N: usize = 200;
/// Sends held by the fake when the process is killed (= the worker's concurrency).
const IN_FLIGHT: usize = 4;

async fn crash_and_restart(db: TestDb) {
    let fake = FakeTwilio::start().await;
    // The first sends get no answer before the kill: Twilio created those messages, but the
    // server never learned their SIDs. They are the dangerous case for duplicates.
    fake.delay_next_sends(IN_FLIGHT, Duration::from_secs(60));
    let mut env = base_env(&db.url(), Some(&fake));
    set(&mut env, "WORKER_CONCURRENCY", IN_FLIGHT.to_string());
    let mut server = ServerProcess::start(&env).await;
    let view = DbView::open(&db.url()).await;

    let msgs = Msg::batch(db.kind(), 0, N);
    let statuses = post_all(&[server.addr], &msgs, 16).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every webhook acknowledged: {statuses:?}"
    );
    // Normally true long before the last 200; waiting makes the in-flight case certain.
    wait_for(
        "the held sends reached Twilio",
        Duration::from_secs(10),
        || async { fake.sent_messages().len() >= IN_FLIGHT },
    )
    .await;
    let worker = server.worker_id();
    server.kill9();

    // Everything acknowledged is on disk.
    assert_eq!(view.count("inbound_messages").await, N as i64);
    assert_eq!(
        view.count("outbound_messages WHERE status = 'submitting'")
            .await,
        IN_FLIGHT as i64,
        "sends in flight at the kill"
    );
    // The dead worker's claims would be taken over once their 120 s lease ran out; skip the
    // wait instead of sleeping through it.
    assert_eq!(
        view.expire_leases_of(&worker).await,
        IN_FLIGHT as u64,
        "claims held by the killed process"
    );

    let restarted = server.restart().await;
    assert_answered_once(&view, &fake, &msgs, Duration::from_secs(60)).await;
    // The in-flight ones were found at Twilio by lookup, not sent again.
    let logs = restarted.logs();
    let recovered = logs
        .lines()
        .filter(|l| l.contains("reply sent") && l.contains("recovered=true"))
        .count();
    assert_eq!(recovered, IN_FLIGHT, "{logs}");
    server.assert_no_secrets(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_last_200_loses_and_duplicates_nothing_on_sqlite() {
    crash_and_restart(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_last_200_loses_and_duplicates_nothing_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    crash_and_restart(db).await;
}

/// Identical replies to one person (a fixed template, the same text twice) are the hard case
/// for the lookup: every interrupted send matches every one of Twilio's messages. Each reply
/// must take a message of its own, and none may be sent again.
async fn crash_with_identical_replies(db: TestDb) {
    const SAME: usize = 6;
    const HELD: usize = 3;
    let fake = FakeTwilio::start().await;
    fake.delay_next_sends(HELD, Duration::from_secs(60));
    let mut env = base_env(&db.url(), Some(&fake));
    set(&mut env, "WORKER_CONCURRENCY", HELD.to_string());
    set(&mut env, "AUTO_REPLY_TEMPLATE", "Thanks, we got it");
    let mut server = ServerProcess::start(&env).await;
    let view = DbView::open(&db.url()).await;

    let msgs: Vec<Msg> = (0..SAME)
        .map(|i| Msg {
            from: "whatsapp:+15550009999".to_owned(),
            text: "hi".to_owned(),
            ..Msg::new(db.kind(), i)
        })
        .collect();
    let statuses = post_all(&[server.addr], &msgs, 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    wait_for(
        "the held sends reached Twilio",
        Duration::from_secs(10),
        || async { fake.sent_messages().len() >= HELD },
    )
    .await;
    let worker = server.worker_id();
    server.kill9();
    assert_eq!(view.expire_leases_of(&worker).await, HELD as u64);

    let restarted = server.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while view
        .count("inbound_messages WHERE state = 'answered'")
        .await
        < SAME as i64
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not every message answered within 60 s: inbound {:?}, outbound {:?}, server log:\n{}",
            view.states().await,
            view.outbound_statuses().await,
            restarted.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fake.sent_messages().len(),
        SAME,
        "one POST per message: the interrupted ones were found, not resent"
    );
    assert_eq!(fake.created_messages().len(), SAME, "no duplicate reply");
    let mut reply_sids = Vec::new();
    for m in &msgs {
        let out = view
            .store
            .outbound_for_inbound(&m.sid)
            .await
            .expect("read outbound")
            .unwrap_or_else(|| panic!("no outbound row for {}", m.sid));
        assert_eq!(out.attempts, 1, "one POST made it, found or sent: {out:?}");
        reply_sids.push(out.message_sid.expect("reply SID recorded"));
    }
    reply_sids.sort();
    reply_sids.dedup();
    assert_eq!(
        reply_sids.len(),
        SAME,
        "each reply has its own Twilio message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_replies_in_flight_at_a_kill_9_are_each_found_once_on_sqlite() {
    crash_with_identical_replies(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_replies_in_flight_at_a_kill_9_are_each_found_once_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    crash_with_identical_replies(db).await;
}

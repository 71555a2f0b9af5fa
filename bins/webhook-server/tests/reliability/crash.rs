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

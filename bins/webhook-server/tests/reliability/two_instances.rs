//! Two server processes (two worker ids) on one PostgreSQL database and one Redis stream, with
//! Twilio's duplicate deliveries of every message sent to both at once: one row and one reply
//! per `MessageSid`.

use std::time::Duration;

use test_support::services::require_redis;
use test_support::{FakeTwilio, TestDb};

use crate::support::{
    DbView, Msg, ServerProcess, assert_answered_once, base_env, get, post_all, redis_cmd, set,
};

/// Redis database index used by this test only.
const REDIS_DB: u8 = 10;
/// Distinct messages.
const N: usize = 60;
/// Deliveries of each, alternating between the instances.
const COPIES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_to_two_instances_give_one_row_and_one_reply() {
    if !require_redis() {
        return;
    }
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    redis_cmd(
        REDIS_DB,
        &["DEL", "whatsapp-webhook:jobs", "whatsapp-webhook:dead"],
    )
    .await;
    let fake = FakeTwilio::start().await;
    let mut env = base_env(&db.url(), Some(&fake));
    set(
        &mut env,
        "REDIS_URL",
        format!("redis://127.0.0.1:6379/{REDIS_DB}"),
    );
    // Started together: both run the migrations (an advisory lock serialises them).
    let (a, b) = tokio::join!(
        ServerProcess::start_named(&env, "a"),
        ServerProcess::start_named(&env, "b")
    );
    assert_ne!(a.worker_id(), b.worker_id());
    let view = DbView::open(&db.url()).await;

    let msgs = Msg::batch("two-instances", 0, N);
    // Every message COPIES times in a row, so its copies are in flight together on both.
    let copies: Vec<Msg> = msgs
        .iter()
        .flat_map(|m| std::iter::repeat_n(m.clone(), COPIES))
        .collect();
    let statuses = post_all(&[a.addr, b.addr], &copies, 32).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "duplicates are acknowledged too: {statuses:?}"
    );
    assert_answered_once(&view, &fake, &msgs, Duration::from_secs(45)).await;
    // Each message was claimed by exactly one of them, and both took part.
    let claims = |w: String| {
        let view = &view;
        async move {
            view.count(&format!("inbound_messages WHERE claimed_by LIKE '{w}#%'"))
                .await
        }
    };
    let (by_a, by_b) = (claims(a.worker_id()).await, claims(b.worker_id()).await);
    assert_eq!(
        by_a + by_b,
        N as i64,
        "every message claimed by one of them"
    );
    assert!(by_a > 0 && by_b > 0, "claims: a {by_a}, b {by_b}");
    // Exactly one delivery per SID was new, on whichever instance committed first.
    let duplicates = duplicate_count(&get(a.addr, "/metrics").await.body)
        + duplicate_count(&get(b.addr, "/metrics").await.body);
    assert_eq!(duplicates, (N * (COPIES - 1)) as u64);
    a.assert_no_secrets(&[]);
    b.assert_no_secrets(&[]);
    drop((a, b));
    redis_cmd(
        REDIS_DB,
        &["DEL", "whatsapp-webhook:jobs", "whatsapp-webhook:dead"],
    )
    .await;
}

/// The `whatsapp_webhook_duplicate_deliveries_total` counter of a `/metrics` page.
fn duplicate_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("whatsapp_webhook_duplicate_deliveries_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no duplicate counter in:\n{metrics}"))
}

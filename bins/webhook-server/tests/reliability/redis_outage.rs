//! Redis going away mid-load, and coming back empty as after a restart without persistence
//! (through a proxy in front of the shared Redis, on a database index of its own): webhooks keep
//! answering 200 because the database is the source of truth, `/readyz` reports the queue, and
//! once Redis is back the worker and the database sweep answer every message exactly once.

use std::time::Duration;

use test_support::services::{REDIS_ADDR, require_redis};
use test_support::{FakeTwilio, TestDb};

use crate::support::{
    DbView, Delivery, Load, Msg, Proxy, ServerProcess, assert_answered_once, base_env, get,
    redis_cmd, set, wait_for,
};

/// Redis database index used by this test only (the server's key prefix is fixed).
const REDIS_DB: u8 = 9;

/// The server on PostgreSQL with its Redis (database index `redis_db`, emptied) behind a
/// [`Proxy`] the test can cut or freeze, and a fake Twilio.
struct Outage {
    redis_db: u8,
    proxy: Proxy,
    fake: FakeTwilio,
    server: ServerProcess,
    view: DbView,
    _db: TestDb,
}

impl Outage {
    /// `None` when PostgreSQL or Redis is missing outside CI.
    async fn start(redis_db: u8) -> Option<Outage> {
        if !require_redis() {
            return None;
        }
        let db = TestDb::postgres().await?;
        clear_keys(redis_db).await;
        let proxy = Proxy::start(REDIS_ADDR).await;
        let fake = FakeTwilio::start().await;
        let mut env = base_env(&db.url(), Some(&fake));
        set(
            &mut env,
            "REDIS_URL",
            format!("redis://{}/{redis_db}", proxy.addr),
        );
        let server = ServerProcess::start(&env).await;
        let view = DbView::open(&db.url()).await;
        Some(Outage {
            redis_db,
            proxy,
            fake,
            server,
            view,
            _db: db,
        })
    }

    /// No secret in the logs; the process killed and the Redis keys removed.
    async fn finish(mut self) {
        self.server.assert_no_secrets(&[]);
        self.server.kill9();
        clear_keys(self.redis_db).await;
    }
}

fn assert_all_acknowledged(deliveries: &[Delivery]) {
    let failed: Vec<u16> = deliveries
        .iter()
        .map(|d| d.status)
        .filter(|s| *s != 200)
        .collect();
    assert!(failed.is_empty(), "every webhook acknowledged: {failed:?}");
}

async fn clear_keys(redis_db: u8) {
    redis_cmd(
        redis_db,
        &["DEL", "whatsapp-webhook:jobs", "whatsapp-webhook:dead"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_stay_200_while_redis_is_down_and_no_reply_is_lost_or_doubled() {
    let Some(mut t) = Outage::start(REDIS_DB).await else {
        return;
    };

    let load = Load::start(t.server.addr, "redis-outage", 4, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.proxy.cut().await;
    wait_for(
        "/readyz reports the queue",
        Duration::from_secs(10),
        || async {
            let r = get(t.server.addr, "/readyz").await;
            r.status == 503 && r.body.contains(r#""queue":"unavailable"#)
        },
    )
    .await;
    // Webhooks are still taken: the health check render.yaml uses stays 200 (Render takes an
    // instance out of routing after 15 s of failures), and reports the queue.
    let webhooks = get(t.server.addr, "/readyz/webhooks").await;
    assert_eq!(webhooks.status, 200, "{}", webhooks.body);
    assert!(
        webhooks.body.contains(r#""queue":"unavailable"#),
        "{}",
        webhooks.body
    );
    // A Redis restarted without persistence has lost the stream and the consumer group.
    let deleted = redis_cmd(REDIS_DB, &["DEL", "whatsapp-webhook:jobs"]).await;
    assert!(
        deleted.contains(":1\r\n"),
        "the stream existed: {deleted:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    t.proxy.restore().await;
    wait_for("/readyz recovers", Duration::from_secs(30), || async {
        get(t.server.addr, "/readyz").await.status == 200
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deliveries = load.stop().await;

    assert!(t.server.is_alive(), "the process stayed up");
    assert_all_acknowledged(&deliveries);
    let logs = t.server.logs();
    assert!(
        logs.contains("Message recorded but not queued"),
        "enqueue failures are logged"
    );
    assert!(
        logs.contains("consumer group missing") || logs.contains("created redis consumer group"),
        "the lost consumer group was recreated"
    );
    let msgs: Vec<Msg> = deliveries.into_iter().map(|d| d.msg).collect();
    assert!(
        msgs.len() > 50,
        "load ran through the outage: {}",
        msgs.len()
    );
    assert_answered_once(&t.view, &t.fake, &msgs, Duration::from_secs(45)).await;
    let unqueued = logs.matches("Message recorded but not queued").count();
    eprintln!(
        "redis outage: {} messages, all acknowledged, {unqueued} not queued (found by the sweep), \
         0 lost, 0 duplicated",
        msgs.len()
    );
    t.finish().await;
}

/// A Redis that accepts connections but never answers (a failover in progress, packets
/// dropped): each enqueue would wait the whole 2 s Redis timeout before the webhook's 200. The
/// first webhooks to meet the silence wait for it; after that, enqueues are skipped for the
/// cool-off (5 s) and one webhook per cool-off tries Redis again, so the rest are acknowledged
/// without waiting. Every message is still answered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_holds_few_webhooks_and_loses_no_reply() {
    let Some(t) = Outage::start(11).await else {
        return;
    };

    const SENDERS: usize = 4;
    let load = Load::start(
        t.server.addr,
        "redis-silent",
        SENDERS,
        Duration::from_millis(20),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let frozen_at = std::time::Instant::now();
    t.proxy.freeze();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let thawed_at = std::time::Instant::now();
    t.proxy.thaw();
    wait_for("/readyz recovers", Duration::from_secs(30), || async {
        get(t.server.addr, "/readyz").await.status == 200
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deliveries = load.stop().await;

    assert_all_acknowledged(&deliveries);
    let during: Vec<_> = deliveries
        .iter()
        .filter(|d| d.sent_at >= frozen_at && d.sent_at < thawed_at)
        .collect();
    // Held = waited for the Redis timeout (2 s). Without the breaker every sender waits for
    // every webhook: 8 s / 2 s × 4 senders = 16. With it: the senders' first webhooks (4) and
    // at most one probe per 5 s cool-off.
    let held = during
        .iter()
        .filter(|d| d.answered_at - d.sent_at >= Duration::from_millis(1500))
        .count();
    eprintln!(
        "silent redis: {} webhooks sent during the 8 s silence, {held} waited for the Redis \
         timeout, {} acknowledged without waiting",
        during.len(),
        during.len() - held
    );
    assert!(
        held <= SENDERS + 2,
        "{held} webhooks waited for the silent Redis; the breaker should skip the queue"
    );
    assert!(
        during.len() > 2 * held,
        "webhooks kept flowing during the silence: {} sent, {held} held",
        during.len()
    );
    let logs = t.server.logs();
    assert!(
        logs.contains("webhooks skip the queue"),
        "the breaker's opening is logged:\n{logs}"
    );
    let msgs: Vec<Msg> = deliveries.into_iter().map(|d| d.msg).collect();
    assert_answered_once(&t.view, &t.fake, &msgs, Duration::from_secs(60)).await;
    t.finish().await;
}

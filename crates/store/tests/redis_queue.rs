//! The Redis Streams queue against a real Redis, each test under its own key prefix.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use store::{RedisQueue, RedisQueueOptions, WorkQueue};

use crate::support::{REDIS_URL, require, unique};

/// Deletes the test's keys when dropped.
struct Keys(Vec<String>);

impl Drop for Keys {
    fn drop(&mut self) {
        if let Ok(client) = deadpool_redis::redis::Client::open(REDIS_URL)
            && let Ok(mut conn) = client.get_connection()
        {
            let _: Result<(), _> = deadpool_redis::redis::cmd("DEL")
                .arg(&self.0)
                .query(&mut conn);
        }
    }
}

fn options(prefix: &str, consumer: &str) -> RedisQueueOptions {
    RedisQueueOptions {
        key_prefix: prefix.to_owned(),
        consumer: consumer.to_owned(),
        reclaim_timeout: Duration::from_millis(300),
        send_timeout: Duration::from_millis(100),
        max_deliveries: 3,
        ..Default::default()
    }
}

async fn queue(prefix: &str, consumer: &str) -> RedisQueue {
    RedisQueue::connect(REDIS_URL, options(prefix, consumer))
        .await
        .unwrap()
}

fn setup() -> Option<(String, Keys)> {
    if !require("Redis", "127.0.0.1:6379") {
        return None;
    }
    let prefix = unique("store-test-");
    let keys = Keys(vec![format!("{prefix}:jobs"), format!("{prefix}:dead")]);
    Some((prefix, keys))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_never_take_the_same_job() {
    let Some((prefix, _keys)) = setup() else {
        return;
    };
    let a = Arc::new(queue(&prefix, "a").await);
    let b = Arc::new(queue(&prefix, "b").await);
    let sids: Vec<String> = (0..200).map(|i| format!("SM{i:032}")).collect();
    for s in &sids {
        a.enqueue(s).await.unwrap();
    }
    assert_eq!(a.depth().await.unwrap(), 200);

    let mut handles = Vec::new();
    // `a` acknowledges job by job, `b` a whole batch at once.
    for (q, batch_ack) in [(a.clone(), false), (b.clone(), true)] {
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let jobs = q.receive(16, Duration::from_millis(100)).await.unwrap();
                if jobs.is_empty() {
                    return got;
                }
                if batch_ack {
                    q.ack_many(&jobs).await.unwrap();
                }
                for j in jobs {
                    assert_eq!(j.deliveries, 1);
                    if !batch_ack {
                        q.ack(&j).await.unwrap();
                    }
                    got.push(j.message_sid);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 200, "every job delivered once");
    assert_eq!(distinct.len(), 200);
    assert_eq!(
        a.depth().await.unwrap(),
        0,
        "acknowledged jobs leave the stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_jobs_are_reclaimed_then_dead_lettered() {
    let Some((prefix, _keys)) = setup() else {
        return;
    };
    let dead = queue(&prefix, "dead-consumer").await;
    let live = queue(&prefix, "live-consumer").await;
    dead.enqueue("SMreclaim").await.unwrap();

    let jobs = dead.receive(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    // "dead-consumer" crashes: never acks. Before the reclaim timeout nobody else gets it.
    assert!(live.receive(10, Duration::ZERO).await.unwrap().is_empty());

    // Delivered again after the reclaim timeout, with its delivery count, up to max_deliveries.
    for expected in 2..=3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let jobs = live.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(jobs.len(), 1, "delivery {expected}");
        assert_eq!(jobs[0].message_sid, "SMreclaim");
        assert_eq!(jobs[0].deliveries, expected);
    }
    // One more timeout: delivery 4 > max_deliveries (3) → dead-letter stream, not handed out.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(live.receive(10, Duration::ZERO).await.unwrap().is_empty());
    assert_eq!(live.dead_letter_depth().await.unwrap(), 1);
    assert_eq!(live.depth().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_and_group_are_recreated() {
    let Some((prefix, keys)) = setup() else {
        return;
    };
    let q = queue(&prefix, "c").await;
    q.enqueue("SM1").await.unwrap();
    let jobs = q.receive(10, Duration::from_millis(100)).await.unwrap();
    q.ack(&jobs[0]).await.unwrap();

    // Redis restarted without persistence: the stream and its group are gone. A new job is
    // added before any consumer recreates the group.
    let client = deadpool_redis::redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: () = deadpool_redis::redis::cmd("DEL")
        .arg(&keys.0[0])
        .query(&mut conn)
        .unwrap();
    q.enqueue("SM2").await.unwrap();

    let jobs = q.receive(10, Duration::from_millis(100)).await.unwrap();
    let sids: Vec<&str> = jobs.iter().map(|j| j.message_sid.as_str()).collect();
    assert_eq!(sids, ["SM2"], "the job added after the restart is not lost");
    q.ack(&jobs[0]).await.unwrap();

    // Deleted again with nothing in it: the next read recreates the group and simply waits.
    let _: () = deadpool_redis::redis::cmd("DEL")
        .arg(&keys.0[0])
        .query(&mut conn)
        .unwrap();
    assert!(
        q.receive(10, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );
    q.enqueue("SM3").await.unwrap();
    assert_eq!(
        q.receive(10, Duration::from_millis(100)).await.unwrap()[0].message_sid,
        "SM3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_receive_returns_when_a_job_arrives() {
    let Some((prefix, _keys)) = setup() else {
        return;
    };
    let q = Arc::new(queue(&prefix, "blocker").await);
    let producer = queue(&prefix, "producer").await;
    let rx = {
        let q = q.clone();
        tokio::spawn(async move { q.receive(1, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    producer.enqueue("SMlate").await.unwrap();
    let jobs = rx.await.unwrap().unwrap();
    assert_eq!(jobs[0].message_sid, "SMlate");
    q.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_on_a_closed_port_is_unavailable_not_a_hang() {
    // No Redis needed: port 1 on loopback refuses connections.
    let url = "redis://127.0.0.1:1";
    let opts = RedisQueueOptions {
        op_timeout: Duration::from_millis(500),
        max_backoff: Duration::from_millis(200),
        ..Default::default()
    };
    let err = RedisQueue::connect(url, opts.clone()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");

    let q = RedisQueue::new(url, opts).unwrap();
    let guard = Duration::from_secs(20);
    failed_enqueue(&q, "SM1").await;
    for _ in 0..3 {
        let err = tokio::time::timeout(guard, q.receive(10, Duration::from_secs(1)))
            .await
            .expect("no hang")
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
    }
    assert!(q.ping().await.unwrap_err().is_unavailable());
    assert!(q.depth().await.unwrap_err().is_unavailable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_as_a_trait_object() {
    let Some((prefix, _keys)) = setup() else {
        return;
    };
    let queues: Vec<Arc<dyn WorkQueue>> = vec![
        Arc::new(queue(&prefix, "dyn").await),
        Arc::new(store::InProcessQueue::new()),
    ];
    for q in queues {
        q.enqueue("SMdyn").await.unwrap();
        let jobs = q.receive(5, Duration::from_millis(100)).await.unwrap();
        assert_eq!(jobs.len(), 1, "{}", q.kind());
        q.ack(&jobs[0]).await.unwrap();
        assert_eq!(q.depth().await.unwrap(), 0, "{}", q.kind());
    }
}

/// `rediss://` (hosted Redis such as Upstash or Redis Cloud, Render's external URL) speaks TLS and
/// checks the server's certificate against the bundled Mozilla roots; `#insecure` (for providers
/// with self-signed certificates) keeps TLS but skips that check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_connect_over_tls_and_verify_the_certificate() {
    let Some(redis) = test_support::TlsRedis::start() else {
        return;
    };
    let opts = |consumer: &str| RedisQueueOptions {
        op_timeout: Duration::from_secs(5),
        ..options("store-test-tls", consumer)
    };

    // The test server's certificate is self-signed: a verified connection refuses it, and the
    // error says it is about the certificate.
    let refused = RedisQueue::connect(&redis.url(""), opts("verified"))
        .await
        .expect_err("a self-signed certificate must not be trusted");
    let shown = refused.to_string();
    assert!(
        shown.contains("certificate is not trusted") && shown.contains("#insecure"),
        "{refused}"
    );

    // A plain-text client is not what the TLS port speaks either.
    let plain = redis.url("").replacen("rediss://", "redis://", 1);
    assert!(RedisQueue::connect(&plain, opts("plain")).await.is_err());

    let q = RedisQueue::connect(&redis.url("/#insecure"), opts("insecure"))
        .await
        .expect("TLS without certificate verification");
    q.ping().await.unwrap();
    q.enqueue("SMovertls").await.unwrap();
    let jobs = q.receive(8, Duration::from_millis(500)).await.unwrap();
    assert_eq!(
        jobs.iter()
            .map(|j| j.message_sid.as_str())
            .collect::<Vec<_>>(),
        ["SMovertls"]
    );
    q.ack_many(&jobs).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), 0);
}

/// Enqueues `sid`, which must fail as unavailable within 20 s.
async fn failed_enqueue(q: &RedisQueue, sid: &str) -> store::StoreError {
    let err = tokio::time::timeout(Duration::from_secs(20), q.enqueue(sid))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    err
}

/// A TCP server that accepts connections and never answers: a Redis in the middle of a failover,
/// or behind a path that drops packets. Counts the connections it accepted.
struct Silent {
    url: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    async fn start() -> Silent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        Silent {
            url,
            accepted,
            task,
        }
    }

    async fn accepted(&self) -> usize {
        // Let a connection that is being made reach accept() before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Webhooks enqueue after their commit: a Redis that never answers costs the first one the
/// timeout, and the ones after it fail at once (the sweep queues their messages) until the
/// cool-off ends and one enqueue tries Redis again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_holds_one_enqueue_not_every_one() {
    let silent = Silent::start().await;
    let opts = RedisQueueOptions {
        op_timeout: Duration::from_millis(400),
        enqueue_cool_off: Duration::from_millis(1500),
        ..Default::default()
    };
    let q = RedisQueue::new(&silent.url, opts).unwrap();

    failed_enqueue(&q, "SM1").await;
    assert_eq!(silent.accepted().await, 1);

    for i in 2..12 {
        let err = failed_enqueue(&q, &format!("SM{i}")).await;
        assert!(err.to_string().contains("skipped"), "{err}");
    }
    assert_eq!(
        silent.accepted().await,
        1,
        "enqueues during the cool-off must not touch Redis"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = failed_enqueue(&q, "SMprobe").await;
    assert!(!err.to_string().contains("skipped"), "{err}");
    assert_eq!(
        silent.accepted().await,
        2,
        "after the cool-off one enqueue tries Redis"
    );
    let err = q.enqueue("SMafter").await.unwrap_err();
    assert!(err.to_string().contains("skipped"), "{err}");
}

/// A refused connection fails at once, so it does not open the breaker: the next enqueue still
/// goes to Redis, which may be back by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_do_not_stop_enqueues_from_trying() {
    // No Redis needed: port 1 on loopback refuses connections.
    let closed = RedisQueue::new(
        "redis://127.0.0.1:1",
        RedisQueueOptions {
            op_timeout: Duration::from_millis(400),
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..3 {
        let err = closed.enqueue("SMx").await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(!err.to_string().contains("skipped"), "{err}");
    }
}

/// The sweep asks which SIDs wait in the stream, not yet taken by any consumer, oldest first,
/// so it does not add them twice; taken and unacknowledged ones (a failed batch, a dead
/// consumer) are not listed, so their messages can be queued again. Pages past 10,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_sids_lists_the_jobs_no_consumer_took_yet() {
    let Some((prefix, _keys)) = setup() else {
        return;
    };
    let q = queue(&prefix, "a").await;
    assert_eq!(
        q.waiting_sids(100).await.unwrap(),
        Some(HashSet::new()),
        "no stream yet"
    );
    let sids: Vec<String> = (0..5).map(|i| format!("SM{i:032}")).collect();
    for s in &sids {
        q.enqueue(s).await.unwrap();
    }
    let all: HashSet<String> = sids.iter().cloned().collect();
    assert_eq!(q.waiting_sids(100).await.unwrap(), Some(all));
    let taken = q.receive(2, Duration::from_millis(100)).await.unwrap();
    assert_eq!(taken.len(), 2);
    let rest: HashSet<String> = sids[2..].iter().cloned().collect();
    assert_eq!(
        q.waiting_sids(100).await.unwrap(),
        Some(rest),
        "taken ones left out"
    );
    let oldest = q.waiting_sids(2).await.unwrap().unwrap();
    assert_eq!(oldest, sids[2..4].iter().cloned().collect::<HashSet<_>>());

    // More than a page.
    let client = deadpool_redis::redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = deadpool_redis::redis::pipe();
    for i in 0..10_050 {
        pipe.cmd("XADD")
            .arg(format!("{prefix}:jobs"))
            .arg("*")
            .arg("sid")
            .arg(format!("SMp{i:031}"))
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(
        q.waiting_sids(50_000).await.unwrap().unwrap().len(),
        3 + 10_050
    );
    assert_eq!(q.waiting_sids(10_001).await.unwrap().unwrap().len(), 10_001);
}

//! PostgreSQL going away mid-load (every connection dropped, new ones refused, through a proxy
//! in front of the shared cluster): webhooks answer 503 and never 200 without a commit,
//! `/readyz` fails, and once the database is back the same process recovers by itself; every
//! acknowledged message is kept and answered once, and Twilio's retries of the 503s succeed.

use std::time::{Duration, Instant};

use test_support::services::PG_ADDR;
use test_support::{FakeTwilio, TestDb};

use crate::support::{
    DbView, Load, Msg, Proxy, ServerProcess, assert_answered_once, base_env, get, post_all,
    wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_503_during_a_database_outage_and_the_server_recovers_alone() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let proxy = Proxy::start(PG_ADDR).await;
    let direct = db.url();
    let proxied = direct.replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(direct, proxied);
    let fake = FakeTwilio::start().await;
    let mut server = ServerProcess::start(&base_env(&proxied, Some(&fake))).await;
    let pid = server.pid();
    let view = DbView::open(&direct).await;

    let load = Load::start(server.addr, "pg-outage", 4, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut().await;
    let cut_at = Instant::now();
    wait_for("/readyz fails", Duration::from_secs(10), || async {
        get(server.addr, "/readyz").await.status == 503
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    proxy.restore().await;
    let restored_at = Instant::now();
    wait_for("/readyz recovers", Duration::from_secs(30), || async {
        get(server.addr, "/readyz").await.status == 200
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deliveries = load.stop().await;

    assert!(server.is_alive(), "the process stayed up");
    assert_eq!(server.pid(), pid);
    for d in &deliveries {
        assert!(
            matches!(d.status, 200 | 503),
            "only 200 or 503, got {} for {}",
            d.status,
            d.msg.sid
        );
        // Sent and answered while the database was unreachable: nothing could commit, so
        // nothing may be acknowledged. (A request sent during the outage may still wait for a
        // connection, commit after the restore and rightly get 200.)
        if d.sent_at > cut_at && d.answered_at < restored_at {
            assert_eq!(
                d.status, 503,
                "acknowledged without a database: {}",
                d.msg.sid
            );
        }
    }
    let acked: Vec<&Msg> = deliveries
        .iter()
        .filter(|d| d.status == 200)
        .map(|d| &d.msg)
        .collect();
    let refused: Vec<Msg> = deliveries
        .iter()
        .filter(|d| d.status == 503)
        .map(|d| d.msg.clone())
        .collect();
    assert!(!refused.is_empty(), "the outage was seen");
    assert!(
        acked.len() > 10,
        "traffic before and after the outage: {}",
        acked.len()
    );
    for m in &acked {
        assert!(
            view.store
                .get_inbound(&m.sid)
                .await
                .expect("read")
                .is_some(),
            "acknowledged {} is not in the database",
            m.sid
        );
    }

    // Twilio retries what got 503; now it is accepted.
    let retried = post_all(&[server.addr], &refused, 8).await;
    assert!(retried.iter().all(|s| *s == 200), "{retried:?}");
    let acked = acked.len();
    let all: Vec<Msg> = deliveries.into_iter().map(|d| d.msg).collect();
    assert_answered_once(&view, &fake, &all, Duration::from_secs(45)).await;
    eprintln!(
        "postgres outage: {} messages, {} acknowledged, {} answered 503 and accepted on retry, \
         0 lost, 0 duplicated",
        all.len(),
        acked,
        refused.len()
    );
    server.assert_no_secrets(&[]);
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_without_its_database_answers_503_until_the_database_comes() {
    // A deploy whose database is not reachable yet: the process stays up and says so on every
    // request instead of leaving connections unanswered in the listen backlog.
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let proxy = Proxy::start(PG_ADDR).await;
    proxy.cut().await;
    let proxied = db.url().replace("127.0.0.1:5432", &proxy.addr.to_string());
    let server = ServerProcess::start_alive(&base_env(&proxied, None)).await;

    let ready = get(server.addr, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    // The health check render.yaml uses does not route webhooks to it either.
    let webhooks = get(server.addr, "/readyz/webhooks").await;
    assert_eq!(webhooks.status, 503, "{}", webhooks.body);
    let json: serde_json::Value = serde_json::from_str(&ready.body).expect("JSON");
    assert_eq!(json["ready"], false);
    assert!(
        json["database"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not ready"),
        "{json}"
    );
    let msg = Msg::new("starting", 0);
    assert_eq!(
        server.post(&msg).await,
        503,
        "nothing acknowledged unrecorded"
    );
    // The routes still answer as they will: wrong method, unknown path, metrics not yet.
    assert_eq!(
        get(server.addr, "/api/v1/whatsapp/webhook").await.status,
        405
    );
    assert_eq!(
        get(server.addr, "/api/v1/whatsapp/status/").await.status,
        405,
        "the slash path is the same endpoint"
    );
    assert_eq!(get(server.addr, "/nope").await.status, 404);
    assert_eq!(get(server.addr, "/metrics").await.status, 503);
    wait_for("the 503 log line", Duration::from_secs(5), || {
        let seen = server
            .logs()
            .contains("Webhook answered 503: the server is still starting");
        async move { seen }
    })
    .await;

    proxy.restore().await;
    wait_for(
        "/readyz once the database is back",
        Duration::from_secs(60),
        || async { get(server.addr, "/readyz").await.status == 200 },
    )
    .await;
    // Twilio's retry of the refused message now goes through, and it is recorded.
    assert_eq!(server.post(&msg).await, 200);
    let view = DbView::open(&db.url()).await;
    assert_eq!(
        view.count(&format!(
            "inbound_messages WHERE message_sid = '{}'",
            msg.sid
        ))
        .await,
        1
    );
}

/// PostgreSQL that stops answering without closing anything (packets dropped, a failover that
/// left connections to a vanished primary, a hung server): every webhook still gets its 503
/// inside Twilio's 15 s (the write timeout; no answer at all would be Twilio's 11200 and a lost
/// message), each with its log line, and SIGTERM still ends the process (the pool's close
/// would wait for the stuck connections forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_gets_503s_in_time_and_sigterm_still_exits() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let proxy = Proxy::start(PG_ADDR).await;
    let proxied = db.url().replace("127.0.0.1:5432", &proxy.addr.to_string());
    let fake = FakeTwilio::start().await;
    let mut server = ServerProcess::start(&base_env(&proxied, Some(&fake))).await;
    let before = Msg::batch("pg-silent", 0, 3);
    assert_eq!(post_all(&[server.addr], &before, 3).await, vec![200; 3]);

    proxy.freeze();
    let during = Msg::batch("pg-silent", 3, 3);
    let started = Instant::now();
    let statuses = post_all(&[server.addr], &during, 3).await;
    let took = started.elapsed();
    assert_eq!(statuses, vec![503; 3], "answered, and not acknowledged");
    assert!(
        took < Duration::from_secs(15),
        "inside Twilio's 15 s: {took:?}"
    );
    // Each 503 has its line: "did not answer within 10 s" for a request that reached a stuck
    // connection, the pool's acquire timeout for one that waited for a new connection.
    let logs = server.logs();
    for m in &during {
        assert!(
            logs.lines()
                .any(|l| l.contains(&m.sid) && l.contains("Webhook answered 503")),
            "a 503 line for {}:\n{logs}",
            m.sid
        );
    }

    let status = server.terminate(Duration::from_secs(75)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0 after SIGTERM, got {status:?}:\n{}",
        server.logs()
    );
    proxy.thaw();
}

//! Secrets never reach the logs: an end-to-end run that produces every kind of log line a
//! secret could slip into — startup summary, a forged signature (403), a malformed body (400),
//! a send Twilio refuses for bad credentials, a failed-delivery callback, a database outage
//! (connection errors, 503, `/readyz`) — with `RUST_LOG=trace`, and then all captured output is
//! searched for the Auth Token, the Basic credentials built from it, and the database password.

use std::time::Duration;

use test_support::services::PG_ADDR;
use test_support::{AUTH_TOKEN, FakeTwilio, STATUS_URL, TestDb, WEBHOOK_URL, fixture, sign_form};

use crate::support::{
    DbView, Msg, Proxy, ServerProcess, WEBHOOK_PATH, assert_no_secrets_in, base_env, get,
    post_webhook, request, set, wait_for,
};

/// PostgreSQL here trusts local connections, so any password is accepted and must stay hidden.
const DB_PASSWORD: &str = "Pw-reliability-7f3e9a2c41";
/// A query parameter the PostgreSQL client does not read: sqlx logs such parameters with their
/// values, and a `token=` in a DATABASE_URL may well be a secret.
const DB_QUERY_SECRET: &str = "Tok-reliability-52d8c1e0b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_log_line_or_response() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let proxy = Proxy::start(PG_ADDR).await;
    let url = db.url().replace(
        "postgres://postgres@127.0.0.1:5432",
        &format!("postgres://postgres:{DB_PASSWORD}@{}", proxy.addr),
    ) + &format!("?sslmode=disable&token={DB_QUERY_SECRET}");
    assert!(url.contains(DB_PASSWORD));
    let fake = FakeTwilio::start().await;
    let mut env = base_env(&url, Some(&fake));
    // The most verbose logging an operator can ask for: every dependency's spans and events.
    set(&mut env, "RUST_LOG", "trace");
    let server = ServerProcess::start(&env).await;
    let view = DbView::open(&db.url()).await;
    let mut bodies = String::new();

    // Twilio refuses the first reply: wrong credentials (20003, not retried).
    fake.fail_next_sends(1, 401, "error-20003.json");
    let refused = Msg::new("secrets", 0);
    assert_eq!(server.post(&refused).await, 200);
    // A forged signature and a tampered body.
    let forged = request(
        server.addr,
        "POST",
        WEBHOOK_PATH,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", "bm90IGEgcmVhbCBzaWduYXR1cmU="),
        ],
        Msg::new("secrets", 1).form().as_bytes(),
    )
    .await;
    assert_eq!(forged.status, 403);
    bodies.push_str(&forged.body);
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, &Msg::new("secrets", 2).form());
    let tampered = request(
        server.addr,
        "POST",
        WEBHOOK_PATH,
        &[("X-Twilio-Signature", &sig)],
        Msg::new("secrets", 3).form().as_bytes(),
    )
    .await;
    assert_eq!(tampered.status, 403);
    // Signed but not a message.
    assert_eq!(post_webhook(server.addr, "Body=hello").await, 400);
    // A failed-delivery callback.
    let callback = fixture("status-failed-63016.form");
    let status_sig = sign_form(AUTH_TOKEN, STATUS_URL, &callback);
    let r = request(
        server.addr,
        "POST",
        "/api/v1/whatsapp/status",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &status_sig),
        ],
        callback.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The database goes away: connection errors, a 503 and a failing /readyz.
    proxy.cut().await;
    let during = Msg::new("secrets", 4);
    assert_eq!(server.post(&during).await, 503);
    let ready = get(server.addr, "/readyz").await;
    assert_eq!(ready.status, 503);
    bodies.push_str(&ready.body);
    proxy.restore().await;
    wait_for("/readyz recovers", Duration::from_secs(30), || async {
        get(server.addr, "/readyz").await.status == 200
    })
    .await;
    assert_eq!(server.post(&during).await, 200);
    wait_for("both messages handled", Duration::from_secs(30), || async {
        view.count("inbound_messages WHERE state IN ('answered', 'failed')")
            .await
            == 2
    })
    .await;
    bodies.push_str(&get(server.addr, "/metrics").await.body);
    bodies.push_str(&get(server.addr, "/readyz").await.body);

    let logs = server.all_logs();
    for line in [
        "configuration loaded",
        "Webhook refused with 403",
        "Webhook refused with 400",
        "Reply could not be sent",
        "Delivery failed",
        "the database is unavailable",
        // The answered message's line says a reply was sent (its dry_run=false alone is also
        // what a message that needed no reply logs).
        "Message processed successfully",
        r#"reply="sent""#,
        // In place of sqlx's line, which carries the value.
        "the connection ignores the parameter(s) token",
    ] {
        assert!(logs.contains(line), "the run logged {line:?}:\n{logs}");
    }
    assert_no_secrets_in(&logs, &[DB_PASSWORD, DB_QUERY_SECRET]);
    assert_no_secrets_in(&bodies, &[DB_PASSWORD, DB_QUERY_SECRET]);
}

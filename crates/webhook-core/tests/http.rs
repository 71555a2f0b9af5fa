//! Every status code the HTTP surface promises, against a real server.

use crate::support::{Opts, Response, Server, inbound_body, request, send_raw};
use test_support::{AUTH_TOKEN, STATUS_URL, TestDb, WEBHOOK_URL, services::sid, sign_form};

const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_routes_and_methods() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;

    let r = s.get("/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));

    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ready: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["database"], "ok");

    assert_eq!(s.get("/nope").await.status, 404);
    let r = s.get("/api/v1/whatsapp/webhook").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = request(s.addr, "DELETE", "/healthz", &[], b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    let m = s.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        m.body
            .contains(r#"whatsapp_webhook_http_requests_total{route="healthz",status="200"} 1"#),
        "{}",
        m.body
    );
    // Prometheus asks for OpenMetrics (the text's real format) and gets its media type.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let m = request(s.addr, "GET", "/metrics", &[("accept", accept)], b"").await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(m.body.trim_end().ends_with("# EOF"), "{}", m.body);
    // HEAD works wherever GET does, /metrics included.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = request(s.addr, "HEAD", path, &[], b"").await;
        assert_eq!(r.status, 200, "HEAD {path}");
    }
    let r = request(s.addr, "POST", "/metrics", &[], b"").await;
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // A wrong method is counted under its route (a webhook set to GET in the Console shows
    // up as the webhook's 405s); unknown paths share one label.
    let m = s.get("/metrics").await;
    for line in [
        r#"whatsapp_webhook_http_requests_total{route="webhook",status="405"} 1"#,
        r#"whatsapp_webhook_http_requests_total{route="healthz",status="405"} 1"#,
        r#"whatsapp_webhook_http_requests_total{route="other",status="404"} 1"#,
    ] {
        assert!(m.body.contains(line), "{line} in\n{}", m.body);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_fixture_is_acknowledged_with_empty_twiml_after_commit() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    // The fixture exactly as Twilio sent it, with the signature from fixtures/signatures.json.
    let body = test_support::fixture("inbound-whatsapp-text.form");
    let r = s
        .post(
            "/api/v1/whatsapp/webhook",
            &body,
            "jnjxCJgdmi0DAqQOnv4F4B6gPlU=",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, EMPTY_TWIML);
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    // Acknowledged means committed: the row is readable right away.
    let row = s
        .app
        .store
        .get_inbound("SM1a2b3c4d5e6f708192a3b4c5d6e7f809")
        .await
        .unwrap()
        .expect("row committed before the 200");
    assert_eq!(row.body, "Hello, I need help with my order #1234");
    assert_eq!(row.profile_name.as_deref(), Some("Ana Souza"));
    assert_eq!(
        row.idempotency_token.as_deref(),
        Some("3f1c0e2a-0000-4000-8000-000000000001")
    );
    let params: serde_json::Value = serde_json::from_str(&row.params_json).unwrap();
    assert_eq!(params["ReferralNumMedia"], "0", "unknown params are kept");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_missing_or_unverifiable_signatures_get_403() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    let body = inbound_body(&sid("SM"));
    let good = sign_form(AUTH_TOKEN, WEBHOOK_URL, &body);

    // Tampered body, wrong URL, no header, garbage header.
    let tampered = body.replace("Hello", "Hellp");
    assert_eq!(
        s.post("/api/v1/whatsapp/webhook", &tampered, &good)
            .await
            .status,
        403
    );
    let wrong_url = sign_form(
        AUTH_TOKEN,
        "https://old.ngrok-free.app/api/v1/whatsapp/webhook",
        &body,
    );
    assert_eq!(
        s.post("/api/v1/whatsapp/webhook", &body, &wrong_url)
            .await
            .status,
        403
    );
    let r = request(
        s.addr,
        "POST",
        "/api/v1/whatsapp/webhook",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        s.post("/api/v1/whatsapp/webhook", &body, "not base64!")
            .await
            .status,
        403
    );
    // The status callback is protected the same way.
    assert_eq!(
        s.post("/api/v1/whatsapp/status", "MessageSid=x", &good)
            .await
            .status,
        403
    );

    // Nothing was recorded, and the failures are counted.
    assert_eq!(
        s.post("/api/v1/whatsapp/webhook", &body, &good)
            .await
            .status,
        200
    );
    let m = s.get("/metrics").await;
    assert!(
        m.body
            .contains("whatsapp_webhook_signature_failures_total 5"),
        "{}",
        m.body
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_every_webhook_is_refused() {
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            token: None,
            ..Opts::default()
        },
    )
    .await;
    let body = inbound_body(&sid("SM"));
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, &body);
    let r = s.post("/api/v1/whatsapp/webhook", &body, &sig).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("signature not verified"));
    s.stop().await;

    // A shared key does not stand in for the token: still every webhook is refused.
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            token: None,
            env: vec![("TWILIO_WEBHOOK_SHARED_KEY", "rule-secret".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let signed = shared_key_headers("rule-secret", WEBHOOK_URL, &body, "HMAC_SHA256");
    assert_eq!(
        post_with(&s, "/api/v1/whatsapp/webhook", &signed, &body)
            .await
            .status,
        403
    );
    s.stop().await;
}

/// Signs `body` as a Twilio Webhook Rule with a shared key does: HMAC-SHA256 over the same
/// string, announced by `X-Twilio-Webhooks-Signature-Settings`.
fn shared_key_headers(
    secret: &str,
    url: &str,
    body: &str,
    algorithm: &str,
) -> Vec<(&'static str, String)> {
    let pairs = test_support::form_pairs(body);
    vec![
        (
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (
            "X-Twilio-Signature",
            twilio_signature::Validator::shared_key(secret).sign(url, &pairs),
        ),
        (
            "X-Twilio-Webhooks-Signature-Settings",
            format!("key=KS0123456789abcdef, algorithm={algorithm}"),
        ),
    ]
}

async fn post_with(
    s: &Server,
    path: &str,
    headers: &[(&'static str, String)],
    body: &str,
) -> Response {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    request(s.addr, "POST", path, &headers, body.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_key_webhooks_are_verified_with_the_shared_key() {
    const SHARED: &str = "webhook-rule-shared-secret-1";
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            env: vec![("TWILIO_WEBHOOK_SHARED_KEY", SHARED.to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let hook = "/api/v1/whatsapp/webhook";
    let body = inbound_body(&sid("SM"));

    // Signed with the shared key: recorded and acknowledged, on both endpoints.
    let signed = shared_key_headers(SHARED, WEBHOOK_URL, &body, "HMAC_SHA256");
    assert_eq!(post_with(&s, hook, &signed, &body).await.status, 200);
    let status = format!("MessageSid={}&MessageStatus=delivered", sid("SM"));
    let status_signed = shared_key_headers(SHARED, STATUS_URL, &status, "HMAC_SHA256");
    assert_eq!(
        post_with(&s, "/api/v1/whatsapp/status", &status_signed, &status)
            .await
            .status,
        200
    );
    // Webhooks without the settings header are still checked with the auth token.
    assert_eq!(s.post_webhook(&inbound_body(&sid("SM"))).await.status, 200);

    // The other key for each algorithm, a tampered body, an algorithm nobody implements.
    let body2 = inbound_body(&sid("SM"));
    let with_token = shared_key_headers(AUTH_TOKEN, WEBHOOK_URL, &body2, "HMAC_SHA256");
    assert_eq!(post_with(&s, hook, &with_token, &body2).await.status, 403);
    let mut sha1_header = shared_key_headers(SHARED, WEBHOOK_URL, &body2, "HMAC_SHA1");
    sha1_header[1].1 = sign_form(SHARED, WEBHOOK_URL, &body2);
    assert_eq!(post_with(&s, hook, &sha1_header, &body2).await.status, 403);
    let tampered = body2.replace("Hello", "Hellp");
    let signed2 = shared_key_headers(SHARED, WEBHOOK_URL, &body2, "HMAC_SHA256");
    assert_eq!(post_with(&s, hook, &signed2, &tampered).await.status, 403);
    let md5 = shared_key_headers(SHARED, WEBHOOK_URL, &body2, "HMAC_MD5");
    assert_eq!(post_with(&s, hook, &md5, &body2).await.status, 403);
    assert_eq!(post_with(&s, hook, &signed2, &body2).await.status, 200);

    let m = s.get("/metrics").await;
    assert!(
        m.body
            .contains("whatsapp_webhook_signature_failures_total 4"),
        "{}",
        m.body
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_key_shared_key_webhooks_are_refused() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    let message_sid = sid("SM");
    let body = inbound_body(&message_sid);
    let signed = shared_key_headers("some-secret", WEBHOOK_URL, &body, "HMAC_SHA256");
    let r = post_with(&s, "/api/v1/whatsapp/webhook", &signed, &body).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (403, "forbidden: signature not verified\n")
    );
    assert!(
        s.app
            .store
            .get_inbound(&message_sid)
            .await
            .unwrap()
            .is_none(),
        "nothing recorded"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_but_signed_bodies_get_400() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    for body in [
        "Body=hello&From=whatsapp%3A%2B1",
        "MessageSid=SMshort&AccountSid=AC1&From=a&To=b",
    ] {
        let r = s.post_webhook(body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.starts_with("bad request: "), "{}", r.body);
    }
    // Invalid UTF-8 (signed over the lossy form the validator decodes).
    let raw = b"MessageSid=SM\xff\xfe&Body=x";
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, &String::from_utf8_lossy(raw));
    let r = request(
        s.addr,
        "POST",
        "/api/v1/whatsapp/webhook",
        &[("X-Twilio-Signature", &sig)],
        raw,
    )
    .await;
    assert!(matches!(r.status, 400 | 403), "{}", r.status);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_and_huge_headers_431() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    let big = "Body=".to_owned() + &"a".repeat(70 * 1024);
    let r = s.post_webhook(&big).await;
    assert_eq!(r.status, 413);

    // Chunked, so no Content-Length gives the size away up front.
    let mut raw = b"POST /api/v1/whatsapp/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..70 {
        raw.extend_from_slice(format!("400\r\n{}\r\n", "b".repeat(1024)).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(send_raw(s.addr, &raw).await.status, 413);

    let huge = "x".repeat(64 * 1024);
    let r = request(s.addr, "GET", "/healthz", &[("X-Huge", &huge)], b"").await;
    assert_eq!(r.status, 431);
    // The server is still fine.
    assert_eq!(s.get("/healthz").await.status, 200);
    s.stop().await;
}

/// The secondary Auth Token of a rotation in the tests below.
const SECONDARY: &str = "fedcba9876543210fedcba9876543210";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_token_rotation_webhooks_signed_with_either_token_are_accepted() {
    let db = TestDb::sqlite();
    let twilio = test_support::FakeTwilio::start().await;
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            env: vec![("TWILIO_AUTH_TOKEN_SECONDARY", SECONDARY.to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let hook = "/api/v1/whatsapp/webhook";
    // Before the promotion Twilio signs with the primary token, after it with the secondary.
    let before = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&before)).await.status, 200);
    let after = sid("SM");
    let body = inbound_body(&after);
    let r = s
        .post(hook, &body, &sign_form(SECONDARY, WEBHOOK_URL, &body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(s.app.store.get_inbound(&after).await.unwrap().is_some());
    let status = format!("MessageSid={}&MessageStatus=delivered", sid("SM"));
    let r = s
        .post(
            "/api/v1/whatsapp/status",
            &status,
            &sign_form(SECONDARY, STATUS_URL, &status),
        )
        .await;
    assert_eq!(r.status, 200);

    // Neither token: refused, counted once.
    let forged = inbound_body(&sid("SM"));
    let other = "00112233445566778899aabbccddeeff";
    let r = s
        .post(hook, &forged, &sign_form(other, WEBHOOK_URL, &forged))
        .await;
    assert_eq!(r.status, 403);
    let m = s.get("/metrics").await.body;
    assert!(
        m.contains("whatsapp_webhook_signature_failures_total 1"),
        "{m}"
    );

    // Replies authenticate with the secondary token: Twilio accepts it before the promotion
    // and only it after.
    assert_eq!(
        s.wait_processed(&after).await,
        store::InboundState::Answered
    );
    let sent = twilio.sent_messages();
    assert!(!sent.is_empty());
    for send in &sent {
        assert_eq!(
            send.basic_auth(),
            Some((test_support::ACCOUNT_SID.to_owned(), SECONDARY.to_owned()))
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_secondary_token_verifies_nothing() {
    // Anyone can sign with "changeme": a placeholder must never be a key.
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            env: vec![("TWILIO_AUTH_TOKEN_SECONDARY", "changeme".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let body = inbound_body(&sid("SM"));
    let r = s
        .post(
            "/api/v1/whatsapp/webhook",
            &body,
            &sign_form("changeme", WEBHOOK_URL, &body),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(s.post_webhook(&inbound_body(&sid("SM"))).await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_token_or_shared_key_verifies_nothing() {
    // `.env.example` copied as it is: the server starts in development (with a warning that
    // every webhook will be refused), and a webhook signed with the placeholder is forged.
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            token: Some("your_auth_token"),
            env: vec![("TWILIO_WEBHOOK_SHARED_KEY", "changeme".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let hook = "/api/v1/whatsapp/webhook";
    let forged = sid("SM");
    let body = inbound_body(&forged);
    let r = s
        .post(
            hook,
            &body,
            &sign_form("your_auth_token", WEBHOOK_URL, &body),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let signed = shared_key_headers("changeme", WEBHOOK_URL, &body, "HMAC_SHA256");
    assert_eq!(post_with(&s, hook, &signed, &body).await.status, 403);
    let status = format!("MessageSid={}&MessageStatus=delivered", sid("SM"));
    let r = s
        .post(
            "/api/v1/whatsapp/status",
            &status,
            &sign_form("your_auth_token", STATUS_URL, &status),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(s.app.store.get_inbound(&forged).await.unwrap().is_none());
    let m = s.get("/metrics").await.body;
    assert!(
        m.contains("whatsapp_webhook_signature_failures_total 3"),
        "{m}"
    );
    s.stop().await;

    // A real secondary token still verifies what it signs; the placeholder primary nothing.
    let db = TestDb::sqlite();
    let secondary = "fedcba9876543210fedcba9876543210";
    let s = Server::start(
        &db,
        Opts {
            token: Some("changeme"),
            env: vec![("TWILIO_AUTH_TOKEN_SECONDARY", secondary.to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let body = inbound_body(&sid("SM"));
    let with = |token| sign_form(token, WEBHOOK_URL, &body);
    assert_eq!(s.post(hook, &body, &with("changeme")).await.status, 403);
    assert_eq!(s.post(hook, &body, &with(secondary)).await.status, 200);
    s.stop().await;
}

/// A Console URL (and WEBHOOK_URL) ending in a slash: Twilio posts to the path with the slash,
/// signed for that URL, and the status callbacks of replies follow suit. A Console URL that
/// differs from WEBHOOK_URL only by the slash works too: the signature is checked for the URL
/// as requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_slash_on_the_webhook_paths_is_the_same_endpoint() {
    let db = TestDb::sqlite();
    let hook_url = format!("{WEBHOOK_URL}/");
    let s = Server::start(
        &db,
        Opts {
            env: vec![("WEBHOOK_URL", hook_url.clone())],
            ..Opts::default()
        },
    )
    .await;
    let message = sid("SM");
    let body = inbound_body(&message);
    let r = s
        .post(
            "/api/v1/whatsapp/webhook/",
            &body,
            &sign_form(AUTH_TOKEN, &hook_url, &body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(s.app.store.get_inbound(&message).await.unwrap().is_some());
    // The Console's URL without the slash: Twilio requests and signs it so, which is accepted.
    let other = inbound_body(&sid("SM"));
    let r = s
        .post(
            "/api/v1/whatsapp/webhook",
            &other,
            &sign_form(AUTH_TOKEN, WEBHOOK_URL, &other),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let status = format!("MessageSid={}&MessageStatus=delivered", sid("SM"));
    let r = s
        .post(
            "/api/v1/whatsapp/status/",
            &status,
            &sign_form(AUTH_TOKEN, STATUS_URL, &status),
        )
        .await;
    // Checked, as every status callback, against the configured (here derived) status URL.
    assert_eq!(r.status, 200, "{}", r.body);
    // Other paths with a slash are still unknown.
    assert_eq!(s.get("/healthz/").await.status, 404);
    // A wrong method on the slash paths is the helpful 405, as without the slash.
    let get = s.get("/api/v1/whatsapp/webhook/").await;
    assert_eq!(get.status, 405, "{}", get.body);
    s.stop().await;
}

/// During a token rotation (Twilio signs with the secondary token) a Console URL with a
/// trailing slash that WEBHOOK_URL does not have is still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_slash_is_forgiven_for_the_secondary_token_too() {
    let db = TestDb::sqlite();
    let secondary = "fedcba9876543210fedcba9876543210";
    let s = Server::start(
        &db,
        Opts {
            env: vec![("TWILIO_AUTH_TOKEN_SECONDARY", secondary.to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let body = inbound_body(&sid("SM"));
    let slashed = format!("{WEBHOOK_URL}/");
    let r = s
        .post(
            "/api/v1/whatsapp/webhook/",
            &body,
            &sign_form(secondary, &slashed, &body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}

/// WEBHOOK_URL without a slash, a status callback URL with one in the Console: Twilio posts to
/// the path with the slash and signs the URL it requested, which is accepted; a signature for
/// another URL still is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_callback_signed_for_its_url_with_a_trailing_slash_is_accepted() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    let message = sid("SM");
    let status = format!("MessageSid={message}&MessageStatus=delivered");
    let slashed = format!("{STATUS_URL}/");
    let r = s
        .post(
            "/api/v1/whatsapp/status/",
            &status,
            &sign_form(AUTH_TOKEN, &slashed, &status),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            "/api/v1/whatsapp/status/",
            &status,
            &sign_form(AUTH_TOKEN, &format!("{STATUS_URL}/x"), &status),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Without the slash in the request, the slash URL's signature is not the one Twilio made.
    let r = s
        .post(
            "/api/v1/whatsapp/status",
            &status,
            &sign_form(AUTH_TOKEN, &slashed, &status),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_connections_while_it_drains_the_open_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    let addr = s.addr;
    // A request in flight: headers sent, body not yet.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /api/v1/whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let stopping = tokio::spawn(s.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a new connection during the drain is refused, not left in the backlog"
    );
    // The request in flight still gets its answer (403: unsigned).
    slow.write_all(b"a=b").await.unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    stopping.await.unwrap();
}

/// A client (or proxy) that shuts down its sending side after a complete request still gets
/// its answer: the 200 after the commit. hyper's default closed the connection at the EOF and
/// dropped the request's handler, so the message was acknowledged to nobody (and, when the
/// EOF came before the row reached the store, not recorded either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_request_is_answered_after_its_commit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    for _ in 0..3 {
        let sid = sid("SM");
        let body = inbound_body(&sid);
        let signature = sign_form(AUTH_TOKEN, WEBHOOK_URL, &body);
        let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        conn.write_all(
            format!(
                "POST /api/v1/whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        conn.shutdown().await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_to_end(&mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(EMPTY_TWIML), "{answer}");
        assert!(s.app.store.get_inbound(&sid).await.unwrap().is_some());
    }
    s.stop().await;
}

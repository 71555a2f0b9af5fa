//! The asynchronous half: one reply per inbound message, dry run, delivery statuses, recovery
//! after a crash, PostgreSQL and Redis, two instances on one database.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{FROM, Opts, Server, inbound_body, post_concurrently};
use store::{BoxFuture, InboundState, Job, RedisQueue, RedisQueueOptions, StoreError, WorkQueue};
use test_support::services::{REDIS_URL, require_redis, sid, unique};
use test_support::{FakeTwilio, TestDb};

fn redis_queue(prefix: &str, consumer: &str) -> Arc<dyn WorkQueue> {
    Arc::new(
        RedisQueue::new(
            REDIS_URL,
            RedisQueueOptions {
                key_prefix: prefix.to_owned(),
                consumer: consumer.to_owned(),
                ..RedisQueueOptions::default()
            },
        )
        .expect("redis queue"),
    )
}

/// Posts one message five times at once and checks that exactly one reply went out, to the
/// sender, from our number, with our status-callback marker.
async fn replies_once(db: &TestDb, queue: Option<Arc<dyn WorkQueue>>) {
    let twilio = FakeTwilio::start().await;
    let s = Server::start(
        db,
        Opts {
            twilio: Some(&twilio),
            queue,
            ..Opts::default()
        },
    )
    .await;
    let sid = sid("SM");
    let statuses = post_concurrently(&[s.addr], &inbound_body(&sid), 5).await;
    assert_eq!(statuses, vec![200; 5]);
    assert_eq!(s.wait_processed(&sid).await, InboundState::Answered);

    let sent = twilio.sent_messages();
    assert_eq!(sent.len(), 1, "exactly one reply for five deliveries");
    let send = &sent[0];
    assert_eq!(send.form_value("To"), Some("whatsapp:+15551234567"));
    assert_eq!(send.form_value("From"), Some(FROM));
    assert_eq!(
        send.form_value("Body"),
        Some("Hi Ana Souza! We received your message: Hello, I need help with my order #1234")
    );
    let outbound = s.reply_row(&sid).await;
    assert_eq!(
        send.form_value("StatusCallback"),
        Some(
            format!(
                "https://whatsapp-bot.onrender.com/api/v1/whatsapp/status?ref={}",
                outbound.callback_marker
            )
            .as_str()
        )
    );
    assert!(outbound.message_sid.is_some(), "Twilio's SID recorded");
    assert_eq!(outbound.attempts, 1);
    let m = s.get("/metrics").await.body;
    assert!(
        m.contains("whatsapp_webhook_duplicate_deliveries_total 4"),
        "{m}"
    );
    assert!(
        m.contains(r#"whatsapp_webhook_sends_total{outcome="sent"} 1"#),
        "{m}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_process_replies_once() {
    replies_once(&TestDb::sqlite(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_in_process_replies_once() {
    if let Some(db) = TestDb::postgres().await {
        replies_once(&db, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_redis_replies_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    if !require_redis() {
        return;
    }
    replies_once(&db, Some(redis_queue(&unique("wa_test_"), "one"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_redis_replies_once() {
    if !require_redis() {
        return;
    }
    replies_once(
        &TestDb::sqlite(),
        Some(redis_queue(&unique("wa_test_"), "one")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1600_character_message_is_answered_within_twilio_s_limit() {
    // Quoting a maximal WhatsApp message in the default template would exceed the 1600
    // characters Twilio accepts; the reply shortens the quote instead of failing.
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::with_twilio(&db, &twilio).await;
    let long = test_support::fixture("inbound-whatsapp-long.form");
    let original = form_value(&long, "MessageSid");
    let sid = sid("SM");
    let body = long.replace(&original, &sid);
    assert_eq!(post_concurrently(&[s.addr], &body, 1).await, vec![200]);
    assert_eq!(s.wait_processed(&sid).await, InboundState::Answered);
    let sent = twilio.sent_messages();
    let reply = sent[0].form_value("Body").expect("Body");
    assert_eq!(reply.chars().count(), 1600);
    assert!(reply.ends_with('…'), "{reply}");
    s.stop().await;
}

/// The send's response is lost and Twilio's list does not show the message (yet), but a status
/// callback with the reply's marker names it: the retry takes that message instead of sending a
/// second one (DESIGN: "look the message up (list … or match our own StatusCallback marker)").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_callback_during_a_lost_response_stops_the_resend() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    twilio.delay_next_sends(1, Duration::from_secs(120));
    twilio.respond(
        "GET",
        &format!(
            "/2010-04-01/Accounts/{}/Messages.json",
            test_support::ACCOUNT_SID
        ),
        200,
        r#"{"messages": []}"#,
    );
    let s = Server::with_twilio(&db, &twilio).await;
    let sid = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let created = loop {
        if let Some(m) = twilio.created_messages().first() {
            break m["sid"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the send went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let out = s.reply_row(&sid).await;
    let body = test_support::fixture("status-sent.form")
        .replace("SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b", &created);
    let r = s
        .post_status(&body, &format!("ref={}", out.callback_marker))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The client's 10 s timeout, one request timeout before the lookup, then the outcome.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row = s.app.store.get_inbound(&sid).await.unwrap().unwrap();
        if row.state == InboundState::Answered {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "answered: {row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(twilio.sent_messages().len(), 1, "no second message");
    let out = s.app.store.get_outbound(out.id).await.unwrap().unwrap();
    assert_eq!(out.message_sid.as_deref(), Some(created.as_str()));
    assert_eq!(out.status, "sent");
    s.stop().await;
}

/// A signed message whose text holds a NUL character (`%00`) is acknowledged and answered on
/// PostgreSQL as on SQLite: PostgreSQL's text cannot hold NUL, and the row used to be refused
/// (400, and Twilio does not retry a 4xx: the message was lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_a_nul_character_is_kept_and_answered_on_both_backends() {
    let mut dbs = vec![TestDb::sqlite()];
    dbs.extend(TestDb::postgres().await);
    for db in &dbs {
        let s = Server::start(db, Opts::default()).await;
        let sid = sid("SM");
        let body = inbound_body(&sid).replace("Body=Hello%2C", "Body=Hello%00%2C");
        assert!(body.contains("%00"));
        let r = s.post_webhook(&body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(s.wait_processed(&sid).await, InboundState::DryRun);
        let row = s.app.store.get_inbound(&sid).await.unwrap().unwrap();
        assert!(row.body.starts_with("Hello\u{FFFD},"), "{:?}", row.body);
        // The reply row quotes the text as the handler wrote it, NUL replaced the same way.
        let reply = s.reply_row(&sid).await;
        assert!(reply.body.contains("Hello\u{FFFD},"), "{:?}", reply.body);
        s.stop().await;
    }
}

/// WhatsApp's delivery failures arrive in status callbacks with an `ErrorCode` and, as a rule, no
/// `ErrorMessage` (fixtures/status-failed-63016.form). The reply row records the code's hint,
/// as a refused send records its own (DESIGN: "record them there, with the same hints").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_failure_callback_records_its_hint_on_the_reply() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::with_twilio(&db, &twilio).await;
    // A callback for a sent reply's message: the 63016 fixture, plus `extra` parameters.
    let fail = async |extra: &str| {
        let sid = sid("SM");
        assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
        assert_eq!(s.wait_processed(&sid).await, InboundState::Answered);
        let out = s.reply_row(&sid).await;
        let body = test_support::fixture("status-failed-63016.form").replace(
            "SM2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c",
            out.message_sid.as_deref().expect("sent"),
        ) + extra;
        let r = s
            .post_status(&body, &format!("ref={}", out.callback_marker))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        s.app.store.get_outbound(out.id).await.unwrap().unwrap()
    };
    let out = fail("").await;
    assert_eq!(
        (out.status.as_str(), out.error_code),
        ("failed", Some(63016))
    );
    let hint = twilio_client::hint_for_code(63016).expect("63016 has a hint");
    assert_eq!(
        out.error_message.as_deref(),
        Some(format!("error 63016: {hint}").as_str())
    );
    // Twilio's own ErrorMessage, when a callback has one, is what the row keeps.
    let out = fail("&ErrorMessage=Twilio%27s+words").await;
    assert_eq!(out.error_message.as_deref(), Some("Twilio's words"));
    s.stop().await;
}

/// A signed callback with a status this server does not know (Twilio adds statuses) is kept in
/// status_events and answered 200, and the reply's status stays: it used to be refused 400, and
/// Twilio does not retry a 4xx, so the event was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_a_status_not_in_the_list_is_kept_and_not_applied() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::with_twilio(&db, &twilio).await;
    let sid = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
    assert_eq!(s.wait_processed(&sid).await, InboundState::Answered);
    let out = s.reply_row(&sid).await;
    let reply_sid = out.message_sid.clone().expect("sent");
    let body = test_support::fixture("status-delivered.form")
        .replace("SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b", &reply_sid)
        .replace("MessageStatus=delivered", "MessageStatus=delivery_unknown");
    assert!(body.contains("MessageStatus=delivery_unknown"), "{body}");
    let r = s.post_status(&body, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = s.app.store.status_events(&reply_sid).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, "delivery_unknown");
    let after = s.app.store.get_outbound(out.id).await.unwrap().unwrap();
    assert_eq!(after.status, out.status, "not applied");
    s.stop().await;
}

/// Two identical replies to one person (a fixed template), the second's POST answered 500
/// without creating anything: its lookup lists the first reply's message, which that reply
/// recorded, so it sends its own at once (it took the first reply's message, failed on the
/// unique index and waited for the 120 s lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_reply_after_a_5xx_does_not_take_the_first_reply_s_message() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            env: vec![("AUTO_REPLY_TEMPLATE", "Thanks, we got it.".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let first = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&first)).await.status, 200);
    assert_eq!(s.wait_processed(&first).await, InboundState::Answered);
    twilio.fail_next_sends(1, 500, "error-500.json");
    let second = test_support::services::sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&second)).await.status, 200);
    assert_eq!(s.wait_processed(&second).await, InboundState::Answered);
    assert_eq!(twilio.created_messages().len(), 2, "one message per reply");
    assert_eq!(
        twilio.sent_messages().len(),
        3,
        "the 500, then the second reply's own"
    );
    let a = s.reply_row(&first).await;
    let b = s.reply_row(&second).await;
    assert_ne!(a.message_sid, b.message_sid);
    assert_eq!(b.attempts, 2);
    s.stop().await;
}

/// `.env.example` copied with only the token filled in: a placeholder Account SID or
/// Messaging Service SID cannot send, so replies are a dry run (they were sent with the
/// placeholder and failed at Twilio, although the start-up finding said they cannot be sent).
/// A placeholder Messaging Service beside a real number is ignored: the number sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_sids_make_replies_a_dry_run_instead_of_failed_sends() {
    const AC: &str = "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    const MG: &str = "MGxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    // (case, with the fake's number as TWILIO_WHATSAPP_FROM, extra setting, replies sent)
    for (case, with_from, (key, value), sends) in [
        (
            "placeholder account",
            true,
            ("TWILIO_ACCOUNT_SID", AC),
            false,
        ),
        (
            "placeholder service alone",
            false,
            ("TWILIO_MESSAGING_SERVICE_SID", MG),
            false,
        ),
        (
            "placeholder service and a number",
            true,
            ("TWILIO_MESSAGING_SERVICE_SID", MG),
            true,
        ),
    ] {
        let db = TestDb::sqlite();
        let twilio = FakeTwilio::start().await;
        let mut env = vec![(key, value.to_owned())];
        if !with_from {
            env.push(("TWILIO_API_BASE_URL", twilio.base_url()));
        }
        let s = Server::start(
            &db,
            Opts {
                twilio: with_from.then_some(&twilio),
                env,
                ..Opts::default()
            },
        )
        .await;
        assert_eq!(s.app.is_dry_run(), !sends, "{case}");
        let sid = sid("SM");
        assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
        let expected = if sends {
            InboundState::Answered
        } else {
            InboundState::DryRun
        };
        assert_eq!(s.wait_processed(&sid).await, expected, "{case}");
        let sent = twilio.sent_messages();
        assert_eq!(sent.len(), usize::from(sends), "{case}");
        if let Some(post) = sent.first() {
            assert_eq!(post.form_value("From"), Some(FROM), "{case}");
            assert_eq!(post.form_value("MessagingServiceSid"), None, "{case}");
        }
        s.stop().await;
    }
}

/// Twilio unreachable for the few seconds the send's retries take (DNS, a refused connect):
/// nothing was sent, so the reply is not given up as `failed`; the error is recorded and the
/// message keeps its claim until the lease ends, when the sweep hands it out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_an_unreachable_twilio_is_kept_for_a_later_try_not_failed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            env: vec![
                ("TWILIO_API_BASE_URL", base),
                ("TWILIO_WHATSAPP_FROM", FROM.to_owned()),
            ],
            ..Opts::default()
        },
    )
    .await;
    assert!(!s.app.is_dry_run());
    let sid = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = s.app.store.outbound_for_inbound(&sid).await.unwrap();
        if let Some(out) = out.filter(|o| o.error_message.is_some()) {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no send attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(out.status, "failed", "{out:?}");
    assert!(out.message_sid.is_none(), "{out:?}");
    assert!(out.attempts >= 1, "{out:?}");
    let msg = out.error_message.unwrap_or_default();
    assert!(
        msg.contains("TWILIO_API_BASE_URL") || msg.contains("connect"),
        "{msg}"
    );
    let row = s.app.store.get_inbound(&sid).await.unwrap().unwrap();
    assert_eq!(row.state, InboundState::Processing, "kept for a later try");
    assert!(
        row.lease_until.is_some(),
        "claimed until its lease ends: {row:?}"
    );
    s.stop().await;
}

/// The value of `key` in an urlencoded body.
fn form_value(body: &str, key: &str) -> String {
    form_urlencoded::parse(body.trim().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{key} in the fixture"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sender_replies_are_recorded_as_dry_run() {
    let db = TestDb::sqlite();
    let s = Server::start(&db, Opts::default()).await;
    assert!(s.app.is_dry_run());
    let sid = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
    assert_eq!(s.wait_processed(&sid).await, InboundState::DryRun);
    let out = s.reply_row(&sid).await;
    assert_eq!(out.status, "dry_run");
    assert_eq!(out.to, "whatsapp:+15551234567");
    assert!(out.body.contains("Hello, I need help"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_messages_are_recorded_but_never_answered() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::with_twilio(&db, &twilio).await;
    let sid = sid("SM");
    let body = format!("{}&ValidateWebhookProbe=1", inbound_body(&sid));
    assert_eq!(s.post_webhook(&body).await.status, 200);
    assert_eq!(s.wait_processed(&sid).await, InboundState::Answered);
    assert!(twilio.sent_messages().is_empty());
    assert!(
        s.app
            .store
            .outbound_for_inbound(&sid)
            .await
            .unwrap()
            .is_none()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_status_callbacks_never_move_backwards() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::with_twilio(&db, &twilio).await;
    let sid = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
    s.wait_processed(&sid).await;
    let out = s.reply_row(&sid).await;
    let reply_sid = out.message_sid.clone().unwrap();
    let marker = format!("ref={}", out.callback_marker);
    for status in ["read", "sent", "delivered", "sent"] {
        let body = test_support::fixture(&format!("status-{status}.form"))
            .replace("SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b", &reply_sid);
        let r = s.post_status(&body, &marker).await;
        assert_eq!(r.status, 200, "{status}: {}", r.body);
    }
    let out = s
        .app
        .store
        .outbound_by_message_sid(&reply_sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status, "read");
    let events = s.app.store.status_events(&reply_sid).await.unwrap();
    assert_eq!(events.len(), 4, "every callback is stored");
    s.stop().await;
}

/// STATUS_CALLBACK_URL can carry its own query (kept for the user's proxy) and Twilio's
/// `#rc=…` connection overrides. Every reply's StatusCallback adds `ref=` after that query and
/// before the fragment, and the callback Twilio makes to that URL, signed over it, is accepted
/// (with a query it was refused with 403 and the event lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_to_a_status_url_with_a_query_or_fragment_are_accepted() {
    for (configured, signed_base) in [
        (
            "https://bot.example.com/api/v1/whatsapp/status?src=twilio",
            None,
        ),
        (
            "https://bot.example.com/api/v1/whatsapp/status#rc=3&rp=all",
            Some("https://bot.example.com/api/v1/whatsapp/status"),
        ),
    ] {
        let db = TestDb::sqlite();
        let twilio = FakeTwilio::start().await;
        let s = Server::start(
            &db,
            Opts {
                twilio: Some(&twilio),
                env: vec![("STATUS_CALLBACK_URL", configured.to_owned())],
                ..Opts::default()
            },
        )
        .await;
        let sid = sid("SM");
        assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
        assert_eq!(s.wait_processed(&sid).await, InboundState::Answered);
        let callback = twilio.sent_messages()[0]
            .form_value("StatusCallback")
            .expect("StatusCallback")
            .to_owned();
        let out = s.reply_row(&sid).await;
        let marker = format!("ref={}", out.callback_marker);
        assert!(callback.contains(&marker), "{callback}");
        if let Some(base) = signed_base {
            assert!(
                callback.starts_with(&format!("{base}?{marker}#")),
                "{callback}"
            );
        } else {
            assert_eq!(callback, format!("{configured}&{marker}"));
        }
        // What reaches the server: the path and query, never the fragment.
        let (before_fragment, _) = callback.split_once('#').unwrap_or((&callback, ""));
        let path = before_fragment
            .strip_prefix("https://bot.example.com")
            .expect("same host");
        let reply_sid = out.message_sid.clone().unwrap();
        let body = test_support::fixture("status-delivered.form")
            .replace("SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b", &reply_sid);
        let signature = test_support::sign_form(test_support::AUTH_TOKEN, &callback, &body);
        let r = s.post(path, &body, &signature).await;
        assert_eq!(r.status, 200, "{configured}: {}", r.body);
        let events = s.app.store.status_events(&reply_sid).await.unwrap();
        assert_eq!(events.len(), 1, "{configured}: the event is stored");
        let metrics = s.get("/metrics").await.body;
        assert!(
            metrics.contains(
                r#"whatsapp_webhook_delivery_statuses_total{status="delivered",error_code="none"} 1"#
            ),
            "{metrics}"
        );
        s.stop().await;
    }
}

/// A sender's (or Messaging Service's, or the Sandbox's) status callback URL set to WEBHOOK_URL
/// sends delivery statuses to the inbound endpoint. Answered as a message, its From (our own
/// number) got a reply; it is recorded as a status instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_callback_sent_to_the_webhook_url_is_recorded_not_answered() {
    let twilio = FakeTwilio::start().await;
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            ..Opts::default()
        },
    )
    .await;
    let hook = "/api/v1/whatsapp/webhook";
    let status_sid = sid("SM");
    let body = test_support::fixture("status-delivered.form")
        .replace("SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b", &status_sid);
    let signature =
        test_support::sign_form(test_support::AUTH_TOKEN, test_support::WEBHOOK_URL, &body);
    let r = s.post(hook, &body, &signature).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = s.app.store.status_events(&status_sid).await.unwrap();
    assert_eq!(events.len(), 1, "recorded as a status");
    assert_eq!(events[0].status, "delivered");
    assert!(
        s.app
            .store
            .get_inbound(&status_sid)
            .await
            .unwrap()
            .is_none(),
        "not recorded as an inbound message"
    );
    // The older shape, with SmsStatus only, is a status callback too.
    let older_sid = sid("SM");
    let body = format!(
        "SmsSid={older_sid}&SmsStatus=sent&To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886&AccountSid={}",
        test_support::ACCOUNT_SID
    );
    let signature =
        test_support::sign_form(test_support::AUTH_TOKEN, test_support::WEBHOOK_URL, &body);
    assert_eq!(s.post(hook, &body, &signature).await.status, 200);
    let older = s.app.store.status_events(&older_sid).await.unwrap();
    assert_eq!(older.len(), 1, "SmsStatus=sent recorded as a status");
    assert!(s.app.store.get_inbound(&older_sid).await.unwrap().is_none());

    // A real message after it is answered, and it is the only reply sent.
    let message = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&message)).await.status, 200);
    assert_eq!(s.wait_processed(&message).await, InboundState::Answered);
    let sent = twilio.sent_messages();
    assert_eq!(sent.len(), 1, "only the real message was answered");
    assert_eq!(sent[0].form_value("To"), Some("whatsapp:+15551234567"));
    s.stop().await;
}

/// The Console's "when a message comes in" URL set to the status callback URL (the two fields
/// sit side by side): Twilio posts the inbound message there, and nowhere else. It is recorded
/// and answered as the message it is, exactly once, instead of being stored as a "received"
/// status nobody reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_message_sent_to_the_status_url_is_answered() {
    let twilio = FakeTwilio::start().await;
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            ..Opts::default()
        },
    )
    .await;
    let message = sid("SM");
    let body = inbound_body(&message);
    assert_eq!(s.post_status(&body, "").await.status, 200);
    assert_eq!(s.wait_processed(&message).await, InboundState::Answered);
    // Twilio's retry of the same delivery is a duplicate, not a second reply.
    assert_eq!(s.post_status(&body, "").await.status, 200);
    assert!(
        s.app
            .store
            .status_events(&message)
            .await
            .unwrap()
            .is_empty(),
        "not recorded as a status"
    );
    let sent = twilio.sent_messages();
    assert_eq!(sent.len(), 1, "answered once");
    assert_eq!(sent[0].form_value("To"), Some("whatsapp:+15551234567"));
    // A message without its SID is refused as malformed; a body without an inbound message's
    // SmsStatus is not taken for one (a 400 from the status parser).
    let r = s
        .post_status(
            "SmsStatus=received&Body=hi&From=whatsapp%3A%2B15551234567",
            "",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("MessageSid"), "{}", r.body);
    let other = sid("SM");
    let r = s
        .post_status(&format!("MessageSid={other}&Body=hi"), "")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("MessageStatus"), "{}", r.body);
    assert!(s.app.store.get_inbound(&other).await.unwrap().is_none());
    s.stop().await;
}

/// A server whose Twilio answers every send with 429 asking for 30 s (the first answer held
/// `hold_first`), one message posted, stopped `after_post` after its first POST reached
/// Twilio: how long the stop took, the reply row, the message's state and the POSTs made.
async fn stop_while_rate_limited(
    hold_first: Option<Duration>,
    after_post: Duration,
) -> (Duration, store::OutboundMessage, InboundState, usize) {
    let twilio = FakeTwilio::start().await;
    if let Some(hold) = hold_first {
        twilio.delay_next(1, hold);
    }
    twilio.rate_limit_next(10, 30);
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            ..Opts::default()
        },
    )
    .await;
    let sid = sid("SM");
    assert_eq!(s.post_webhook(&inbound_body(&sid)).await.status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while twilio.sent_messages().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no POST reached Twilio"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(after_post).await;
    let stopping = std::time::Instant::now();
    s.stop().await;
    let took = stopping.elapsed();

    let store = store::Store::connect(&db.url(), store::StoreOptions::default())
        .await
        .unwrap();
    let out = store
        .outbound_for_inbound(&sid)
        .await
        .unwrap()
        .expect("outbound row");
    let state = store.get_inbound(&sid).await.unwrap().unwrap().state;
    (took, out, state, twilio.sent_messages().len())
}

/// SIGTERM while a reply's POST is out: the 429 that comes back asks for a wait that, with the
/// retry after it, would end after the shutdown's 20 s. No retry starts; the try and its error
/// are recorded, the message is left to the next start's sweep, and the server stops without
/// waiting out the drain for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_starts_no_retry_that_would_end_after_it() {
    // The 429 arrives during the stop.
    let (_, out, state, posts) =
        stop_while_rate_limited(Some(Duration::from_millis(1500)), Duration::ZERO).await;
    assert_eq!(out.attempts, 1, "the try is recorded when the send ends");
    assert_eq!(out.error_code, Some(20429));
    let error = out.error_message.unwrap_or_default();
    assert!(error.contains("20429"), "{error}");
    assert_eq!(posts, 1, "no retry");
    assert_eq!(state, InboundState::Processing, "left to the sweep");
}

/// SIGTERM while a reply waits out a 429's `Retry-After` of 30 s, which with the retry after
/// it would end past the shutdown's 20 s: the wait ends when the stop comes, the try and its
/// error are recorded, and the stop does not wait out the drain for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_retry_wait_that_would_outlast_it() {
    // The 429 is back and the 30 s wait has begun.
    let (took, out, state, posts) = stop_while_rate_limited(None, Duration::from_millis(500)).await;
    assert!(
        took < Duration::from_secs(10),
        "the stop waited {took:?}: the retry wait outlasted it"
    );
    assert_eq!(out.attempts, 1, "the try is recorded when the wait ends");
    assert_eq!(out.error_code, Some(20429));
    assert_eq!(posts, 1, "no retry");
    assert_eq!(state, InboundState::Processing, "left to the sweep");
}

/// A queue that takes jobs (and counts them) and never hands them out: the state of a process
/// killed right after acknowledging (or of a Redis that lost its data).
#[derive(Default)]
struct BlackHole {
    enqueued: std::sync::atomic::AtomicUsize,
    /// What `depth` reports (0: empty).
    depth: u64,
    /// Lists what it holds, like Redis (which would hold a SID twice): `Some` records them.
    listed: Option<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl WorkQueue for BlackHole {
    fn enqueue<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.enqueued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(listed) = &self.listed {
            listed.lock().unwrap().insert(sid.to_owned());
        }
        Box::pin(async { Ok(()) })
    }
    fn waiting_sids(
        &self,
        _limit: usize,
    ) -> BoxFuture<'_, Result<Option<std::collections::HashSet<String>>, StoreError>> {
        let listed = self.listed.as_ref().map(|l| l.lock().unwrap().clone());
        Box::pin(async move { Ok(listed) })
    }
    fn receive(&self, _max: usize, block: Duration) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(block).await;
            Ok(Vec::new())
        })
    }
    fn ack<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let depth = self.depth;
        Box::pin(async move { Ok(depth) })
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
    fn kind(&self) -> &'static str {
        "black-hole"
    }
}

/// A queue whose backend is down (Redis unreachable): every call fails as unavailable.
struct Down;

impl Down {
    fn err() -> StoreError {
        StoreError::Unavailable("redis at 127.0.0.1:6379: connection refused".to_owned())
    }
}

impl WorkQueue for Down {
    fn enqueue<'a>(&'a self, _sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(Down::err()) })
    }
    fn receive(
        &self,
        _max: usize,
        _block: Duration,
    ) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(async { Err(Down::err()) })
    }
    fn ack<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(Down::err()) })
    }
    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async { Err(Down::err()) })
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Err(Down::err()) })
    }
    fn kind(&self) -> &'static str {
        "down"
    }
}

/// With the queue down, webhooks are still acknowledged (the database is the source of truth)
/// and the sweep answers them itself, each exactly once, instead of waiting for the queue.
async fn sweep_answers_while_the_queue_is_down(db: &TestDb) {
    let twilio = FakeTwilio::start().await;
    let s = Server::start(
        db,
        Opts {
            twilio: Some(&twilio),
            queue: Some(Arc::new(Down)),
            ..Opts::default()
        },
    )
    .await;
    let sids = s.post_new_messages(3).await;
    // The worker cannot take them: only a sweep answers them. The server's own first pass may
    // have run after the first posts and taken those already; this pass takes the rest.
    let taken = webhook_core::sweep::sweep_once(&s.app, Duration::ZERO).await;
    assert!(taken <= 3, "{taken}");
    for sid in &sids {
        assert_eq!(s.wait_processed(sid).await, InboundState::Answered);
    }
    let sent = twilio.sent_messages();
    assert_eq!(sent.len(), 3, "one reply each");
    assert!(
        sent.iter()
            .all(|m| m.form_value("To") == Some("whatsapp:+15551234567")
                && m.form_value("From") == Some(FROM)),
        "replies go to the sender, from our number"
    );

    // The next sweep finds nothing left, so nothing is sent twice.
    assert_eq!(
        webhook_core::sweep::sweep_once(&s.app, Duration::ZERO).await,
        0
    );
    assert_eq!(twilio.sent_messages().len(), 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sweep_answers_while_the_queue_is_down() {
    sweep_answers_while_the_queue_is_down(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sweep_answers_while_the_queue_is_down() {
    if let Some(db) = TestDb::postgres().await {
        sweep_answers_while_the_queue_is_down(&db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_acknowledged_before_a_crash_are_answered_once_after_restart() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let first = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            queue: Some(Arc::new(BlackHole::default())),
            ..Opts::default()
        },
    )
    .await;
    let sids: Vec<String> = (0..5).map(|_| sid("SM")).collect();
    for sid in &sids {
        assert_eq!(first.post_webhook(&inbound_body(sid)).await.status, 200);
    }
    first.stop().await;
    assert!(
        twilio.sent_messages().is_empty(),
        "nothing answered before the crash"
    );

    let second = Server::with_twilio(&db, &twilio).await;
    for sid in &sids {
        assert_eq!(second.wait_processed(sid).await, InboundState::Answered);
    }
    assert_eq!(twilio.sent_messages().len(), 5, "one reply each");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_and_redis_reply_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    if !require_redis() {
        return;
    }
    let twilio = FakeTwilio::start().await;
    let prefix = unique("wa_test_");
    let a = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            queue: Some(redis_queue(&prefix, "a")),
            worker_id: "instance-a",
            ..Opts::default()
        },
    )
    .await;
    let b = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            queue: Some(redis_queue(&prefix, "b")),
            worker_id: "instance-b",
            ..Opts::default()
        },
    )
    .await;
    let sids: Vec<String> = (0..10).map(|_| sid("SM")).collect();
    for sid in &sids {
        let statuses = post_concurrently(&[a.addr, b.addr], &inbound_body(sid), 4).await;
        assert_eq!(statuses, vec![200; 4]);
    }
    for sid in &sids {
        a.wait_processed(sid).await;
    }
    let sent = twilio.sent_messages();
    assert_eq!(
        sent.len(),
        sids.len(),
        "one reply per message across both instances"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_dying_is_given_up_not_requeued_forever() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let first = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            queue: Some(Arc::new(BlackHole::default())),
            ..Opts::default()
        },
    )
    .await;
    let sid = sid("SM");
    assert_eq!(first.post_webhook(&inbound_body(&sid)).await.status, 200);
    // Ten earlier workers claimed it and died before recording an outcome.
    for n in 0..webhook_core::worker::MAX_CLAIMS {
        let claimed = first
            .app
            .store
            .claim_inbound(&sid, &format!("dead-worker#{n}"), Duration::ZERO)
            .await
            .unwrap();
        assert!(claimed.is_some(), "claim {n}");
    }
    first.stop().await;

    let second = Server::with_twilio(&db, &twilio).await;
    assert_eq!(second.wait_processed(&sid).await, InboundState::Failed);
    assert!(twilio.sent_messages().is_empty());
    second.stop().await;
}

/// More messages than one worker batch holds, arriving together: every message is answered once
/// (batches of up to `BATCH_MAX`, SQLite's gather, two batches in flight on PostgreSQL).
async fn a_dry_run_burst_is_answered_once_per_message(db: &TestDb) {
    let s = Arc::new(Server::start(db, Opts::default()).await);
    assert!(s.app.is_dry_run());
    let n = webhook_core::worker::BATCH_MAX * 2 + 88;
    let sids: Vec<String> = (0..n).map(|_| sid("SM")).collect();
    // Every 50th message is a validate-webhook probe: recorded, never answered.
    let is_probe = |i: usize| i.is_multiple_of(50);
    let mut tasks = Vec::new();
    for (c, chunk) in sids.chunks(n / 16 + 1).enumerate() {
        let (s, chunk) = (s.clone(), chunk.to_vec());
        let first = c * (n / 16 + 1);
        tasks.push(tokio::spawn(async move {
            for (i, sid) in chunk.iter().enumerate() {
                let mut body = inbound_body(sid);
                if is_probe(first + i) {
                    body.push_str("&ValidateWebhookProbe=1");
                }
                assert_eq!(s.post_webhook(&body).await.status, 200, "{sid}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (i, sid) in sids.iter().enumerate() {
        let state = s.wait_processed(sid).await;
        let reply = s.app.store.outbound_for_inbound(sid).await.unwrap();
        if is_probe(i) {
            assert_eq!(state, InboundState::Answered, "{sid}");
            assert!(reply.is_none(), "a probe is never answered: {sid}");
        } else {
            assert_eq!(state, InboundState::DryRun, "{sid}");
            let reply = reply.expect("one reply row");
            assert_eq!(reply.status, "dry_run");
            assert_eq!(reply.to, "whatsapp:+15551234567");
        }
        let row = s.app.store.get_inbound(sid).await.unwrap().unwrap();
        assert_eq!(row.attempts, 1, "answered on the first attempt: {sid}");
    }
    Arc::into_inner(s).expect("tasks done").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_burst_on_sqlite_is_answered_once_per_message() {
    a_dry_run_burst_is_answered_once_per_message(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_burst_on_postgres_is_answered_once_per_message() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_dry_run_burst_is_answered_once_per_message(&db).await;
}

/// The sweep's fallback sends with the worker's slots: while the worker's sends fill
/// `WORKER_CONCURRENCY`, `process_directly` waits instead of sending more next to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_processing_shares_the_workers_send_slots() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            env: vec![("WORKER_CONCURRENCY", "2".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    // The worker's two sends are held by Twilio for 2 s: both slots are taken.
    twilio.delay_next_sends(2, Duration::from_secs(2));
    let first = s.post_new_messages(2).await;
    wait_for_sends(&twilio, 2, "the worker never sent").await;

    // Two more messages, handed to the fallback path as the sweep does while Redis is down.
    let more = s.post_new_messages(2).await;
    let app = s.app.clone();
    let direct = tokio::spawn({
        let more = more.clone();
        async move { webhook_core::worker::process_directly(&app, &more).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        twilio.sent_messages().len(),
        2,
        "no send beyond WORKER_CONCURRENCY while the worker's two are in flight"
    );

    direct.await.unwrap();
    for sid in first.iter().chain(&more) {
        assert_eq!(s.wait_processed(sid).await, InboundState::Answered);
    }
    assert_eq!(
        twilio.sent_messages().len(),
        4,
        "each message answered once"
    );
    s.stop().await;
}

/// Shutdown while the fallback waits for send slots: the worker's drain (every slot at once)
/// and a fallback chunk that held some slots while queueing for more used to wait for each other
/// until the 20 s drain deadline. The fallback now takes a chunk's slots in one wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_the_fallback_waiting_for_send_slots() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            queue: Some(Arc::new(BlackHole::default())),
            env: vec![("WORKER_CONCURRENCY", "3".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let held = s.post_new_messages(2).await;
    let waiting = s.post_new_messages(3).await;
    // Two sends hold two of the three slots for 1.5 s.
    twilio.delay_next_sends(2, Duration::from_millis(1500));
    let app = s.app.clone();
    let first =
        tokio::spawn(async move { webhook_core::worker::process_directly(&app, &held).await });
    wait_for_sends(&twilio, 2, "the first sends never started").await;
    // A chunk of three waits for slots; then the server is asked to stop.
    let app = s.app.clone();
    let second =
        tokio::spawn(async move { webhook_core::worker::process_directly(&app, &waiting).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    s.stop().await;
    let took = started.elapsed();
    first.await.unwrap();
    second.await.unwrap();
    assert!(
        took < Duration::from_secs(10),
        "shutdown waited {took:?}: the drain and the fallback held each other's slots"
    );
    assert_eq!(
        twilio.sent_messages().len(),
        5,
        "every message answered once"
    );
}

/// While the queue is down the worker waits between retries (up to 10 s); it must not keep the
/// send slots the sweep's fallback needs meanwhile, or the fallback answers one chunk per wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_is_not_slowed_by_the_workers_queue_retries() {
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            queue: Some(Arc::new(Down)),
            env: vec![("WORKER_CONCURRENCY", "1".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    // Let the worker's retry wait grow past 3 s (0.1, 0.2, 0.4, 0.8, 1.6, then 3.2 s).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let sids = s.post_new_messages(3).await;
    // Strictly older than "now" for the sweep; the background sweep waits 10 s (its grace).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    assert_eq!(
        webhook_core::sweep::sweep_once(&s.app, Duration::ZERO).await,
        3,
        "the fallback answers the three, one chunk at a time"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "three one-message chunks took {took:?}: the fallback waited for the worker's retries"
    );
    for sid in &sids {
        assert_eq!(s.wait_processed(sid).await, InboundState::Answered);
    }
    assert_eq!(twilio.sent_messages().len(), 3, "each answered once");
    s.stop().await;
}

/// Waits (up to 5 s) until the fake Twilio has received `n` message creates.
async fn wait_for_sends(twilio: &FakeTwilio, n: usize, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while twilio.sent_messages().len() < n {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_what_the_in_process_queue_still_holds() {
    // One send at a time, each taking 150 ms at Twilio: when the stop comes, most of the
    // acknowledged messages are still in the in-process queue, which dies with the process.
    let db = TestDb::sqlite();
    let twilio = FakeTwilio::start().await;
    twilio.delay_next_sends(6, Duration::from_millis(150));
    let s = Server::start(
        &db,
        Opts {
            twilio: Some(&twilio),
            env: vec![("WORKER_CONCURRENCY", "1".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    let sids = s.post_new_messages(6).await;
    s.stop().await;
    // The server closed its pool: read through a new one.
    let store = store::Store::connect(&db.url(), store::StoreOptions::default())
        .await
        .expect("reopen");
    for sid in &sids {
        let row = store.get_inbound(sid).await.unwrap().expect("row");
        assert_eq!(
            row.state,
            InboundState::Answered,
            "{sid} answered before exit"
        );
    }
    assert_eq!(twilio.sent_messages().len(), 6);
}

/// Posts `sids` to `server`, `concurrency` at a time, and checks each got its 200.
async fn post_all(server: &Arc<Server>, sids: &[String], concurrency: usize) {
    let mut tasks = Vec::new();
    for chunk in sids.chunks(sids.len().div_ceil(concurrency)) {
        let (s, chunk) = (server.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for sid in &chunk {
                assert_eq!(
                    s.post_webhook(&inbound_body(sid)).await.status,
                    200,
                    "{sid}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// `n` messages recorded by a server whose queue never hands them out, stopped: what a process
/// that died before answering leaves in `db`.
async fn left_unanswered(db: &TestDb, n: usize) -> Vec<String> {
    let first = Arc::new(
        Server::start(
            db,
            Opts {
                queue: Some(Arc::new(BlackHole::default())),
                ..Opts::default()
            },
        )
        .await,
    );
    let sids: Vec<String> = (0..n).map(|_| sid("SM")).collect();
    post_all(&first, &sids, 8).await;
    Arc::into_inner(first).expect("posts done").stop().await;
    sids
}

/// Waits up to 10 s for the server's work queue to count no job, waiting or in flight.
async fn wait_queue_empty(s: &Server, when: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let depth = s.app.queue.depth().await.unwrap();
        if depth == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue depth still {depth} {when}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A server on `db` working from `queue`, whose sweep passes only at start
/// (`SWEEP_INTERVAL_SECS=3600`), so what a test sees is not an interval's pass.
async fn start_with_queue(db: &TestDb, queue: Arc<dyn WorkQueue>) -> Server {
    Server::start(
        db,
        Opts {
            queue: Some(queue),
            env: vec![("SWEEP_INTERVAL_SECS", "3600".to_owned())],
            ..Opts::default()
        },
    )
    .await
}

/// After downtime the start's sweep finds more unanswered messages than one sweep takes: it
/// keeps going as the worker answers them, instead of one batch per `SWEEP_INTERVAL_SECS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_found_at_start_is_answered_without_waiting_for_the_interval() {
    let db = TestDb::sqlite();
    let n = webhook_core::sweep::BATCH as usize + 150;
    let sids = left_unanswered(&db, n).await;

    let second = Server::start(
        &db,
        Opts {
            env: vec![("SWEEP_INTERVAL_SECS", "3600".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    for sid in &sids {
        assert_eq!(second.wait_processed(sid).await, InboundState::DryRun);
    }
    second.stop().await;
}

/// A burst bigger than the in-process queue: the jobs it dropped are queued again by the sweep
/// as soon as the queue has room (not at the next `SWEEP_INTERVAL_SECS`), and every message is
/// answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_full_in_process_queue_dropped_are_answered_once_it_has_room() {
    let db = TestDb::sqlite();
    let queue = Arc::new(store::InProcessQueue::with_capacity(4));
    let s = Arc::new(start_with_queue(&db, queue.clone()).await);
    let sids: Vec<String> = (0..300).map(|_| sid("SM")).collect();
    post_all(&s, &sids, 16).await;
    assert!(queue.dropped() > 0, "the burst overflowed the queue");
    for sid in &sids {
        assert_eq!(s.wait_processed(sid).await, InboundState::DryRun, "{sid}");
        let reply = s.app.store.outbound_for_inbound(sid).await.unwrap();
        assert_eq!(reply.expect("one reply row").status, "dry_run");
        let row = s.app.store.get_inbound(sid).await.unwrap().unwrap();
        assert_eq!(row.attempts, 1, "answered on the first attempt: {sid}");
    }
    Arc::into_inner(s).expect("posts done").stop().await;
}

/// A backlog whose messages stay unanswered (nothing takes them from this queue) is queued
/// once per pass while passes come back full, then looked at again after `GRACE`: the sweep
/// does not re-read and re-queue the same messages in a loop because the queue has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_that_stays_unanswered_is_not_swept_in_a_loop() {
    let db = TestDb::sqlite();
    let n = webhook_core::sweep::BATCH as usize + 100;
    left_unanswered(&db, n).await;

    let queue = Arc::new(BlackHole::default());
    let second = start_with_queue(&db, queue.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let enqueued = queue.enqueued.load(std::sync::atomic::Ordering::Relaxed);
    // The start's pass (a full 500) and one backlog pass (all 600, not a full 5,000), then
    // nothing until GRACE (10 s) has passed.
    assert_eq!(
        enqueued,
        webhook_core::sweep::BATCH as usize + n,
        "{enqueued}"
    );
    second.stop().await;
}

/// A queue that lists its jobs (Redis) is not given a message it already holds: with a worker
/// slower than the inflow (Twilio down) every sweep pass used to add every unanswered message
/// again, and the stream grew without bound (2,962 entries for 20 messages in 13 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_does_not_queue_a_message_the_queue_still_holds() {
    let db = TestDb::sqlite();
    left_unanswered(&db, 5).await;
    let queue = Arc::new(BlackHole {
        listed: Some(Default::default()),
        ..BlackHole::default()
    });
    let s = start_with_queue(&db, queue.clone()).await;
    let enqueued = || queue.enqueued.load(std::sync::atomic::Ordering::Relaxed);
    // The start's pass queued the five; later passes find them still waiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while enqueued() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "{}", enqueued());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        assert_eq!(
            webhook_core::sweep::sweep_once(&s.app, Duration::ZERO).await,
            0
        );
    }
    assert_eq!(enqueued(), 5);
    // A message the queue lost (Redis restarted empty) is queued again.
    queue.listed.as_ref().unwrap().lock().unwrap().clear();
    assert_eq!(
        webhook_core::sweep::sweep_once(&s.app, Duration::ZERO).await,
        5
    );
    s.stop().await;
}

/// A backlog whose queue stays full (a Redis stream that survived the restart with its jobs
/// still in it) is queued once, not again at every sweep interval while the queue has no room:
/// each such pass used to add thousands of entries for messages already waiting in the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_not_queued_again_while_the_queue_stays_full() {
    let db = TestDb::sqlite();
    let n = webhook_core::sweep::BATCH as usize + 100;
    left_unanswered(&db, n).await;

    let queue = Arc::new(BlackHole {
        depth: 2 * webhook_core::sweep::BATCH,
        listed: Some(Default::default()),
        ..BlackHole::default()
    });
    let second = Server::start(
        &db,
        Opts {
            queue: Some(queue.clone()),
            env: vec![("SWEEP_INTERVAL_SECS", "1".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let enqueued = queue.enqueued.load(std::sync::atomic::Ordering::Relaxed);
    // The start's pass (a full 500) found the backlog; the passes at the next intervals queued
    // the other 100 and nothing twice (1,100 and more before).
    assert_eq!(enqueued, n, "{enqueued}");
    second.stop().await;
}

/// Makes the SQLite database `db` refuse every `op` (`INSERT`, `UPDATE`) on `table`, with a
/// trigger named `refuse_<table>`: a write the worker cannot make.
async fn refuse(db: &TestDb, op: &str, table: &str) {
    test_support::services::execute_sql(
        &db.url(),
        &format!(
            "CREATE TRIGGER refuse_{table} BEFORE {op} ON {table} \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ),
    )
    .await;
}

/// A batch the worker cannot write gives its jobs back: the in-process queue stops counting
/// them (they used to stay "in flight" for good, so `queue_depth` over-reported from then on),
/// and the messages stay recorded, unanswered, for the sweep. In dry run a trigger refuses the
/// reply rows (the one transaction that answers the batch fails); with a sender it refuses the
/// claim.
async fn jobs_of_a_batch_that_cannot_be_written_leave_the_queue_depth(twilio: Option<&FakeTwilio>) {
    let db = TestDb::sqlite();
    // The in-process queue (no REDIS_URL); the sweep passes only at start.
    let s = Server::start(
        &db,
        Opts {
            twilio,
            env: vec![("SWEEP_INTERVAL_SECS", "3600".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    if twilio.is_some() {
        refuse(&db, "UPDATE", "inbound_messages").await;
    } else {
        refuse(&db, "INSERT", "outbound_messages").await;
    }
    let sids = s.post_new_messages(3).await;
    wait_queue_empty(&s, "after the worker's batch failed").await;
    for sid in &sids {
        let row = s
            .app
            .store
            .get_inbound(sid)
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(
            row.state,
            InboundState::Received,
            "left for the sweep: {sid}"
        );
    }
    if let Some(twilio) = twilio {
        assert!(twilio.sent_messages().is_empty(), "nothing was sent");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_dry_run_batch_that_cannot_be_written_leave_the_queue_depth() {
    jobs_of_a_batch_that_cannot_be_written_leave_the_queue_depth(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_batch_that_cannot_be_claimed_leave_the_queue_depth() {
    let twilio = FakeTwilio::start().await;
    jobs_of_a_batch_that_cannot_be_written_leave_the_queue_depth(Some(&twilio)).await;
}

/// One message the database refuses (here a trigger on its row; the NUL character PostgreSQL
/// cannot hold was one such) does not hold back the messages batched with it: the refused batch
/// is processed again one message at a time, and only that message waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_database_refuses_does_not_hold_back_its_batch() {
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            env: vec![("SWEEP_INTERVAL_SECS", "1".to_owned())],
            ..Opts::default()
        },
    )
    .await;
    // First every answer is refused, so that the four messages wait together for the sweep,
    // which queues them at once: one batch.
    refuse(&db, "UPDATE", "inbound_messages").await;
    let sids = s.post_new_messages(4).await;
    wait_queue_empty(&s, "after the refused batches").await;
    let poison = &sids[1];
    test_support::services::execute_sql(&db.url(), "DROP TRIGGER refuse_inbound_messages").await;
    test_support::services::execute_sql(
        &db.url(),
        &format!(
            "CREATE TRIGGER refuse_one BEFORE UPDATE ON inbound_messages \
             WHEN NEW.message_sid = '{poison}' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ),
    )
    .await;
    for sid in sids.iter().filter(|s| *s != poison) {
        assert_eq!(s.wait_processed(sid).await, InboundState::DryRun, "{sid}");
    }
    let row = s.app.store.get_inbound(poison).await.unwrap().unwrap();
    assert_eq!(row.state, InboundState::Received, "the refused one waits");
    s.stop().await;
}

/// A handler that never answers.
struct NoReply;

impl webhook_core::Handler for NoReply {
    fn reply(&self, _msg: &webhook_core::InboundMessage) -> Option<webhook_core::Reply> {
        None
    }
}

/// `sends_total` counts an outcome once it is committed: a dry-run batch whose transaction fails
/// (a trigger refuses the state updates) counts nothing, and the same messages answered later
/// by the sweep count once. (Outcomes without a reply used to be counted when decided, before
/// the commit, so a failed or retried batch counted them again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_counted_once_committed_not_when_decided() {
    let db = TestDb::sqlite();
    let s = Server::start(
        &db,
        Opts {
            // No reply is due: every message ends `answered` (skipped).
            handler: Some(Arc::new(NoReply)),
            ..Opts::default()
        },
    )
    .await;
    refuse(&db, "UPDATE", "inbound_messages").await;
    let sids = s.post_new_messages(3).await;
    wait_queue_empty(&s, "after the refused batch").await;
    let skipped = r#"whatsapp_webhook_sends_total{outcome="skipped"}"#;
    let m = s.get("/metrics").await.body;
    assert!(!m.contains(skipped), "nothing was committed: {m}");

    test_support::services::execute_sql(&db.url(), "DROP TRIGGER refuse_inbound_messages").await;
    // The sweep finds them once they are older than its grace period.
    for sid in &sids {
        assert_eq!(s.wait_processed(sid).await, InboundState::Answered);
    }
    let m = s.get("/metrics").await.body;
    assert!(m.contains(&format!("{skipped} 3\n")), "{m}");
    s.stop().await;
}

/// A handler that panics on one message and answers the others.
struct PanicsOn(String);

impl webhook_core::Handler for PanicsOn {
    fn reply(&self, msg: &webhook_core::InboundMessage) -> Option<webhook_core::Reply> {
        assert_ne!(msg.message_sid, self.0, "the application's handler broke");
        Some(webhook_core::Reply::text(format!(
            "got {}",
            msg.message_sid
        )))
    }
}

/// A panic in the application's handler costs only its own message: it is marked `failed`, the
/// messages of the same batch are answered, and the queue does not keep counting the batch as
/// in flight. (The panic used to end the batch's task: with a sender the batch's claims waited
/// for their 2-minute lease; in dry run the rolled-back batch was swept into the same panic
/// again and again.) The six messages are recorded first, so that the server's start-up sweep
/// queues them together and they make one batch.
async fn a_panicking_handler_fails_only_its_message(twilio: Option<&FakeTwilio>) {
    let db = TestDb::sqlite();
    let sids = left_unanswered(&db, 6).await;
    let bad = sids[2].clone();
    let s = Server::start(
        &db,
        Opts {
            twilio,
            handler: Some(Arc::new(PanicsOn(bad.clone()))),
            ..Opts::default()
        },
    )
    .await;
    let answered = if twilio.is_some() {
        InboundState::Answered
    } else {
        InboundState::DryRun
    };
    for sid in &sids {
        let want = if *sid == bad {
            InboundState::Failed
        } else {
            answered
        };
        assert_eq!(s.wait_processed(sid).await, want, "{sid}");
    }
    if let Some(twilio) = twilio {
        wait_for_sends(twilio, sids.len() - 1, "a reply to each other message").await;
    }
    wait_queue_empty(&s, "after the batch").await;
    let m = s.get("/metrics").await.body;
    assert!(
        m.contains("whatsapp_webhook_sends_total{outcome=\"failed\"} 1\n"),
        "{m}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_only_its_message_in_dry_run() {
    a_panicking_handler_fails_only_its_message(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_only_its_message_when_sending() {
    let twilio = FakeTwilio::start().await;
    a_panicking_handler_fails_only_its_message(Some(&twilio)).await;
}

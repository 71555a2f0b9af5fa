//! `send_with_retry`: what is retried, how long it waits, and that a lost response never
//! turns into a second message.

use std::time::Duration;

use serde_json::json;
use test_support::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio};
use twilio_client::{Auth, RetryPolicy, SendRecords, TwilioError};

use super::timeouts::{CLIENT_TIMEOUT, FAKE_DELAY};
use crate::{FROM, Sleeps, TO, client, client_with, lookups, reply};

/// A token client with the short test timeout that records its waits instead of sleeping.
fn recording(fake: &FakeTwilio) -> (Sleeps, twilio_client::Client) {
    let sleeps = Sleeps::default();
    let client = sleeps.attach(client_with(
        fake,
        Auth::token(ACCOUNT_SID, AUTH_TOKEN),
        CLIENT_TIMEOUT,
    ));
    (sleeps, client)
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(
        max_attempts,
        Duration::from_millis(100),
        Duration::from_millis(250),
    )
}

#[test]
fn server_errors_are_retried_until_success_with_a_lookup_before_each_resend() {
    let fake = FakeTwilio::start_blocking();
    fake.fail_next_sends(2, 500, "error-500.json");
    let sleeps = Sleeps::default();
    let client = sleeps.attach(client(&fake));

    let outcome = client
        .send_with_retry(&reply("hi"), &policy(4))
        .expect("third try works");
    assert_eq!(outcome.attempts, 3);
    assert!(!outcome.recovered);
    assert_eq!(fake.sent_messages().len(), 3);
    assert_eq!(
        fake.created_messages().len(),
        1,
        "exactly one message exists"
    );
    assert_eq!(
        lookups(&fake),
        2,
        "a 5xx may have been processed: look before resending"
    );
    let taken = sleeps.taken();
    assert_eq!(taken.len(), 2);
    assert!(taken[0] <= Duration::from_millis(100), "{taken:?}");
    assert!(taken[1] <= Duration::from_millis(200), "{taken:?}");
}

#[test]
fn rate_limit_is_retried_after_retry_after_without_lookup() {
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(1, 7);
    let sleeps = Sleeps::default();
    let client = sleeps.attach(client(&fake));

    let outcome = client
        .send_with_retry(&reply("hi"), &RetryPolicy::default())
        .expect("second try works");
    assert_eq!(outcome.attempts, 2);
    assert_eq!(sleeps.taken(), [Duration::from_secs(7)]);
    assert_eq!(lookups(&fake), 0, "a 429 was never processed");
}

#[test]
fn retry_after_is_capped() {
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(2, 3600);
    let sleeps = Sleeps::default();
    let client = sleeps.attach(client(&fake));
    let capped = RetryPolicy {
        max_retry_after: Duration::from_secs(20),
        ..RetryPolicy::default()
    };
    client
        .send_with_retry(&reply("hi"), &capped)
        .expect("third try works");
    assert_eq!(sleeps.taken(), [Duration::from_secs(20); 2]);
}

#[test]
fn client_errors_are_not_retried() {
    for (status, fixture, code) in [
        (400, "error-21211.json", 21211),
        (401, "error-20003.json", 20003),
    ] {
        let fake = FakeTwilio::start_blocking();
        fake.fail_next(1, status, fixture);
        let sleeps = Sleeps::default();
        let client = sleeps.attach(client(&fake));
        let err = client
            .send_with_retry(&reply("hi"), &RetryPolicy::default())
            .expect_err("not retryable");
        assert_eq!(err.code(), Some(code));
        assert_eq!(
            fake.requests().len(),
            1,
            "{code}: one request, no retry, no lookup"
        );
        assert!(sleeps.taken().is_empty(), "{code}");
    }
}

#[test]
fn attempts_are_capped_and_the_last_error_is_returned() {
    let fake = FakeTwilio::start_blocking();
    fake.fail_next_sends(10, 503, "error-500.json");
    let sleeps = Sleeps::default();
    let client = sleeps.attach(client(&fake));
    let err = client
        .send_with_retry(&reply("hi"), &policy(3))
        .expect_err("always failing");
    assert!(matches!(err, TwilioError::Server(_)), "{err:?}");
    assert_eq!(fake.sent_messages().len(), 3);
    let taken = sleeps.taken();
    assert_eq!(taken.len(), 2);
    assert!(
        taken.iter().all(|d| *d <= Duration::from_millis(250)),
        "{taken:?}"
    );
}

#[test]
fn a_failure_says_how_many_posts_it_took() {
    // Rate limited on every try: every try is a POST, the count is the policy's.
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(10, 1);
    let sleeps = Sleeps::default();
    let limited = sleeps.attach(client(&fake));
    let failed = limited
        .send_counting_attempts(&reply("hi"), &policy(3))
        .expect_err("always rate limited");
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.error.code(), Some(20429));
    assert_eq!(fake.sent_messages().len(), 3);
    assert!(
        failed.to_string().contains("after 3 POST attempts"),
        "{failed}"
    );

    // A permanent error stops at the first POST; a refused request makes none.
    let fake = FakeTwilio::start_blocking();
    fake.fail_next(1, 400, "error-21211.json");
    let refused = sleeps.attach(client(&fake));
    let failed = refused
        .send_counting_attempts(&reply("hi"), &policy(3))
        .expect_err("not retryable");
    assert_eq!((failed.attempts, failed.error.code()), (1, Some(21211)));
    let too_long = reply(&"x".repeat(twilio_client::MAX_BODY_CHARS + 1));
    let failed = refused
        .send_counting_attempts(&too_long, &policy(3))
        .expect_err("a body over 1,600 characters is refused before sending");
    assert_eq!(failed.attempts, 0);
    assert!(
        matches!(failed.error, TwilioError::InvalidRequest(_)),
        "{failed:?}"
    );
}

#[test]
fn lost_response_is_found_by_lookup_instead_of_resending() {
    let fake = FakeTwilio::start_blocking();
    fake.delay_next_sends(1, FAKE_DELAY);
    let (sleeps, client) = recording(&fake);

    let outcome = client
        .send_with_retry(&reply("only once"), &policy(4))
        .expect("found");
    assert!(outcome.recovered);
    assert_eq!(outcome.attempts, 1);
    assert!(
        sleeps.taken()[0] >= CLIENT_TIMEOUT,
        "the lookup after a lost response waits a request timeout first: {:?}",
        sleeps.taken()
    );
    assert_eq!(fake.sent_messages().len(), 1, "no duplicate send");
    let created = fake.created_messages();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["sid"], outcome.message.sid.as_str());
    let list = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .expect("lookup");
    assert_eq!(list.query_value("To"), Some(TO));
    assert_eq!(list.query_value("From"), Some(FROM));
}

/// A 502 or 504, or a 5xx page without Twilio's JSON error, came from a gateway in front of
/// Twilio's API, whose create may still be running: the lookup waits a request timeout first,
/// as after a lost response (it came 0–0.5 s later, missed a message created 2 s later, and the
/// resend was a second message). A 5xx with Twilio's error code is Twilio's own answer: looked
/// up at once.
#[test]
fn a_gateway_s_5xx_is_looked_up_after_a_request_timeout_like_a_lost_response() {
    let html = "<html><body><h1>504 Gateway Time-out</h1></body></html>";
    let json_504 = r#"{"code": 20504, "message": "Gateway Timeout", "status": 504}"#;
    for (status, body) in [
        (504, html),
        (502, html),
        (500, html),
        (503, html),
        (504, json_504),
    ] {
        let fake = FakeTwilio::start_blocking();
        fake.fail_next_sends_with_body(1, status, body);
        let (sleeps, client) = recording(&fake);
        let outcome = client
            .send_with_retry(&reply("once"), &policy(4))
            .expect("sent on the second try");
        assert_eq!(outcome.attempts, 2, "{status}");
        let taken = sleeps.taken();
        assert!(taken[0] >= CLIENT_TIMEOUT, "{status}: {taken:?}");
        assert_eq!(lookups(&fake), 1, "{status}: looked up before the resend");
        assert_eq!(fake.created_messages().len(), 1, "{status}");
    }
    // Twilio's own 500 (JSON with its code): no such wait.
    let fake = FakeTwilio::start_blocking();
    fake.fail_next_sends(1, 500, "error-500.json");
    let (sleeps, client) = recording(&fake);
    client
        .send_with_retry(&reply("once"), &policy(4))
        .expect("sent on the second try");
    assert!(sleeps.taken()[0] < CLIENT_TIMEOUT, "{:?}", sleeps.taken());
}

/// Twilio may finish creating a message after the client has stopped waiting for the answer:
/// a lookup right after the timeout would miss it and the resend would be a second message.
/// The lookup waits one more request timeout first (a real wait here, not a recorded one).
#[test]
fn a_create_still_running_when_the_client_gave_up_is_found_not_sent_again() {
    let fake = FakeTwilio::start_blocking();
    // Created 500 ms after the client's 1.5 s timeout.
    fake.delay_next_sends_creating_late(1, CLIENT_TIMEOUT + Duration::from_millis(500));
    let client = client_with(&fake, Auth::token(ACCOUNT_SID, AUTH_TOKEN), CLIENT_TIMEOUT);

    let outcome = client
        .send_with_retry(&reply("just once"), &policy(4))
        .expect("found");
    assert!(outcome.recovered, "{outcome:?}");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(fake.created_messages().len(), 1, "no second message");
    assert_eq!(fake.sent_messages().len(), 1, "one POST");
}

/// The caller learned the message's SID another way (a status callback with its marker) while
/// the response was lost and the list does not show the message: that message is fetched and
/// returned, nothing is sent again.
#[test]
fn a_sid_known_from_a_status_callback_is_taken_instead_of_resending() {
    let fake = FakeTwilio::start_blocking();
    fake.delay_next_sends(1, FAKE_DELAY);
    fake.respond(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        200,
        r#"{"messages": []}"#,
    );
    let client = Sleeps::default().attach(client_with(
        &fake,
        Auth::token(ACCOUNT_SID, AUTH_TOKEN),
        CLIENT_TIMEOUT,
    ));
    struct Marker<'a>(&'a FakeTwilio);
    impl SendRecords for Marker<'_> {
        fn known_sid(&self) -> Option<String> {
            self.0
                .created_messages()
                .first()
                .and_then(|m| m["sid"].as_str().map(str::to_owned))
        }
    }
    let outcome = client
        .send_counting_attempts_with(&reply("hi"), &policy(4), &Marker(&fake))
        .expect("found by its SID");
    assert!(outcome.recovered);
    assert_eq!(outcome.attempts, 1);
    assert_eq!(fake.sent_messages().len(), 1, "not sent again");
    assert_eq!(lookups(&fake), 0, "no list needed");
}

/// Two identical replies to one person: the first was sent and recorded; the second's POST
/// got a 500 without creating anything. Its lookup must not take the first reply's message
/// (recorded by that reply), and sends its own.
#[test]
fn a_lookup_skips_a_message_another_send_recorded() {
    let fake = FakeTwilio::start_blocking();
    let client = Sleeps::default().attach(client(&fake));
    let first = client
        .send_message(&reply("same text"))
        .expect("first reply");
    fake.fail_next_sends(1, 500, "error-500.json");
    struct Recorded(String);
    impl SendRecords for Recorded {
        fn taken(&self, sid: &str) -> bool {
            sid == self.0
        }
    }
    let outcome = client
        .send_counting_attempts_with(
            &reply("same text"),
            &policy(4),
            &Recorded(first.sid.clone()),
        )
        .expect("sent");
    assert!(!outcome.recovered, "{outcome:?}");
    assert_ne!(outcome.message.sid, first.sid);
    assert_eq!(fake.created_messages().len(), 2, "one message per reply");
}

/// A lookup answered 200 with something that is not a message list (a proxy's JSON) proves
/// nothing: the send is left in doubt, never sent again.
#[test]
fn a_lookup_answer_without_a_message_list_is_not_taken_for_an_empty_one() {
    let fake = FakeTwilio::start_blocking();
    fake.fail_next_sends(1, 500, "error-500.json");
    fake.respond(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        200,
        r#"{"page": 0}"#,
    );
    let client = Sleeps::default().attach(client(&fake));
    let failed = client
        .send_counting_attempts(&reply("hi"), &policy(4))
        .expect_err("the outcome stays unknown");
    assert!(failed.error.may_have_been_sent(), "{failed:?}");
    assert_eq!(fake.sent_messages().len(), 1, "never sent again");
}

#[test]
fn timeout_without_a_created_message_is_resent_after_the_lookup() {
    let fake = FakeTwilio::start_blocking();
    // The first send fails (nothing created) and its answer is also too slow to arrive.
    fake.fail_next_sends(1, 500, "error-500.json");
    fake.delay_next_sends(1, FAKE_DELAY);
    let client = Sleeps::default().attach(client_with(
        &fake,
        Auth::token(ACCOUNT_SID, AUTH_TOKEN),
        CLIENT_TIMEOUT,
    ));
    let outcome = client
        .send_with_retry(&reply("hi"), &policy(4))
        .expect("resent");
    assert!(!outcome.recovered);
    assert_eq!(outcome.attempts, 2);
    assert_eq!(lookups(&fake), 1);
    assert_eq!(fake.created_messages().len(), 1);
}

#[test]
fn an_identical_older_message_is_not_mistaken_for_the_lost_one() {
    let fake = FakeTwilio::start_blocking();
    let old = json!({
        "sid": "SM99999999999999999999999999999999", "status": "delivered",
        "to": TO, "from": FROM, "body": "hi", "direction": "outbound-api", "num_media": "0",
        "date_created": "Wed, 14 Oct 2015 09:21:07 +0000", "error_code": null, "error_message": null
    });
    fake.respond(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        200,
        &json!({"messages": [old]}).to_string(),
    );
    fake.fail_next_sends(1, 500, "error-500.json");
    let client = Sleeps::default().attach(client(&fake));
    let outcome = client
        .send_with_retry(&reply("hi"), &policy(4))
        .expect("resent");
    assert!(!outcome.recovered);
    assert_ne!(outcome.message.sid, "SM99999999999999999999999999999999");
    assert_eq!(fake.sent_messages().len(), 2);
}

#[test]
fn never_resends_while_the_lookup_fails() {
    let fake = FakeTwilio::start_blocking();
    fake.delay_next_sends(1, FAKE_DELAY);
    fake.respond(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        503,
        r#"{"code":20503,"message":"Service Unavailable","status":503}"#,
    );
    let (_sleeps, client) = recording(&fake);
    let err = client
        .send_with_retry(&reply("hi"), &policy(3))
        .expect_err("cannot tell whether it went out");
    assert!(matches!(err, TwilioError::Timeout { .. }), "{err:?}");
    assert!(
        err.may_have_been_sent(),
        "the caller must record an unknown outcome"
    );
    assert_eq!(fake.sent_messages().len(), 1, "never resent blindly");
    assert!(lookups(&fake) >= 2, "it kept trying to find out");
}

#[test]
fn find_sent_lets_a_caller_check_an_interrupted_send() {
    let fake = FakeTwilio::start_blocking();
    let client = client(&fake);
    let before = chrono::Utc::now();
    let sent = client.send_message(&reply("after a crash")).expect("sent");
    let found = client
        .find_sent(&reply("after a crash"), before)
        .expect("listed")
        .expect("found");
    assert_eq!(found.sid, sent.sid);
    assert_eq!(
        client
            .find_sent(&reply("something else"), before)
            .expect("listed"),
        None
    );
}

#[test]
fn a_time_budget_stops_the_retries_before_a_post_could_outlast_it() {
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(10, 30);
    let sleeps = Sleeps::default();
    // 10 s requests, Retry-After 30 s: the first POST fits 45 s, the second ends by 40 s, a
    // third would end at 70 s.
    let limited = sleeps.attach(client(&fake));
    let failed = limited
        .send_counting_attempts(
            &reply("hi"),
            &RetryPolicy::default().within(Duration::from_secs(45)),
        )
        .expect_err("always rate limited");
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.error.code(), Some(20429));
    assert!(failed.out_of_time, "the budget, not the tries, ended it");
    assert_eq!(fake.sent_messages().len(), 2);
    assert_eq!(sleeps.taken(), [Duration::from_secs(30)]);

    // The same policy without a budget makes all four tries.
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(10, 30);
    let unlimited = Sleeps::default().attach(client(&fake));
    let failed = unlimited
        .send_counting_attempts(&reply("hi"), &RetryPolicy::default())
        .expect_err("always rate limited");
    assert_eq!(failed.attempts, 4);
    assert!(!failed.out_of_time, "the tries ran out");
}

/// A caller whose time runs out between tries (a server shutting down): the next try does
/// not start, whatever the policy allows.
#[test]
fn the_callers_time_left_stops_the_retries_like_a_budget() {
    struct Stopping {
        left: std::sync::Mutex<Vec<Option<Duration>>>,
    }
    impl SendRecords for Stopping {
        fn time_left(&self) -> Option<Duration> {
            self.left.lock().unwrap().pop().flatten()
        }
    }
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(10, 1);
    let sleeps = Sleeps::default();
    let client = sleeps.attach(client(&fake));
    // Asked before each try (popped from the end): no limit for the first, then 5 s, less
    // than a 1 s wait plus a 10 s request.
    let records = Stopping {
        left: std::sync::Mutex::new(vec![Some(Duration::from_secs(5)), None]),
    };
    let failed = client
        .send_counting_attempts_with(&reply("hi"), &RetryPolicy::default(), &records)
        .expect_err("rate limited, then stopped");
    assert_eq!(failed.attempts, 1, "no second POST");
    assert!(
        failed.out_of_time,
        "the caller's time, not the tries, ended it"
    );
    assert_eq!(failed.error.code(), Some(20429));
    assert!(
        sleeps.taken().is_empty(),
        "no wait for a try that will not come"
    );
    assert_eq!(fake.sent_messages().len(), 1);
}

/// A caller whose deadline appears during a wait (a server told to stop during a 429's
/// `Retry-After`), and who asks for its wait to be checked: the wait ends as soon as the retry
/// after it no longer fits, instead of sleeping on; a retry that still fits goes ahead.
#[test]
fn a_deadline_that_comes_during_the_wait_ends_it_when_the_retry_no_longer_fits() {
    /// No limit until `after` slices of the wait have been slept, then 20 s.
    struct StopDuringWait {
        sleeps: Sleeps,
        after: usize,
    }
    impl SendRecords for StopDuringWait {
        fn time_left(&self) -> Option<Duration> {
            (self.sleeps.taken().len() >= self.after).then_some(Duration::from_secs(20))
        }
        fn recheck_every(&self) -> Option<Duration> {
            Some(Duration::from_millis(100))
        }
    }
    let slice = Duration::from_millis(100);

    // Retry-After 30 s: 29.7 s of wait and a 10 s request do not fit in 20 s.
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(10, 30);
    let sleeps = Sleeps::default();
    let stopping = sleeps.attach(client(&fake));
    let records = StopDuringWait {
        sleeps: sleeps.clone(),
        after: 3,
    };
    let failed = stopping
        .send_counting_attempts_with(&reply("hi"), &RetryPolicy::default(), &records)
        .expect_err("rate limited, then stopped during the wait");
    assert_eq!(failed.attempts, 1, "no second POST");
    assert!(failed.out_of_time, "{failed:?}");
    assert_eq!(failed.error.code(), Some(20429));
    assert_eq!(sleeps.taken(), [slice; 3], "the wait ended at the deadline");
    assert_eq!(fake.sent_messages().len(), 1);

    // Retry-After 5 s: 4.7 s and a 10 s request fit; the whole wait is slept, then the retry.
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(1, 5);
    let sleeps = Sleeps::default();
    let stopping = sleeps.attach(client(&fake));
    let records = StopDuringWait {
        sleeps: sleeps.clone(),
        after: 3,
    };
    let sent = stopping
        .send_counting_attempts_with(&reply("hi"), &RetryPolicy::default(), &records)
        .expect("the retry fits before the deadline");
    assert_eq!(sent.attempts, 2);
    assert_eq!(
        sleeps.taken().iter().sum::<Duration>(),
        Duration::from_secs(5)
    );
    assert!(sleeps.taken().iter().all(|s| *s <= slice));
}

#[test]
fn a_budget_counts_the_lookup_a_resend_needs() {
    let fake = FakeTwilio::start_blocking();
    fake.fail_next_sends(10, 500, "error-500.json");
    let client = Sleeps::default().attach(client(&fake));
    // After a 5xx a resend needs a lookup and a POST (2 × 10 s): 15 s leave room for neither.
    let failed = client
        .send_counting_attempts(&reply("hi"), &policy(4).within(Duration::from_secs(15)))
        .expect_err("server errors");
    assert_eq!(failed.attempts, 1);
    assert!(failed.out_of_time);
    assert!(failed.error.may_have_been_sent(), "{:?}", failed.error);
    assert_eq!(fake.sent_messages().len(), 1);
    assert_eq!(
        lookups(&fake),
        1,
        "only the final look for the uncertain POST"
    );
}

#[test]
fn a_budget_shorter_than_one_request_sends_nothing() {
    let fake = FakeTwilio::start_blocking();
    let failed = client(&fake)
        .send_counting_attempts(
            &reply("hi"),
            &RetryPolicy::default().within(Duration::from_secs(9)),
        )
        .expect_err("no room for a 10 s request");
    assert_eq!(failed.attempts, 0);
    assert!(failed.out_of_time);
    assert!(
        matches!(failed.error, TwilioError::OutOfTime { .. }),
        "{:?}",
        failed.error
    );
    assert!(failed.error.is_retryable());
    assert!(!failed.error.may_have_been_sent());
    assert!(fake.requests().is_empty(), "nothing reached Twilio");
}

#[test]
fn the_worst_case_of_the_default_policy_covers_every_wait_and_request() {
    // 10 s + 3 × (30 s wait + lookup + POST) + final lookup + a caller's lookup.
    assert_eq!(
        RetryPolicy::default().worst_case(Duration::from_secs(10)),
        Duration::from_secs(180)
    );
    assert_eq!(
        RetryPolicy::no_retry().worst_case(Duration::from_secs(10)),
        Duration::from_secs(30)
    );
}

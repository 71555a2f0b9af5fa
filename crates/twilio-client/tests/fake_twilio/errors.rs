//! Every error class: what Twilio answers, what the caller gets, what the operator reads.

use std::net::TcpListener;
use std::time::Duration;

use test_support::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio};
use twilio_client::{Auth, Client, TwilioError};

use crate::{client, reply};

fn error_body(code: i64, status: u16, message: &str) -> String {
    format!(
        r#"{{"code":{code},"message":"{message}","more_info":"https://www.twilio.com/docs/errors/{code}","status":{status}}}"#
    )
}

/// Sends one message while the fake answers `status` + `body`, and returns the error.
fn send_error(status: u16, body: &str) -> TwilioError {
    let fake = FakeTwilio::start_blocking();
    fake.fail_next_with_body(1, status, body);
    client(&fake)
        .send_message(&reply("hi"))
        .expect_err("the fake fails this send")
}

#[test]
fn authentication_error_names_the_settings_and_never_the_token() {
    let fake = FakeTwilio::start_blocking();
    fake.require_basic_auth(ACCOUNT_SID, "another-token");
    let err = client(&fake)
        .send_message(&reply("hi"))
        .expect_err("refused");
    assert!(matches!(err, TwilioError::Authentication(_)), "{err:?}");
    assert_eq!(err.code(), Some(20003));
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
    assert!(!err.may_have_been_sent());
    let text = err.to_string();
    assert!(text.contains("TWILIO_ACCOUNT_SID"), "{text}");
    assert!(text.contains("TWILIO_AUTH_TOKEN"), "{text}");
    assert!(
        text.contains("Your AccountSid or AuthToken was incorrect."),
        "{text}"
    );
    assert!(!text.contains(AUTH_TOKEN), "{text}");
    assert!(!format!("{err:?}").contains(AUTH_TOKEN));
}

#[test]
fn invalid_to_from_the_fixture() {
    let fake = FakeTwilio::start_blocking();
    fake.fail_next(1, 400, "error-21211.json");
    let err = client(&fake).send_message(&reply("hi")).expect_err("400");
    assert!(matches!(err, TwilioError::InvalidTo(_)), "{err:?}");
    assert_eq!(err.code(), Some(21211));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("whatsapp:+"), "{err}");
}

#[test]
fn client_errors_are_classified_by_code_and_never_retryable() {
    type Check = fn(&TwilioError) -> bool;
    let cases: [(i64, Check, &str); 5] = [
        (21610, |e| matches!(e, TwilioError::Unsubscribed(_)), "STOP"),
        (
            63016,
            |e| matches!(e, TwilioError::OutsideWindow(_)),
            "use an approved template (ContentSid) outside the 24-hour window",
        ),
        (
            63015,
            |e| matches!(e, TwilioError::SandboxNotJoined(_)),
            "join <your-code>",
        ),
        (
            63007,
            |e| matches!(e, TwilioError::Other(_)),
            "TWILIO_WHATSAPP_FROM",
        ),
        (
            21408,
            |e| matches!(e, TwilioError::Other(_)),
            "Geo permissions",
        ),
    ];
    for (code, is_expected_class, next_step) in cases {
        let err = send_error(400, &error_body(code, 400, "rejected"));
        assert!(is_expected_class(&err), "{code}: {err:?}");
        assert_eq!(err.code(), Some(code));
        assert!(!err.is_retryable(), "{code}");
        assert!(!err.may_have_been_sent(), "{code}");
        assert!(err.to_string().contains(next_step), "{code}: {err}");
    }
}

#[test]
fn not_found_is_its_own_class() {
    let err = send_error(
        404,
        &error_body(20404, 404, "The requested resource was not found"),
    );
    assert!(matches!(err, TwilioError::NotFound(_)), "{err:?}");
    assert!(!err.is_retryable());
}

#[test]
fn rate_limit_carries_retry_after() {
    let fake = FakeTwilio::start_blocking();
    fake.rate_limit_next(1, 7);
    let err = client(&fake).send_message(&reply("hi")).expect_err("429");
    assert!(matches!(err, TwilioError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.code(), Some(20429));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_retryable());
    assert!(!err.may_have_been_sent(), "a 429 was never processed");
}

#[test]
fn rate_limit_without_retry_after() {
    let fake = FakeTwilio::start_blocking();
    fake.fail_next(1, 429, "error-429.json");
    let err = client(&fake).send_message(&reply("hi")).expect_err("429");
    assert!(
        matches!(
            err,
            TwilioError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn server_errors_are_retryable_and_may_have_been_processed() {
    for (status, body) in [
        (500, test_support::fixture("error-500.json")),
        (
            503,
            "<html><body>503 Service Unavailable</body></html>".to_owned(),
        ),
    ] {
        let err = send_error(status, &body);
        assert!(matches!(err, TwilioError::Server(_)), "{status}: {err:?}");
        assert_eq!(err.status(), Some(status));
        assert!(err.is_retryable());
        assert!(err.may_have_been_sent());
    }
}

#[test]
fn unreadable_success_body_is_an_invalid_response_that_may_have_been_sent() {
    let fake = FakeTwilio::start_blocking();
    fake.respond(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        201,
        "<Response/>",
    );
    let err = client(&fake)
        .send_message(&reply("hi"))
        .expect_err("not JSON");
    assert!(
        matches!(err, TwilioError::InvalidResponse { status: 201, .. }),
        "{err:?}"
    );
    assert!(err.may_have_been_sent());
    assert!(!err.is_retryable());
}

#[test]
fn connection_refused_is_a_connection_error_that_was_not_sent() {
    // A port that was just free: nothing listens on it any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let client = Client::new(
        &format!("http://127.0.0.1:{port}"),
        Auth::token(ACCOUNT_SID, AUTH_TOKEN),
        Duration::from_secs(5),
    )
    .expect("client");
    let err = client.send_message(&reply("hi")).expect_err("refused");
    assert!(matches!(err, TwilioError::Connection { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.may_have_been_sent());
    assert!(err.to_string().contains("TWILIO_API_BASE_URL"), "{err}");
}

/// The Account resource carries the account's Auth Token: a body that does not parse (here a
/// `status` of null) must not be quoted into the error, which `validate-webhook` prints.
#[test]
fn an_unreadable_account_is_not_quoted_because_it_holds_the_token() {
    let fake = FakeTwilio::start_blocking();
    let body = format!(
        r#"{{"auth_token": "{AUTH_TOKEN}", "sid": "{ACCOUNT_SID}", "status": null, "type": "Full"}}"#
    );
    fake.respond(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}.json"),
        200,
        &body,
    );
    let err = client(&fake).fetch_account().expect_err("status is null");
    assert!(
        matches!(err, TwilioError::InvalidResponse { status: 200, .. }),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(AUTH_TOKEN), "{shown}");
    assert!(shown.contains("not quoted"), "{shown}");
}

/// A 503 whose page is larger than the client reads is still a 503: retryable, looked up first.
#[test]
fn an_error_status_with_a_huge_body_keeps_its_status() {
    let big = "x".repeat(3 * 1024 * 1024);
    let err = send_error(503, &big);
    assert!(matches!(err, TwilioError::Server(_)), "{err:?}");
    assert_eq!(err.status(), Some(503));
    assert!(err.is_retryable());
}

/// A proxy's error page in Latin-1 is an answer with a status, not a broken connection.
#[test]
fn an_error_page_that_is_not_utf8_keeps_its_status_and_retry_after() {
    let fake = FakeTwilio::start_blocking();
    fake.respond_raw(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        429,
        &[("retry-after", "3")],
        b"<html>Trop de requ\xeates</html>",
    );
    let err = client(&fake).send_message(&reply("hi")).expect_err("429");
    assert!(matches!(err, TwilioError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(!err.may_have_been_sent());
}

/// A base URL that is not Twilio's: a redirect or an HTML 404 names TWILIO_API_BASE_URL, not
/// "Twilio rejected the request" or "check the SID".
#[test]
fn a_redirect_or_a_foreign_404_points_at_the_base_url() {
    let fake = FakeTwilio::start_blocking();
    let path = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json");
    fake.respond_raw(
        "POST",
        &path,
        301,
        &[("location", "https://example.com/login")],
        b"",
    );
    let err = client(&fake)
        .send_message(&reply("hi"))
        .expect_err("redirect");
    let text = err.to_string();
    assert!(
        matches!(err, TwilioError::InvalidResponse { status: 301, .. }),
        "{err:?}"
    );
    assert!(
        text.contains("redirect") && text.contains("https://example.com/login"),
        "{text}"
    );
    assert!(text.contains("TWILIO_API_BASE_URL"), "{text}");
    assert!(!err.may_have_been_sent());

    let fake = FakeTwilio::start_blocking();
    fake.respond_raw("POST", &path, 404, &[], b"<html><h1>Not Found</h1></html>");
    let err = client(&fake).send_message(&reply("hi")).expect_err("404");
    let text = err.to_string();
    assert!(
        matches!(err, TwilioError::InvalidResponse { status: 404, .. }),
        "{err:?}"
    );
    assert!(text.contains("TWILIO_API_BASE_URL"), "{text}");
    assert!(!text.contains("check the SID"), "{text}");
}

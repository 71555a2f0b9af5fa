//! A Twilio slower than the client's timeout: the error says the send may have gone out.

use std::time::Duration;

use test_support::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio};
use twilio_client::{Auth, TwilioError};

use crate::{client_with, reply};

/// Short enough to keep the suite quick, long enough for a loaded machine's local requests.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Far longer than the client waits; the fake drops the held response when the test ends.
pub(crate) const FAKE_DELAY: Duration = Duration::from_secs(60);

#[test]
fn slow_send_is_a_timeout_that_may_have_been_sent() {
    let fake = FakeTwilio::start_blocking();
    fake.delay_next(1, FAKE_DELAY);
    let client = client_with(&fake, Auth::token(ACCOUNT_SID, AUTH_TOKEN), CLIENT_TIMEOUT);
    let err = client.send_message(&reply("hi")).expect_err("too slow");
    assert!(matches!(err, TwilioError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.may_have_been_sent());
    assert_eq!(err.code(), None);
    assert!(err.to_string().contains("may have reached twilio"), "{err}");
    assert_eq!(
        fake.created_messages().len(),
        1,
        "the fake did create it: the response was lost"
    );
}

#[test]
fn slow_lookup_is_a_timeout_too() {
    let fake = FakeTwilio::start_blocking();
    fake.delay_next(1, FAKE_DELAY);
    let client = client_with(&fake, Auth::token(ACCOUNT_SID, AUTH_TOKEN), CLIENT_TIMEOUT);
    let err = client.check_credentials().expect_err("too slow");
    assert!(matches!(err, TwilioError::Timeout { .. }), "{err:?}");
    // The next call is not delayed and works on a fresh connection.
    client.check_credentials().expect("second try answers");
}

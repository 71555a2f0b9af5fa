//! Integration tests of the client against `test_support::FakeTwilio` (127.0.0.1 only).
//!
//! One test binary; each submodule covers one concern.

mod fake_twilio {
    mod errors;
    mod lookups;
    mod retry;
    mod send;
    mod timeouts;
    mod tls;
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_support::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio};
use twilio_client::{Auth, Client, SendMessage};

/// Recipient used by most tests (the fixtures' number).
pub(crate) const TO: &str = "whatsapp:+15551234567";
/// Sender used by most tests (the WhatsApp Sandbox number).
pub(crate) const FROM: &str = "whatsapp:+14155238886";

/// A client on the fake with the fixtures' token and a generous timeout.
pub(crate) fn client(fake: &FakeTwilio) -> Client {
    client_with(
        fake,
        Auth::token(ACCOUNT_SID, AUTH_TOKEN),
        Duration::from_secs(10),
    )
}

/// A client on the fake with chosen credentials and timeout.
pub(crate) fn client_with(fake: &FakeTwilio, auth: Auth, timeout: Duration) -> Client {
    Client::new(&fake.base_url(), auth, timeout).expect("client for the fake")
}

/// Records the waits the retry loop asks for instead of sleeping.
#[derive(Clone, Default)]
pub(crate) struct Sleeps(Arc<Mutex<Vec<Duration>>>);

impl Sleeps {
    /// Makes `client` record its waits here instead of sleeping.
    pub(crate) fn attach(&self, client: Client) -> Client {
        let log = self.0.clone();
        client.with_sleeper(move |d| log.lock().expect("sleep log").push(d))
    }

    /// The waits asked for so far, in order.
    pub(crate) fn taken(&self) -> Vec<Duration> {
        self.0.lock().expect("sleep log").clone()
    }
}

/// A plain text reply.
pub(crate) fn reply(body: &str) -> SendMessage {
    SendMessage::text(TO, FROM, body)
}

/// How many `GET …/Messages.json` (list) requests the fake saw: the lost-response look-ups.
pub(crate) fn lookups(fake: &FakeTwilio) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/Messages.json"))
        .count()
}

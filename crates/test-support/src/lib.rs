//! Test helpers shared by the workspace: a fake Twilio REST API, a fake ngrok agent API,
//! the `fixtures/` directory, and signing of webhook bodies.
//!
//! Used only as a dev-dependency. Everything listens on `127.0.0.1:0`, so tests never reach
//! the network and can run in parallel.
//!
//! # What it deliberately does not do
//!
//! - It is not a Twilio emulator: it serves the few endpoints this workspace calls, from
//!   fixtures, and only validates what a test needs (Basic auth when asked, `To` on sends).
//! - Panics are allowed here (a fake that cannot bind is a broken test environment); the
//!   request handlers themselves never panic.
//!
//! # Layout
//!
//! - `fixtures.rs` — [`fixture`], [`fixture_path`] and the SIDs/token the fixtures use.
//! - `server.rs` — the hyper server both fakes run on, and [`RecordedRequest`].
//! - `twilio.rs` — [`FakeTwilio`]: routes, scripted failures and delays.
//! - `ngrok.rs` — [`FakeNgrok`]: `GET /api/tunnels`.
//! - `services.rs` — [`TestDb`] (PostgreSQL / SQLite per test), [`TlsRedis`] (a TLS-only
//!   `redis-server` with the test certificate in `certs/`), and skip-or-fail when a service is
//!   missing.
//!
//! # Example
//!
//! ```
//! use test_support::{FakeTwilio, fixture};
//!
//! let fake = FakeTwilio::start_blocking();
//! fake.fail_next(1, 401, "error-20003.json");
//! // … point TWILIO_API_BASE_URL at fake.base_url() and run the code under test …
//! assert!(fixture("account.json").contains("\"status\": \"active\""));
//! assert!(fake.requests().is_empty());
//! ```

mod fixtures;
mod ngrok;
pub mod raw_http;
mod server;
pub mod services;
mod twilio;

pub use fixtures::{
    ACCOUNT_SID, AUTH_TOKEN, STATUS_URL, WEBHOOK_URL, fixture, fixture_path, try_fixture,
};
pub use ngrok::FakeNgrok;
pub use server::RecordedRequest;
pub use services::{TestDb, TlsRedis};
pub use twilio::FakeTwilio;

/// The `X-Twilio-Signature` Twilio would send for a form `body` posted to `url`.
///
/// `body` is the raw `application/x-www-form-urlencoded` text (as in the `.form` fixtures);
/// it is decoded and signed with `twilio_signature::compute_signature`.
pub fn sign_form(auth_token: &str, url: &str, body: &str) -> String {
    let pairs = server::decode_pairs(body.as_bytes());
    twilio_signature::compute_signature(auth_token, url, &pairs)
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs, repeated keys kept.
pub fn form_pairs(body: &str) -> Vec<(String, String)> {
    server::decode_pairs(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_form_reproduces_the_fixture_signatures() {
        let table: serde_json::Value =
            serde_json::from_str(&fixture("signatures.json")).expect("signatures.json");
        let entries = table["fixtures"].as_object().expect("fixtures map");
        assert!(!entries.is_empty());
        for (name, entry) in entries {
            let url = entry["url"].as_str().expect("url");
            let expected = entry["x_twilio_signature"].as_str().expect("signature");
            assert_eq!(
                sign_form(AUTH_TOKEN, url, &fixture(name)),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn form_pairs_keep_repeated_keys_and_decode_plus() {
        assert_eq!(
            form_pairs("MediaUrl=a&Body=hi+there%21&MediaUrl=b"),
            [
                ("MediaUrl".to_owned(), "a".to_owned()),
                ("Body".to_owned(), "hi there!".to_owned()),
                ("MediaUrl".to_owned(), "b".to_owned()),
            ]
        );
    }
}

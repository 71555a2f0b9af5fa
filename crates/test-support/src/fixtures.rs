//! Access to the workspace's `fixtures/` directory: real-shaped Twilio payloads and responses.

use std::path::PathBuf;

/// The Account SID used throughout the fixtures.
pub const ACCOUNT_SID: &str = "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e";
/// The Auth Token the `.form` fixtures are signed with (see `fixtures/signatures.json`).
pub const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// The public URL the inbound `.form` fixtures are signed for.
pub const WEBHOOK_URL: &str = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook";
/// The public URL the status `.form` fixtures are signed for.
pub const STATUS_URL: &str = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/status";

/// `<workspace>/fixtures/<name>`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// Reads a fixture, or `None` when it does not exist.
pub fn try_fixture(name: &str) -> Option<String> {
    std::fs::read_to_string(fixture_path(name)).ok()
}

/// Reads `<workspace>/fixtures/<name>`.
///
/// # Panics
///
/// When the file does not exist: a test that names a missing fixture is broken, and the
/// message says which file to add.
pub fn fixture(name: &str) -> String {
    match try_fixture(name) {
        Some(text) => text,
        None => panic!(
            "fixture {name:?} not found at {}",
            fixture_path(name).display()
        ),
    }
}

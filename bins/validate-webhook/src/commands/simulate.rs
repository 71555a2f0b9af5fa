//! `simulate`: POST a signed sample inbound WhatsApp message (from `fixtures/`) to the local
//! server, or to `--url`, and explain what its answer means. The user's way to try the server
//! without a phone.
//!
//! The signature is computed over WEBHOOK_URL, because that is the URL the server validates
//! against whatever address the request actually reaches.

use std::path::Path;
use std::time::Duration;

use crate::checks::probe::overrides;
use crate::diagnose::{self, Target};
use crate::http::one_line;
use crate::probe::{FIXTURES, PROBE_PARAM, SignedMessage, fixture};
use crate::report::{Check, Section};
use crate::setup::Setup;

const S: Section = Section::Simulate;

/// The sample message's text: a built-in fixture by name, or a file.
fn sample(name: &str, cwd: &Path) -> Result<String, Check> {
    if let Some(body) = fixture(name) {
        return Ok(body.to_owned());
    }
    let path = cwd.join(name);
    std::fs::read_to_string(&path).map_err(|_| {
        let names: Vec<&str> = FIXTURES.iter().map(|(n, _)| *n).collect();
        Check::error(
            S,
            "fixture",
            format!("{name} is neither a built-in sample nor a readable file"),
            format!(
                "Use one of {} or the path of an urlencoded form body.",
                names.join(", ")
            ),
        )
    })
}

/// Runs `simulate` and returns its lines.
pub(crate) fn run(
    setup: &Setup,
    url: Option<&str>,
    fixture_name: &str,
    cwd: &Path,
    timeout: Duration,
) -> Vec<Check> {
    let Some(token) = setup.auth_token.as_deref() else {
        return vec![Check::error(
            S,
            "request",
            "not sent: TWILIO_AUTH_TOKEN is missing or a placeholder, so the message cannot be signed",
            "Set TWILIO_AUTH_TOKEN to the Auth Token from the Twilio Console, the same value the server uses.",
        )];
    };
    let body = match sample(fixture_name, cwd) {
        Ok(b) => b,
        Err(check) => return vec![check],
    };
    let target = url.map_or_else(
        || format!("{}{}", setup.local_base_url(), config::WEBHOOK_PATH),
        str::to_owned,
    );
    let signed_for = setup.webhook_url.clone().unwrap_or_else(|| target.clone());
    let message = SignedMessage::build(&body, &overrides(setup, None), token, &signed_for);
    let from = message
        .params
        .iter()
        .find(|(k, _)| k == "From")
        .map_or("?", |(_, v)| v.as_str());
    let mut out = vec![Check::ok(
        S,
        "request",
        format!(
            "POST {target} signed for {signed_for}: MessageSid {}, From {from}, {PROBE_PARAM}=1 so the server records it without replying",
            message.message_sid
        ),
    )];
    let answer = message.post(&target, &message.signature, timeout);
    // With --url, "start the server on PORT …" names the port the user aimed at.
    let port = url
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(setup.port);
    let t = Target {
        url: &target,
        port,
        timeout_secs: timeout.as_secs(),
    };
    let mut answer_check = diagnose::signed(S, "answer", &t, &answer);
    if let Ok(a) = &answer {
        let body = if a.body.trim().is_empty() {
            "(empty)".to_owned()
        } else {
            one_line(&a.body, 200)
        };
        answer_check.detail = format!("{}; body: {body}", answer_check.detail);
    }
    out.push(answer_check);
    out
}

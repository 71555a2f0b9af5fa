//! `--online` end-to-end proof: a signed synthetic inbound message posted to WEBHOOK_URL must
//! get 200, and the same message with a wrong signature must get 403. It exercises the whole
//! chain Twilio uses: DNS → tunnel or platform → server → signature check → store.

use super::Ctx;
use crate::diagnose::{self, Target};
use crate::probe::{Overrides, SignedMessage, fixture};
use crate::report::{Check, Section};
use crate::setup::{SenderSetup, Setup};

const S: Section = Section::Probe;

/// The text of the online probe message; the server records it but never replies.
const PROBE_BODY: &str = "validate-webhook test message (recorded, never answered)";

/// What the probe fills into the sample message from the configuration.
pub(crate) fn overrides(setup: &Setup, body: Option<&str>) -> Overrides {
    Overrides {
        account_sid: setup.account_sid.clone(),
        to: match &setup.sender {
            Some(SenderSetup::WhatsAppFrom(from)) => Some(from.clone()),
            _ => None,
        },
        body: body.map(str::to_owned),
    }
}

/// The probe section's checks.
pub(crate) fn check(ctx: &Ctx) -> Vec<Check> {
    let setup = &ctx.setup;
    let Some(url) = setup.webhook_url.as_deref() else {
        return vec![Check::error(
            S,
            "signed request",
            "not sent: WEBHOOK_URL is not set, so there is no public URL to test",
            "Set WEBHOOK_URL to the URL configured in Twilio, ending in /api/v1/whatsapp/webhook.",
        )];
    };
    let Some(token) = setup.auth_token.as_deref() else {
        return vec![Check::warning(
            S,
            "signed request",
            "not sent: TWILIO_AUTH_TOKEN is missing or a placeholder, so the request cannot be signed",
            Some("Fix TWILIO_AUTH_TOKEN first (see Configuration)."),
        )];
    };
    let Some(sample) = fixture("inbound-whatsapp-text.form") else {
        return Vec::new();
    };
    let message = SignedMessage::build(sample, &overrides(setup, Some(PROBE_BODY)), token, url);
    let target = Target {
        url,
        port: setup.port,
        timeout_secs: ctx.timeout.as_secs(),
    };
    let good = message.post(url, &message.signature, ctx.timeout);
    let first = diagnose::signed(S, "signed request", &target, &good);
    let accepted = matches!(&good, Ok(a) if (200..300).contains(&a.status));
    let mut out = vec![first];
    if accepted {
        let bad = message.post(url, &message.tampered_signature(), ctx.timeout);
        out.push(diagnose::tampered(S, "tampered request", &target, &bad));
    }
    out
}

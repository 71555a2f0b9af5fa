//! `send-test --to whatsapp:+…`: send one real WhatsApp message through Twilio with the
//! configured sender, so the outbound half can be tried on its own.

use std::time::Duration;

use twilio_client::SendMessage;

use crate::checks::twilio::{capitalised, describe, rest_client};
use crate::report::{Check, Section};
use crate::setup::{SenderSetup, Setup};

const S: Section = Section::SendTest;

/// Sends the message and returns the lines describing the outcome.
pub(crate) fn run(setup: &Setup, to: &str, body: &str, timeout: Duration) -> Vec<Check> {
    let client = match rest_client(setup, timeout) {
        Ok(c) => c,
        Err(mut check) => {
            check.section = S;
            return vec![check];
        }
    };
    let mut msg = SendMessage {
        to: to.to_owned(),
        body: Some(body.to_owned()),
        status_callback: setup.status_callback_url.clone(),
        ..SendMessage::default()
    };
    match &setup.sender {
        Some(SenderSetup::WhatsAppFrom(from)) => msg.from = Some(from.clone()),
        Some(SenderSetup::MessagingService(sid)) => msg.messaging_service_sid = Some(sid.clone()),
        None => {
            return vec![Check::error(
                S,
                "sender",
                "no sender configured, so there is nothing to send from",
                "Set TWILIO_WHATSAPP_FROM=whatsapp:+14155238886 (the Sandbox) or TWILIO_MESSAGING_SERVICE_SID.",
            )];
        }
    }
    match client.send_message(&msg) {
        Ok(m) => vec![Check::new(
            S,
            "message",
            crate::report::Status::Ok,
            format!("Twilio accepted {} to {to} (status {})", m.sid, m.status),
            Some(match &setup.status_callback_url {
                Some(url) => format!("Delivery is reported later to {url}; a Sandbox recipient must have sent `join <code>` within the last 72 hours."),
                None => "Delivery is reported later in the Twilio Console (Monitor › Logs › Messaging); a Sandbox recipient must have joined within 72 hours.".to_owned(),
            }),
        )],
        Err(e) if e.may_have_been_sent() => vec![Check::error(
            S,
            "message",
            format!("no answer from Twilio, the message may have been sent: {}", describe(&e)),
            "Look in the Twilio Console (Monitor › Logs › Messaging) before sending again.",
        )],
        Err(e) => vec![Check::error(S, "message", format!("Twilio did not send it: {}", describe(&e)), capitalised(e.hint()))],
    }
}

//! The values callers hand to the store and get back from it (domain types, not ORM rows).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::StoreError;

/// An inbound WhatsApp message as parsed from Twilio's webhook, ready to be recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewInbound {
    /// `MessageSid`: the dedupe key (one row per SID).
    pub message_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `From`, e.g. `whatsapp:+15551234567`.
    pub from: String,
    /// `To`, the sender number or Messaging Service address.
    pub to: String,
    /// `Body` (may be empty for media-only messages).
    pub body: String,
    /// `NumMedia`.
    pub num_media: i32,
    /// `ProfileName` (WhatsApp display name). Empty is stored as NULL.
    pub profile_name: Option<String>,
    /// `WaId` (sender's WhatsApp ID). Empty is stored as NULL.
    pub wa_id: Option<String>,
    /// Every webhook parameter as a JSON object, kept verbatim in `inbound_messages.params`.
    pub params_json: String,
    /// The `I-Twilio-Idempotency-Token` header. Empty is stored as NULL.
    pub idempotency_token: Option<String>,
}

impl NewInbound {
    /// Empty optional strings become `None`, so both backends store the same NULLs. A NUL
    /// character, which PostgreSQL's text cannot hold (the whole row would be refused, and the
    /// message lost), becomes U+FFFD in the columns on both backends, and in `params_json` too
    /// (`\u0000` becomes `\uFFFD`: PostgreSQL's `params::jsonb ->> 'Body'` fails on the former,
    /// for the whole query).
    pub(crate) fn normalized(mut self) -> NewInbound {
        for field in [
            &mut self.profile_name,
            &mut self.wa_id,
            &mut self.idempotency_token,
        ] {
            match field {
                Some(value) if value.is_empty() => *field = None,
                Some(value) => without_nul(value),
                None => {}
            }
        }
        for field in [
            &mut self.message_sid,
            &mut self.account_sid,
            &mut self.from,
            &mut self.to,
            &mut self.body,
        ] {
            without_nul(field);
        }
        json_without_nul(&mut self.params_json);
        self
    }
}

/// `json` (a JSON text) with each escaped NUL (`\u0000`) written as `\uFFFD`. Only escapes are
/// read: a backslash that is itself escaped (`\\u0000`, the six characters `\u0000` in a
/// value) is left alone.
fn json_without_nul(json: &mut String) {
    if !json.contains("\\u0000") {
        return;
    }
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1..i + 6) == Some(b"u0000".as_slice()) {
            out.push_str(&json[copied..i]);
            out.push_str("\\uFFFD");
            i += 6;
            copied = i;
        } else {
            i += 2; // an escape of two characters at least: its second is never a backslash start
        }
    }
    out.push_str(&json[copied..]);
    *json = out;
}

/// Replaces each NUL character (which PostgreSQL's text cannot hold) with U+FFFD, so that a
/// value carrying one is stored alike on both backends instead of failing its whole statement.
fn without_nul(field: &mut String) {
    if field.contains('\0') {
        *field = field.replace('\0', "\u{FFFD}");
    }
}

/// What [`Store::record_inbound`](crate::Store::record_inbound) did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First delivery: the row was committed by this call.
    New,
    /// A row with this `MessageSid` was already there; nothing changed.
    Duplicate,
}

/// Processing state of an inbound message (`inbound_messages.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InboundState {
    /// Recorded, not yet claimed by a worker (or released for a retry).
    Received,
    /// Claimed by a worker whose lease has not expired.
    Processing,
    /// The reply step finished (sent, or no reply was needed).
    Answered,
    /// A reply was decided but not sent because no sender is configured.
    DryRun,
    /// The reply step failed for good (the error is on the outbound row).
    Failed,
}

impl InboundState {
    /// The value stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundState::Received => "received",
            InboundState::Processing => "processing",
            InboundState::Answered => "answered",
            InboundState::DryRun => "dry_run",
            InboundState::Failed => "failed",
        }
    }
}

impl fmt::Display for InboundState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InboundState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "received" => InboundState::Received,
            "processing" => InboundState::Processing,
            "answered" => InboundState::Answered,
            "dry_run" => InboundState::DryRun,
            "failed" => InboundState::Failed,
            other => {
                return Err(StoreError::Bug(format!(
                    "unknown inbound_messages.state {other:?}"
                )));
            }
        })
    }
}

/// A stored inbound message (one `inbound_messages` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// `MessageSid`.
    pub message_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `From`.
    pub from: String,
    /// `To`.
    pub to: String,
    /// `Body`.
    pub body: String,
    /// `NumMedia`.
    pub num_media: i32,
    /// `ProfileName`.
    pub profile_name: Option<String>,
    /// `WaId`.
    pub wa_id: Option<String>,
    /// Every webhook parameter as received, as a JSON object.
    pub params_json: String,
    /// `I-Twilio-Idempotency-Token` of the delivery that created the row.
    pub idempotency_token: Option<String>,
    /// When the store accepted the first delivery.
    pub received_at: DateTime<Utc>,
    /// Processing state.
    pub state: InboundState,
    /// Worker holding (or last holding) the claim.
    pub claimed_by: Option<String>,
    /// When the current or last claim was taken.
    pub claimed_at: Option<DateTime<Utc>>,
    /// When the current claim expires; another worker may take over after it.
    pub lease_until: Option<DateTime<Utc>>,
    /// How many times a worker claimed the message.
    pub attempts: i32,
    /// Last change to the row.
    pub updated_at: DateTime<Utc>,
}

/// The reply to record before it is sent (`outbound_messages`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewOutbound {
    /// The inbound message this answers; at most one reply per inbound message.
    pub inbound_message_sid: String,
    /// Recipient, e.g. `whatsapp:+15551234567`.
    pub to: String,
    /// Sender address (or the inbound `To` when a Messaging Service sends).
    pub from: String,
    /// Reply text.
    pub body: String,
}

impl NewOutbound {
    /// The row as stored: a NUL in the reply (a handler quoting a message that held one) becomes
    /// U+FFFD, as in [`NewInbound`]; the request sent to Twilio keeps what the handler wrote.
    pub(crate) fn normalized(mut self) -> NewOutbound {
        for field in [
            &mut self.inbound_message_sid,
            &mut self.to,
            &mut self.from,
            &mut self.body,
        ] {
            without_nul(field);
        }
        self
    }
}

/// Outbound status written by the store itself before Twilio knows the message.
pub mod outbound_status {
    /// Row created, nothing sent yet.
    pub const PENDING: &str = "pending";
    /// A send request is about to go out or went out without a recorded answer. A row still in
    /// this state after a crash must be looked up at Twilio (by its callback marker or by
    /// To/From/DateSent), never resent blindly.
    pub const SUBMITTING: &str = "submitting";
    /// Reply decided but not sent: no sender configured.
    pub const DRY_RUN: &str = "dry_run";
}

/// A stored reply (one `outbound_messages` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Row id.
    pub id: i64,
    /// The inbound message this answers.
    pub inbound_message_sid: String,
    /// Recipient.
    pub to: String,
    /// Sender address, when known.
    pub from: Option<String>,
    /// Reply text.
    pub body: String,
    /// Twilio's `SM…` SID once the send was accepted.
    pub message_sid: Option<String>,
    /// Token to put in the `StatusCallback` URL (e.g. `?ref=<marker>`): a callback carrying it
    /// identifies this row even if the send's HTTP response was lost.
    pub callback_marker: String,
    /// `pending`, `submitting`, `dry_run`, or Twilio's status (`queued` … `read`, `failed`, …).
    pub status: String,
    /// Twilio error code (from the send response or a status callback).
    pub error_code: Option<i64>,
    /// Error text for `error_code`.
    pub error_message: Option<String>,
    /// Send attempts made so far.
    pub attempts: i32,
    /// Row creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl OutboundMessage {
    /// True when sending again would be wrong: Twilio accepted the message (it has a SID), the
    /// reply was a dry run, or it reached a terminal status.
    pub fn is_final(&self) -> bool {
        self.message_sid.is_some()
            || self.status == outbound_status::DRY_RUN
            || crate::status::is_terminal(&self.status)
    }

    /// True when a send may have gone out without its answer being recorded (crash or lost
    /// response): look it up at Twilio before retrying.
    pub fn is_in_doubt(&self) -> bool {
        self.message_sid.is_none() && self.status == outbound_status::SUBMITTING
    }
}

/// Changes to an outbound row. `None` fields are left as they are. The status moves only forward
/// (see [`Store::record_status`](crate::Store::record_status)); statuses of the store's own
/// (`pending`, `submitting`, `dry_run`) replace only each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundUpdate {
    /// Twilio's SID from the send response.
    pub message_sid: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// Attempts made by this step; added to the row's count.
    pub add_attempts: u32,
    /// Twilio error code.
    pub error_code: Option<i64>,
    /// Error text.
    pub error_message: Option<String>,
}

impl OutboundUpdate {
    /// About to call Twilio (status `submitting`).
    pub fn sending() -> Self {
        OutboundUpdate {
            status: Some(outbound_status::SUBMITTING.to_owned()),
            ..Default::default()
        }
    }

    /// Twilio accepted the message: its SID, the status it reported, the attempts it took.
    pub fn sent(message_sid: &str, status: &str, attempts: u32) -> Self {
        OutboundUpdate {
            message_sid: Some(message_sid.to_owned()),
            status: Some(status.to_owned()),
            add_attempts: attempts,
            ..Default::default()
        }
    }

    /// The send failed for good (status `failed`) with Twilio's error code when it gave one.
    pub fn failed(error_code: Option<i64>, error_message: &str, attempts: u32) -> Self {
        OutboundUpdate {
            status: Some("failed".to_owned()),
            add_attempts: attempts,
            error_code,
            error_message: Some(error_message.to_owned()),
            ..Default::default()
        }
    }

    /// Nothing was sent because no sender is configured (status `dry_run`).
    pub fn dry_run() -> Self {
        OutboundUpdate {
            status: Some(outbound_status::DRY_RUN.to_owned()),
            ..Default::default()
        }
    }
}

/// A delivery status callback as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewStatusEvent {
    /// `MessageSid` of the outbound message.
    pub message_sid: String,
    /// `MessageStatus` (`queued`, `sent`, `delivered`, `read`, `failed`, `undelivered`, …).
    pub status: String,
    /// `ErrorCode`, e.g. 63016.
    pub error_code: Option<i64>,
    /// `ErrorMessage` when Twilio sends one (copied to the outbound row, not the event).
    pub error_message: Option<String>,
    /// Every callback parameter as a JSON object.
    pub params_json: String,
    /// The `I-Twilio-Idempotency-Token` header.
    pub idempotency_token: Option<String>,
    /// The marker from our `StatusCallback` URL, when present: attaches `message_sid` to an
    /// outbound row whose send response was lost.
    pub callback_marker: Option<String>,
}

impl NewStatusEvent {
    /// NUL characters as U+FFFD, as in [`NewInbound`]'s columns and params.
    pub(crate) fn normalized(mut self) -> NewStatusEvent {
        for field in [&mut self.message_sid, &mut self.status] {
            without_nul(field);
        }
        for field in [
            &mut self.error_message,
            &mut self.idempotency_token,
            &mut self.callback_marker,
        ]
        .into_iter()
        .flatten()
        {
            without_nul(field);
        }
        json_without_nul(&mut self.params_json);
        self
    }
}

/// A stored status callback (one `status_events` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// Row id (arrival order).
    pub id: i64,
    /// `MessageSid`.
    pub message_sid: String,
    /// `MessageStatus`.
    pub status: String,
    /// `ErrorCode`.
    pub error_code: Option<i64>,
    /// Every callback parameter as a JSON object.
    pub params_json: String,
    /// Arrival time.
    pub received_at: DateTime<Utc>,
    /// `I-Twilio-Idempotency-Token`.
    pub idempotency_token: Option<String>,
}

/// What [`Store::record_status`](crate::Store::record_status) did besides storing the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApplied {
    /// The outbound message's status moved forward to this event's status.
    Advanced,
    /// The message already had this status or a later one (callbacks arrive out of order), or
    /// the status is not part of the lifecycle (e.g. `partially_delivered`).
    Stale,
    /// No outbound row has this `MessageSid` (yet); the event is kept and is applied when the
    /// send's SID is recorded.
    UnknownMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(json: &str) -> String {
        let mut s = json.to_owned();
        json_without_nul(&mut s);
        s
    }

    #[test]
    fn escaped_nuls_in_json_become_replacement_characters_and_nothing_else_changes() {
        assert_eq!(cleaned(r#"{"a":"x\u0000y"}"#), r#"{"a":"x\uFFFDy"}"#);
        assert_eq!(
            cleaned(r#"{"\u0000":"\u0000\u0000"}"#),
            r#"{"\uFFFD":"\uFFFD\uFFFD"}"#
        );
        // An escaped backslash followed by `u0000` is six characters of text, not a NUL.
        assert_eq!(cleaned(r#"{"a":"\\u0000"}"#), r#"{"a":"\\u0000"}"#);
        assert_eq!(cleaned(r#"{"a":"\\\u0000"}"#), r#"{"a":"\\\uFFFD"}"#);
        assert_eq!(cleaned(r#"{"a":"\u00001"}"#), r#"{"a":"\uFFFD1"}"#);
        for same in [
            r#"{"a":"\u00a0 é"}"#,
            r#"{"a":"\u0001"}"#,
            "",
            "\\",
            "\\u000",
        ] {
            assert_eq!(cleaned(same), same);
        }
        // The result is the same JSON with U+FFFD for each NUL.
        let original = serde_json::json!({"Body": "a\0b\\u0000\0", "k\0": ["\0"]}).to_string();
        let value: serde_json::Value = serde_json::from_str(&cleaned(&original)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"Body": "a\u{FFFD}b\\u0000\u{FFFD}", "k\u{FFFD}": ["\u{FFFD}"]})
        );
    }
}

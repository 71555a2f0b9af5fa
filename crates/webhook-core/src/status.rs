//! Typed view of Twilio's message status callback (`POST /api/v1/whatsapp/status`).
//!
//! Twilio sends one callback per status change of an outbound message, best effort and in no
//! guaranteed order. This module only parses; ordering rules live in the store, which keeps every
//! event and moves a message's status forward only.

use crate::inbound::{ParseError, check_sid, first, parse_form};

/// Every `MessageStatus` value in Twilio's API (`message_enum_status`).
pub const KNOWN_STATUSES: [&str; 13] = [
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "receiving",
    "received",
    "accepted",
    "scheduled",
    "read",
    "partially_delivered",
    "canceled",
];

/// A delivery status callback for one of our outbound messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// SID of the outbound message the event is about.
    pub message_sid: String,
    /// `MessageStatus` (falls back to `SmsStatus`), lower case as Twilio sends it.
    pub status: String,
    /// `ErrorCode` on failed/undelivered messages, e.g. 63016.
    pub error_code: Option<i64>,
    /// `ErrorMessage` when Twilio includes one (it often does not).
    pub error_message: Option<String>,
    /// `From` of the outbound message (our sender).
    pub from: Option<String>,
    /// `To` of the outbound message (the user).
    pub to: Option<String>,
    /// Every parameter as received.
    pub params: Vec<(String, String)>,
}

impl StatusCallback {
    /// Whether `params` are a delivery status callback rather than an inbound message: only a
    /// status callback carries `MessageStatus`, or an `SmsStatus` other than an inbound
    /// message's `received` (`receiving`).
    pub fn is_status_callback(params: &[(String, String)]) -> bool {
        params.iter().any(|(k, v)| {
            k == "MessageStatus"
                || (k == "SmsStatus"
                    && !v.eq_ignore_ascii_case("received")
                    && !v.eq_ignore_ascii_case("receiving"))
        })
    }

    /// Builds the typed callback from decoded parameters.
    ///
    /// ```
    /// use webhook_core::status::StatusCallback;
    /// let cb = StatusCallback::from_form(b"MessageSid=SM2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c&\
    ///     MessageStatus=failed&ErrorCode=63016").unwrap();
    /// assert_eq!(cb.status, "failed");
    /// assert_eq!(cb.error_code, Some(63016));
    /// ```
    pub fn from_params(params: Vec<(String, String)>) -> Result<Self, ParseError> {
        let message_sid = first(&params, "MessageSid")
            .or_else(|| first(&params, "SmsSid"))
            .filter(|v| !v.is_empty())
            .ok_or(ParseError::Missing("MessageSid"))?
            .to_owned();
        check_sid("MessageSid", &message_sid, &["SM", "MM"])?;
        let status = first(&params, "MessageStatus")
            .or_else(|| first(&params, "SmsStatus"))
            .filter(|v| !v.is_empty())
            .ok_or(ParseError::Missing("MessageStatus"))?
            .to_ascii_lowercase();
        // A status Twilio adds after this list was written is kept (stored, never applied to the
        // reply's status); only a value that cannot be a status at all is refused.
        let token =
            status.len() <= 32 && status.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !token {
            return Err(ParseError::Invalid {
                name: "MessageStatus",
                reason: "not a status (lowercase letters and '_', at most 32)".into(),
            });
        }
        let error_code = match first(&params, "ErrorCode") {
            None | Some("") => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| ParseError::Invalid {
                name: "ErrorCode",
                reason: "not a number".into(),
            })?),
        };
        let owned = |name| {
            first(&params, name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(StatusCallback {
            error_message: owned("ErrorMessage"),
            from: owned("From"),
            to: owned("To"),
            message_sid,
            status,
            error_code,
            params,
        })
    }

    /// Parses a raw form body (see [`StatusCallback::from_params`]).
    pub fn from_form(body: &[u8]) -> Result<Self, ParseError> {
        Self::from_params(parse_form(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_fixture_parses() {
        for (file, status, code) in [
            (
                include_str!("../../../fixtures/status-sent.form"),
                "sent",
                None,
            ),
            (
                include_str!("../../../fixtures/status-delivered.form"),
                "delivered",
                None,
            ),
            (
                include_str!("../../../fixtures/status-read.form"),
                "read",
                None,
            ),
            (
                include_str!("../../../fixtures/status-failed-63016.form"),
                "failed",
                Some(63016),
            ),
        ] {
            let cb = StatusCallback::from_form(file.as_bytes()).unwrap();
            assert_eq!(cb.status, status);
            assert_eq!(cb.error_code, code);
            assert!(cb.message_sid.starts_with("SM"));
        }
    }

    #[test]
    fn a_status_not_in_the_list_is_kept_and_a_value_that_is_no_status_is_rejected() {
        let sid = "MessageSid=SM2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c";
        let cb =
            StatusCallback::from_form(format!("{sid}&MessageStatus=Delivery_Unknown").as_bytes())
                .unwrap();
        assert_eq!(cb.status, "delivery_unknown");
        assert!(!KNOWN_STATUSES.contains(&cb.status.as_str()));
        for bad in ["sent%20now", "x1", "%3Cscript%3E", &"a".repeat(33)] {
            let err = StatusCallback::from_form(format!("{sid}&MessageStatus={bad}").as_bytes())
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid value for MessageStatus: not a status (lowercase letters and '_', at most 32)",
                "{bad}"
            );
        }
        let err = StatusCallback::from_form(
            format!("{sid}&MessageStatus=failed&ErrorCode=abc").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid value for ErrorCode: not a number");
        assert_eq!(
            StatusCallback::from_form(b"MessageStatus=sent").unwrap_err(),
            ParseError::Missing("MessageSid")
        );
    }

    #[test]
    fn sms_status_is_a_fallback() {
        let cb = StatusCallback::from_form(
            b"SmsSid=SM2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c&SmsStatus=Delivered",
        )
        .unwrap();
        assert_eq!(cb.status, "delivered");
    }
}

//! Typed errors for every way a Twilio REST call can fail, each with the next step for the user.
//!
//! Twilio answers errors with `{"code", "message", "more_info", "status"}` (some add `detail`).
//! [`TwilioError::from_response`] turns that into a variant the caller can act on: retry
//! ([`TwilioError::is_retryable`]), wait ([`TwilioError::retry_after`]), look a send up before
//! resending ([`TwilioError::may_have_been_sent`]) or tell the operator what to fix
//! ([`TwilioError::hint`], also part of `Display`).
//!
//! WhatsApp delivery failures (63016 outside the 24-hour window, 63015 sandbox not joined, …)
//! normally arrive later in a status callback, not in the send response; [`hint_for_code`] gives
//! the same hints for those codes.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Twilio's error body, as returned with a non-2xx status.
///
/// Every field except `status` is optional because proxies and load balancers in front of
/// Twilio answer 5xx without Twilio's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: u16,
    /// Twilio error code (`20003`, `21211`, …), when the body carried one.
    pub code: Option<i64>,
    /// Twilio's message, or a short excerpt of a non-JSON body.
    pub message: String,
    /// Link to Twilio's page for the code.
    pub more_info: Option<String>,
    /// Extra detail some errors carry (for example 401: "Your AccountSid or AuthToken was incorrect.").
    pub detail: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(
                f,
                "HTTP {}, Twilio error {code}: {}",
                self.status, self.message
            )?,
            None => write!(f, "HTTP {}: {}", self.status, self.message)?,
        }
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        if let Some(more) = &self.more_info {
            write!(f, " — see {more}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
    more_info: Option<String>,
    detail: Option<String>,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// Parses Twilio's error JSON; a body that is not Twilio JSON becomes the message (truncated).
    pub fn parse(status: u16, body: &str) -> ApiError {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(parsed) => ApiError {
                status,
                code: parsed.code,
                message: parsed
                    .message
                    .unwrap_or_else(|| "no message in Twilio's error body".to_owned()),
                more_info: parsed.more_info,
                detail: parsed
                    .detail
                    .or_else(|| parsed.details.map(|d| d.to_string())),
            },
            Err(_) => ApiError {
                status,
                code: None,
                message: excerpt(body),
                more_info: None,
                detail: None,
            },
        }
    }
}

/// First 200 characters of a body, on one line, for error messages.
pub(crate) fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let trimmed = one_line.trim();
    if trimmed.is_empty() {
        "empty body".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Everything that can go wrong talking to Twilio.
///
/// Match on the variant to decide what to do; [`TwilioError::code`] gives Twilio's numeric code
/// for storing on the outbound message. `Display` ends with the next step for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwilioError {
    /// 401 / code 20003: Twilio refused the credentials (also: a standard API key on `/Accounts`).
    #[error("twilio rejected the credentials: {0}. {hint}", hint = self.hint())]
    Authentication(ApiError),
    /// Code 21211: the `To` number is not a valid phone number.
    #[error("twilio rejected the recipient number: {0}. {hint}", hint = self.hint())]
    InvalidTo(ApiError),
    /// Code 21610: the recipient opted out (replied STOP); Twilio says do not retry.
    #[error("the recipient has unsubscribed: {0}. {hint}", hint = self.hint())]
    Unsubscribed(ApiError),
    /// Code 63016: free-form message outside the WhatsApp 24-hour customer-service window.
    #[error("outside the WhatsApp 24-hour window: {0}. {hint}", hint = self.hint())]
    OutsideWindow(ApiError),
    /// Code 63015: the WhatsApp Sandbox recipient has not joined (or the 72-hour join expired).
    #[error("the recipient has not joined the WhatsApp Sandbox: {0}. {hint}", hint = self.hint())]
    SandboxNotJoined(ApiError),
    /// 429 (code 20429): too many concurrent requests; the request was not processed.
    #[error("twilio rate-limited the request: {error}. {hint}", hint = self.hint())]
    RateLimited {
        /// Twilio's error body.
        error: ApiError,
        /// The `Retry-After` header, when Twilio sent one.
        retry_after: Option<Duration>,
    },
    /// 5xx: a Twilio-side failure. The request may or may not have been processed.
    #[error("twilio server error: {0}. {hint}", hint = self.hint())]
    Server(ApiError),
    /// Code 20404 / HTTP 404: the resource (message, number, service) does not exist in this account.
    #[error("not found at twilio: {0}. {hint}", hint = self.hint())]
    NotFound(ApiError),
    /// Any other error response from Twilio (see `code`).
    #[error("twilio rejected the request: {0}. {hint}", hint = self.hint())]
    Other(ApiError),
    /// No complete response in time.
    #[error("timed out talking to twilio ({phase}){sent}. {hint}",
        sent = sent_note(*.may_have_been_sent),
        hint = self.hint())]
    Timeout {
        /// Which phase ran out of time (`connect`, `response`, …).
        phase: &'static str,
        /// `false` only when the request provably never left (connect or DNS timeout).
        may_have_been_sent: bool,
    },
    /// The TLS connection could not be set up: the handshake failed (a certificate this client
    /// does not trust, an incompatible server) or the TLS configuration is unusable. Nothing was
    /// sent, and trying again at once meets the same certificate: not retryable within a send.
    #[error("cannot reach twilio: TLS: {detail}. {hint}", hint = self.hint())]
    Tls {
        /// What failed (rustls's description).
        detail: String,
    },
    /// DNS, connect, or a connection dropped mid-exchange.
    #[error("cannot reach twilio: {detail}. {hint}", hint = self.hint())]
    Connection {
        /// What failed, without secrets.
        detail: String,
        /// `true` when the connection broke after the request was written.
        may_have_been_sent: bool,
    },
    /// Twilio (or something pretending to be it) answered with a body we cannot read.
    #[error("unexpected response from twilio (HTTP {status}): {detail}. {hint}", hint = self.hint())]
    InvalidResponse {
        /// HTTP status of the response.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
    /// The send's time budget ([`RetryPolicy::max_elapsed`](crate::RetryPolicy::max_elapsed))
    /// left no room for a request of the client's timeout: nothing was sent. Retryable: a later
    /// attempt gets a new budget.
    #[error("not sent: the {budget:?} budget left no room for a {request_timeout:?} request. {hint}", hint = self.hint())]
    OutOfTime {
        /// The budget the send was given.
        budget: Duration,
        /// The client's per-request timeout.
        request_timeout: Duration,
    },
    /// The request was refused before sending: missing `To`, no sender, bad SID, …
    #[error("invalid request, not sent: {0}")]
    InvalidRequest(String),
    /// The client could not be built (for example an unusable base URL).
    #[error("invalid twilio client configuration: {0}")]
    Config(String),
}

impl TwilioError {
    /// Classifies an HTTP error response from its status, `Retry-After` header value and body.
    pub fn from_response(status: u16, retry_after: Option<&str>, body: &str) -> TwilioError {
        let error = ApiError::parse(status, body);
        if status == 429 {
            return TwilioError::RateLimited {
                error,
                retry_after: retry_after.and_then(parse_retry_after),
            };
        }
        if status >= 500 {
            return TwilioError::Server(error);
        }
        match (status, error.code) {
            (401, _) | (_, Some(20003)) => TwilioError::Authentication(error),
            (_, Some(20429)) => TwilioError::RateLimited {
                error,
                retry_after: retry_after.and_then(parse_retry_after),
            },
            (_, Some(21211)) => TwilioError::InvalidTo(error),
            (_, Some(21610)) => TwilioError::Unsubscribed(error),
            (_, Some(63016)) => TwilioError::OutsideWindow(error),
            (_, Some(63015)) => TwilioError::SandboxNotJoined(error),
            (404, _) | (_, Some(20404)) => TwilioError::NotFound(error),
            _ => TwilioError::Other(error),
        }
    }

    /// Twilio's numeric error code, when the response carried one.
    pub fn code(&self) -> Option<i64> {
        self.api_error().and_then(|e| e.code)
    }

    /// HTTP status of the error response, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            TwilioError::InvalidResponse { status, .. } => Some(*status),
            other => other.api_error().map(|e| e.status),
        }
    }

    /// Twilio's error body, for variants that came from an error response.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            TwilioError::Authentication(e)
            | TwilioError::InvalidTo(e)
            | TwilioError::Unsubscribed(e)
            | TwilioError::OutsideWindow(e)
            | TwilioError::SandboxNotJoined(e)
            | TwilioError::Server(e)
            | TwilioError::NotFound(e)
            | TwilioError::Other(e)
            | TwilioError::RateLimited { error: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Whether trying again later can succeed: 429, 5xx, timeouts and connection failures.
    ///
    /// Never true for a 4xx other than 429: those need a change (credentials, number, template).
    /// Nor for [`Tls`](TwilioError::Tls): a proxy's certificate does not change between tries
    /// (a caller may try the send again later, since nothing was sent).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TwilioError::RateLimited { .. }
                | TwilioError::Server(_)
                | TwilioError::Timeout { .. }
                | TwilioError::Connection { .. }
                | TwilioError::OutOfTime { .. }
        )
    }

    /// The `Retry-After` Twilio asked for on a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TwilioError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether Twilio may have created the message although we got no success response:
    /// a timeout or dropped connection after the request went out, a 5xx (the create is not
    /// idempotent and a 5xx does not prove it was not processed), or an unreadable 2xx.
    /// Such a send must be looked up before it is retried.
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            TwilioError::Timeout {
                may_have_been_sent, ..
            }
            | TwilioError::Connection {
                may_have_been_sent, ..
            } => *may_have_been_sent,
            TwilioError::Server(_) => true,
            TwilioError::InvalidResponse { status, .. } => (200..300).contains(status),
            _ => false,
        }
    }

    /// Whether no answer from Twilio's API came back (a timeout or a dropped connection after
    /// the request went out, a 2xx that could not be read, or a gateway's 5xx: a 502 or 504,
    /// which say the upstream did not answer in time, or any 5xx without Twilio's JSON error),
    /// so the create may still be running at Twilio. Another 5xx with Twilio's error code is
    /// Twilio's answer: its handling has ended.
    pub(crate) fn response_lost(&self) -> bool {
        match self {
            TwilioError::Server(e) => e.code.is_none() || matches!(e.status, 502 | 504),
            _ => self.may_have_been_sent(),
        }
    }

    /// Whether Twilio was never reached: the host name did not resolve, or the connection was
    /// refused or not made in time. Nothing was sent, and such a failure is often over in
    /// minutes (a network or DNS blip). TLS failures are not included: see
    /// [`Tls`](TwilioError::Tls).
    pub fn never_reached(&self) -> bool {
        match self {
            TwilioError::Connection {
                may_have_been_sent: false,
                ..
            } => true,
            TwilioError::Timeout {
                may_have_been_sent, ..
            } => !may_have_been_sent,
            _ => false,
        }
    }

    /// One sentence telling the operator what to do next.
    pub fn hint(&self) -> &'static str {
        if let Some(hint) = self.code().and_then(hint_for_code) {
            return hint;
        }
        match self {
            TwilioError::Authentication(_) => hint_for_code(20003).unwrap_or_default(),
            TwilioError::RateLimited { .. } => hint_for_code(20429).unwrap_or_default(),
            // Twilio's own errors are JSON with a code; an HTML 502/504 is a proxy's.
            TwilioError::Server(e) if e.code.is_none() => {
                "Twilio, or a proxy between this server and Twilio, answered with a server error: retry with backoff; check status.twilio.com and any HTTPS proxy on the way if it persists"
            }
            TwilioError::Server(_) => {
                "Twilio had an internal problem: retry with backoff and check status.twilio.com if it persists"
            }
            TwilioError::NotFound(_) => {
                "check the SID and that it belongs to this account (TWILIO_ACCOUNT_SID)"
            }
            TwilioError::Other(e) if e.code.is_none() => {
                "the answer carried no Twilio error code (Twilio's errors do): check that TWILIO_API_BASE_URL reaches Twilio and not a proxy or another server"
            }
            TwilioError::Other(_) => {
                "look the code up at https://www.twilio.com/docs/errors and fix the request or the Console setting it names"
            }
            TwilioError::Timeout { .. } => {
                "Twilio did not answer in time: retry later; check the network or raise the client timeout if it persists"
            }
            TwilioError::Tls { .. } => {
                "nothing was sent: the HTTPS handshake with TWILIO_API_BASE_URL failed; a corporate proxy or antivirus that intercepts HTTPS presents a certificate outside the Mozilla roots this client trusts, so let api.twilio.com through it untouched, and check the URL is Twilio's (https://api.twilio.com)"
            }
            TwilioError::Connection { .. } => {
                "check network access to TWILIO_API_BASE_URL (DNS, firewall, proxy) and retry"
            }
            TwilioError::InvalidResponse { .. } => {
                "check TWILIO_API_BASE_URL points at Twilio's REST API (https://api.twilio.com)"
            }
            TwilioError::OutOfTime { .. } => {
                "the send is tried again later with a new budget; if this repeats, the claim lease is too short for the client timeout"
            }
            TwilioError::InvalidRequest(_) => "fix the message before sending it",
            TwilioError::Config(_) => {
                "fix the Twilio settings (TWILIO_API_BASE_URL, TWILIO_ACCOUNT_SID) and restart"
            }
            // Variants below always carry their code; reached only with an unexpected code.
            TwilioError::InvalidTo(_) => hint_for_code(21211).unwrap_or_default(),
            TwilioError::Unsubscribed(_) => hint_for_code(21610).unwrap_or_default(),
            TwilioError::OutsideWindow(_) => hint_for_code(63016).unwrap_or_default(),
            TwilioError::SandboxNotJoined(_) => hint_for_code(63015).unwrap_or_default(),
        }
    }
}

/// Next step for a Twilio error code, whether it came in a REST response or later in a status
/// callback's `ErrorCode` (where WhatsApp delivery failures such as 63016 arrive).
///
/// Returns `None` for codes we have no specific advice for.
pub fn hint_for_code(code: i64) -> Option<&'static str> {
    Some(match code {
        11200 => {
            "Twilio could not fetch your webhook URL: check the server is reachable at WEBHOOK_URL (tunnel running, returns 200 with TwiML)"
        }
        11205 => {
            "Twilio could not connect to your webhook: check the host is public and HTTPS works"
        }
        12300 => "return a Content-Type (text/xml for TwiML) from the webhook",
        20003 => {
            "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY_SID/TWILIO_API_KEY_SECRET) in the Twilio Console"
        }
        20404 => "check the SID and that it belongs to this account (TWILIO_ACCOUNT_SID)",
        20429 => "too many concurrent requests: retry after a pause with exponential backoff",
        21211 => {
            "the 'To' number is invalid: use E.164 with the whatsapp: prefix, e.g. whatsapp:+15551234567"
        }
        21408 => {
            "enable the destination region in Console > Messaging > Settings > Geo permissions"
        }
        21608 => {
            "trial accounts can only send to verified numbers: verify the recipient or upgrade the account"
        }
        21610 => "the recipient replied STOP: do not retry; they must opt in again (send START)",
        21614 => "the 'To' number cannot receive this message: check it is a mobile number",
        21910 => "From and To must use the same channel: put whatsapp: on both",
        30003 => "the recipient's phone is unreachable (off or out of coverage): try again later",
        30004 => {
            "the message was blocked (recipient blocked you or carrier filtering): do not retry blindly"
        }
        30005 => "the recipient number is unknown or no longer in service: check the number",
        30006 => "the recipient cannot receive this message (landline or unreachable carrier)",
        30007 => "the message was filtered as spam by the carrier or WhatsApp: review its content",
        30008 => {
            "unknown delivery error: retry once later and contact Twilio support if it repeats"
        }
        63003 => {
            "the recipient's address is not a valid WhatsApp user: check the number has WhatsApp"
        }
        63007 => {
            "no WhatsApp sender for the From address: check TWILIO_WHATSAPP_FROM (whatsapp:+E164) is an approved sender in this account"
        }
        63015 => {
            "the recipient must join the WhatsApp Sandbox first: send 'join <your-code>' to the sandbox number (joins expire after 72 hours)"
        }
        63016 => {
            "use an approved template (ContentSid) outside the 24-hour window: free-form replies are only allowed within 24 hours of the user's last message"
        }
        63018 => {
            "the WhatsApp sender's rate or messaging limit was exceeded: slow down and retry later"
        }
        63024 => {
            "the recipient is not a valid WhatsApp recipient: check the number and that it uses WhatsApp"
        }
        63112 => {
            "Meta disabled the WhatsApp Business Account or sender: check the sender's status in the Console"
        }
        _ => return None,
    })
}

fn sent_note(may_have_been_sent: bool) -> &'static str {
    if may_have_been_sent {
        "; the request may have reached twilio"
    } else {
        ""
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date. A date in the past means "now".
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const E20003: &str = r#"{"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#;

    #[test]
    fn classifies_by_status_and_code() {
        assert!(matches!(
            TwilioError::from_response(401, None, E20003),
            TwilioError::Authentication(_)
        ));
        let e =
            TwilioError::from_response(400, None, r#"{"code":21211,"message":"bad","status":400}"#);
        assert!(matches!(e, TwilioError::InvalidTo(_)));
        assert_eq!(e.code(), Some(21211));
        assert!(!e.is_retryable());
        let e = TwilioError::from_response(503, None, "<html>Service Unavailable</html>");
        assert!(matches!(e, TwilioError::Server(_)));
        assert!(e.is_retryable());
        assert_eq!(e.code(), None);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn display_carries_detail_and_next_step() {
        let text = TwilioError::from_response(401, None, E20003).to_string();
        assert!(text.contains("20003"), "{text}");
        assert!(
            text.contains("Your AccountSid or AuthToken was incorrect."),
            "{text}"
        );
        assert!(text.contains("TWILIO_AUTH_TOKEN"), "{text}");
    }

    #[test]
    fn non_json_body_is_excerpted() {
        let e = ApiError::parse(502, "\n<html>\nBad Gateway</html>\n");
        assert_eq!(e.message, "<html> Bad Gateway</html>");
        assert_eq!(ApiError::parse(500, "").message, "empty body");
    }

    #[test]
    fn an_answer_without_a_twilio_code_is_not_told_to_look_a_code_up() {
        // A proxy's HTML pages: no code to look up, and maybe not Twilio's fault.
        let e = TwilioError::from_response(400, None, "<html>Bad Request</html>");
        assert!(matches!(e, TwilioError::Other(_)), "{e:?}");
        assert!(e.hint().contains("carried no Twilio error code"), "{e}");
        let e = TwilioError::from_response(502, None, "<html>Bad Gateway</html>");
        assert!(matches!(e, TwilioError::Server(_)), "{e:?}");
        assert!(e.hint().contains("or a proxy between"), "{e}");
        // Twilio's own JSON errors keep their hints.
        let e =
            TwilioError::from_response(400, None, r#"{"code":21606,"message":"x","status":400}"#);
        assert!(e.hint().starts_with("look the code up"), "{e}");
        let e =
            TwilioError::from_response(500, None, r#"{"code":20500,"message":"x","status":500}"#);
        assert!(
            e.hint().starts_with("Twilio had an internal problem"),
            "{e}"
        );
    }

    #[test]
    fn every_hinted_code_has_a_sentence() {
        for code in [
            11200, 20003, 20429, 21211, 21610, 30003, 30004, 30005, 30006, 30007, 30008, 63003,
            63007, 63015, 63016, 63018, 63024,
        ] {
            assert!(hint_for_code(code).is_some_and(|h| h.len() > 20), "{code}");
        }
        assert_eq!(hint_for_code(99999), None);
    }
}

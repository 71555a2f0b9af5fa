//! The blocking HTTP client: one ureq agent, Basic auth, JSON in, typed errors out.
//!
//! Every call is a single attempt; [`Client::send_with_retry`](crate::Client::send_with_retry)
//! in `retry.rs` layers retries on top. Callers on tokio run these methods in
//! `tokio::task::spawn_blocking`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::error::{ApiError, TwilioError, excerpt};
use crate::message::{Message, MessagePage, SendMessage, is_sid};
use crate::resources::{
    Account, IncomingNumber, IncomingNumberPage, MessagingService, SenderPage, WhatsAppSender,
};

/// Twilio's REST API; the default for `TWILIO_API_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// Most pages of 50 senders [`Client::find_whatsapp_sender`] reads.
pub const MAX_SENDER_PAGES: usize = 20;

/// Longest a TCP + TLS connect may take, whatever the overall timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pages of 50 a lookup follows at most before calling itself inconclusive.
pub(crate) const MAX_LOOKUP_PAGES: usize = 20;

/// Largest response body read (Twilio's pages are a few kB).
const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;

/// How the retry loop waits; replaceable so tests do not really sleep.
pub(crate) type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// A blocking client for the Twilio REST endpoints this workspace uses.
///
/// Cheap to clone (the connection pool is shared). Holds the credentials; `Debug` redacts them.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    api_base: String,
    messaging_base: String,
    auth: Auth,
    auth_header: String,
    /// Bound on one request, connect to last byte (what a retry budget counts per request).
    pub(crate) timeout: Duration,
    pub(crate) sleeper: Sleeper,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_base", &self.api_base)
            .field("messaging_base", &self.messaging_base)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The per-request timeout the client was built with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Builds a client for `base_url` (normally [`DEFAULT_BASE_URL`]).
    ///
    /// `timeout` bounds each request from connect to the last byte of the body; connecting
    /// alone is bounded by the smaller of `timeout` and [`CONNECT_TIMEOUT`].
    ///
    /// The Messaging API (`/v1/Services`, `/v2/Channels/Senders`) lives on another host:
    /// `https://api.twilio.com` → `https://messaging.twilio.com`, and likewise for regional
    /// hosts (`api.dublin.ie1.twilio.com` → `messaging.dublin.ie1.twilio.com`). Any other base
    /// URL — a fake Twilio in tests, a proxy — serves both APIs, so Messaging paths go to
    /// `base_url` too. [`Client::with_messaging_base_url`] overrides this.
    ///
    /// Plain `http://` is refused except for loopback hosts, because the Basic auth header
    /// carries the token.
    pub fn new(base_url: &str, auth: Auth, timeout: Duration) -> Result<Client, TwilioError> {
        let api_base = check_base_url(base_url)?;
        let account_sid = auth.account_sid();
        if account_sid.is_empty() || !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TwilioError::Config(
                "TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits".to_owned(),
            ));
        }
        if timeout.is_zero() {
            return Err(TwilioError::Config(
                "the request timeout must be above zero".to_owned(),
            ));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(CONNECT_TIMEOUT)))
            .http_status_as_error(false)
            // Twilio never redirects API calls; following one could carry credentials elsewhere.
            .max_redirects(0)
            .user_agent(concat!(
                "whatsapp-webhook-twilio-client/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let messaging_base = derive_messaging_base(&api_base);
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            api_base,
            messaging_base,
            auth_header: auth.header_value(),
            auth,
            timeout,
            sleeper: Arc::new(std::thread::sleep),
        })
    }

    /// Sends Messaging API calls (services, senders) to `url` instead of the derived host.
    pub fn with_messaging_base_url(mut self, url: &str) -> Result<Client, TwilioError> {
        self.messaging_base = check_base_url(url)?;
        Ok(self)
    }

    /// Replaces how [`Client::send_with_retry`] waits between tries (default:
    /// `std::thread::sleep`). Tests pass a recorder so they run without real delays.
    pub fn with_sleeper(mut self, sleeper: impl Fn(Duration) + Send + Sync + 'static) -> Client {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// The REST base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.api_base
    }

    /// Where Messaging API calls go.
    pub fn messaging_base_url(&self) -> &str {
        &self.messaging_base
    }

    /// The Account SID in request paths.
    pub fn account_sid(&self) -> &str {
        self.auth.account_sid()
    }

    fn account_url(&self, rest: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}{rest}",
            self.api_base,
            self.auth.account_sid()
        )
    }

    /// Creates a message: one `POST …/Messages.json`, no retry. Validates first.
    pub fn send_message(&self, req: &SendMessage) -> Result<Message, TwilioError> {
        req.validate()?;
        let url = self.account_url("/Messages.json");
        tracing::debug!(to = %req.to, "twilio: creating message");
        let result = self
            .agent
            .post(&url)
            .header("Authorization", &self.auth_header)
            .header("Accept", "application/json")
            .send_form(req.form_pairs());
        let message: Message = read_json(result)?;
        tracing::debug!(sid = %message.sid, status = %message.status, "twilio: message created");
        Ok(message)
    }

    /// `GET …/Messages/{sid}.json`: current status and error code of one message.
    pub fn fetch_message(&self, sid: &str) -> Result<Message, TwilioError> {
        check_path_sid(sid, "message SID")?;
        self.get(&self.account_url(&format!("/Messages/{sid}.json")), &[])
    }

    /// `GET …/Messages.json?To=…[&From=…][&DateSent=YYYY-MM-DD]`: the newest page (up to 50),
    /// newest first. (The lookup of a send whose response was lost reads further pages:
    /// [`Client::find_sent`].)
    pub fn list_messages(
        &self,
        to: &str,
        from: Option<&str>,
        date_sent: Option<&str>,
    ) -> Result<Vec<Message>, TwilioError> {
        Ok(self.first_messages_page(to, from, date_sent)?.messages)
    }

    /// The newest page of `GET …/Messages.json` for these filters (`PageSize` 50).
    fn first_messages_page(
        &self,
        to: &str,
        from: Option<&str>,
        date_sent: Option<&str>,
    ) -> Result<MessagePage, TwilioError> {
        let mut query = vec![("To", to)];
        if let Some(from) = from {
            query.push(("From", from));
        }
        if let Some(date) = date_sent {
            query.push(("DateSent", date));
        }
        query.push(("PageSize", "50"));
        self.get(&self.account_url("/Messages.json"), &query)
    }

    /// The messages to `to` (from `from`, when given) that Twilio created since `since`, newest
    /// first: the list's pages are followed (`next_page_uri`) until one reaches back past
    /// `since`. A lookup must see every candidate, or a lost send would look unsent; when
    /// [`MAX_LOOKUP_PAGES`] pages do not reach back that far, or a next page points outside
    /// this account's message list, it fails instead of answering with part of the list.
    pub(crate) fn list_messages_since(
        &self,
        to: &str,
        from: Option<&str>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Message>, TwilioError> {
        let mut page = self.first_messages_page(to, from, None)?;
        let own_list = format!(
            "/2010-04-01/Accounts/{}/Messages.json?",
            self.auth.account_sid()
        );
        let mut found = Vec::new();
        for pages in 1.. {
            // Newest first: the last message is the page's oldest. Undated ones never end the
            // walk early.
            let reaches_back = page
                .messages
                .last()
                .is_none_or(|m| m.created_at().is_some_and(|at| at < since));
            found.append(&mut page.messages);
            let next = match page.next_page_uri.take().filter(|u| !u.is_empty()) {
                Some(next) if !reaches_back => next,
                _ => return Ok(found),
            };
            if pages >= MAX_LOOKUP_PAGES {
                return Err(TwilioError::InvalidResponse {
                    status: 200,
                    detail: format!(
                        "more than {} messages to {to} since the send began: cannot tell \
                         whether it went out",
                        found.len()
                    ),
                });
            }
            if !next.starts_with(&own_list) {
                return Err(TwilioError::InvalidResponse {
                    status: 200,
                    detail: "the message list's next page is not this account's message list"
                        .to_owned(),
                });
            }
            page = self.get(&format!("{}{next}", self.api_base), &[])?;
        }
        Ok(found)
    }

    /// `GET /2010-04-01/Accounts/{Sid}.json`. Needs the Auth Token: a standard API key gets 401.
    pub fn fetch_account(&self) -> Result<Account, TwilioError> {
        self.get(&self.account_url(".json"), &[])
            .map_err(|e| match e {
                // Said here, not in every 20003's hint: only this resource refuses API keys.
                TwilioError::Authentication(mut api) if self.auth.is_api_key() => {
                    const NOTE: &str = "a standard API key cannot read /Accounts";
                    api.detail = Some(match api.detail.take() {
                        Some(detail) => format!("{detail}; {NOTE}"),
                        None => NOTE.to_owned(),
                    });
                    TwilioError::Authentication(api)
                }
                other => other,
            })
    }

    /// Proves Twilio accepts the credentials, with an Auth Token or an API key:
    /// `GET …/IncomingPhoneNumbers.json?PageSize=1`.
    pub fn check_credentials(&self) -> Result<(), TwilioError> {
        let _: IncomingNumberPage = self.get(
            &self.account_url("/IncomingPhoneNumbers.json"),
            &[("PageSize", "1")],
        )?;
        Ok(())
    }

    /// The account's number equal to `phone` (`+14155550100` or `whatsapp:+14155550100`),
    /// with its inbound webhook URL; `None` when the account has no such number (for example
    /// the shared Sandbox number).
    pub fn find_incoming_number(&self, phone: &str) -> Result<Option<IncomingNumber>, TwilioError> {
        let e164 = e164(phone);
        let page: IncomingNumberPage = self.get(
            &self.account_url("/IncomingPhoneNumbers.json"),
            &[("PhoneNumber", e164)],
        )?;
        // Twilio's PhoneNumber filter also matches partial numbers: keep the exact one.
        Ok(page
            .incoming_phone_numbers
            .into_iter()
            .find(|n| n.phone_number == e164))
    }

    /// `GET {messaging}/v1/Services/{MG…}`: the service's inbound webhook URL.
    pub fn fetch_messaging_service(&self, sid: &str) -> Result<MessagingService, TwilioError> {
        if !is_sid(sid, "MG") {
            return Err(TwilioError::InvalidRequest(
                "a Messaging Service SID is MG followed by 32 hex digits".to_owned(),
            ));
        }
        self.get(&format!("{}/v1/Services/{sid}", self.messaging_base), &[])
    }

    /// `GET {messaging}/v2/Channels/Senders/{XE…}`: a WhatsApp sender's webhook URL.
    pub fn fetch_whatsapp_sender(&self, sid: &str) -> Result<WhatsAppSender, TwilioError> {
        if !is_sid(sid, "XE") {
            return Err(TwilioError::InvalidRequest(
                "a WhatsApp sender SID is XE followed by 32 hex digits".to_owned(),
            ));
        }
        self.get(
            &format!("{}/v2/Channels/Senders/{sid}", self.messaging_base),
            &[],
        )
    }

    /// The account's WhatsApp sender for `phone` (`+14155550100` or `whatsapp:+14155550100`),
    /// found by listing `GET {messaging}/v2/Channels/Senders?Channel=whatsapp` (at most
    /// [`MAX_SENDER_PAGES`] pages of 50); `None` when the account has no such sender (a number
    /// used for WhatsApp through the Sandbox or without the Senders API). Only next-page links
    /// on the Messaging host are followed, so the credentials never go anywhere else.
    pub fn find_whatsapp_sender(&self, phone: &str) -> Result<Option<WhatsAppSender>, TwilioError> {
        let wanted = format!("whatsapp:{}", e164(phone));
        let mut url = format!("{}/v2/Channels/Senders", self.messaging_base);
        let mut query: &[(&str, &str)] = &[("Channel", "whatsapp"), ("PageSize", "50")];
        let own_host = format!("{}/", self.messaging_base);
        for _ in 0..MAX_SENDER_PAGES {
            let page: SenderPage = self.get(&url, query)?;
            if let Some(sender) = page
                .senders
                .into_iter()
                .find(|s| s.sender_id.as_deref() == Some(wanted.as_str()))
            {
                return Ok(Some(sender));
            }
            match page.meta.and_then(|m| m.next_page_url) {
                // The next link carries its own query (Channel, PageSize, PageToken).
                Some(next) if next.starts_with(&own_host) => {
                    url = next;
                    query = &[];
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<T, TwilioError> {
        let result = self
            .agent
            .get(url)
            .header("Authorization", &self.auth_header)
            .header("Accept", "application/json")
            .query_pairs(query.iter().copied())
            .call();
        read_json(result)
    }
}

/// Turns a ureq result into the parsed body or a typed error.
fn read_json<T: DeserializeOwned>(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, TwilioError> {
    let mut response = result.map_err(from_transport)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let success = (200..300).contains(&status);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(excerpt);
    let body = match response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
    {
        // Bytes that are not UTF-8 (a proxy's Latin-1 error page) are still an answer.
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        // An error status is classified by the status alone when its body is too large to read.
        Err(ureq::Error::BodyExceedsLimit(_)) if !success => String::new(),
        Err(ureq::Error::BodyExceedsLimit(limit)) => {
            return Err(TwilioError::InvalidResponse {
                status,
                detail: format!("response body larger than {limit} bytes"),
            });
        }
        Err(e) => {
            return Err(match from_transport(e) {
                // The status line arrived, so Twilio has the request.
                TwilioError::Timeout { phase, .. } => TwilioError::Timeout {
                    phase,
                    may_have_been_sent: true,
                },
                TwilioError::Connection { detail, .. } => TwilioError::Connection {
                    detail,
                    may_have_been_sent: true,
                },
                other => other,
            });
        }
    };
    if (300..400).contains(&status) {
        // Redirects are not followed (see `Client::new`); Twilio's REST API never sends one, so
        // the base URL points somewhere else.
        return Err(TwilioError::InvalidResponse {
            status,
            detail: format!(
                "answered with a redirect (to {}), which Twilio's REST API never does",
                location.as_deref().unwrap_or("no Location")
            ),
        });
    }
    if status == 404 && ApiError::parse(status, &body).code.is_none() {
        // Twilio's 404s carry its error JSON (code 20404); an HTML page is another server's.
        return Err(TwilioError::InvalidResponse {
            status,
            detail: format!("HTTP 404 without Twilio's error JSON: {}", excerpt(&body)),
        });
    }
    if !success {
        let error = TwilioError::from_response(status, retry_after.as_deref(), &body);
        tracing::debug!(status, code = ?error.code(), "twilio: error response");
        return Err(error);
    }
    serde_json::from_str(&body).map_err(|e| TwilioError::InvalidResponse {
        status,
        detail: format!("cannot parse JSON ({e}): {}", success_excerpt(&body)),
    })
}

/// An excerpt of a 2xx body we could not read, for the error. A successful answer can carry a
/// secret (the Account resource holds the account's `auth_token`), so a body naming one is not
/// quoted at all.
fn success_excerpt(body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    if ["token", "secret", "password"]
        .iter()
        .any(|word| lower.contains(word))
    {
        format!(
            "{} bytes, not quoted because they may hold a secret",
            body.len()
        )
    } else {
        excerpt(body)
    }
}

/// Maps transport failures; decides whether the request may have reached Twilio.
fn from_transport(error: ureq::Error) -> TwilioError {
    match error {
        ureq::Error::Timeout(timeout) => {
            let not_sent = matches!(timeout, ureq::Timeout::Resolve | ureq::Timeout::Connect);
            TwilioError::Timeout {
                phase: timeout_phase(timeout),
                may_have_been_sent: !not_sent,
            }
        }
        ureq::Error::HostNotFound => TwilioError::Connection {
            detail: "host not found (DNS)".to_owned(),
            may_have_been_sent: false,
        },
        ureq::Error::ConnectionFailed => TwilioError::Connection {
            detail: "connection failed".to_owned(),
            may_have_been_sent: false,
        },
        // std's resolver reports a name that does not resolve as an uncategorized I/O error
        // (getaddrinfo's text, on unix): like HostNotFound, nothing was sent.
        ureq::Error::Io(e)
            if e.to_string()
                .starts_with("failed to lookup address information") =>
        {
            TwilioError::Connection {
                detail: format!("host not found (DNS): {e}"),
                may_have_been_sent: false,
            }
        }
        ureq::Error::Io(e) => {
            // ureq completes the TLS handshake before it writes the request, and passes rustls's
            // errors on wrapped in io::Error, as it does errors after the request went out.
            if let Some(detail) = handshake_failure(&e) {
                return TwilioError::Tls { detail };
            }
            let before_sending = matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::AddrNotAvailable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NotFound
            );
            if e.kind() == io::ErrorKind::TimedOut {
                return TwilioError::Timeout {
                    phase: "i/o",
                    may_have_been_sent: true,
                };
            }
            TwilioError::Connection {
                detail: format!("i/o error: {e}"),
                may_have_been_sent: !before_sending,
            }
        }
        ureq::Error::Tls(why) => TwilioError::Tls {
            detail: why.to_owned(),
        },
        ureq::Error::Rustls(e) => TwilioError::Tls {
            detail: e.to_string(),
        },
        ureq::Error::BadUri(why) => TwilioError::Config(format!("bad request URL: {why}")),
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            TwilioError::InvalidResponse {
                status: 300,
                detail: "twilio answered with a redirect, which the REST API never does".to_owned(),
            }
        }
        ureq::Error::BodyExceedsLimit(limit) => TwilioError::InvalidResponse {
            status: 200,
            detail: format!("response body larger than {limit} bytes"),
        },
        other => TwilioError::Connection {
            detail: other.to_string(),
            may_have_been_sent: true,
        },
    }
}

/// Describes a TLS failure that can only happen during the handshake (so before the request
/// was written), such as a certificate this client does not trust; `None` for any other error.
fn handshake_failure(error: &io::Error) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    // Not InappropriateHandshakeMessage: TLS 1.3 returns it after the handshake too (a
    // post-handshake message other than a ticket or a key update).
    matches!(
        tls,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::PeerIncompatible(_)
    )
    .then(|| tls.to_string())
}

fn timeout_phase(timeout: ureq::Timeout) -> &'static str {
    match timeout {
        ureq::Timeout::Resolve => "DNS resolve",
        ureq::Timeout::Connect => "connect",
        ureq::Timeout::SendRequest | ureq::Timeout::SendBody => "sending the request",
        ureq::Timeout::RecvResponse => "waiting for the response",
        ureq::Timeout::RecvBody => "reading the response body",
        _ => "request deadline",
    }
}

/// `+14155550100` from `whatsapp:+14155550100` or `+14155550100`: how the number lookups
/// accept either form of a WhatsApp sender.
fn e164(phone: &str) -> &str {
    phone.strip_prefix("whatsapp:").unwrap_or(phone).trim()
}

/// Normalises and checks a base URL: scheme, host, no query; `http` only for loopback.
fn check_base_url(raw: &str) -> Result<String, TwilioError> {
    let url = raw.trim().trim_end_matches('/');
    let bad = |why: &str| {
        Err(TwilioError::Config(format!(
            "TWILIO_API_BASE_URL {url:?} {why}"
        )))
    };
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => return bad("must start with https://"),
    };
    if url.contains(['?', '#', ' ']) {
        return bad("must not contain a query, fragment or spaces");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = host_of(authority);
    if host.is_empty() || authority.contains('@') {
        return bad("must name a host (and no user:password@)");
    }
    match scheme {
        "https" => Ok(url.to_owned()),
        "http" if matches!(host, "localhost" | "127.0.0.1" | "[::1]") => Ok(url.to_owned()),
        "http" => bad("must use https (plain http is only allowed for localhost)"),
        _ => bad("must start with https://"),
    }
}

/// The host part of `host[:port]`, keeping IPv6 brackets.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.split(':').next().unwrap_or_default()
}

/// `https://api.X.twilio.com` → `https://messaging.X.twilio.com`; anything else is kept.
fn derive_messaging_base(api_base: &str) -> String {
    if let Some(rest) = api_base.strip_prefix("https://api.") {
        let host = rest.split('/').next().unwrap_or_default();
        if !rest.contains('/') && (host == "twilio.com" || host.ends_with(".twilio.com")) {
            return format!("https://messaging.{rest}");
        }
    }
    api_base.to_owned()
}

/// Refuses path segments that could change the URL (`/`, `..`, `?`).
fn check_path_sid(sid: &str, what: &str) -> Result<(), TwilioError> {
    if sid.is_empty() || sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TwilioError::InvalidRequest(format!(
            "{what} must be letters and digits only"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messaging_host_follows_the_api_host() {
        assert_eq!(
            derive_messaging_base("https://api.twilio.com"),
            "https://messaging.twilio.com"
        );
        assert_eq!(
            derive_messaging_base("https://api.dublin.ie1.twilio.com"),
            "https://messaging.dublin.ie1.twilio.com"
        );
        assert_eq!(
            derive_messaging_base("http://127.0.0.1:4010"),
            "http://127.0.0.1:4010"
        );
        assert_eq!(
            derive_messaging_base("https://api.twilio.com.evil.example"),
            "https://api.twilio.com.evil.example"
        );
    }

    #[test]
    fn base_url_rules() {
        assert_eq!(
            check_base_url("https://api.twilio.com/").ok().as_deref(),
            Some("https://api.twilio.com")
        );
        assert!(check_base_url("http://127.0.0.1:9999").is_ok());
        assert!(check_base_url("http://[::1]:9999").is_ok());
        assert!(check_base_url("http://localhost").is_ok());
        for bad in [
            "http://api.twilio.com",
            "api.twilio.com",
            "ftp://x",
            "https://",
            "https://u:p@api.twilio.com",
            "https://api.twilio.com?x=1",
        ] {
            assert!(
                matches!(check_base_url(bad), Err(TwilioError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn path_sids_cannot_escape_the_path() {
        assert!(check_path_sid("SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b", "sid").is_ok());
        for bad in ["", "../Calls", "SM1?x=1", "SM1/..", "SM 1"] {
            assert!(check_path_sid(bad, "sid").is_err(), "{bad}");
        }
    }

    #[test]
    fn only_connect_and_dns_failures_prove_nothing_was_sent() {
        let not_sent = [
            ureq::Error::Timeout(ureq::Timeout::Connect),
            ureq::Error::Timeout(ureq::Timeout::Resolve),
            ureq::Error::HostNotFound,
            ureq::Error::ConnectionFailed,
            ureq::Error::Io(io::ErrorKind::ConnectionRefused.into()),
        ];
        for error in not_sent {
            let shown = error.to_string();
            let mapped = from_transport(error);
            assert!(mapped.is_retryable(), "{shown}");
            assert!(!mapped.may_have_been_sent(), "{shown}");
        }
        let maybe_sent = [
            ureq::Error::Timeout(ureq::Timeout::RecvResponse),
            ureq::Error::Timeout(ureq::Timeout::Global),
            ureq::Error::Io(io::ErrorKind::ConnectionReset.into()),
            ureq::Error::Io(io::ErrorKind::UnexpectedEof.into()),
        ];
        for error in maybe_sent {
            let shown = error.to_string();
            let mapped = from_transport(error);
            assert!(mapped.is_retryable(), "{shown}");
            assert!(mapped.may_have_been_sent(), "{shown}");
        }
    }

    /// The real resolver on a name that can never resolve (`.invalid`, RFC 6761): whether the
    /// machine has DNS or not, the send never left, and the error says it is DNS.
    #[test]
    fn a_host_that_does_not_resolve_never_reached_twilio() {
        let client = Client::new(
            "https://twilio-client-test.invalid",
            Auth::token(
                "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e",
                "0123456789abcdef0123456789abcdef",
            ),
            Duration::from_secs(5),
        )
        .expect("valid");
        let error = client
            .send_message(&SendMessage::text(
                "whatsapp:+15551234567",
                "whatsapp:+14155238886",
                "hi",
            ))
            .expect_err("no such host");
        assert!(!error.may_have_been_sent(), "{error:?}");
        assert!(error.never_reached(), "{error:?}");
        assert!(error.to_string().contains("DNS"), "{error}");
    }

    #[test]
    fn client_debug_hides_the_token() {
        let client = Client::new(
            "https://api.twilio.com",
            Auth::token(
                "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e",
                "0123456789abcdef0123456789abcdef",
            ),
            Duration::from_secs(10),
        )
        .expect("valid");
        let shown = format!("{client:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("Basic"), "{shown}");
        assert_eq!(client.messaging_base_url(), "https://messaging.twilio.com");
    }

    #[test]
    fn refuses_unsafe_account_sid_and_zero_timeout() {
        let auth = Auth::token("AC1/../x", "t");
        assert!(Client::new("https://api.twilio.com", auth, Duration::from_secs(1)).is_err());
        let auth = Auth::token("AC1", "t");
        assert!(Client::new("https://api.twilio.com", auth, Duration::ZERO).is_err());
    }
}

//! `--online` Twilio checks: the credentials are accepted, the account is active, and the
//! number or Messaging Service behind the sender sends inbound messages to exactly WEBHOOK_URL
//! with POST. The only module that talks to Twilio's REST API for `check`.

use twilio_client::{Auth, Client, TwilioError, redact_sid};

use super::Ctx;
use crate::report::{Check, Section};
use crate::setup::{SANDBOX_NUMBER, SenderSetup, Setup};

const S: Section = Section::Twilio;

/// The Twilio client for REST calls: the API key when one is configured, else the Auth Token.
pub(crate) fn rest_client(setup: &Setup, timeout: std::time::Duration) -> Result<Client, Check> {
    let missing = || {
        Check::error(
            S,
            "credentials",
            "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or an API key) are needed to ask Twilio",
            "Copy the Account SID and Auth Token from the Twilio Console home page into .env.",
        )
    };
    let account = setup.account_sid.clone().ok_or_else(missing)?;
    let auth = match (&setup.api_key, &setup.auth_token) {
        (Some((key, secret)), _) => Auth::api_key(account, key.clone(), secret.clone()),
        (None, Some(token)) => Auth::token(account, token.clone()),
        (None, None) => return Err(missing()),
    };
    Client::new(&setup.api_base_url, auth, timeout).map_err(|e| {
        Check::error(
            S,
            "credentials",
            format!("cannot use the Twilio settings: {}", describe(&e)),
            capitalised(e.hint()),
        )
    })
}

/// Twilio's error without the hint that `Display` appends (the hint goes on its own line).
pub(crate) fn describe(e: &TwilioError) -> String {
    if let Some(api) = e.api_error() {
        let code = api.code.map(|c| format!(", code {c}")).unwrap_or_default();
        let more = api
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return format!("{}{more} (HTTP {}{code})", api.message, api.status);
    }
    let text = e.to_string();
    text.strip_suffix(&format!(". {}", e.hint()))
        .map(str::to_owned)
        .unwrap_or(text)
}

/// A hint as a sentence: capital first letter, final period.
pub(crate) fn capitalised(s: &str) -> String {
    let mut c = s.trim().chars();
    let mut out: String = match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// How the credentials line says that the secondary token was promoted.
const PROMOTED: &str = "the secondary token was promoted";

/// Whether `check` is the credentials line of a promoted rotation: the later checks then use
/// the secondary token.
pub(crate) fn says_promoted(check: &Check) -> bool {
    check.name == "credentials" && check.detail.ends_with(PROMOTED)
}

/// The Twilio section's checks.
pub(crate) fn check(ctx: &Ctx) -> Vec<Check> {
    let setup = &ctx.setup;
    let client = match rest_client(setup, ctx.timeout) {
        Ok(c) => c,
        Err(check) => return vec![check],
    };
    let account = redact_sid(client.account_sid());
    let mut out = Vec::new();
    // During a rotation the secondary token is asked about too; after the promotion it is
    // the only one Twilio accepts, and the later checks use it.
    let secondary = setup
        .auth_token_secondary
        .as_ref()
        .map(|token| (token, token_accepted(setup, token, ctx.timeout)));
    let mut promoted = None;
    match client.check_credentials() {
        Ok(()) => {
            let how = if setup.api_key.is_some() {
                "API key"
            } else {
                "Auth Token"
            };
            out.push(Check::ok(
                S,
                "credentials",
                format!("Twilio accepted the {how} for account {account}"),
            ));
        }
        Err(TwilioError::Authentication(_))
            if setup.api_key.is_none() && matches!(secondary, Some((_, Ok(())))) =>
        {
            out.push(Check::error(
                S,
                "credentials",
                format!(
                    "Twilio rejected TWILIO_AUTH_TOKEN for {account} but accepts TWILIO_AUTH_TOKEN_SECONDARY: {PROMOTED}"
                ),
                "Finish the rotation: set TWILIO_AUTH_TOKEN to the value of TWILIO_AUTH_TOKEN_SECONDARY and remove TWILIO_AUTH_TOKEN_SECONDARY.",
            ));
            promoted = secondary.as_ref().map(|(token, _)| (*token).clone());
        }
        Err(e @ TwilioError::Authentication(_)) => {
            let fix = if setup.api_key.is_some() {
                "Check TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET (Console › Account › API keys & tokens) and that the key belongs to TWILIO_ACCOUNT_SID."
            } else {
                "Copy the Account SID and Auth Token again from the Twilio Console home page (Account Info); rotating the token invalidates the old one."
            };
            out.push(Check::error(
                S,
                "credentials",
                format!(
                    "Twilio rejected the credentials for {account}: {}",
                    describe(&e)
                ),
                fix,
            ));
            return out;
        }
        Err(e) => {
            out.push(Check::error(
                S,
                "credentials",
                format!(
                    "cannot check the credentials with Twilio at {}: {}",
                    setup.api_base_url,
                    describe(&e)
                ),
                capitalised(e.hint()),
            ));
            return out;
        }
    }
    match (&secondary, &promoted) {
        (_, Some(_)) | (None, _) => {}
        (Some((_, Ok(()))), None) => out.push(Check::ok(
            S,
            "secondary token",
            if setup.api_key.is_some() {
                "Twilio accepts TWILIO_AUTH_TOKEN_SECONDARY too: webhooks signed with either token are accepted (replies use the API key)"
            } else {
                "Twilio accepts TWILIO_AUTH_TOKEN_SECONDARY too: webhooks signed with either token are accepted, replies use the secondary"
            },
        )),
        (Some((_, Err(e))), None) => out.push(Check::error(
            S,
            "secondary token",
            format!(
                "Twilio rejected TWILIO_AUTH_TOKEN_SECONDARY: {}; {}",
                describe(e),
                if setup.api_key.is_some() {
                    "it is not a token of this account, so it verifies no real webhook"
                } else {
                    "the server sends replies with it, so they would fail"
                }
            ),
            "Copy the secondary Auth Token again (Console › Account › API keys & tokens), or remove TWILIO_AUTH_TOKEN_SECONDARY if no rotation is under way.",
        )),
    }
    // After a promotion the remaining checks ask with the token Twilio still accepts.
    let promoted_setup;
    let (setup, client) = match promoted {
        Some(token) => {
            promoted_setup = Setup {
                auth_token: Some(token),
                ..setup.clone()
            };
            match rest_client(&promoted_setup, ctx.timeout) {
                Ok(c) => (&promoted_setup, c),
                Err(check) => {
                    out.push(check);
                    return out;
                }
            }
        }
        None => (setup, client),
    };
    out.extend(account_status(setup, ctx));
    out.push(webhook_target(&client, setup));
    out
}

/// A client for account `sid` that authenticates with the Auth Token `token` (not an API key).
fn token_client(
    setup: &Setup,
    sid: &str,
    token: &str,
    timeout: std::time::Duration,
) -> Result<Client, TwilioError> {
    Client::new(
        &setup.api_base_url,
        Auth::token(sid.to_owned(), token.to_owned()),
        timeout,
    )
}

/// Whether Twilio accepts `token` as an Auth Token of the configured account.
fn token_accepted(
    setup: &Setup,
    token: &str,
    timeout: std::time::Duration,
) -> Result<(), TwilioError> {
    let Some(sid) = &setup.account_sid else {
        return Ok(());
    };
    token_client(setup, sid, token, timeout)?.check_credentials()
}

/// `GET /Accounts/{Sid}.json` needs the Auth Token: skipped with only an API key.
fn account_status(setup: &Setup, ctx: &Ctx) -> Option<Check> {
    let (Some(sid), Some(token)) = (&setup.account_sid, &setup.auth_token) else {
        return None;
    };
    let client = token_client(setup, sid, token, ctx.timeout).ok()?;
    Some(match client.fetch_account() {
        Ok(a) if !a.is_active() => Check::error(
            S,
            "account",
            format!("account {} is {}", redact_sid(&a.sid), a.status),
            "Reactivate the account in the Twilio Console (Billing) or use the SID and token of an active one.",
        ),
        Ok(a) if a.is_trial() => Check::warning(
            S,
            "account",
            format!("account {} is active, Trial", redact_sid(&a.sid)),
            Some(
                "Trial accounts only message verified numbers and Sandbox participants (error 21608); upgrade to reach anyone.",
            ),
        ),
        Ok(a) => Check::ok(
            S,
            "account",
            format!(
                "account {} is active ({})",
                redact_sid(&a.sid),
                a.account_type.as_deref().unwrap_or("type unknown")
            ),
        ),
        Err(e) => Check::error(
            S,
            "account",
            format!("cannot read the account: {}", describe(&e)),
            capitalised(e.hint()),
        ),
    })
}

/// Compares the URL Twilio has for the sender with WEBHOOK_URL.
fn webhook_target(client: &Client, setup: &Setup) -> Check {
    let expected = setup.webhook_url.as_deref();
    let shown_expected = expected.unwrap_or("WEBHOOK_URL");
    match &setup.sender {
        None => Check::warning(
            S,
            "webhook",
            "no sender configured (TWILIO_WHATSAPP_FROM or TWILIO_MESSAGING_SERVICE_SID), so the URL Twilio calls cannot be looked up",
            Some(format!(
                "Check that \"When a message comes in\" of your WhatsApp sender in the Twilio Console {}.",
                console_must_be(expected, shown_expected)
            )),
        ),
        Some(SenderSetup::WhatsAppFrom(from))
            if from.trim_start_matches("whatsapp:") == SANDBOX_NUMBER =>
        {
            Check::warning(
                S,
                "webhook",
                "the WhatsApp Sandbox's \"When a message comes in\" URL cannot be read through Twilio's API",
                Some(format!(
                    "Check it in the Twilio Console: Messaging › Try it out › Send a WhatsApp message › Sandbox settings; it {}.",
                    console_must_be(expected, shown_expected)
                )),
            )
        }
        Some(SenderSetup::WhatsAppFrom(from)) => {
            let number = from.trim_start_matches("whatsapp:");
            // A WhatsApp sender registered through the Senders API keeps its own webhook; when
            // it has one, WhatsApp messages go there.
            let sender = client.find_whatsapp_sender(number);
            if let Ok(Some(sender)) = &sender
                && sender.webhook_url().is_some()
            {
                return compare(
                    &format!("the WhatsApp sender {number}"),
                    sender.webhook_url(),
                    sender
                        .webhook
                        .as_ref()
                        .and_then(|w| w.callback_method.as_deref()),
                    expected,
                    &format!(
                        "Messaging › Senders › WhatsApp senders › {number}, \"Webhook URL for incoming messages\""
                    ),
                );
            }
            let senders_note = match &sender {
                Err(e) => format!(
                    " (its WhatsApp senders could not be listed: {})",
                    describe(e)
                ),
                _ => String::new(),
            };
            match client.find_incoming_number(number) {
                Ok(Some(n))
                    if n.sms_application_sid
                        .as_deref()
                        .is_some_and(|s| !s.is_empty()) =>
                {
                    Check::warning(
                        S,
                        "webhook",
                        format!(
                            "{number} hands inbound messages to TwiML App {}, whose URL is not checked here",
                            redact_sid(n.sms_application_sid.as_deref().unwrap_or_default())
                        ),
                        Some(format!(
                            "Make the app's Messaging URL {shown_expected} (HTTP POST), or configure the number directly."
                        )),
                    )
                }
                Ok(Some(n)) => compare(
                    &format!("the number {number}"),
                    n.webhook_url(),
                    n.sms_method.as_deref(),
                    expected,
                    &format!(
                        "Phone Numbers › Manage › Active numbers › {number} › Messaging, \"A message comes in\""
                    ),
                ),
                Ok(None) => Check::warning(
                    S,
                    "webhook",
                    format!(
                        "{number} is neither a phone number nor a WhatsApp sender with a webhook in this account{senders_note}"
                    ),
                    Some(format!(
                        "Check it in the Twilio Console: Messaging › Senders › WhatsApp senders › {number}; the webhook URL must be exactly {shown_expected} (POST)."
                    )),
                ),
                Err(e) => Check::error(
                    S,
                    "webhook",
                    format!("cannot look up {number}: {}", describe(&e)),
                    capitalised(e.hint()),
                ),
            }
        }
        Some(SenderSetup::MessagingService(sid)) => match client.fetch_messaging_service(sid) {
            Ok(service) if service.use_inbound_webhook_on_number => Check::warning(
                S,
                "webhook",
                format!(
                    "Messaging Service {} uses each number's own webhook (use_inbound_webhook_on_number)",
                    redact_sid(sid)
                ),
                Some(format!(
                    "Check that the service's numbers send \"A message comes in\" to {shown_expected} (HTTP POST)."
                )),
            ),
            Ok(service) => compare(
                &format!("Messaging Service {}", redact_sid(sid)),
                service.webhook_url(),
                service.inbound_method.as_deref(),
                expected,
                "Messaging › Services › your service › Integration, \"Send a webhook\"",
            ),
            Err(e) => Check::error(
                S,
                "webhook",
                format!(
                    "cannot read Messaging Service {}: {}",
                    redact_sid(sid),
                    describe(&e)
                ),
                capitalised(e.hint()),
            ),
        },
    }
}

fn compare(
    what: &str,
    actual: Option<&str>,
    method: Option<&str>,
    expected: Option<&str>,
    console: &str,
) -> Check {
    let Some(actual) = actual else {
        return Check::error(
            S,
            "webhook",
            format!(
                "{what} has no inbound webhook URL, so Twilio does not forward incoming messages"
            ),
            format!(
                "Set it to {} (HTTP POST) in the Twilio Console: {console}.",
                expected.unwrap_or("your WEBHOOK_URL")
            ),
        );
    };
    let Some(expected) = expected else {
        return Check::warning(
            S,
            "webhook",
            format!(
                "Twilio sends inbound messages for {what} to {actual}; WEBHOOK_URL is not set to compare"
            ),
            Some(format!(
                "Set WEBHOOK_URL={actual} if that URL reaches this server."
            )),
        );
    };
    // The server checks the signature with the trailing slash the request has: a URL that
    // differs only by it works.
    let same = actual == expected || same_but_default_port(actual, expected);
    let (bare_actual, bare_expected) = (without_path_slash(actual), without_path_slash(expected));
    let slash_only = !same
        && (bare_actual == bare_expected || same_but_default_port(&bare_actual, &bare_expected));
    if !same && !slash_only {
        let fix = if !public_https(expected) {
            // WEBHOOK_URL's own line says what is wrong with it: do not send it to the Console.
            format!(
                "Fix WEBHOOK_URL first: it must be the public https URL Twilio calls (see its line above). If {actual} is that URL, set WEBHOOK_URL to it; otherwise set the fixed URL (HTTP POST) in the Twilio Console ({console})."
            )
        } else if expected.contains("***") {
            format!(
                "Make them the same: set WEBHOOK_URL's URL, user:password included (shown here as ***), with HTTP POST in the Twilio Console ({console}), or change WEBHOOK_URL if the Console is right."
            )
        } else {
            format!(
                "Make them the same: set {expected} (HTTP POST) in the Twilio Console ({console}), or change WEBHOOK_URL if the Console is right."
            )
        };
        return Check::error(
            S,
            "webhook",
            format!(
                "Twilio sends inbound messages for {what} to {actual}, but WEBHOOK_URL is {expected}"
            ),
            fix,
        );
    }
    match method.map(str::to_ascii_uppercase).as_deref() {
        Some("POST") | None if slash_only => Check::warning(
            S,
            "webhook",
            format!(
                "Twilio sends inbound messages for {what} to {actual} with POST; WEBHOOK_URL is {expected}: they differ only by a trailing slash, which the server accepts"
            ),
            Some("Nothing breaks; make them the same to keep them easy to compare.".to_owned()),
        ),
        Some("POST") | None => Check::ok(
            S,
            "webhook",
            format!("Twilio sends inbound messages for {what} to WEBHOOK_URL with POST"),
        ),
        Some(other) => Check::error(
            S,
            "webhook",
            format!("Twilio calls WEBHOOK_URL for {what} with HTTP {other}, not POST"),
            format!("Set the method to HTTP POST in the Twilio Console ({console})."),
        ),
    }
}

/// `url` without a trailing slash at the end of its path (before any `?query` or `#fragment`).
fn without_path_slash(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let (base, rest) = url.split_at(end);
    format!("{}{rest}", base.strip_suffix('/').unwrap_or(base))
}

/// What the URL in the Console must be, for a note that cannot compare it: WEBHOOK_URL, unless
/// WEBHOOK_URL is itself wrong (its own line says why), which must not be copied there.
fn console_must_be(expected: Option<&str>, shown_expected: &str) -> String {
    match expected {
        Some(url) if !public_https(url) => format!(
            "must be the public https URL Twilio calls (ending in /api/v1/whatsapp/webhook) with method POST: fix WEBHOOK_URL first ({url} cannot be it, see its line above), then set the same URL there"
        ),
        _ => format!("must be exactly {shown_expected} with method POST"),
    }
}

/// Whether `url` is an https URL on a host Twilio can reach (what a Console webhook must be).
fn public_https(url: &str) -> bool {
    url::Url::parse(url)
        .is_ok_and(|u| u.scheme() == "https" && config::unreachable_host(&u).is_none())
}

/// The same URL, one with the scheme's default port written out (`https://host:443/x`):
/// Twilio signs the URL as configured and the server accepts both forms.
fn same_but_default_port(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        // `Url` drops a default port when parsing, so equal parses are the same URL.
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn a_default_port_is_the_same_url_and_a_broken_webhook_url_is_not_recommended() {
        let c = compare(
            "the number +1",
            Some("https://a.example:443/api/v1/whatsapp/webhook"),
            Some("POST"),
            Some("https://a.example/api/v1/whatsapp/webhook"),
            "X",
        );
        assert_eq!(c.status, Status::Ok, "{c:?}");
        for broken in [
            "http://a.example/api/v1/whatsapp/webhook",
            "http://127.0.0.1:5000/api/v1/whatsapp/webhook",
        ] {
            let c = compare(
                "the number +1",
                Some("https://a.example/api/v1/whatsapp/webhook"),
                Some("POST"),
                Some(broken),
                "X",
            );
            assert_eq!(c.status, Status::Error);
            let fix = c.hint.clone().unwrap_or_default();
            assert!(fix.starts_with("Fix WEBHOOK_URL first"), "{fix}");
            assert!(!fix.contains(&format!("set {broken}")), "{fix}");
        }
        let c = compare(
            "the number +1",
            Some("https://a.example/x"),
            Some("POST"),
            Some("https://admin:***@a.example/y"),
            "X",
        );
        assert!(
            !c.hint
                .clone()
                .unwrap_or_default()
                .contains("set https://admin:***"),
            "{c:?}"
        );
    }

    #[test]
    fn comparison_names_both_urls() {
        let c = compare(
            "the number +1",
            Some("https://old.example/api/v1/whatsapp/webhook"),
            Some("POST"),
            Some("https://new.example/api/v1/whatsapp/webhook"),
            "X",
        );
        assert_eq!(c.status, Status::Error);
        assert!(
            c.detail.contains("https://old.example") && c.detail.contains("https://new.example"),
            "{c:?}"
        );
        let c = compare(
            "the number +1",
            Some("https://a.example/x/"),
            Some("POST"),
            Some("https://a.example/x"),
            "X",
        );
        assert_eq!(c.status, Status::Warning, "{c:?}");
        assert!(c.detail.contains("trailing slash"), "{c:?}");
        assert!(c.detail.contains("accepts"), "{c:?}");
        // Before a query, and with an explicit :443, it is the same slash.
        let c = compare(
            "the number +1",
            Some("https://a.example:443/x/?t=1"),
            Some("POST"),
            Some("https://a.example/x?t=1"),
            "X",
        );
        assert_eq!(c.status, Status::Warning, "{c:?}");
        assert!(c.detail.contains("accepts"), "{c:?}");
        // A note that cannot compare never sends a wrong WEBHOOK_URL to the Console.
        let public = "https://a.ngrok-free.app/api/v1/whatsapp/webhook";
        assert_eq!(
            console_must_be(Some(public), public),
            format!("must be exactly {public} with method POST")
        );
        let local = "http://127.0.0.1:5000/api/v1/whatsapp/webhook";
        assert!(console_must_be(Some(local), local).contains("fix WEBHOOK_URL first"));
        let c = compare(
            "the number +1",
            Some("https://a.example/x"),
            Some("GET"),
            Some("https://a.example/x"),
            "X",
        );
        assert!(c.detail.contains("HTTP GET"), "{c:?}");
        assert_eq!(
            compare("n", Some("u"), Some("POST"), Some("u"), "X").status,
            Status::Ok
        );
    }

    #[test]
    fn hints_become_sentences() {
        assert_eq!(capitalised("check the SID"), "Check the SID.");
        assert_eq!(capitalised("Done."), "Done.");
    }
}

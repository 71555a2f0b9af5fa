//! Findings: per setting, ok / warning / problem with a one-sentence fix, for the
//! `validate-webhook` CLI (✅/⚠️/❌) and for the production gate in [`load`](crate::load).
//!
//! A check that is merely risky in development but unsafe in production is declared
//! "unsafe in production": with `APP_ENV=production` it becomes a problem, and problems
//! refuse to start.

use serde::Serialize;
use url::Url;

use crate::keys::{DEFAULT_API_BASE_URL, STATUS_PATH, WEBHOOK_PATH};
use crate::secret::{Secret, mask_sid, redact_url};
use crate::settings::{AppEnv, Sender, Settings};
use crate::sources::RENDER_ORIGIN;
use crate::values::{is_placeholder, unreachable_host};

/// How bad a finding is. Ordered: `Ok < Warning < Problem`, so the worst of a list is its max.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine (✅).
    Ok,
    /// Works, but probably not as intended (⚠️).
    Warning,
    /// Does not work, or is refused in production (❌).
    Problem,
}

/// One diagnostic line about one setting.
///
/// Render it as `{key}: {message}` and, when present, the hint on the next line; the texts are
/// short, user-facing, and never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The key this is about (`WEBHOOK_URL`).
    pub key: &'static str,
    /// Stable name of the check within the key, for programs (`ok`, `missing`,
    /// `placeholder`, `not_https`, `wrong_path`, …); together with `key` it identifies the
    /// finding without parsing `message`. Listed in [`Settings::findings`].
    pub check: &'static str,
    /// How bad it is.
    pub status: Status,
    /// What was found, without the key name: `uses http, not https`.
    pub message: String,
    /// The fix in one sentence; `None` for `Ok`.
    pub hint: Option<String>,
    /// Where the value came from (`.env line 4`, `environment`, `default`, `not set`, …).
    pub source: String,
}

/// Suffix of a warning that `APP_ENV=production` turned into a problem.
const REFUSED_IN_PRODUCTION: &str = " (refused with APP_ENV=production)";

/// Collects findings for one `Settings`, applying the production escalation.
struct Report<'a> {
    settings: &'a Settings,
    out: Vec<Finding>,
}

impl Report<'_> {
    fn push(
        &mut self,
        (key, check): (&'static str, &'static str),
        status: Status,
        message: String,
        hint: Option<String>,
    ) {
        let source = self.settings.origin(key).to_owned();
        self.out.push(Finding {
            key,
            check,
            status,
            message,
            hint,
            source,
        });
    }

    fn ok(&mut self, key: &'static str, message: impl Into<String>) {
        self.push((key, "ok"), Status::Ok, message.into(), None);
    }

    /// A warning in development; a problem in production when `unsafe_in_production`.
    fn warn(
        &mut self,
        key: &'static str,
        check: &'static str,
        unsafe_in_production: bool,
        message: &str,
        hint: &str,
    ) {
        let hint = Some(hint.to_owned());
        if unsafe_in_production && self.settings.app_env == AppEnv::Production {
            let message = format!("{message}{REFUSED_IN_PRODUCTION}");
            self.push((key, check), Status::Problem, message, hint);
        } else {
            self.push((key, check), Status::Warning, message.to_owned(), hint);
        }
    }

    fn problem(&mut self, key: &'static str, check: &'static str, message: &str, hint: &str) {
        self.push(
            (key, check),
            Status::Problem,
            message.to_owned(),
            Some(hint.to_owned()),
        );
    }
}

impl Settings {
    /// Checks every setting the CLI reports on, in a fixed order: APP_ENV, account, token,
    /// shared key, API key, WEBHOOK_URL, status callback, sender, database, Redis, REST base URL, listen
    /// address. Each yields one `Ok` line or one line per thing wrong with it.
    ///
    /// The `(key, check)` pairs: `(APP_ENV, ok)`; `TWILIO_ACCOUNT_SID`: `ok`, `missing`,
    /// `placeholder`; `TWILIO_AUTH_TOKEN`: `ok`, `missing`, `placeholder`;
    /// `TWILIO_AUTH_TOKEN_SECONDARY` (only when set): `ok`, `placeholder`, `same_as_primary`,
    /// `without_primary`;
    /// `TWILIO_WEBHOOK_SHARED_KEY` (only when set): `ok`, `placeholder`;
    /// `TWILIO_API_KEY_SID`/`TWILIO_API_KEY_SECRET`: `ok`, `placeholder`; `WEBHOOK_URL` and
    /// `STATUS_CALLBACK_URL`: `ok`, `missing`, `not_a_url`, `not_https`, `unreachable_host`,
    /// `query_string`, `fragment`, `trailing_slash`, `wrong_path`, plus `derived` (an `Ok`
    /// for a WEBHOOK_URL derived from `RENDER_EXTERNAL_URL`, or a status URL derived from
    /// WEBHOOK_URL); `TWILIO_WHATSAPP_FROM`: `ok`, `missing` (dry run), `bare_number`;
    /// `TWILIO_MESSAGING_SERVICE_SID`: `ok`, `both_senders`; `DATABASE_URL`: `ok`,
    /// `in_memory`, `sqlite_in_production`, `ignored_parameters`; `REDIS_URL`: `ok`;
    /// `TWILIO_API_BASE_URL`: `ok`, `not_a_url`, `not_https`, `not_twilio`; `HOST`:
    /// `loopback`; `PORT`: `ok`; any key: `misnamed` (a warning: the key is not set, left at its
    /// default or a placeholder, while `.env` or the environment sets a variable this server
    /// does not read whose name says it was meant for it — `TWILIO_PHONE_NUMBER`,
    /// `twilio_auth_token`, `TWILIO_AUTH_TOKN`).
    ///
    /// With `APP_ENV=production`, warnings that are unsafe in production are problems, and
    /// [`load`](crate::load) refuses to start on any problem.
    pub fn findings(&self) -> Vec<Finding> {
        let mut r = Report {
            settings: self,
            out: Vec::new(),
        };
        r.ok("APP_ENV", self.app_env.as_str());
        account(&mut r);
        auth_token(&mut r);
        auth_token_secondary(&mut r);
        shared_key(&mut r);
        api_key(&mut r);
        webhook_url(&mut r);
        status_callback(&mut r);
        sender(&mut r);
        database(&mut r);
        redis(&mut r);
        api_base_url(&mut r);
        listen(&mut r);
        misnamed(&mut r);
        r.out
    }
}

fn account(r: &mut Report<'_>) {
    const KEY: &str = "TWILIO_ACCOUNT_SID";
    const HINT: &str = "copy the Account SID from the Twilio Console home page";
    match r.settings.account_sid.as_deref() {
        None => r.warn(
            KEY,
            "missing",
            false,
            "not set: replies cannot be sent and online checks are skipped",
            HINT,
        ),
        Some(sid) if is_placeholder(sid) => r.warn(
            KEY,
            "placeholder",
            true,
            "still a placeholder: replies cannot be sent",
            HINT,
        ),
        Some(sid) => r.ok(KEY, mask_sid(sid)),
    }
}

fn auth_token(r: &mut Report<'_>) {
    const KEY: &str = "TWILIO_AUTH_TOKEN";
    const HINT: &str = "copy the Auth Token from the Twilio Console home page (Account Info)";
    // Development starts and refuses every webhook; production does not start at all.
    let effect = if r.settings.app_env == AppEnv::Production {
        "production does not start without the real token"
    } else {
        "every webhook will be refused with 403"
    };
    match r.settings.auth_token.as_ref().map(Secret::expose) {
        None => r.problem(KEY, "missing", &format!("not set: {effect}"), HINT),
        Some(t) if is_placeholder(t) => {
            // A real secondary token or shared key still verifies what it signs.
            let others = r
                .settings
                .auth_token_secondary
                .iter()
                .chain(&r.settings.webhook_shared_key)
                .any(|k| !is_placeholder(k.expose()));
            let effect = if others && r.settings.app_env != AppEnv::Production {
                "webhooks signed with it are refused with 403 (anyone could sign with a placeholder)"
            } else {
                effect
            };
            r.problem(
                KEY,
                "placeholder",
                &format!("still a placeholder: {effect}"),
                HINT,
            );
        }
        Some(_) => r.ok(KEY, "set (hidden)"),
    }
}

fn auth_token_secondary(r: &mut Report<'_>) {
    const KEY: &str = "TWILIO_AUTH_TOKEN_SECONDARY";
    let s = r.settings;
    let Some(secondary) = s.auth_token_secondary.as_ref().map(Secret::expose) else {
        return;
    };
    let primary = s.auth_token.as_ref().map(Secret::expose);
    if is_placeholder(secondary) {
        r.warn(
            KEY,
            "placeholder",
            true,
            "still a placeholder: ignored (no webhook is accepted with it)",
            "set it to the secondary Auth Token from the Twilio Console (Account › API keys & tokens), or remove it",
        );
    } else if primary.is_none() {
        r.problem(
            KEY,
            "without_primary",
            "set without TWILIO_AUTH_TOKEN: every webhook will be refused with 403",
            "set TWILIO_AUTH_TOKEN to the primary Auth Token; if this token was promoted, move it to TWILIO_AUTH_TOKEN",
        );
    } else if primary == Some(secondary) {
        r.warn(
            KEY,
            "same_as_primary",
            false,
            "the same as TWILIO_AUTH_TOKEN: nothing is being rotated",
            "remove TWILIO_AUTH_TOKEN_SECONDARY",
        );
    } else {
        let accepted = if primary.is_some_and(is_placeholder) {
            "webhooks signed with it are accepted (TWILIO_AUTH_TOKEN is a placeholder and verifies nothing)"
        } else {
            "webhooks signed with either token are accepted"
        };
        let rest = if s.api_key_sid.is_some() && s.api_key_secret.is_some() {
            "the API key"
        } else {
            "this one"
        };
        r.ok(
            KEY,
            format!("set (hidden): {accepted}; REST calls use {rest}"),
        );
    }
}

fn shared_key(r: &mut Report<'_>) {
    const KEY: &str = "TWILIO_WEBHOOK_SHARED_KEY";
    match r.settings.webhook_shared_key.as_ref().map(Secret::expose) {
        None => {}
        Some(k) if is_placeholder(k) => r.warn(
            KEY,
            "placeholder",
            true,
            "still a placeholder: webhooks signed with a shared key will be refused with 403",
            "copy the secret of the shared key your Webhook Rule uses, or remove TWILIO_WEBHOOK_SHARED_KEY",
        ),
        Some(_) => r.ok(KEY, "set (hidden)"),
    }
}

fn api_key(r: &mut Report<'_>) {
    let s = r.settings;
    let Some(sid) = s.api_key_sid.as_deref() else {
        return;
    };
    const HINT: &str = "create an API key in the Twilio Console, or remove TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET";
    if is_placeholder(sid) {
        r.warn(
            "TWILIO_API_KEY_SID",
            "placeholder",
            true,
            "still a placeholder: REST calls will be refused",
            HINT,
        );
    } else if s
        .api_key_secret
        .as_ref()
        .is_some_and(|k| is_placeholder(k.expose()))
    {
        r.warn(
            "TWILIO_API_KEY_SECRET",
            "placeholder",
            true,
            "still a placeholder: REST calls will be refused",
            HINT,
        );
    } else {
        r.ok(
            "TWILIO_API_KEY_SID",
            format!("REST calls authenticate as {}", mask_sid(sid)),
        );
    }
}

/// Checks shared by WEBHOOK_URL and STATUS_CALLBACK_URL; returns whether anything was wrong.
fn public_url(r: &mut Report<'_>, key: &'static str, value: &str, path: &str) -> bool {
    let Ok(url) = Url::parse(value) else {
        r.problem(
            key,
            "not_a_url",
            "not a URL",
            "set it to the public https:// URL Twilio calls",
        );
        return true;
    };
    let before = r.out.len();
    if url.scheme() != "https" {
        r.warn(
            key,
            "not_https",
            true,
            "uses http, not https",
            "use the https:// URL (ngrok and Render both serve https)",
        );
    }
    if let Some(host) = unreachable_host(&url) {
        let message = format!("points at {host}, which Twilio cannot reach");
        r.warn(
            key,
            "unreachable_host",
            true,
            &message,
            "use the public URL of your tunnel (ngrok) or deployment",
        );
    }
    if url.query().is_some() {
        r.warn(
            key,
            "query_string",
            false,
            "has a query string; proxies that reorder it break the signature",
            "remove the ?… part here and in the Twilio Console",
        );
    }
    if url.fragment().is_some() {
        r.warn(
            key, "fragment",
            false,
            "has a #fragment (Twilio connection overrides): the server accepts signatures with or without it",
            "keep it only if the URL in the Twilio Console ends with the same #…; otherwise remove it",
        );
    }
    if url.path().ends_with(&format!("{path}/")) {
        r.warn(
            key,
            "trailing_slash",
            false,
            "has a trailing slash: served and verified with or without it (the signature is checked for the URL as Twilio requests it)",
            "nothing breaks; the usual form has no slash, here and in the Twilio Console",
        );
    } else if !url.path().ends_with(path) {
        let message = format!("does not end with {path}");
        let hint = format!("append {path}, the path the server listens on");
        r.warn(key, "wrong_path", false, &message, &hint);
    }
    r.out.len() > before
}

fn webhook_url(r: &mut Report<'_>) {
    const KEY: &str = "WEBHOOK_URL";
    const HINT: &str =
        "set it to the public URL configured in Twilio, ending in /api/v1/whatsapp/webhook";
    match r.settings.webhook_url.as_deref() {
        None if r.settings.app_env == AppEnv::Production => {
            r.problem(
                KEY,
                "missing",
                "not set: production checks signatures against it",
                HINT,
            );
        }
        None => r.warn(
            KEY,
            "missing",
            false,
            "not set: the server rebuilds it from each request's Host header",
            HINT,
        ),
        Some(url) => {
            if public_url(r, KEY, url, WEBHOOK_PATH) {
                return; // each thing wrong has its line, with the source of the value
            }
            if r.settings.origin(KEY) == RENDER_ORIGIN {
                // Right for the service's own host; a custom domain in the Twilio Console
                // would not match it, and that is only visible there.
                let message = format!(
                    "derived from RENDER_EXTERNAL_URL: {}; make sure the Twilio Console uses exactly this URL",
                    redact_url(url)
                );
                r.push((KEY, "derived"), Status::Ok, message, None);
            } else {
                // A URL may carry basic-auth credentials for Twilio: never show the password.
                r.ok(KEY, redact_url(url));
            }
        }
    }
}

fn status_callback(r: &mut Report<'_>) {
    const KEY: &str = "STATUS_CALLBACK_URL";
    let s = r.settings;
    if let Some(url) = s.status_callback_url.as_deref() {
        if !public_url(r, KEY, url, STATUS_PATH) {
            r.ok(KEY, redact_url(url));
        }
        return;
    }
    match s.status_callback_url() {
        // Derived from WEBHOOK_URL, whose own checks already cover scheme and host.
        Some(url) => r.out.push(Finding {
            key: KEY,
            check: "derived",
            status: Status::Ok,
            message: format!("derived from WEBHOOK_URL: {}", redact_url(&url)),
            hint: None,
            source: "derived".to_owned(),
        }),
        None => r.warn(
            KEY,
            "missing",
            false,
            "not set and WEBHOOK_URL is missing or invalid: replies get no delivery status callbacks",
            "set WEBHOOK_URL, or STATUS_CALLBACK_URL to the public URL of /api/v1/whatsapp/status",
        ),
    }
}

/// Variables not read whose names say which key was meant, while that key is not set, left at
/// its default or a placeholder: a value copied from another app's `.env` would otherwise be
/// ignored without a word.
fn misnamed(r: &mut Report<'_>) {
    let s = r.settings;
    let mut seen = std::collections::BTreeSet::new();
    for m in &s.misnamed {
        let state = match s.origin(m.meant) {
            crate::error::NOT_SET => "not set",
            "default" => "left at its default",
            _ if holds_placeholder(s, m.meant) => "still a placeholder",
            _ => continue,
        };
        // Any sender will do: a Messaging Service makes TWILIO_WHATSAPP_FROM unnecessary.
        let sender_alias = m.meant == "TWILIO_WHATSAPP_FROM" && s.sender.is_some();
        if sender_alias || !seen.insert(&m.found) {
            continue;
        }
        let value_note = if m.meant == "TWILIO_WHATSAPP_FROM" {
            " (the value as whatsapp:+<number>, e.g. whatsapp:+14155238886)"
        } else {
            ""
        };
        r.warn(
            m.meant,
            "misnamed",
            false,
            &format!(
                "{state}, but {} sets {}, which this server does not read",
                m.source, m.found
            ),
            &format!("rename {} to {}{value_note}", m.found, m.meant),
        );
    }
}

/// Whether `key`'s value is a placeholder (`.env.example`'s, say), for the keys that can be one.
fn holds_placeholder(s: &Settings, key: &str) -> bool {
    let secret = |v: &Option<Secret>| v.as_ref().is_some_and(|v| is_placeholder(v.expose()));
    match key {
        "TWILIO_ACCOUNT_SID" => s.account_sid.as_deref().is_some_and(is_placeholder),
        "TWILIO_AUTH_TOKEN" => secret(&s.auth_token),
        "TWILIO_AUTH_TOKEN_SECONDARY" => secret(&s.auth_token_secondary),
        "TWILIO_WEBHOOK_SHARED_KEY" => secret(&s.webhook_shared_key),
        "TWILIO_API_KEY_SID" => s.api_key_sid.as_deref().is_some_and(is_placeholder),
        "TWILIO_API_KEY_SECRET" => secret(&s.api_key_secret),
        "TWILIO_MESSAGING_SERVICE_SID" => {
            matches!(&s.sender, Some(Sender::MessagingService(sid)) if is_placeholder(sid))
        }
        _ => false,
    }
}

fn sender(r: &mut Report<'_>) {
    let s = r.settings;
    let loaded: Vec<Finding> = s.load_findings.clone();
    let noted = |key: &str| loaded.iter().any(|f| f.key == key);
    match &s.sender {
        None => r.warn(
            "TWILIO_WHATSAPP_FROM", "missing",
            false,
            "no sender set: replies are recorded but not sent (dry run)",
            "set TWILIO_WHATSAPP_FROM=whatsapp:+14155238886 (the Sandbox) or TWILIO_MESSAGING_SERVICE_SID",
        ),
        Some(Sender::WhatsAppFrom(from)) if !noted("TWILIO_WHATSAPP_FROM") => {
            r.ok("TWILIO_WHATSAPP_FROM", format!("replies are sent from {from}"));
        }
        Some(Sender::MessagingService(sid)) if is_placeholder(sid) => r.warn(
            "TWILIO_MESSAGING_SERVICE_SID",
            "placeholder",
            true,
            "still a placeholder: replies cannot be sent through it",
            "copy the SID from Messaging, Services in the Twilio Console, or unset it",
        ),
        Some(Sender::MessagingService(sid)) => {
            let message = format!("replies are sent through Messaging Service {}", mask_sid(sid));
            r.ok("TWILIO_MESSAGING_SERVICE_SID", message);
        }
        Some(Sender::WhatsAppFrom(_)) => {}
    }
    for mut f in loaded {
        // The loader ignored a placeholder Messaging Service beside a real number; production
        // refuses it like every other placeholder, so a half-edited configuration is fixed
        // before it is deployed rather than discovered later.
        if f.key == "TWILIO_MESSAGING_SERVICE_SID"
            && f.check == "placeholder"
            && s.app_env == AppEnv::Production
        {
            f.status = Status::Problem;
            f.message.push_str(REFUSED_IN_PRODUCTION);
        }
        r.out.push(f);
    }
}

fn database(r: &mut Report<'_>) {
    const KEY: &str = "DATABASE_URL";
    let s = r.settings;
    let url = s.database_url.expose();
    let shown = s.database_url_redacted();
    if !url.starts_with("sqlite:") {
        let ignored = ignored_postgres_parameters(url);
        if ignored.is_empty() {
            r.ok(KEY, shown);
        } else {
            // sqlx says this too, but with each value (a `token=` may be a secret): its line is
            // kept off the logs, and this one names the keys only.
            let message = format!(
                "{shown}: the connection ignores the parameter(s) {}",
                ignored.join(", ")
            );
            r.warn(
                KEY,
                "ignored_parameters",
                false,
                &message,
                "remove them; the PostgreSQL client reads sslmode, sslrootcert, sslcert, sslkey, host, hostaddr, port, dbname, user, password, application_name, options and statement-cache-capacity",
            );
        }
    } else if url.contains(":memory:") || url.contains("mode=memory") {
        r.warn(
            KEY,
            "in_memory",
            true,
            "in-memory SQLite: every message is lost when the process stops",
            "use a file (sqlite://data/webhook.db?mode=rwc) or PostgreSQL",
        );
    } else if s.app_env == AppEnv::Production {
        r.warn(
            KEY,
            "sqlite_in_production",
            false,
            "SQLite in production: the data stays on one instance's disk and cannot be shared",
            "use PostgreSQL (on Render: fromDatabase with property connectionString)",
        );
    } else {
        r.ok(KEY, format!("{shown} (embedded SQLite)"));
    }
}

/// Query parameters of a PostgreSQL URL that sqlx does not read (it logs each with its value
/// and goes on): the keys only, in order, each once.
fn ignored_postgres_parameters(url: &str) -> Vec<String> {
    const READ: [&str; 18] = [
        "sslmode",
        "ssl-mode",
        "sslrootcert",
        "ssl-root-cert",
        "ssl-ca",
        "sslcert",
        "ssl-cert",
        "sslkey",
        "ssl-key",
        "statement-cache-capacity",
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "application_name",
        "options",
    ];
    let mut ignored: Vec<String> = Vec::new();
    let Ok(parsed) = Url::parse(url) else {
        return ignored;
    };
    for (key, _) in parsed.query_pairs() {
        // `options[search_path]=app` is read too (sqlx: one `-c` setting per key).
        let read = READ.contains(&key.as_ref()) || key.starts_with("options[");
        if !read && !ignored.iter().any(|k| *k == key) {
            ignored.push(key.into_owned());
        }
    }
    ignored
}

fn redis(r: &mut Report<'_>) {
    match r.settings.redis_url_redacted() {
        None => r.ok(
            "REDIS_URL",
            "not set: in-process queue, the database stays the source of truth",
        ),
        Some(shown) => {
            let prefix = &r.settings.redis_key_prefix;
            r.ok(
                "REDIS_URL",
                format!("{shown} (keys {prefix}:jobs and {prefix}:dead)"),
            );
        }
    }
}

fn api_base_url(r: &mut Report<'_>) {
    const KEY: &str = "TWILIO_API_BASE_URL";
    let base = r.settings.api_base_url.as_str();
    if base == DEFAULT_API_BASE_URL {
        r.ok(KEY, base);
        return;
    }
    let Ok(url) = Url::parse(base) else {
        r.problem(
            KEY,
            "not_a_url",
            "not a URL",
            "leave TWILIO_API_BASE_URL unset to talk to Twilio",
        );
        return;
    };
    let mut fine = true;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if url.scheme() != "https" {
        fine = false;
        let hint = "use https://api.twilio.com";
        if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
            r.warn(
                KEY,
                "not_https",
                true,
                "uses http: the Auth Token would travel unencrypted",
                hint,
            );
        } else {
            // twilio-client refuses it: every send and online check would fail.
            r.problem(
                KEY,
                "not_https",
                "uses http on a host that is not this machine: the Twilio client refuses it (plain http is only for local test servers)",
                hint,
            );
        }
    }
    if host != "twilio.com" && !host.ends_with(".twilio.com") {
        fine = false;
        let message = format!("points at {host}, not Twilio: replies go to a test server");
        r.warn(
            KEY,
            "not_twilio",
            true,
            &message,
            "leave TWILIO_API_BASE_URL unset to talk to Twilio",
        );
    }
    if fine {
        r.ok(KEY, base);
    }
}

fn listen(r: &mut Report<'_>) {
    let s = r.settings;
    let loopback = s.host == "localhost"
        || s.host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback && s.app_env == AppEnv::Production {
        let message = format!("{} accepts connections from this machine only", s.host);
        r.warn(
            "HOST",
            "loopback",
            false,
            &message,
            "set HOST=0.0.0.0 unless a proxy on this machine forwards to it",
        );
    }
    r.ok(
        "PORT",
        format!("the server listens on {} when it runs", s.listen_addr()),
    );
}

#[cfg(test)]
mod tests;

//! [`load`]: from merged raw values to typed [`Settings`], collecting every problem.
//!
//! Each key is parsed on its own; a bad value becomes a [`Problem`] and the key falls back to
//! its default, so one run reports everything that is wrong. With `APP_ENV=production` the
//! problems among the [findings](Settings::findings) are added before deciding.

use std::collections::BTreeSet;

use crate::error::{ConfigError, NOT_SET, Problem};
use crate::findings::{Finding, Status};
use crate::keys::{DEFAULT_API_BASE_URL, KEYS, key_spec};
use crate::secret::Secret;
use crate::settings::{AppEnv, LogFormat, Sender, Settings};
use crate::sources::{EnvSource, Gathered, LoadOptions, Raw, gather, gather_env_only};
use crate::values::{
    Invalid, has_surrounding_whitespace, is_e164, is_hex32, is_listen_host, is_placeholder, is_sid,
    parse_http_url, parse_number, shown, shown_url,
};

/// The result of [`load`]: the settings and the files they were read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    /// Files that were read, lowest precedence first, as shown to users
    /// (`webhook.toml`, `.env`, or the paths given).
    pub sources: Vec<String>,
}

/// Loads the configuration: defaults < `webhook.toml` < `.env` < environment.
///
/// Every wrong value is reported at once in the returned [`ConfigError`]. In development,
/// placeholders and a missing token are findings, not errors, so the server can start and say
/// what to fix; with `APP_ENV=production` every [`Status::Problem`] finding is an error too.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let gathered = gather(opts);
    let sources = gathered.files.clone();
    let settings = build(gathered)?;
    Ok(Loaded { settings, sources })
}

/// What [`load_partial`] returns: settings that are always built, and what was wrong.
#[derive(Debug, Clone)]
pub struct Partial {
    /// The settings, with every key that has a problem at its default (or unset).
    pub loaded: Loaded,
    /// The same problems [`load`] would have returned (empty when `load` succeeds).
    pub problems: Vec<Problem>,
}

/// Loads like [`load`] but never fails: a key with a bad value is left at its default and its
/// problem is returned beside the settings. For tools that report on everything that *can* be
/// checked (`validate-webhook` still checks the database when `PORT` is wrong); a server must
/// use [`load`] and refuse to start instead.
///
/// ```
/// // A directory without `.env` or `webhook.toml`: only the given variables count.
/// let dir = std::env::temp_dir().join("no-such-config-dir");
/// let opts = config::LoadOptions::new(dir).env_vars([("PORT", "80a"), ("HOST", "127.0.0.1")]);
/// let partial = config::load_partial(&opts);
/// assert_eq!(partial.loaded.settings.port, 5000); // the default
/// assert_eq!(partial.loaded.settings.host, "127.0.0.1");
/// assert_eq!(partial.problems[0].key.as_deref(), Some("PORT"));
/// ```
pub fn load_partial(opts: &LoadOptions) -> Partial {
    let gathered = gather(opts);
    let sources = gathered.files.clone();
    let (settings, problems) = build_partial(gathered);
    Partial {
        loaded: Loaded { settings, sources },
        problems,
    }
}

impl Settings {
    /// Builds settings from defaults and `vars` only (no files, no process environment): the
    /// convenient way for tests in other crates to get a `Settings`.
    ///
    /// ```
    /// let s = config::Settings::from_vars([("PORT", "8080"), ("APP_ENV", "development")])?;
    /// assert_eq!(s.port, 8080);
    /// # Ok::<(), config::ConfigError>(())
    /// ```
    pub fn from_vars<I, K, V>(vars: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env = EnvSource::Map(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        build(gather_env_only(&env))
    }
}

/// Turns raw values into settings, or every problem found.
fn build(gathered: Gathered) -> Result<Settings, ConfigError> {
    let (settings, problems) = build_partial(gathered);
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Turns raw values into settings, each bad key left at its default, and every problem found.
fn build_partial(gathered: Gathered) -> (Settings, Vec<Problem>) {
    let mut b = Builder {
        gathered,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let app_env = b
        .parse("APP_ENV", |v| match v.to_ascii_lowercase().as_str() {
            "development" => Ok(AppEnv::Development),
            "production" => Ok(AppEnv::Production),
            _ => Err(Invalid::new(
                format!("{} is not an environment name", shown(v)),
                "set APP_ENV to development or production",
            )),
        })
        .unwrap_or_default();
    let mut s = Settings {
        app_env,
        ..Settings::default()
    };
    s.account_sid = b.parse("TWILIO_ACCOUNT_SID", account_sid);
    s.auth_token = b.parse("TWILIO_AUTH_TOKEN", |v| {
        auth_token(
            v,
            "copy the Auth Token from the Twilio Console home page (Account Info)",
        )
    });
    s.auth_token_secondary = b.parse("TWILIO_AUTH_TOKEN_SECONDARY", |v| {
        auth_token(
            v,
            "copy the secondary Auth Token from the Twilio Console (Account › API keys & tokens), or remove TWILIO_AUTH_TOKEN_SECONDARY",
        )
    });
    // Twilio does not document the shared key secret's format: any value is taken as given.
    s.webhook_shared_key = b.parse("TWILIO_WEBHOOK_SHARED_KEY", |v| Ok(Secret::new(v)));
    s.api_key_sid = b.parse("TWILIO_API_KEY_SID", |v| {
        sid_or_placeholder(
            v,
            "SK",
            "an API key SID",
            "copy the SID of an API key from the Twilio Console (Account, API keys & tokens)",
        )
    });
    s.api_key_secret = b.parse("TWILIO_API_KEY_SECRET", |v| {
        if (v.len() == 32 && v.bytes().all(|c| c.is_ascii_alphanumeric())) || is_placeholder(v) {
            Ok(Secret::new(v))
        } else {
            Err(Invalid::new(
                format!(
                    "not an API key secret: expected 32 letters and digits, got {}",
                    chars(v)
                ),
                "copy the secret shown once when the API key was created, or create a new key",
            ))
        }
    });
    b.require_pair("TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET");
    s.webhook_url = b.parse("WEBHOOK_URL", |v| {
        let fix = "set it to the public URL configured in Twilio, e.g. https://abc123.ngrok-free.app/api/v1/whatsapp/webhook";
        parse_http_url(v, fix).map(|_| v.to_owned())
    });
    s.status_callback_url = b.parse("STATUS_CALLBACK_URL", |v| {
        let fix = "set it to the public URL of /api/v1/whatsapp/status, or leave it unset to derive it from WEBHOOK_URL";
        parse_http_url(v, fix).map(|_| v.to_owned())
    });
    if let Some(url) = b.parse("DATABASE_URL", database_url) {
        s.database_url = url;
    }
    s.redis_url = b.parse("REDIS_URL", redis_url);
    if let Some(prefix) = b.parse("REDIS_KEY_PREFIX", redis_key_prefix) {
        s.redis_key_prefix = prefix;
    }
    if let Some(host) = b.parse("HOST", |v| {
        if is_listen_host(v) {
            Ok(v.to_owned())
        } else {
            Err(Invalid::new(
                format!("{} is not an IP address or host name", shown(v)),
                "use 0.0.0.0 for all interfaces or 127.0.0.1 for this machine only, and set the port with PORT",
            ))
        }
    }) {
        s.host = host;
    }
    if let Some(port) = b.parse("PORT", |v| parse_number("PORT", v, 1, 65535)) {
        s.port = u16::try_from(port).unwrap_or(s.port);
    }
    let from = b.parse("TWILIO_WHATSAPP_FROM", whatsapp_from);
    // A placeholder loads (a finding says replies stay a dry run), like the other SIDs.
    let service = b.parse("TWILIO_MESSAGING_SERVICE_SID", |v| {
        sid_or_placeholder(
            v,
            "MG",
            "a Messaging Service SID",
            "copy the SID from Messaging, Services in the Twilio Console",
        )
    });
    s.sender = b.sender(from, service);
    if let Some(base) = b.parse("TWILIO_API_BASE_URL", |v| {
        let fix = format!("use {DEFAULT_API_BASE_URL} or leave TWILIO_API_BASE_URL unset");
        api_base_url(v, &fix)
    }) {
        s.api_base_url = base;
    }
    if let Some(template) = b.parse("AUTO_REPLY_TEMPLATE", |v| {
        let n = v.chars().count();
        if n <= 1600 {
            Ok(v.to_owned())
        } else {
            Err(Invalid::new(
                format!("is {n} characters long; a WhatsApp message holds at most 1600"),
                "shorten AUTO_REPLY_TEMPLATE",
            ))
        }
    }) {
        s.auto_reply = template;
    }
    let default_format = match s.app_env {
        AppEnv::Production => LogFormat::Json,
        AppEnv::Development => LogFormat::Text,
    };
    s.log_format = b
        .parse("LOG_FORMAT", |v| match v.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(Invalid::new(
                format!("{} is not a log format", shown(v)),
                "set LOG_FORMAT to text or json",
            )),
        })
        .unwrap_or(default_format);
    if let Some(n) = b.parse("WORKER_CONCURRENCY", |v| {
        parse_number("WORKER_CONCURRENCY", v, 1, 1024)
    }) {
        s.worker_concurrency = usize::try_from(n).unwrap_or(s.worker_concurrency);
    }
    if let Some(n) = b.parse("STORE_BATCH_MAX", |v| {
        parse_number("STORE_BATCH_MAX", v, 1, 1024)
    }) {
        s.store_batch_max = usize::try_from(n).unwrap_or(s.store_batch_max);
    }
    if let Some(n) = b.parse("STORE_BATCH_LINGER_US", |v| {
        parse_number("STORE_BATCH_LINGER_US", v, 0, 1_000_000)
    }) {
        s.store_batch_linger_us = n;
    }
    if let Some(n) = b.parse("SWEEP_INTERVAL_SECS", |v| {
        parse_number("SWEEP_INTERVAL_SECS", v, 1, 86_400)
    }) {
        s.sweep_interval_secs = n;
    }

    s.origins.clear();
    for (key, raw) in &b.gathered.values {
        s.origins.insert(key, raw.origin.clone());
        if !raw.shadowed.is_empty() {
            s.shadowed.insert(key, raw.shadowed.clone());
        }
    }
    s.load_findings = std::mem::take(&mut b.notes);
    s.misnamed = std::mem::take(&mut b.gathered.misnamed);
    // File problems first, in file order; then bad values in the order of the key table.
    let mut problems = std::mem::take(&mut b.gathered.problems);
    let position = |p: &Problem| KEYS.iter().position(|k| Some(k.name) == p.key.as_deref());
    b.problems.sort_by_key(position);
    problems.append(&mut b.problems);

    if s.app_env == AppEnv::Production {
        let already: BTreeSet<String> = problems.iter().filter_map(|p| p.key.clone()).collect();
        for f in s.findings() {
            if f.status == Status::Problem && !already.contains(f.key) {
                problems.push(Problem {
                    key: Some(f.key.to_owned()),
                    source: f.source,
                    message: f.message,
                    fix: f.hint.unwrap_or_default(),
                });
            }
        }
    }
    (s, problems)
}

fn auth_token(v: &str, fix: &str) -> Result<Secret, Invalid> {
    if is_hex32(v) || is_placeholder(v) {
        Ok(Secret::new(v))
    } else {
        Err(Invalid::new(
            format!(
                "not an Auth Token: expected 32 hex characters, got {}",
                if v.chars().count() == 32 {
                    "32 characters, not all of them hex".to_owned()
                } else {
                    chars(v)
                }
            ),
            fix,
        ))
    }
}

fn chars(v: &str) -> String {
    match v.chars().count() {
        1 => "1 character".to_owned(),
        n => format!("{n} characters"),
    }
}

fn sid_or_placeholder(v: &str, prefix: &str, what: &str, fix: &str) -> Result<String, Invalid> {
    if is_sid(v, prefix) || is_placeholder(v) {
        Ok(v.to_owned())
    } else {
        let got = if v.chars().count() == 34 && v.starts_with(prefix) {
            "34 characters, not all of them hex".to_owned()
        } else {
            chars(v)
        };
        Err(Invalid::new(
            format!("not {what}: expected \"{prefix}\" followed by 32 hex characters, got {got}"),
            fix,
        ))
    }
}

fn account_sid(v: &str) -> Result<String, Invalid> {
    // The usual mix-ups get a fix that says where the value belongs.
    let fix = if is_sid(v, "SK") {
        "this is an API key SID: move it to TWILIO_API_KEY_SID and set TWILIO_ACCOUNT_SID to the AC… SID"
    } else if is_sid(v, "MG") {
        "this is a Messaging Service SID: move it to TWILIO_MESSAGING_SERVICE_SID and set TWILIO_ACCOUNT_SID to the AC… SID"
    } else if is_hex32(v) && !v.starts_with("AC") {
        // "AC" and 30 hex digits is 32 hex characters too: a SID cut short, not a token.
        "this looks like an Auth Token: move it to TWILIO_AUTH_TOKEN and set TWILIO_ACCOUNT_SID to the AC… SID"
    } else {
        "copy the Account SID from the Twilio Console home page"
    };
    sid_or_placeholder(v, "AC", "an Account SID", fix)
}

fn database_url(v: &str) -> Result<Secret, Invalid> {
    let fix = "use postgres://user:PASSWORD@host:5432/db or sqlite://path/to/file.db?mode=rwc";
    let scheme = v.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Secret::new(v)),
        "postgres" | "postgresql" => match url::Url::parse(v) {
            // The value itself is never shown: it may hold a password.
            Ok(u) if unencoded_password(&u, None) => Err(unencoded_password_error()),
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(Secret::new(v)),
            Ok(_) => Err(Invalid::new("the PostgreSQL URL has no host", fix)),
            Err(_) if separator_before_last_at(v) => Err(unencoded_password_error()),
            Err(e) => Err(Invalid::new(
                format!("not a valid PostgreSQL URL ({e})"),
                "use postgres://user:PASSWORD@host:5432/db and percent-encode special characters in the password",
            )),
        },
        _ if !v.contains(':') => Err(Invalid::new("not a URL", fix)),
        other => Err(Invalid::new(
            format!("unsupported database \"{other}\""),
            fix,
        )),
    }
}

/// The Twilio REST base URL, held to what `twilio-client` accepts, so that a value it would refuse
/// stops the start with the other configuration problems instead of failing the first send:
/// `https` (plain `http` only for a test server on this machine), no `user:password@`, no query
/// or fragment, and not ending in the API version the client appends itself. Stored as parsed
/// (normalised), without a trailing slash. Messages show the URL with its password masked.
fn api_base_url(v: &str, fix: &str) -> Result<String, Invalid> {
    let url = parse_http_url(v, fix)?;
    let shown = shown_url(v);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            format!(
                "{shown} holds a user:password@; Twilio requests authenticate with TWILIO_ACCOUNT_SID and the Auth Token (or an API key), never with this URL"
            ),
            "remove the user:password@ part",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || v.contains(' ') {
        return Err(Invalid::new(
            format!("{shown} has a query, a fragment or a space; it must be a bare base URL"),
            fix,
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if url.scheme() == "http" && !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
        return Err(Invalid::new(
            format!(
                "{shown} uses http on a host that is not this machine: the Auth Token would travel unencrypted, so the Twilio client refuses it (plain http is only for a test server on localhost)"
            ),
            format!("use https:// ({DEFAULT_API_BASE_URL} for Twilio)"),
        ));
    }
    // Stored as the URL parser writes it (scheme and host in lower case, `127.1` as
    // `127.0.0.1`, an empty `@` dropped): the form the client's own check reads.
    let base = url.as_str().trim_end_matches('/');
    if base.ends_with("/2010-04-01") {
        return Err(Invalid::new(
            format!(
                "{shown} ends in /2010-04-01, which the client appends itself (requests would go to …/2010-04-01/2010-04-01/…)"
            ),
            "remove /2010-04-01 from the end",
        ));
    }
    Ok(base.to_owned())
}

/// A password holding an unencoded '/', '?' or '#' ends the URL's authority early: the rest of
/// the password reads as a path, query or fragment with an '@' in it, and the host as what
/// followed the password's own '@' or ':'. Such a URL parses, connects to the wrong host and
/// shows part of the password in messages; it is refused instead.
/// `allowed_fragment` is a fragment the URL may carry on purpose (`#insecure` on `rediss://`).
fn unencoded_password(u: &url::Url, allowed_fragment: Option<&str>) -> bool {
    u.fragment().is_some_and(|f| Some(f) != allowed_fragment)
        || u.path().contains('@')
        || (u.password().is_none() && u.query().is_some_and(|q| q.contains('@')))
}

/// The same mistake in a URL that no longer parses (`postgres://app:12/34@db/x` reads as host
/// `app` with the port `12`): a '/', '?' or '#' between `://` and the URL's last '@'. Only asked
/// after parsing failed, where a valid URL with an '@' in its path or query is not in question.
fn separator_before_last_at(v: &str) -> bool {
    let Some((_, rest)) = v.split_once("://") else {
        return false;
    };
    rest.rfind('@')
        .is_some_and(|at| rest[..at].contains(['/', '?', '#']))
}

fn unencoded_password_error() -> Invalid {
    Invalid::new(
        "the password seems to hold an unencoded /, ? or # (the URL has an '@' or a '#' after its host)",
        "percent-encode those characters in the password: / as %2F, ? as %3F, # as %23, @ as %40",
    )
}

fn redis_url(v: &str) -> Result<Secret, Invalid> {
    let fix = "use redis://host:6379 (rediss:// for TLS), or leave REDIS_URL unset for the in-process queue";
    match url::Url::parse(v) {
        Ok(u) if unencoded_password(&u, Some("insecure")) => Err(unencoded_password_error()),
        Ok(u)
            if matches!(u.scheme(), "redis" | "rediss")
                && u.host_str().is_none_or(str::is_empty) =>
        {
            Err(Invalid::new("the Redis URL has no host", fix))
        }
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") => Ok(Secret::new(v)),
        Ok(u) => Err(Invalid::new(
            format!("unsupported scheme \"{}\"", u.scheme()),
            fix,
        )),
        Err(_) if separator_before_last_at(v) => Err(unencoded_password_error()),
        Err(e) => Err(Invalid::new(
            format!("not a valid Redis URL ({e})"),
            "use redis://:PASSWORD@host:6379 (rediss:// for TLS) and percent-encode special characters in the password",
        )),
    }
}

/// `REDIS_KEY_PREFIX`: 1 to 64 characters from `A-Z a-z 0-9 : _ . -`, so that the keys
/// `<prefix>:jobs` and `<prefix>:dead` are plain and can be typed in `redis-cli`.
fn redis_key_prefix(v: &str) -> Result<String, Invalid> {
    const MAX: usize = 64;
    let fix = "use letters, digits and : _ . - only, e.g. whatsapp-webhook-staging, one prefix per deployment sharing the Redis";
    let n = v.chars().count();
    if n == 0 {
        // Unreachable through `load` (an empty value means "not set"), kept for completeness.
        return Err(Invalid::new("is empty", fix));
    }
    if n > MAX {
        return Err(Invalid::new(
            format!("is {n} characters long; at most {MAX} are allowed"),
            "shorten REDIS_KEY_PREFIX, e.g. whatsapp-webhook-staging",
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-');
    if let Some(bad) = v.chars().find(|&c| !allowed(c)) {
        let what = if bad.is_whitespace() {
            "a space or line break".to_owned()
        } else {
            format!("{bad:?}")
        };
        return Err(Invalid::new(
            format!(
                "{} contains {what}; only letters, digits and : _ . - are allowed",
                shown(v)
            ),
            fix,
        ));
    }
    Ok(v.to_owned())
}

/// The sender number, normalised to `whatsapp:+E.164`. `Ok((value, was_bare))`.
fn whatsapp_from(v: &str) -> Result<(String, bool), Invalid> {
    let fix = "use whatsapp: followed by the number in E.164 format, e.g. whatsapp:+14155238886";
    if let Some(rest) = v.strip_prefix("whatsapp:") {
        if rest.starts_with("whatsapp:") || rest.starts_with("+whatsapp:") {
            return Err(Invalid::new("has the whatsapp: prefix twice", fix));
        }
        if is_e164(rest) {
            return Ok((v.to_owned(), false));
        }
    } else if v.starts_with("+whatsapp:") {
        return Err(Invalid::new(
            "has a + in front of the whatsapp: prefix",
            fix,
        ));
    } else if is_e164(v) {
        // Twilio would send a bare number as SMS (error 21910), so add the prefix and say so.
        return Ok((format!("whatsapp:{v}"), true));
    }
    Err(Invalid::new(
        format!("{} is not a WhatsApp sender", shown(v)),
        fix,
    ))
}

struct Builder {
    gathered: Gathered,
    problems: Vec<Problem>,
    notes: Vec<Finding>,
}

impl Builder {
    fn raw(&self, key: &str) -> Option<&Raw> {
        self.gathered.values.get(key)
    }

    fn fail(&mut self, key: &str, origin: String, invalid: Invalid) {
        self.problems.push(Problem {
            key: Some(key.to_owned()),
            source: origin,
            message: invalid.message,
            fix: invalid.fix,
        });
    }

    /// Parses the value of `key` if one is set; a bad value is recorded and gives `None`.
    fn parse<T>(&mut self, key: &str, parse: impl FnOnce(&str) -> Result<T, Invalid>) -> Option<T> {
        let raw = self.raw(key)?.clone();
        let spec = key_spec(key);
        if has_surrounding_whitespace(&raw.value) && key != "AUTO_REPLY_TEMPLATE" {
            let what = if spec.is_some_and(|s| s.secret) {
                "the value"
            } else {
                "it"
            };
            let invalid = Invalid::new(
                "has spaces or line breaks around the value",
                format!("remove the spaces or line breaks around {what}"),
            );
            self.fail(key, raw.origin, invalid);
            return None;
        }
        match parse(&raw.value) {
            Ok(v) => Some(v),
            Err(invalid) => {
                self.fail(key, raw.origin, invalid);
                None
            }
        }
    }

    /// Both keys or neither.
    fn require_pair(&mut self, first: &str, second: &str) {
        let (a, b) = (self.raw(first).is_some(), self.raw(second).is_some());
        if a != b {
            let (set, missing) = if a { (first, second) } else { (second, first) };
            self.fail(
                missing,
                NOT_SET.to_owned(),
                Invalid::new(
                    format!("{set} is set but {missing} is not"),
                    format!("set both {first} and {second}, or neither"),
                ),
            );
        }
    }

    fn note(&mut self, (key, check): (&'static str, &'static str), message: String, hint: &str) {
        let source = self
            .raw(key)
            .map_or_else(|| NOT_SET.to_owned(), |r| r.origin.clone());
        let hint = Some(hint.to_owned());
        let status = Status::Warning;
        self.notes.push(Finding {
            key,
            check,
            status,
            message,
            hint,
            source,
        });
    }

    fn sender(&mut self, from: Option<(String, bool)>, service: Option<String>) -> Option<Sender> {
        if let Some((number, true)) = &from {
            let message = format!("has no whatsapp: prefix; replies are sent from {number}");
            self.note(
                ("TWILIO_WHATSAPP_FROM", "bare_number"),
                message,
                "write it as whatsapp:+E.164 to make that explicit",
            );
        }
        match (from, service) {
            // A placeholder Messaging Service left beside a real number (the README's example
            // copied whole) does not take the replies away from that number.
            (Some((number, _)), Some(sid)) if is_placeholder(&sid) => {
                self.note(
                    ("TWILIO_MESSAGING_SERVICE_SID", "placeholder"),
                    format!("still a placeholder: ignored, replies are sent from {number}"),
                    "remove it, or copy the SID from Messaging, Services in the Twilio Console",
                );
                Some(Sender::WhatsAppFrom(number))
            }
            (Some(_), Some(sid)) => {
                self.note(
                    ("TWILIO_MESSAGING_SERVICE_SID", "both_senders"),
                    "set together with TWILIO_WHATSAPP_FROM; replies go through the Messaging Service".to_owned(),
                    "remove one of the two",
                );
                Some(Sender::MessagingService(sid))
            }
            (None, Some(sid)) => Some(Sender::MessagingService(sid)),
            (Some((number, _)), None) => Some(Sender::WhatsAppFrom(number)),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests;

//! [`Settings`]: the typed, validated configuration, and how it shows itself without secrets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::NOT_SET;
use crate::findings::Finding;
use crate::keys::{
    DEFAULT_API_BASE_URL, DEFAULT_AUTO_REPLY, DEFAULT_DATABASE_URL, DEFAULT_REDIS_KEY_PREFIX,
    STATUS_PATH, WEBHOOK_PATH,
};
use crate::secret::{Secret, mask_sid, redact_url};
use crate::sources::RENDER_ORIGIN;
use crate::values::is_placeholder;

/// `APP_ENV`: how strict the loader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    /// Unsafe settings are warnings; the server starts so they can be fixed.
    #[default]
    Development,
    /// Unsafe settings (placeholders, missing token, non-https WEBHOOK_URL, …) refuse to start.
    Production,
}

impl AppEnv {
    /// `development` or `production`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Production => "production",
        }
    }
}

/// `LOG_FORMAT`: human-readable lines or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default in development).
    Text,
    /// One JSON object per line (the default in production).
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Who replies are sent from.
#[derive(Clone, PartialEq, Eq)]
pub enum Sender {
    /// `TWILIO_WHATSAPP_FROM`, always with the `whatsapp:` prefix (`whatsapp:+14155238886`).
    WhatsAppFrom(String),
    /// `TWILIO_MESSAGING_SERVICE_SID` (`MG…`).
    MessagingService(String),
}

impl fmt::Display for Sender {
    /// `whatsapp:+14155238886` or `MG12…cdef`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::WhatsAppFrom(from) => f.write_str(from),
            Sender::MessagingService(sid) => f.write_str(&mask_sid(sid)),
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::WhatsAppFrom(from) => f.debug_tuple("WhatsAppFrom").field(from).finish(),
            Sender::MessagingService(sid) => f
                .debug_tuple("MessagingService")
                .field(&mask_sid(sid))
                .finish(),
        }
    }
}

impl Serialize for Sender {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// The validated configuration shared by the server and the CLI.
///
/// Build it with [`load`](crate::load) or, in tests, [`Settings::from_vars`]. Fields may be
/// changed afterwards (tests point `api_base_url` at a fake Twilio); the checks in
/// [`findings`](Settings::findings) always look at the current values.
///
/// `Debug`, `Display` and `Serialize` never show a secret: the tokens are `[redacted]`, SIDs
/// `AC12…cdef`, URL passwords `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `TWILIO_ACCOUNT_SID` (`AC…`); may be a placeholder in development (see findings).
    pub account_sid: Option<String>,
    /// `TWILIO_AUTH_TOKEN`; may be a placeholder in development (see findings).
    pub auth_token: Option<Secret>,
    /// `TWILIO_AUTH_TOKEN_SECONDARY`: the secondary Auth Token during a rotation; webhooks
    /// signed with it are accepted too, and REST calls use it (see findings).
    pub auth_token_secondary: Option<Secret>,
    /// `TWILIO_WEBHOOK_SHARED_KEY`: the secret that verifies webhooks a Webhook Rule signs with
    /// a shared key (HMAC-SHA256); may be a placeholder in development (see findings).
    pub webhook_shared_key: Option<Secret>,
    /// `TWILIO_API_KEY_SID` (`SK…`), an alternative to the Auth Token for REST calls.
    pub api_key_sid: Option<String>,
    /// `TWILIO_API_KEY_SECRET`, set exactly when `api_key_sid` is.
    pub api_key_secret: Option<Secret>,
    /// `WEBHOOK_URL`, exactly as configured (signatures are computed over this string).
    pub webhook_url: Option<String>,
    /// `STATUS_CALLBACK_URL` as configured; use [`Settings::status_callback_url`] for the
    /// effective one.
    pub status_callback_url: Option<String>,
    /// `DATABASE_URL` (`postgres://…`, `postgresql://…` or `sqlite:…`).
    pub database_url: Secret,
    /// `REDIS_URL` (`redis://…` or `rediss://…`); `None` means the in-process queue.
    pub redis_url: Option<Secret>,
    /// `REDIS_KEY_PREFIX`: the Redis Streams keys are `<prefix>:jobs` and `<prefix>:dead`.
    /// Validated by [`load`](crate::load): 1 to 64 characters from `A-Z a-z 0-9 : _ . -`.
    pub redis_key_prefix: String,
    /// `HOST`, an IP address or host name.
    pub host: String,
    /// `PORT`.
    pub port: u16,
    /// `TWILIO_MESSAGING_SERVICE_SID` if set, else `TWILIO_WHATSAPP_FROM`; `None` means
    /// replies are recorded but not sent (dry run).
    pub sender: Option<Sender>,
    /// `TWILIO_API_BASE_URL` without a trailing slash.
    pub api_base_url: String,
    /// `APP_ENV`.
    pub app_env: AppEnv,
    /// `AUTO_REPLY_TEMPLATE`; `{name}` and `{text}` are placeholders for the handler.
    pub auto_reply: String,
    /// `LOG_FORMAT`; defaults to `json` in production and `text` otherwise.
    pub log_format: LogFormat,
    /// `WORKER_CONCURRENCY`, at least 1.
    pub worker_concurrency: usize,
    /// `STORE_BATCH_MAX`, at least 1.
    pub store_batch_max: usize,
    /// `STORE_BATCH_LINGER_US`.
    pub store_batch_linger_us: u64,
    /// `SWEEP_INTERVAL_SECS`, at least 1.
    pub sweep_interval_secs: u64,
    /// Source of each key's value (`.env line 4`, `environment`, `default`, …).
    pub(crate) origins: BTreeMap<&'static str, String>,
    /// Sources whose value for a key lost to a higher one (see [`Settings::overridden`]).
    pub(crate) shadowed: BTreeMap<&'static str, Vec<String>>,
    /// Findings only visible while loading (a bare phone number, two senders).
    pub(crate) load_findings: Vec<Finding>,
    /// Variables not read whose names say which key was meant (see [`Settings::findings`]).
    pub(crate) misnamed: Vec<crate::sources::Misnamed>,
}

impl Default for Settings {
    /// The built-in defaults: what [`load`](crate::load) gives with no file and no variable.
    fn default() -> Self {
        Settings {
            account_sid: None,
            auth_token: None,
            auth_token_secondary: None,
            webhook_shared_key: None,
            api_key_sid: None,
            api_key_secret: None,
            webhook_url: None,
            status_callback_url: None,
            database_url: Secret::new(DEFAULT_DATABASE_URL),
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            host: "0.0.0.0".to_owned(),
            port: 5000,
            sender: None,
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            app_env: AppEnv::Development,
            auto_reply: DEFAULT_AUTO_REPLY.to_owned(),
            log_format: LogFormat::Text,
            worker_concurrency: 8,
            store_batch_max: 256,
            store_batch_linger_us: 0,
            sweep_interval_secs: 30,
            origins: crate::keys::KEYS
                .iter()
                .filter(|k| k.default.is_some())
                .map(|k| (k.name, "default".to_owned()))
                .collect(),
            load_findings: Vec::new(),
            misnamed: Vec::new(),
            shadowed: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Where the value of `key` came from: `.env line 4`, `webhook.toml line 2`,
    /// `environment`, `default`, or `not set`.
    pub fn origin(&self, key: &str) -> &str {
        self.origins.get(key).map_or(NOT_SET, String::as_str)
    }

    /// Sources that set `key` too but lost to [`origin`](Self::origin): `[".env line 4"]` for
    /// a `DATABASE_URL` exported in the shell over the one in `.env` (the classic "my .env is
    /// right but it still fails"). Empty when only one source set it.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("config-doc-overridden");
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join(".env"), "PORT=7000\n").unwrap();
    /// let loaded = config::load(&config::LoadOptions::new(&dir).env_vars([("PORT", "8000")]))?;
    /// assert_eq!(loaded.settings.origin("PORT"), "environment");
    /// assert_eq!(loaded.settings.overridden("PORT"), [".env line 1"]);
    /// # Ok::<(), config::ConfigError>(())
    /// ```
    pub fn overridden(&self, key: &str) -> &[String] {
        self.shadowed.get(key).map_or(&[], Vec::as_slice)
    }

    /// The URL for delivery status callbacks: `STATUS_CALLBACK_URL` if set, else derived from
    /// `WEBHOOK_URL` by replacing its final `/api/v1/whatsapp/webhook` with
    /// `/api/v1/whatsapp/status` (a path prefix in front of it is kept; query and fragment
    /// are dropped). A `WEBHOOK_URL` with another path gives its origin plus
    /// `/api/v1/whatsapp/status`. `None` without either.
    pub fn status_callback_url(&self) -> Option<String> {
        if let Some(explicit) = &self.status_callback_url {
            return Some(explicit.clone());
        }
        let url = url::Url::parse(self.webhook_url.as_deref()?).ok()?;
        let path = url.path().trim_end_matches('/');
        let prefix = path.strip_suffix(WEBHOOK_PATH).unwrap_or_default();
        let origin = url.origin().ascii_serialization();
        Some(format!("{origin}{prefix}{STATUS_PATH}"))
    }

    /// `host:port` to bind, with brackets around an IPv6 host (`[::]:5000`).
    pub fn listen_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `DATABASE_URL` with its password replaced by `***`, safe to log.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose())
    }

    /// `REDIS_URL` with its password replaced by `***`, safe to log.
    pub fn redis_url_redacted(&self) -> Option<String> {
        self.redis_url.as_ref().map(|u| redact_url(u.expose()))
    }

    /// One line for the server's start log, without secrets:
    ///
    /// ```text
    /// app_env=development listen=0.0.0.0:5000 webhook_url=unset account_sid=unset auth_token=unset sender=dry-run database=sqlite://data/webhook.db?mode=rwc queue=in-process api_base_url=https://api.twilio.com log_format=text workers=8
    /// ```
    ///
    /// With Redis, `queue=redis://red:6379 redis_key_prefix=whatsapp-webhook`; with a
    /// `WEBHOOK_URL` derived from `RENDER_EXTERNAL_URL`,
    /// `webhook_url=https://… webhook_url_from=RENDER_EXTERNAL_URL`.
    pub fn redacted_summary(&self) -> String {
        let presence = |v: Option<&str>| match v {
            None => "unset",
            Some(v) if is_placeholder(v) => "placeholder",
            Some(_) => "set",
        };
        let account = match &self.account_sid {
            Some(sid) if !is_placeholder(sid) => mask_sid(sid),
            other => presence(other.as_deref()).to_owned(),
        };
        let webhook = match &self.webhook_url {
            None => "unset".to_owned(),
            Some(url) if self.origin("WEBHOOK_URL") == RENDER_ORIGIN => {
                format!("{} webhook_url_from=RENDER_EXTERNAL_URL", redact_url(url))
            }
            Some(url) => redact_url(url),
        };
        let mut line = format!(
            "app_env={} listen={} webhook_url={webhook} account_sid={account} auth_token={}",
            self.app_env.as_str(),
            self.listen_addr(),
            presence(self.auth_token.as_ref().map(Secret::expose)),
        );
        if let Some(secondary) = &self.auth_token_secondary {
            line.push_str(&format!(
                " auth_token_secondary={}",
                presence(Some(secondary.expose()))
            ));
        }
        if let Some(key) = &self.api_key_sid {
            line.push_str(&format!(" api_key={}", mask_sid(key)));
        }
        let sender = self
            .sender
            .as_ref()
            .map_or_else(|| "dry-run".to_owned(), Sender::to_string);
        // The key prefix only matters (and is only shown) with Redis.
        let queue = match self.redis_url_redacted() {
            Some(url) => format!("{url} redis_key_prefix={}", self.redis_key_prefix),
            None => "in-process".to_owned(),
        };
        line.push_str(&format!(
            " sender={sender} database={} queue={queue} api_base_url={} log_format={} workers={}",
            self.database_url_redacted(),
            redact_url(&self.api_base_url),
            self.log_format.as_str(),
            self.worker_concurrency,
        ));
        line
    }

    /// What the redacted forms look like, shared by `Debug` and `Serialize`.
    fn view(&self) -> View<'_> {
        View {
            account_sid: self.account_sid.as_deref().map(mask_sid),
            auth_token: self.auth_token.as_ref(),
            auth_token_secondary: self.auth_token_secondary.as_ref(),
            webhook_shared_key: self.webhook_shared_key.as_ref(),
            api_key_sid: self.api_key_sid.as_deref().map(mask_sid),
            api_key_secret: self.api_key_secret.as_ref(),
            webhook_url: self.webhook_url.as_deref().map(redact_url),
            status_callback_url: self.status_callback_url.as_deref().map(redact_url),
            database_url: self.database_url_redacted(),
            redis_url: self.redis_url_redacted(),
            redis_key_prefix: &self.redis_key_prefix,
            host: &self.host,
            port: self.port,
            sender: self.sender.as_ref(),
            api_base_url: redact_url(&self.api_base_url),
            app_env: self.app_env,
            auto_reply: &self.auto_reply,
            log_format: self.log_format,
            worker_concurrency: self.worker_concurrency,
            store_batch_max: self.store_batch_max,
            store_batch_linger_us: self.store_batch_linger_us,
            sweep_interval_secs: self.sweep_interval_secs,
        }
    }
}

#[derive(Debug, Serialize)]
struct View<'a> {
    account_sid: Option<String>,
    auth_token: Option<&'a Secret>,
    auth_token_secondary: Option<&'a Secret>,
    webhook_shared_key: Option<&'a Secret>,
    api_key_sid: Option<String>,
    api_key_secret: Option<&'a Secret>,
    webhook_url: Option<String>,
    status_callback_url: Option<String>,
    database_url: String,
    redis_url: Option<String>,
    redis_key_prefix: &'a str,
    host: &'a str,
    port: u16,
    sender: Option<&'a Sender>,
    api_base_url: String,
    app_env: AppEnv,
    auto_reply: &'a str,
    log_format: LogFormat,
    worker_concurrency: usize,
    store_batch_max: usize,
    store_batch_linger_us: u64,
    sweep_interval_secs: u64,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = self.view();
        let text = if f.alternate() {
            format!("{view:#?}")
        } else {
            format!("{view:?}")
        };
        // Named after the real type, not the private view it is printed through.
        f.write_str(&text.replacen("View", "Settings", 1))
    }
}

impl fmt::Display for Settings {
    /// The [`redacted_summary`](Settings::redacted_summary) line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_summary())
    }
}

impl Serialize for Settings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(serializer)
    }
}

#[cfg(test)]
mod tests;

//! One configuration loader for `webhook-server` and `validate-webhook`.
//!
//! Both binaries call [`load`] and get the same typed, validated [`Settings`], so the CLI
//! diagnoses exactly what the server will run with.
//!
//! # Sources
//!
//! Lowest precedence first:
//!
//! 1. built-in defaults (the `default` column below);
//! 2. `webhook.toml` in the working directory, or [`LoadOptions::config_file`]; keys in lower
//!    case (`webhook_url = "https://…"`, `port = 5000`); unknown keys are problems;
//! 3. `.env` in the working directory, or [`LoadOptions::env_file`] (`--env-file`; it must
//!    exist); parsed by dotenvy, so quotes, `export` and `# comments` work, and `$VAR` is
//!    substituted unless the value is in single quotes; unknown keys are ignored, a known
//!    key set twice is a problem;
//! 4. the process environment, or an injected map ([`EnvSource::Map`]); only the keys below
//!    are read, and [`RENDER_EXTERNAL_URL`] (next paragraph).
//!
//! **Render.** When no source sets `WEBHOOK_URL` and the environment (process or injected
//! map; never `.env` or `webhook.toml`) has `RENDER_EXTERNAL_URL` — Render sets it on every
//! web service, e.g. `https://whatsapp-bot.onrender.com` — `WEBHOOK_URL` is that URL without
//! its trailing slash plus `/api/v1/whatsapp/webhook`. Its origin is
//! `RENDER_EXTERNAL_URL (environment)` ([`RENDER_ORIGIN`]), it is checked like any
//! `WEBHOOK_URL` (so production accepts it when it is https), the finding
//! `(WEBHOOK_URL, derived)` reminds to use exactly this URL in the Twilio Console, and the
//! start summary adds `webhook_url_from=RENDER_EXTERNAL_URL`. An explicit `WEBHOOK_URL`
//! always wins: set it when Twilio calls a custom domain. `RENDER_EXTERNAL_URL` is not a
//! configuration key (not in `.env.example`).
//!
//! An empty value (`REDIS_URL=`) means "not set" and does not hide a lower source.
//! figment does the layering; every value remembers where it came from
//! ([`Settings::origin`]): `default`, `webhook.toml line 3`, `.env line 4`, `environment`.
//!
//! # Keys
//!
//! The single table [`KEYS`] drives defaults, what is read, `.env.example`
//! ([`env_example`]) and this table ([`markdown_table`]):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `APP_ENV` | `development` or `production`; production refuses to start on placeholders, a missing token or a non-https WEBHOOK_URL. | `development` |
//! | `TWILIO_ACCOUNT_SID` | Account SID (`AC` + 32 hex) from the Twilio Console home page. | none: replies cannot be sent and online checks are skipped |
//! | `TWILIO_AUTH_TOKEN` | Auth Token (32 hex) from the Twilio Console; it signs webhooks and authenticates REST calls. | none: every webhook is refused with 403 and the log says why |
//! | `TWILIO_AUTH_TOKEN_SECONDARY` | For rotating the Auth Token without refusing webhooks: the secondary Auth Token from the Console. Webhooks signed with either token are accepted and REST calls use this one (it survives the promotion) unless an API key is set; after promoting it in the Console, move it to TWILIO_AUTH_TOKEN and remove this key. | none: only TWILIO_AUTH_TOKEN's signatures are accepted |
//! | `TWILIO_WEBHOOK_SHARED_KEY` | Secret of the shared key a Twilio Webhook Rule signs webhooks with (`X-Twilio-Webhooks-Signature-Settings: key=…,algorithm=HMAC_SHA256`); TWILIO_AUTH_TOKEN is still required and verifies every webhook without that header. | none: webhooks a Webhook Rule signs with a shared key (HMAC-SHA256) are refused with 403 and the log names the key |
//! | `TWILIO_API_KEY_SID` | Optional API key SID (`SK` + 32 hex) for REST calls instead of the Auth Token; set together with TWILIO_API_KEY_SECRET. | none: REST calls authenticate with the Auth Token |
//! | `TWILIO_API_KEY_SECRET` | Secret of the API key in TWILIO_API_KEY_SID. | none: REST calls authenticate with the Auth Token |
//! | `WEBHOOK_URL` | The exact public URL configured in Twilio, path included, e.g. `https://abc123.ngrok-free.app/api/v1/whatsapp/webhook`. | none: on Render, derived from RENDER_EXTERNAL_URL + `/api/v1/whatsapp/webhook`; elsewhere in development the server rebuilds it from `Host`/`X-Forwarded-Proto` and says so in the log |
//! | `STATUS_CALLBACK_URL` | Public URL for delivery status callbacks of replies. | none: derived from WEBHOOK_URL: same prefix, ending in `/api/v1/whatsapp/status` |
//! | `TWILIO_WHATSAPP_FROM` | Sender for replies as `whatsapp:+E.164`; `whatsapp:+14155238886` is the Twilio Sandbox. | none: replies are recorded but not sent (dry run), said once at start |
//! | `TWILIO_MESSAGING_SERVICE_SID` | Messaging Service (`MG` + 32 hex) to send replies through, instead of TWILIO_WHATSAPP_FROM. | none: replies use TWILIO_WHATSAPP_FROM |
//! | `DATABASE_URL` | `postgres://user:password@host:5432/db` or `sqlite://path?mode=rwc`. | `sqlite://data/webhook.db?mode=rwc` |
//! | `REDIS_URL` | `redis://host:6379` (or `rediss://` for TLS) for the work queue shared by several instances. | none: in-process queue; the database stays the source of truth |
//! | `REDIS_KEY_PREFIX` | Prefix of the Redis Streams keys (`<prefix>:jobs`, `<prefix>:dead`); give staging and production different prefixes when they share one Redis. | `whatsapp-webhook` |
//! | `HOST` | Address to listen on. | `0.0.0.0` |
//! | `PORT` | Port to listen on (Render injects PORT). | `5000` |
//! | `TWILIO_API_BASE_URL` | Twilio REST base URL; tests point it at a fake Twilio. | `https://api.twilio.com` |
//! | `AUTO_REPLY_TEMPLATE` | Reply text; `{name}` and `{text}` are replaced by the sender's profile name and message. | `Hi {name}! We received your message: {text}` |
//! | `LOG_FORMAT` | `text` or `json`. | none: `text`, or `json` when APP_ENV=production |
//! | `WORKER_CONCURRENCY` | Replies being sent to Twilio at the same time (1 to 1024); dry-run replies are recorded in batches regardless. | `8` |
//! | `STORE_BATCH_MAX` | Most inbound messages committed in one database transaction (1 to 1024). | `256` |
//! | `STORE_BATCH_LINGER_US` | Microseconds a commit waits for more messages to join its batch (0 to 1000000). | `0` |
//! | `SWEEP_INTERVAL_SECS` | Seconds between sweeps that pick up unanswered messages (1 to 86400). | `30` |
//!
//! # Decisions
//!
//! - `TWILIO_WHATSAPP_FROM` given as a bare `+14155238886` is accepted and sent as
//!   `whatsapp:+14155238886`, with a warning: Twilio would treat the bare number as SMS
//!   (error 21910). A doubled prefix (`whatsapp:whatsapp:+1…`, `+whatsapp:+1…`) is an error.
//! - With both `TWILIO_WHATSAPP_FROM` and `TWILIO_MESSAGING_SERVICE_SID`, replies go through
//!   the Messaging Service and a warning says so.
//! - Placeholders (`your_auth_token`, `changeme`, `ACxxxx…`) in the SIDs and secrets are not
//!   load errors in development: they are findings, so the server starts and says what to fix.
//!   Any other malformed value is an error in every environment.
//! - `APP_ENV=production` refuses to start on every finding of status
//!   [`Status::Problem`]: a missing or placeholder token, a placeholder SID or API key, a
//!   missing, non-https or unreachable (localhost, private address) `WEBHOOK_URL` or
//!   `STATUS_CALLBACK_URL`, an in-memory SQLite database, a non-https or non-Twilio
//!   `TWILIO_API_BASE_URL`. SQLite on disk in production stays a warning.
//! - Findings are data, not text: each has a `key`, a stable `check` name
//!   (`(WEBHOOK_URL, wrong_path)`), a [`Status`], a short message, a one-sentence hint and
//!   the source of the value; the CLI renders them, and `--json` can serialise them as they are.
//! - `TWILIO_API_BASE_URL` is stored without a trailing slash; `WEBHOOK_URL` is stored exactly
//!   as given, because signatures are computed over that exact string.
//!
//! # What this crate does not do
//!
//! It never modifies the process environment, never contacts the network (online checks
//! live in `validate-webhook`), never logs, and does not read `RUST_LOG` (that belongs to the
//! tracing subscriber).
//!
//! # Layout
//!
//! - `keys` — the key table, `.env.example` and Markdown renderers.
//! - `sources` — [`LoadOptions`], reading files and the environment, figment layering.
//! - `load` — [`load`]: typed parsing of each key, every problem collected; [`load_partial`]
//!   for tools that report on the keys that are right even when others are wrong.
//! - `values` — shape checks: SIDs, tokens, placeholders, URLs, phone numbers.
//! - `settings` — [`Settings`] and its redacted `Debug`/`Display`/`Serialize`.
//! - `findings` — [`Settings::findings`], the checks behind the CLI's ✅/⚠️/❌.
//! - `secret` — [`Secret`], [`mask_sid`], [`redact_url`], [`secret_parts`].
//! - `error` — [`ConfigError`] and [`Problem`].
//!
//! # Example
//!
//! ```
//! use config::{LoadOptions, Status, load};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join(".env"), "PORT=8080\nTWILIO_AUTH_TOKEN=your_auth_token\n")?;
//! let opts = LoadOptions::new(dir.path()).env_vars([("APP_ENV", "development")]);
//! let loaded = load(&opts)?;
//! assert_eq!(loaded.settings.port, 8080);
//! assert_eq!(loaded.settings.origin("PORT"), ".env line 1");
//!
//! let token = loaded.settings.findings().into_iter().find(|f| f.key == "TWILIO_AUTH_TOKEN");
//! assert_eq!(token.map(|f| f.status), Some(Status::Problem));
//!
//! // The same file is refused in production, with every reason at once.
//! let err = load(&LoadOptions::new(dir.path()).env_vars([("APP_ENV", "production")])).unwrap_err();
//! assert!(err.to_string().contains("TWILIO_AUTH_TOKEN (.env line 2): still a placeholder"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod error;
mod findings;
mod keys;
mod load;
mod secret;
mod settings;
mod sources;
mod values;

pub use error::{ConfigError, Problem};
pub use findings::{Finding, Status};
pub use keys::{
    DEFAULT_API_BASE_URL, DEFAULT_AUTO_REPLY, DEFAULT_DATABASE_URL, DEFAULT_REDIS_KEY_PREFIX, KEYS,
    KeySpec, STATUS_PATH, WEBHOOK_PATH, env_example, key_spec, markdown_table,
};
pub use load::{Loaded, Partial, load, load_partial};
pub use secret::{Secret, mask_sid, redact_url, secret_parts};
pub use settings::{AppEnv, LogFormat, Sender, Settings};
pub use sources::{EnvSource, LoadOptions, RENDER_EXTERNAL_URL, RENDER_ORIGIN};
pub use values::{is_placeholder, unreachable_host};

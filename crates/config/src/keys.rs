//! The single table of configuration keys.
//!
//! Everything that lists keys is driven by [`KEYS`]: the built-in defaults, which environment
//! variables are read at all, `.env.example` ([`env_example`]) and the documentation table
//! ([`markdown_table`]). Adding a key means adding a row here and a field in
//! [`Settings`](crate::Settings); the tests catch a row without a field and the reverse.

/// One configuration key: its name, default and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Environment variable name, e.g. `WEBHOOK_URL`. In `webhook.toml` the same name in
    /// lower case (`webhook_url`) is used.
    pub name: &'static str,
    /// Built-in default, applied when no source sets the key.
    pub default: Option<&'static str>,
    /// What happens when the key is not set and has no default (shown in docs).
    pub when_unset: &'static str,
    /// One sentence on what the key means; the comment line in `.env.example`.
    pub description: &'static str,
    /// Whether the value is a secret that must never be shown.
    pub secret: bool,
    /// The value written into `.env.example` (empty means "not set").
    pub example: &'static str,
}

const fn key(
    name: &'static str,
    default: Option<&'static str>,
    when_unset: &'static str,
    description: &'static str,
    secret: bool,
    example: &'static str,
) -> KeySpec {
    KeySpec {
        name,
        default,
        when_unset,
        description,
        secret,
        example,
    }
}

/// Default of `DATABASE_URL`: the embedded SQLite database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/webhook.db?mode=rwc";
/// Default of `REDIS_KEY_PREFIX`: the queue's keys are `whatsapp-webhook:jobs` and
/// `whatsapp-webhook:dead`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "whatsapp-webhook";
/// Default of `TWILIO_API_BASE_URL`.
pub const DEFAULT_API_BASE_URL: &str = "https://api.twilio.com";
/// Default of `AUTO_REPLY_TEMPLATE`.
pub const DEFAULT_AUTO_REPLY: &str = "Hi {name}! We received your message: {text}";
/// The path the server serves inbound messages on; `WEBHOOK_URL` should end with it.
pub const WEBHOOK_PATH: &str = "/api/v1/whatsapp/webhook";
/// The path the server serves delivery status callbacks on.
pub const STATUS_PATH: &str = "/api/v1/whatsapp/status";

/// Every key the loader knows, in documentation order. Only these are read from the
/// environment and `.env`; anything else there is ignored, except that `RENDER_EXTERNAL_URL`
/// in the environment stands in for an unset `WEBHOOK_URL` (see
/// [`RENDER_EXTERNAL_URL`](crate::RENDER_EXTERNAL_URL)).
pub const KEYS: &[KeySpec] = &[
    key(
        "APP_ENV",
        Some("development"),
        "",
        "`development` or `production`; production refuses to start on placeholders, a missing token or a non-https WEBHOOK_URL.",
        false,
        "",
    ),
    key(
        "TWILIO_ACCOUNT_SID",
        None,
        "replies cannot be sent and online checks are skipped",
        "Account SID (`AC` + 32 hex) from the Twilio Console home page.",
        false,
        "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ),
    key(
        "TWILIO_AUTH_TOKEN",
        None,
        "every webhook is refused with 403 and the log says why",
        "Auth Token (32 hex) from the Twilio Console; it signs webhooks and authenticates REST calls.",
        true,
        "your_auth_token",
    ),
    key(
        "TWILIO_AUTH_TOKEN_SECONDARY",
        None,
        "only TWILIO_AUTH_TOKEN's signatures are accepted",
        "For rotating the Auth Token without refusing webhooks: the secondary Auth Token from the Console. Webhooks signed with either token are accepted and REST calls use this one (it survives the promotion) unless an API key is set; after promoting it in the Console, move it to TWILIO_AUTH_TOKEN and remove this key.",
        true,
        "",
    ),
    key(
        "TWILIO_WEBHOOK_SHARED_KEY",
        None,
        "webhooks a Webhook Rule signs with a shared key (HMAC-SHA256) are refused with 403 and the log names the key",
        "Secret of the shared key a Twilio Webhook Rule signs webhooks with (`X-Twilio-Webhooks-Signature-Settings: key=…,algorithm=HMAC_SHA256`); TWILIO_AUTH_TOKEN is still required and verifies every webhook without that header.",
        true,
        "",
    ),
    key(
        "TWILIO_API_KEY_SID",
        None,
        "REST calls authenticate with the Auth Token",
        "Optional API key SID (`SK` + 32 hex) for REST calls instead of the Auth Token; set together with TWILIO_API_KEY_SECRET.",
        false,
        "",
    ),
    key(
        "TWILIO_API_KEY_SECRET",
        None,
        "REST calls authenticate with the Auth Token",
        "Secret of the API key in TWILIO_API_KEY_SID.",
        true,
        "",
    ),
    key(
        "WEBHOOK_URL",
        None,
        "on Render, derived from RENDER_EXTERNAL_URL + `/api/v1/whatsapp/webhook`; elsewhere in development the server rebuilds it from `Host`/`X-Forwarded-Proto` and says so in the log",
        "The exact public URL configured in Twilio, path included, e.g. `https://abc123.ngrok-free.app/api/v1/whatsapp/webhook`.",
        false,
        "",
    ),
    key(
        "STATUS_CALLBACK_URL",
        None,
        "derived from WEBHOOK_URL: same prefix, ending in `/api/v1/whatsapp/status`",
        "Public URL for delivery status callbacks of replies.",
        false,
        "",
    ),
    key(
        "TWILIO_WHATSAPP_FROM",
        None,
        "replies are recorded but not sent (dry run), said once at start",
        "Sender for replies as `whatsapp:+E.164`; `whatsapp:+14155238886` is the Twilio Sandbox.",
        false,
        "whatsapp:+14155238886",
    ),
    key(
        "TWILIO_MESSAGING_SERVICE_SID",
        None,
        "replies use TWILIO_WHATSAPP_FROM",
        "Messaging Service (`MG` + 32 hex) to send replies through, instead of TWILIO_WHATSAPP_FROM.",
        false,
        "",
    ),
    key(
        "DATABASE_URL",
        Some(DEFAULT_DATABASE_URL),
        "",
        "`postgres://user:password@host:5432/db` or `sqlite://path?mode=rwc`.",
        true,
        "",
    ),
    key(
        "REDIS_URL",
        None,
        "in-process queue; the database stays the source of truth",
        "`redis://host:6379` (or `rediss://` for TLS) for the work queue shared by several instances.",
        true,
        "",
    ),
    key(
        "REDIS_KEY_PREFIX",
        Some(DEFAULT_REDIS_KEY_PREFIX),
        "",
        "Prefix of the Redis Streams keys (`<prefix>:jobs`, `<prefix>:dead`); give staging and production different prefixes when they share one Redis.",
        false,
        "",
    ),
    key(
        "HOST",
        Some("0.0.0.0"),
        "",
        "Address to listen on.",
        false,
        "",
    ),
    key(
        "PORT",
        Some("5000"),
        "",
        "Port to listen on (Render injects PORT).",
        false,
        "",
    ),
    key(
        "TWILIO_API_BASE_URL",
        Some(DEFAULT_API_BASE_URL),
        "",
        "Twilio REST base URL; tests point it at a fake Twilio.",
        false,
        "",
    ),
    key(
        "AUTO_REPLY_TEMPLATE",
        Some(DEFAULT_AUTO_REPLY),
        "",
        "Reply text; `{name}` and `{text}` are replaced by the sender's profile name and message.",
        false,
        "",
    ),
    key(
        "LOG_FORMAT",
        None,
        "`text`, or `json` when APP_ENV=production",
        "`text` or `json`.",
        false,
        "",
    ),
    key(
        "WORKER_CONCURRENCY",
        Some("8"),
        "",
        "Replies being sent to Twilio at the same time (1 to 1024); dry-run replies are recorded in batches regardless.",
        false,
        "",
    ),
    key(
        "STORE_BATCH_MAX",
        Some("256"),
        "",
        "Most inbound messages committed in one database transaction (1 to 1024).",
        false,
        "",
    ),
    key(
        "STORE_BATCH_LINGER_US",
        Some("0"),
        "",
        "Microseconds a commit waits for more messages to join its batch (0 to 1000000).",
        false,
        "",
    ),
    key(
        "SWEEP_INTERVAL_SECS",
        Some("30"),
        "",
        "Seconds between sweeps that pick up unanswered messages (1 to 86400).",
        false,
        "",
    ),
];

/// Looks a key up by its environment variable name.
pub fn key_spec(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// What the docs show in the "default" column for a key.
fn default_text(k: &KeySpec) -> String {
    match k.default {
        Some(d) => format!("`{d}`"),
        None => format!("none: {}", k.when_unset),
    }
}

/// Renders the contents of `.env.example`: a header, then each key preceded by its comment.
///
/// The repository's `.env.example` is exactly this text (a test checks it); regenerate it with
/// `cargo run -p config --example env_example > .env.example`.
pub fn env_example() -> String {
    let mut out = String::from(
        "# Configuration for webhook-server and validate-webhook. Copy to .env and fill in.\n\
         # Precedence, lowest first: defaults < webhook.toml < .env < environment.\n\
         # An empty value means \"not set\": the default (or behaviour) in the comment applies.\n",
    );
    for k in KEYS {
        out.push('\n');
        let default = match k.default {
            Some(d) => format!(" Default: {d}"),
            None => format!(" Unset: {}.", k.when_unset),
        };
        out.push_str(&format!("# {}{}\n", k.description, default));
        out.push_str(&format!("{}={}\n", k.name, k.example));
    }
    out
}

/// Renders the configuration table as Markdown (`| key | meaning | default |`).
pub fn markdown_table() -> String {
    let mut out = String::from("| key | meaning | default |\n|---|---|---|\n");
    for k in KEYS {
        let meaning = k.description.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            k.name,
            meaning,
            default_text(k)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_upper_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KEYS {
            assert!(seen.insert(k.name), "{} listed twice", k.name);
            assert!(
                k.name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{} is not UPPER_SNAKE_CASE",
                k.name
            );
        }
    }

    #[test]
    fn every_key_either_has_a_default_or_says_what_happens_without_one() {
        for k in KEYS {
            assert!(
                k.default.is_some() == k.when_unset.is_empty(),
                "{}: exactly one of default / when_unset",
                k.name
            );
            assert!(
                k.description.ends_with('.'),
                "{}: description is one sentence",
                k.name
            );
        }
    }

    #[test]
    fn secrets_are_never_given_real_looking_examples() {
        for k in KEYS.iter().filter(|k| k.secret) {
            assert!(
                k.example.is_empty() || crate::values::is_placeholder(k.example),
                "{}: example must be empty or a placeholder",
                k.name
            );
        }
    }

    #[test]
    fn crate_docs_show_the_current_table() {
        let docs = include_str!("lib.rs");
        for row in markdown_table().lines() {
            assert!(
                docs.contains(&format!("//! {row}\n")),
                "lib.rs docs lack this row (regenerate with `cargo run -p config --example env_example -- --markdown`):\n{row}"
            );
        }
    }

    #[test]
    fn markdown_table_has_a_row_per_key() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), KEYS.len() + 2);
        assert!(table.contains("| `PORT` | Port to listen on (Render injects PORT). | `5000` |"));
        assert!(table.contains(
            "| `REDIS_URL` | `redis://host:6379` (or `rediss://` for TLS) for the work queue shared by several instances. | none: in-process queue; the database stays the source of truth |"
        ));
    }
}

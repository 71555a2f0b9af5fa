//! Tests for `load`: every key's default and override, every error text, production gating.

use std::collections::BTreeMap;

use crate::{AppEnv, ConfigError, KEYS, LoadOptions, LogFormat, Sender, Settings, load};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
const KEY_SECRET: &str = "abcdefghijABCDEFGHIJ0123456789ab";
const MG: &str = "MG0123456789abcdef0123456789abcdef";
const HOOK: &str = "https://bot.example.com/api/v1/whatsapp/webhook";

fn vars(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_vars(pairs.iter().copied())
}

/// The user-visible lines of the error for `pairs`.
fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
    match vars(pairs) {
        Ok(_) => panic!("expected {pairs:?} to be refused"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

fn one_problem(pairs: &[(&str, &str)]) -> String {
    let mut all = problems(pairs);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

#[test]
fn nothing_set_gives_the_documented_defaults() {
    let s = vars(&[]).unwrap();
    assert_eq!(s, Settings::default());
    assert_eq!(s.app_env, AppEnv::Development);
    assert_eq!(s.account_sid, None);
    assert_eq!(s.auth_token, None);
    assert_eq!(s.api_key_sid, None);
    assert_eq!(s.api_key_secret, None);
    assert_eq!(s.webhook_url, None);
    assert_eq!(s.status_callback_url, None);
    assert_eq!(s.database_url.expose(), "sqlite://data/webhook.db?mode=rwc");
    assert_eq!(s.redis_url, None);
    assert_eq!(s.redis_key_prefix, "whatsapp-webhook");
    assert_eq!(s.host, "0.0.0.0");
    assert_eq!(s.port, 5000);
    assert_eq!(s.sender, None);
    assert_eq!(s.api_base_url, "https://api.twilio.com");
    assert_eq!(s.auto_reply, "Hi {name}! We received your message: {text}");
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.worker_concurrency, 8);
    assert_eq!(s.store_batch_max, 256);
    assert_eq!(s.store_batch_linger_us, 0);
    assert_eq!(s.sweep_interval_secs, 30);
    for k in KEYS {
        let expected = if k.default.is_some() {
            "default"
        } else {
            "not set"
        };
        assert_eq!(s.origin(k.name), expected, "{}", k.name);
    }
}

/// Every key set to a valid non-default value; kept in step with `KEYS` by the first assert.
fn every_key_overridden() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("APP_ENV", "production"),
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        (
            "TWILIO_AUTH_TOKEN_SECONDARY",
            "fedcba9876543210fedcba9876543210",
        ),
        ("TWILIO_WEBHOOK_SHARED_KEY", "shared-key-secret-0123"),
        ("TWILIO_API_KEY_SID", KEY_SID),
        ("TWILIO_API_KEY_SECRET", KEY_SECRET),
        ("WEBHOOK_URL", HOOK),
        (
            "STATUS_CALLBACK_URL",
            "https://bot.example.com/hooks/api/v1/whatsapp/status",
        ),
        ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886"),
        ("TWILIO_MESSAGING_SERVICE_SID", MG),
        (
            "DATABASE_URL",
            "postgres://app:s3cret@db.internal:5432/webhook",
        ),
        ("REDIS_URL", "rediss://:hunter2@red-abc:6380"),
        ("REDIS_KEY_PREFIX", "whatsapp-webhook-staging"),
        ("HOST", "::"),
        ("PORT", "10000"),
        ("TWILIO_API_BASE_URL", "https://api.dublin.ie1.twilio.com/"),
        ("AUTO_REPLY_TEMPLATE", "Thanks {name}"),
        ("LOG_FORMAT", "text"),
        ("WORKER_CONCURRENCY", "16"),
        ("STORE_BATCH_MAX", "512"),
        ("STORE_BATCH_LINGER_US", "250"),
        ("SWEEP_INTERVAL_SECS", "5"),
    ])
}

#[test]
fn every_key_can_be_overridden() {
    let map = every_key_overridden();
    let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    let mut listed: Vec<&str> = map.keys().copied().collect();
    listed.sort_by_key(|k| names.iter().position(|n| n == k));
    assert_eq!(listed, names, "every key of the table is overridden here");

    let s = Settings::from_vars(map.clone()).unwrap();
    assert_eq!(s.app_env, AppEnv::Production);
    assert_eq!(s.account_sid.as_deref(), Some(SID));
    assert_eq!(s.auth_token.as_ref().map(|t| t.expose()), Some(TOKEN));
    assert_eq!(
        s.auth_token_secondary.as_ref().map(|t| t.expose()),
        Some("fedcba9876543210fedcba9876543210")
    );
    assert_eq!(
        s.webhook_shared_key.as_ref().map(|t| t.expose()),
        Some("shared-key-secret-0123")
    );
    assert_eq!(s.api_key_sid.as_deref(), Some(KEY_SID));
    assert_eq!(
        s.api_key_secret.as_ref().map(|t| t.expose()),
        Some(KEY_SECRET)
    );
    assert_eq!(s.webhook_url.as_deref(), Some(HOOK));
    assert_eq!(
        s.status_callback_url.as_deref(),
        Some("https://bot.example.com/hooks/api/v1/whatsapp/status")
    );
    assert_eq!(s.sender, Some(Sender::MessagingService(MG.to_owned())));
    assert_eq!(
        s.database_url.expose(),
        "postgres://app:s3cret@db.internal:5432/webhook"
    );
    assert_eq!(
        s.redis_url.as_ref().map(|r| r.expose()),
        Some("rediss://:hunter2@red-abc:6380")
    );
    assert_eq!(s.redis_key_prefix, "whatsapp-webhook-staging");
    assert_eq!(s.host, "::");
    assert_eq!(s.port, 10000);
    assert_eq!(
        s.api_base_url, "https://api.dublin.ie1.twilio.com",
        "trailing slash removed"
    );
    assert_eq!(s.auto_reply, "Thanks {name}");
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.worker_concurrency, 16);
    assert_eq!(s.store_batch_max, 512);
    assert_eq!(s.store_batch_linger_us, 250);
    assert_eq!(s.sweep_interval_secs, 5);
    for k in KEYS {
        assert_eq!(s.origin(k.name), "environment", "{}", k.name);
    }
}

#[test]
fn whatsapp_from_alone_is_the_sender() {
    let s = vars(&[("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886")]).unwrap();
    assert_eq!(
        s.sender,
        Some(Sender::WhatsAppFrom("whatsapp:+14155238886".into()))
    );
}

#[test]
fn a_bare_number_gets_the_whatsapp_prefix() {
    let s = vars(&[("TWILIO_WHATSAPP_FROM", "+14155238886")]).unwrap();
    assert_eq!(
        s.sender,
        Some(Sender::WhatsAppFrom("whatsapp:+14155238886".into()))
    );
}

#[test]
fn log_format_defaults_to_json_in_production() {
    let s = vars(&[
        ("APP_ENV", "production"),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("WEBHOOK_URL", HOOK),
    ])
    .unwrap();
    assert_eq!(s.log_format, LogFormat::Json);
    let s = vars(&[
        ("APP_ENV", "Production"),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("WEBHOOK_URL", HOOK),
    ])
    .unwrap();
    assert_eq!(s.app_env, AppEnv::Production, "case does not matter");
}

#[test]
fn placeholders_load_in_development() {
    let s = vars(&[
        ("TWILIO_ACCOUNT_SID", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("TWILIO_AUTH_TOKEN", "your_auth_token"),
    ])
    .unwrap();
    assert_eq!(
        s.auth_token.as_ref().map(|t| t.expose()),
        Some("your_auth_token")
    );
}

/// `.env.example`'s Messaging Service placeholder loads in development like the other SIDs
/// (it stopped the server with exit 2), with a finding; production refuses it.
#[test]
fn a_placeholder_messaging_service_is_a_finding_not_a_load_error() {
    let placeholder = (
        "TWILIO_MESSAGING_SERVICE_SID",
        "MGxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    );
    let s = vars(&[placeholder]).expect("loads in development");
    let finding = s
        .findings()
        .into_iter()
        .find(|f| f.key == "TWILIO_MESSAGING_SERVICE_SID")
        .expect("a finding");
    assert_eq!(finding.status, crate::Status::Warning);
    assert!(
        finding.message.contains("cannot be sent"),
        "{}",
        finding.message
    );
    let text = vars(&[("APP_ENV", "production"), placeholder])
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("TWILIO_MESSAGING_SERVICE_SID (environment): still a placeholder"),
        "{text}"
    );
    assert!(
        one_problem(&[(
            "TWILIO_MESSAGING_SERVICE_SID",
            "MGzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
        )])
        .contains("got 34 characters, not all of them hex")
    );
    // Beside a real number the placeholder is ignored: replies go from the number.
    let s = vars(&[
        placeholder,
        ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886"),
    ])
    .unwrap();
    assert_eq!(
        s.sender,
        Some(crate::Sender::WhatsAppFrom(
            "whatsapp:+14155238886".to_owned()
        ))
    );
    // Production refuses it there too, like every placeholder.
    let text = vars(&[
        ("APP_ENV", "production"),
        placeholder,
        ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("TWILIO_MESSAGING_SERVICE_SID")
            && text.contains("still a placeholder: ignored")
            && text.contains("refused with APP_ENV=production"),
        "{text}"
    );
}

#[test]
fn each_bad_value_names_key_source_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "APP_ENV",
            "prod",
            r#"APP_ENV (environment): "prod" is not an environment name; fix: set APP_ENV to development or production"#,
        ),
        (
            "TWILIO_ACCOUNT_SID",
            "AC123",
            r#"TWILIO_ACCOUNT_SID (environment): not an Account SID: expected "AC" followed by 32 hex characters, got 5 characters; fix: copy the Account SID from the Twilio Console home page"#,
        ),
        (
            "TWILIO_ACCOUNT_SID",
            KEY_SID,
            r#"TWILIO_ACCOUNT_SID (environment): not an Account SID: expected "AC" followed by 32 hex characters, got 34 characters; fix: this is an API key SID: move it to TWILIO_API_KEY_SID and set TWILIO_ACCOUNT_SID to the AC… SID"#,
        ),
        (
            "TWILIO_ACCOUNT_SID",
            MG,
            r#"TWILIO_ACCOUNT_SID (environment): not an Account SID: expected "AC" followed by 32 hex characters, got 34 characters; fix: this is a Messaging Service SID: move it to TWILIO_MESSAGING_SERVICE_SID and set TWILIO_ACCOUNT_SID to the AC… SID"#,
        ),
        (
            "TWILIO_ACCOUNT_SID",
            TOKEN,
            r#"TWILIO_ACCOUNT_SID (environment): not an Account SID: expected "AC" followed by 32 hex characters, got 32 characters; fix: this looks like an Auth Token: move it to TWILIO_AUTH_TOKEN and set TWILIO_ACCOUNT_SID to the AC… SID"#,
        ),
        (
            // A SID two characters short is 32 hex characters too: not taken for a token.
            "TWILIO_ACCOUNT_SID",
            "AC0123456789abcdef0123456789abcd",
            r#"TWILIO_ACCOUNT_SID (environment): not an Account SID: expected "AC" followed by 32 hex characters, got 32 characters; fix: copy the Account SID from the Twilio Console home page"#,
        ),
        (
            "TWILIO_AUTH_TOKEN",
            "0123456789abcdef0123456789abcdefg",
            "TWILIO_AUTH_TOKEN (environment): not an Auth Token: expected 32 hex characters, got 33 characters; fix: copy the Auth Token from the Twilio Console home page (Account Info)",
        ),
        (
            "TWILIO_AUTH_TOKEN",
            "0123456789abcdef0123456789abcdeg",
            "TWILIO_AUTH_TOKEN (environment): not an Auth Token: expected 32 hex characters, got 32 characters, not all of them hex; fix: copy the Auth Token from the Twilio Console home page (Account Info)",
        ),
        (
            "WEBHOOK_URL",
            "not a url",
            r#"WEBHOOK_URL (environment): "not a url" is not a URL (relative URL without a base); fix: set it to the public URL configured in Twilio, e.g. https://abc123.ngrok-free.app/api/v1/whatsapp/webhook"#,
        ),
        (
            "WEBHOOK_URL",
            "ftp://x.example/api/v1/whatsapp/webhook",
            r#"WEBHOOK_URL (environment): "ftp://x.example/api/v1/whatsapp/webhook" must start with https:// (got "ftp:"); fix: set it to the public URL configured in Twilio, e.g. https://abc123.ngrok-free.app/api/v1/whatsapp/webhook"#,
        ),
        (
            "WEBHOOK_URL",
            " https://x.example/api/v1/whatsapp/webhook",
            "WEBHOOK_URL (environment): has spaces or line breaks around the value; fix: remove the spaces or line breaks around it",
        ),
        (
            "STATUS_CALLBACK_URL",
            "ws://x.example/s",
            r#"STATUS_CALLBACK_URL (environment): "ws://x.example/s" must start with https:// (got "ws:"); fix: set it to the public URL of /api/v1/whatsapp/status, or leave it unset to derive it from WEBHOOK_URL"#,
        ),
        (
            "DATABASE_URL",
            "mysql://u:pw@h/db",
            r#"DATABASE_URL (environment): unsupported database "mysql"; fix: use postgres://user:PASSWORD@host:5432/db or sqlite://path/to/file.db?mode=rwc"#,
        ),
        (
            "DATABASE_URL",
            "postgres://app:s3cret@db:notaport/x",
            "DATABASE_URL (environment): not a valid PostgreSQL URL (invalid port number); fix: use postgres://user:PASSWORD@host:5432/db and percent-encode special characters in the password",
        ),
        (
            "DATABASE_URL",
            "data/webhook.db",
            "DATABASE_URL (environment): not a URL; fix: use postgres://user:PASSWORD@host:5432/db or sqlite://path/to/file.db?mode=rwc",
        ),
        (
            "REDIS_URL",
            "http://red:6379",
            r#"REDIS_URL (environment): unsupported scheme "http"; fix: use redis://host:6379 (rediss:// for TLS), or leave REDIS_URL unset for the in-process queue"#,
        ),
        (
            "REDIS_URL",
            "red:6379",
            "REDIS_URL (environment): unsupported scheme \"red\"; fix: use redis://host:6379 (rediss:// for TLS), or leave REDIS_URL unset for the in-process queue",
        ),
        (
            "REDIS_KEY_PREFIX",
            "staging prod",
            r#"REDIS_KEY_PREFIX (environment): "staging prod" contains a space or line break; only letters, digits and : _ . - are allowed; fix: use letters, digits and : _ . - only, e.g. whatsapp-webhook-staging, one prefix per deployment sharing the Redis"#,
        ),
        (
            "REDIS_KEY_PREFIX",
            "jobs/staging",
            r#"REDIS_KEY_PREFIX (environment): "jobs/staging" contains '/'; only letters, digits and : _ . - are allowed; fix: use letters, digits and : _ . - only, e.g. whatsapp-webhook-staging, one prefix per deployment sharing the Redis"#,
        ),
        (
            "REDIS_KEY_PREFIX",
            " staging",
            "REDIS_KEY_PREFIX (environment): has spaces or line breaks around the value; fix: remove the spaces or line breaks around it",
        ),
        (
            "HOST",
            "0.0.0.0:5000",
            r#"HOST (environment): "0.0.0.0:5000" is not an IP address or host name; fix: use 0.0.0.0 for all interfaces or 127.0.0.1 for this machine only, and set the port with PORT"#,
        ),
        (
            "PORT",
            "80a",
            r#"PORT (environment): "80a" is not a whole number; fix: set PORT to a whole number from 1 to 65535"#,
        ),
        (
            "PORT",
            "0",
            "PORT (environment): 0 is outside 1 to 65535; fix: set PORT to a whole number from 1 to 65535",
        ),
        (
            "PORT",
            "70000",
            "PORT (environment): 70000 is outside 1 to 65535; fix: set PORT to a whole number from 1 to 65535",
        ),
        (
            "TWILIO_WHATSAPP_FROM",
            "14155238886",
            r#"TWILIO_WHATSAPP_FROM (environment): "14155238886" is not a WhatsApp sender; fix: use whatsapp: followed by the number in E.164 format, e.g. whatsapp:+14155238886"#,
        ),
        (
            "TWILIO_WHATSAPP_FROM",
            "whatsapp:whatsapp:+14155238886",
            "TWILIO_WHATSAPP_FROM (environment): has the whatsapp: prefix twice; fix: use whatsapp: followed by the number in E.164 format, e.g. whatsapp:+14155238886",
        ),
        (
            "TWILIO_WHATSAPP_FROM",
            "+whatsapp:+14155238886",
            "TWILIO_WHATSAPP_FROM (environment): has a + in front of the whatsapp: prefix; fix: use whatsapp: followed by the number in E.164 format, e.g. whatsapp:+14155238886",
        ),
        (
            "TWILIO_MESSAGING_SERVICE_SID",
            "MG1",
            r#"TWILIO_MESSAGING_SERVICE_SID (environment): not a Messaging Service SID: expected "MG" followed by 32 hex characters, got 3 characters; fix: copy the SID from Messaging, Services in the Twilio Console"#,
        ),
        (
            "TWILIO_API_BASE_URL",
            "api.twilio.com",
            r#"TWILIO_API_BASE_URL (environment): "api.twilio.com" is not a URL (relative URL without a base); fix: use https://api.twilio.com or leave TWILIO_API_BASE_URL unset"#,
        ),
        (
            "LOG_FORMAT",
            "yaml",
            r#"LOG_FORMAT (environment): "yaml" is not a log format; fix: set LOG_FORMAT to text or json"#,
        ),
        (
            "WORKER_CONCURRENCY",
            "0",
            "WORKER_CONCURRENCY (environment): 0 is outside 1 to 1024; fix: set WORKER_CONCURRENCY to a whole number from 1 to 1024",
        ),
        (
            "STORE_BATCH_MAX",
            "1025",
            "STORE_BATCH_MAX (environment): 1025 is outside 1 to 1024; fix: set STORE_BATCH_MAX to a whole number from 1 to 1024",
        ),
        (
            "STORE_BATCH_LINGER_US",
            "-5",
            r#"STORE_BATCH_LINGER_US (environment): "-5" is not a whole number; fix: set STORE_BATCH_LINGER_US to a whole number from 0 to 1000000"#,
        ),
        (
            "SWEEP_INTERVAL_SECS",
            "1.5",
            r#"SWEEP_INTERVAL_SECS (environment): "1.5" is not a whole number; fix: set SWEEP_INTERVAL_SECS to a whole number from 1 to 86400"#,
        ),
    ];
    for (key, value, expected) in cases {
        assert_eq!(one_problem(&[(key, value)]), *expected, "{key}={value}");
    }
}

#[test]
fn redis_key_prefix_defaults_overrides_and_refuses_bad_values() {
    // Default, and an empty value is "not set" like for every key.
    for pairs in [&[][..], &[("REDIS_KEY_PREFIX", "")][..]] {
        let s = vars(pairs).unwrap();
        assert_eq!(s.redis_key_prefix, "whatsapp-webhook");
        assert_eq!(s.origin("REDIS_KEY_PREFIX"), "default");
    }
    // Every allowed character class, and exactly 64 characters.
    let longest = "a".repeat(64);
    for ok in [
        "staging",
        "prod:eu-1",
        "whatsapp_webhook.v2",
        "A9",
        longest.as_str(),
    ] {
        let s = vars(&[("REDIS_KEY_PREFIX", ok)]).unwrap();
        assert_eq!(s.redis_key_prefix, ok);
        assert_eq!(s.origin("REDIS_KEY_PREFIX"), "environment");
    }
    assert_eq!(
        one_problem(&[("REDIS_KEY_PREFIX", &"a".repeat(65))]),
        "REDIS_KEY_PREFIX (environment): is 65 characters long; at most 64 are allowed; fix: shorten REDIS_KEY_PREFIX, e.g. whatsapp-webhook-staging"
    );
    for bad in ["a b", "a\tb", "staging{1}", "prod*", "é"] {
        let p = one_problem(&[("REDIS_KEY_PREFIX", bad)]);
        assert!(
            p.starts_with("REDIS_KEY_PREFIX (environment): ")
                && p.contains("only letters, digits and : _ . - are allowed; fix: "),
            "{bad:?}: {p}"
        );
    }
    assert!(super::redis_key_prefix("").is_err(), "never empty");
}

const RENDER: &str = "https://whatsapp-bot.onrender.com";
const RENDER_HOOK: &str = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook";

fn webhook_findings(s: &Settings) -> Vec<(crate::Status, &'static str, String, String)> {
    s.findings()
        .into_iter()
        .filter(|f| f.key == "WEBHOOK_URL")
        .map(|f| (f.status, f.check, f.message, f.source))
        .collect()
}

#[test]
fn without_render_external_url_webhook_url_stays_unset() {
    let s = vars(&[("RENDER_EXTERNAL_URL", "")]).unwrap();
    assert_eq!(s.webhook_url, None);
    assert_eq!(s.origin("WEBHOOK_URL"), "not set");
    assert!(s.redacted_summary().contains(" webhook_url=unset "));
}

#[test]
fn render_external_url_stands_in_for_an_unset_webhook_url() {
    for base in [RENDER, "https://whatsapp-bot.onrender.com/"] {
        let s = vars(&[("RENDER_EXTERNAL_URL", base)]).unwrap();
        assert_eq!(s.webhook_url.as_deref(), Some(RENDER_HOOK), "{base}");
        assert_eq!(s.origin("WEBHOOK_URL"), "RENDER_EXTERNAL_URL (environment)");
        assert_eq!(s.origin("WEBHOOK_URL"), crate::RENDER_ORIGIN);
        assert_eq!(
            webhook_findings(&s),
            [(
                crate::Status::Ok,
                "derived",
                format!(
                    "derived from RENDER_EXTERNAL_URL: {RENDER_HOOK}; make sure the Twilio Console uses exactly this URL"
                ),
                "RENDER_EXTERNAL_URL (environment)".to_owned()
            )]
        );
        assert!(
            s.redacted_summary().contains(&format!(
                " webhook_url={RENDER_HOOK} webhook_url_from=RENDER_EXTERNAL_URL "
            )),
            "{}",
            s.redacted_summary()
        );
        assert_eq!(
            s.status_callback_url().as_deref(),
            Some("https://whatsapp-bot.onrender.com/api/v1/whatsapp/status")
        );
    }
}

#[test]
fn an_explicit_webhook_url_wins_over_render_external_url() {
    let custom = "https://bot.example.com/api/v1/whatsapp/webhook";
    let s = vars(&[("RENDER_EXTERNAL_URL", RENDER), ("WEBHOOK_URL", custom)]).unwrap();
    assert_eq!(s.webhook_url.as_deref(), Some(custom));
    assert_eq!(s.origin("WEBHOOK_URL"), "environment");
    assert_eq!(webhook_findings(&s)[0].1, "ok");
    assert!(!s.redacted_summary().contains("webhook_url_from"));

    // A lower source counts as set too, and RENDER_EXTERNAL_URL is only read from the
    // environment, never from .env.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), format!("WEBHOOK_URL={custom}\n")).unwrap();
    let opts = LoadOptions::new(dir.path()).env_vars([("RENDER_EXTERNAL_URL", RENDER)]);
    let s = load(&opts).unwrap().settings;
    assert_eq!(s.webhook_url.as_deref(), Some(custom));
    assert_eq!(s.origin("WEBHOOK_URL"), ".env line 1");
    std::fs::write(
        dir.path().join(".env"),
        format!("RENDER_EXTERNAL_URL={RENDER}\n"),
    )
    .unwrap();
    let s = load(&LoadOptions::new(dir.path()).env_vars([("PORT", "5000")]))
        .unwrap()
        .settings;
    assert_eq!(s.webhook_url, None, "not taken from .env");
}

#[test]
fn production_accepts_an_https_render_external_url_instead_of_webhook_url() {
    let s = vars(&[
        ("APP_ENV", "production"),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("RENDER_EXTERNAL_URL", RENDER),
    ])
    .unwrap();
    assert_eq!(s.app_env, AppEnv::Production);
    assert_eq!(s.webhook_url.as_deref(), Some(RENDER_HOOK));
    assert_eq!(webhook_findings(&s)[0].0, crate::Status::Ok);

    // Checked like any WEBHOOK_URL, and the refusal says where the value came from.
    assert_eq!(
        problems(&[
            ("APP_ENV", "production"),
            ("TWILIO_AUTH_TOKEN", TOKEN),
            ("RENDER_EXTERNAL_URL", "http://whatsapp-bot.onrender.com"),
        ]),
        [
            "WEBHOOK_URL (RENDER_EXTERNAL_URL (environment)): uses http, not https (refused with APP_ENV=production); fix: use the https:// URL (ngrok and Render both serve https)"
        ]
    );
    assert_eq!(
        one_problem(&[("RENDER_EXTERNAL_URL", "whatsapp-bot.onrender.com")]),
        r#"WEBHOOK_URL (RENDER_EXTERNAL_URL (environment)): "whatsapp-bot.onrender.com/api/v1/whatsapp/webhook" is not a URL (relative URL without a base); fix: set it to the public URL configured in Twilio, e.g. https://abc123.ngrok-free.app/api/v1/whatsapp/webhook"#
    );
}

#[test]
fn api_key_needs_both_halves_of_the_right_shape() {
    assert_eq!(
        one_problem(&[("TWILIO_API_KEY_SID", KEY_SID)]),
        "TWILIO_API_KEY_SECRET: TWILIO_API_KEY_SID is set but TWILIO_API_KEY_SECRET is not; fix: set both TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET, or neither"
    );
    assert_eq!(
        one_problem(&[
            ("TWILIO_API_KEY_SID", "SK12"),
            ("TWILIO_API_KEY_SECRET", KEY_SECRET)
        ]),
        r#"TWILIO_API_KEY_SID (environment): not an API key SID: expected "SK" followed by 32 hex characters, got 4 characters; fix: copy the SID of an API key from the Twilio Console (Account, API keys & tokens)"#
    );
    assert_eq!(
        one_problem(&[
            ("TWILIO_API_KEY_SID", KEY_SID),
            ("TWILIO_API_KEY_SECRET", "short")
        ]),
        "TWILIO_API_KEY_SECRET (environment): not an API key secret: expected 32 letters and digits, got 5 characters; fix: copy the secret shown once when the API key was created, or create a new key"
    );
}

#[test]
fn a_template_longer_than_a_whatsapp_message_is_refused() {
    let long = "x".repeat(1601);
    assert_eq!(
        one_problem(&[("AUTO_REPLY_TEMPLATE", &long)]),
        "AUTO_REPLY_TEMPLATE (environment): is 1601 characters long; a WhatsApp message holds at most 1600; fix: shorten AUTO_REPLY_TEMPLATE"
    );
    let spaced = vars(&[("AUTO_REPLY_TEMPLATE", " Hi {name} ")]).unwrap();
    assert_eq!(
        spaced.auto_reply, " Hi {name} ",
        "spaces are allowed in the template"
    );
}

#[test]
fn all_problems_are_reported_together() {
    let err = vars(&[
        ("PORT", "80a"),
        ("APP_ENV", "prod"),
        ("TWILIO_ACCOUNT_SID", "AC123"),
        ("REDIS_URL", "http://red:6379"),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration (4 problems):\n  \
         APP_ENV (environment): \"prod\" is not an environment name; fix: set APP_ENV to development or production\n  \
         TWILIO_ACCOUNT_SID (environment): not an Account SID: expected \"AC\" followed by 32 hex characters, got 5 characters; fix: copy the Account SID from the Twilio Console home page\n  \
         REDIS_URL (environment): unsupported scheme \"http\"; fix: use redis://host:6379 (rediss:// for TLS), or leave REDIS_URL unset for the in-process queue\n  \
         PORT (environment): \"80a\" is not a whole number; fix: set PORT to a whole number from 1 to 65535"
    );
}

#[test]
fn production_refuses_a_missing_token_and_webhook_url() {
    let err = vars(&[("APP_ENV", "production")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration (2 problems):\n  \
         TWILIO_AUTH_TOKEN: not set: production does not start without the real token; fix: copy the Auth Token from the Twilio Console home page (Account Info)\n  \
         WEBHOOK_URL: not set: production checks signatures against it; fix: set it to the public URL configured in Twilio, ending in /api/v1/whatsapp/webhook"
    );
}

#[test]
fn production_refuses_placeholders_and_unsafe_urls_with_their_sources() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "TWILIO_ACCOUNT_SID=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nTWILIO_AUTH_TOKEN=changeme\nWEBHOOK_URL=http://localhost:5000/api/v1/whatsapp/webhook\n",
    )
    .unwrap();
    let opts = LoadOptions::new(dir.path()).env_vars([
        ("APP_ENV", "production"),
        ("DATABASE_URL", "sqlite::memory:"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:9999"),
    ]);
    let err = load(&opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration (7 problems):\n  \
         TWILIO_ACCOUNT_SID (.env line 1): still a placeholder: replies cannot be sent (refused with APP_ENV=production); fix: copy the Account SID from the Twilio Console home page\n  \
         TWILIO_AUTH_TOKEN (.env line 2): still a placeholder: production does not start without the real token; fix: copy the Auth Token from the Twilio Console home page (Account Info)\n  \
         WEBHOOK_URL (.env line 3): uses http, not https (refused with APP_ENV=production); fix: use the https:// URL (ngrok and Render both serve https)\n  \
         WEBHOOK_URL (.env line 3): points at localhost, which Twilio cannot reach (refused with APP_ENV=production); fix: use the public URL of your tunnel (ngrok) or deployment\n  \
         DATABASE_URL (environment): in-memory SQLite: every message is lost when the process stops (refused with APP_ENV=production); fix: use a file (sqlite://data/webhook.db?mode=rwc) or PostgreSQL\n  \
         TWILIO_API_BASE_URL (environment): uses http: the Auth Token would travel unencrypted (refused with APP_ENV=production); fix: use https://api.twilio.com\n  \
         TWILIO_API_BASE_URL (environment): points at 127.0.0.1, not Twilio: replies go to a test server (refused with APP_ENV=production); fix: leave TWILIO_API_BASE_URL unset to talk to Twilio"
    );
    // The same file starts in development: these are findings there.
    let dev = LoadOptions::new(dir.path()).env_vars([("APP_ENV", "development")]);
    assert!(load(&dev).is_ok());
}

#[test]
fn a_placeholder_shared_key_is_a_warning_in_development_and_refused_in_production() {
    let base = [
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_WEBHOOK_SHARED_KEY", "changeme"),
        ("WEBHOOK_URL", HOOK),
    ];
    let dev = vars(&base).unwrap();
    let f = dev
        .findings()
        .into_iter()
        .find(|f| f.key == "TWILIO_WEBHOOK_SHARED_KEY")
        .expect("a finding for the shared key");
    assert_eq!((f.check, f.status), ("placeholder", crate::Status::Warning));

    let mut prod = base.to_vec();
    prod.push(("APP_ENV", "production"));
    let err = vars(&prod).unwrap_err().to_string();
    assert!(
        err.contains("TWILIO_WEBHOOK_SHARED_KEY (environment): still a placeholder: webhooks signed with a shared key will be refused with 403 (refused with APP_ENV=production)"),
        "{err}"
    );

    // Unset, the key is optional and says nothing; set, it is reported without its value.
    assert!(
        vars(&[("TWILIO_AUTH_TOKEN", TOKEN)])
            .unwrap()
            .findings()
            .iter()
            .all(|f| f.key != "TWILIO_WEBHOOK_SHARED_KEY")
    );
    let set = vars(&[("TWILIO_WEBHOOK_SHARED_KEY", "s3cr3t-shared")]).unwrap();
    let f = set
        .findings()
        .into_iter()
        .find(|f| f.key == "TWILIO_WEBHOOK_SHARED_KEY")
        .unwrap();
    assert_eq!((f.check, f.message.as_str()), ("ok", "set (hidden)"));
}

/// The `(check, status)` of the secondary token's finding for `pairs`.
fn secondary_finding(pairs: &[(&str, &str)]) -> Option<(&'static str, crate::Status, String)> {
    vars(pairs)
        .unwrap()
        .findings()
        .into_iter()
        .find(|f| f.key == "TWILIO_AUTH_TOKEN_SECONDARY")
        .map(|f| (f.check, f.status, f.message))
}

#[test]
fn the_secondary_token_is_checked_against_the_primary() {
    use crate::Status::{Ok, Problem, Warning};
    const SECONDARY: &str = "fedcba9876543210fedcba9876543210";
    let key = "TWILIO_AUTH_TOKEN_SECONDARY";
    assert_eq!(secondary_finding(&[("TWILIO_AUTH_TOKEN", TOKEN)]), None);
    let ok = secondary_finding(&[("TWILIO_AUTH_TOKEN", TOKEN), (key, SECONDARY)]).unwrap();
    assert_eq!((ok.0, ok.1), ("ok", Ok));
    assert!(!ok.2.contains(SECONDARY), "{}", ok.2);
    let same = secondary_finding(&[("TWILIO_AUTH_TOKEN", TOKEN), (key, TOKEN)]).unwrap();
    assert_eq!((same.0, same.1), ("same_as_primary", Warning));
    let alone = secondary_finding(&[(key, SECONDARY)]).unwrap();
    assert_eq!((alone.0, alone.1), ("without_primary", Problem));
    let placeholder =
        secondary_finding(&[("TWILIO_AUTH_TOKEN", TOKEN), (key, "changeme")]).unwrap();
    assert_eq!((placeholder.0, placeholder.1), ("placeholder", Warning));

    // Production refuses a placeholder or a secondary without a primary; a wrong shape is
    // refused everywhere, with a fix that says where the secondary token is.
    let prod = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![("APP_ENV", "production"), ("WEBHOOK_URL", HOOK)];
        v.extend_from_slice(extra);
        vars(&v)
    };
    assert!(prod(&[("TWILIO_AUTH_TOKEN", TOKEN), (key, SECONDARY)]).is_ok());
    let err = prod(&[("TWILIO_AUTH_TOKEN", TOKEN), (key, "changeme")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TWILIO_AUTH_TOKEN_SECONDARY (environment): still a placeholder"),
        "{err}"
    );
    let err = vars(&[(key, "not-a-token")]).unwrap_err().to_string();
    assert!(
        err.contains("not an Auth Token") && err.contains("API keys & tokens"),
        "{err}"
    );
}

#[test]
fn production_accepts_a_safe_configuration_with_sqlite_on_disk() {
    let s = vars(&[
        ("APP_ENV", "production"),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("WEBHOOK_URL", HOOK),
    ])
    .unwrap();
    assert_eq!(s.app_env, AppEnv::Production);
}

#[test]
fn a_bad_value_is_not_reported_twice_in_production() {
    let problems = problems(&[
        ("APP_ENV", "production"),
        ("TWILIO_AUTH_TOKEN", "abc"),
        ("WEBHOOK_URL", HOOK),
    ]);
    assert_eq!(
        problems,
        vec![
            "TWILIO_AUTH_TOKEN (environment): not an Auth Token: expected 32 hex characters, got 3 characters; fix: copy the Auth Token from the Twilio Console home page (Account Info)"
        ]
    );
}

#[test]
fn errors_never_contain_secret_values() {
    let secrets = [
        ("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdeZ"),
        ("TWILIO_API_KEY_SECRET", "tooshort-s3cr3t-value"),
        ("TWILIO_API_KEY_SID", KEY_SID),
        ("DATABASE_URL", "postgres://app:s3cr3tpw@db:notaport/x"),
        ("REDIS_URL", "redis://:s3cr3tred@red:badport"),
    ];
    let text = vars(&secrets).unwrap_err().to_string();
    assert_eq!(text.lines().count(), 5, "{text}");
    for needle in [
        "0123456789abcdef0123456789abcdeZ",
        "s3cr3t",
        "s3cr3tpw",
        "s3cr3tred",
    ] {
        assert!(!text.contains(needle), "{needle} leaked into:\n{text}");
    }
    let text = vars(&[("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef\n")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid configuration (1 problem):\n  TWILIO_AUTH_TOKEN (environment): has spaces or line breaks around the value; fix: remove the spaces or line breaks around the value"
    );
}

/// A password holding an unencoded '#', '/' or '?' (with an '@' of its own) still parses as a
/// URL, to the wrong host, and its tail used to show in every message: such URLs are refused
/// without quoting them, and a WEBHOOK_URL that is refused shows its credentials hidden.
#[test]
fn urls_whose_password_needs_percent_encoding_are_refused_without_showing_it() {
    for (key, value) in [
        ("DATABASE_URL", "postgres://app:p@ss#w0rd@127.0.0.1:5432/db"),
        ("DATABASE_URL", "postgres://app:1234/ss@db.internal/db"),
        ("DATABASE_URL", "postgres://app:12?ss@db.internal/db"),
        ("REDIS_URL", "redis://:r@dis#Pw@127.0.0.1:6379/0"),
        // Without an '@' of its own the password makes a URL that does not parse at all.
        (
            "DATABASE_URL",
            "postgres://postgres:Sup1234/ss@127.0.0.1:5432/db",
        ),
        (
            "DATABASE_URL",
            "postgres://postgres:Sup12?ss@127.0.0.1:5432/db",
        ),
        (
            "DATABASE_URL",
            "postgres://postgres:Sup3r#w0rd@127.0.0.1:5432/db",
        ),
        ("REDIS_URL", "redis://:Sup1234/ss@127.0.0.1:6379"),
    ] {
        let text = one_problem(&[(key, value)]);
        assert!(text.contains("percent-encode"), "{key}={value}: {text}");
        assert!(
            text.contains("unencoded /, ? or #"),
            "{key}={value}: {text}"
        );
        for secret in ["ss#w0rd", "1234/ss", "12?ss", "dis#Pw", "Sup3r#w0rd"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    assert!(vars(&[("DATABASE_URL", "postgres://app:p%40ss%23w0rd@db:5432/db")]).is_ok());
    assert!(one_problem(&[("REDIS_URL", "redis://")]).contains("no host"));
    // The documented `#insecure` of rediss:// is a fragment on purpose.
    assert!(vars(&[("REDIS_URL", "rediss://:pw@cache.example.com:6380#insecure")]).is_ok());
    for key in ["WEBHOOK_URL", "STATUS_CALLBACK_URL"] {
        for value in [
            "https://twilio:BasicPw99@bot.example.org:99999/api/v1/whatsapp/webhook",
            "ftp://twilio:BasicPw99@bot.example.org/api/v1/whatsapp/webhook",
        ] {
            let text = one_problem(&[(key, value)]);
            assert!(!text.contains("BasicPw99"), "{key}: {text}");
            assert!(text.contains("twilio:***@"), "{key}: {text}");
        }
    }
}

#[test]
fn problems_follow_the_key_table_order() {
    let keys: Vec<String> = vars(&[
        ("SWEEP_INTERVAL_SECS", "x"),
        ("TWILIO_MESSAGING_SERVICE_SID", "MG1"),
        ("PORT", "x"),
        ("TWILIO_WHATSAPP_FROM", "x"),
        ("APP_ENV", "x"),
    ])
    .unwrap_err()
    .problems()
    .iter()
    .filter_map(|p| p.key.clone())
    .collect();
    assert_eq!(
        keys,
        [
            "APP_ENV",
            "TWILIO_WHATSAPP_FROM",
            "TWILIO_MESSAGING_SERVICE_SID",
            "PORT",
            "SWEEP_INTERVAL_SECS"
        ]
    );
}

#[test]
fn production_accepts_an_api_key_secret_with_four_x_in_a_row() {
    // API key secrets are 32 random letters and digits; "xXxX" occurs in about one of 30,000.
    let secret = "q7XxXxR2mN8pL4vB6tY1wZ3kJ5hG9fD0";
    let s = vars(&[
        ("APP_ENV", "production"),
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_API_KEY_SID", KEY_SID),
        ("TWILIO_API_KEY_SECRET", secret),
        ("TWILIO_MESSAGING_SERVICE_SID", MG),
        ("WEBHOOK_URL", HOOK),
    ])
    .unwrap();
    assert_eq!(s.api_key_secret.as_ref().map(|k| k.expose()), Some(secret));
    assert!(
        s.findings().iter().all(|f| f.check != "placeholder"),
        "{:?}",
        s.findings()
    );
}

/// A base URL the Twilio client would refuse stops the start with the other problems (exit 2,
/// key, source, fix), instead of starting and failing at the client; its password never shows.
#[test]
fn an_api_base_url_the_client_refuses_is_a_configuration_error() {
    let cases = [
        (
            "https://proxyuser:ProxyPw4242@api.twilio.com",
            "TWILIO_API_BASE_URL (environment): \"https://proxyuser:***@api.twilio.com\" holds a user:password@; Twilio requests authenticate with TWILIO_ACCOUNT_SID and the Auth Token (or an API key), never with this URL; fix: remove the user:password@ part",
        ),
        (
            "http://fake-twilio.internal:8080",
            "TWILIO_API_BASE_URL (environment): \"http://fake-twilio.internal:8080\" uses http on a host that is not this machine: the Auth Token would travel unencrypted, so the Twilio client refuses it (plain http is only for a test server on localhost); fix: use https:// (https://api.twilio.com for Twilio)",
        ),
        (
            "https://api.twilio.com/2010-04-01/",
            "TWILIO_API_BASE_URL (environment): \"https://api.twilio.com/2010-04-01/\" ends in /2010-04-01, which the client appends itself (requests would go to …/2010-04-01/2010-04-01/…); fix: remove /2010-04-01 from the end",
        ),
        (
            "https://api.twilio.com/?region=ie1",
            "TWILIO_API_BASE_URL (environment): \"https://api.twilio.com/?region=ie1\" has a query, a fragment or a space; it must be a bare base URL; fix: use https://api.twilio.com or leave TWILIO_API_BASE_URL unset",
        ),
    ];
    for (value, expected) in cases {
        let all = problems(&[("TWILIO_API_BASE_URL", value), ("PORT", "abc")]);
        assert_eq!(all.len(), 2, "listed with the other problems: {all:#?}");
        assert_eq!(all[1], expected);
        assert!(!all.concat().contains("ProxyPw4242"));
    }
    // What the client accepts loads: https anywhere, http on this machine, a path prefix.
    for (value, stored) in [
        ("https://api.twilio.com/", "https://api.twilio.com"),
        ("http://127.0.0.1:26340", "http://127.0.0.1:26340"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        (
            "https://proxy.corp.example/twilio",
            "https://proxy.corp.example/twilio",
        ),
    ] {
        let s = vars(&[("TWILIO_API_BASE_URL", value)]).unwrap();
        assert_eq!(s.api_base_url, stored);
    }
}

//! Tests for `Settings`: redaction, the summary line, derived URLs.
use super::*;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "fedcba9876543210fedcba9876543210";
const KEY_SECRET: &str = "abcdefghijABCDEFGHIJ0123456789ab";
const SHARED_KEY: &str = "sharedkeysecret-xyz";
const SECONDARY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn full() -> Settings {
    Settings::from_vars([
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_AUTH_TOKEN_SECONDARY", SECONDARY),
        ("TWILIO_WEBHOOK_SHARED_KEY", SHARED_KEY),
        ("TWILIO_API_KEY_SID", "SK0123456789abcdef0123456789abcdef"),
        ("TWILIO_API_KEY_SECRET", KEY_SECRET),
        (
            "WEBHOOK_URL",
            "https://bot.example.com/api/v1/whatsapp/webhook",
        ),
        ("DATABASE_URL", "postgres://app:pgsecret@db:5432/webhook"),
        ("REDIS_URL", "redis://:redissecret@red:6379"),
        (
            "TWILIO_MESSAGING_SERVICE_SID",
            "MG0123456789abcdef0123456789abcdef",
        ),
    ])
    .unwrap()
}

#[test]
fn debug_display_and_serialize_never_show_secrets() {
    let s = full();
    let outputs = [
        format!("{s:?}"),
        format!("{s:#?}"),
        format!("{s}"),
        serde_json::to_string(&s).unwrap(),
        s.redacted_summary(),
    ];
    for out in &outputs {
        for secret in [
            TOKEN,
            KEY_SECRET,
            SHARED_KEY,
            SECONDARY,
            "pgsecret",
            "redissecret",
            SID,
            "MG0123456789",
        ] {
            assert!(!out.contains(secret), "{secret} leaked into {out}");
        }
    }
    assert!(
        outputs[0].starts_with(
            "Settings { account_sid: Some(\"AC01…cdef\"), auth_token: Some([redacted])"
        ),
        "{}",
        outputs[0]
    );
    assert!(outputs[0].contains("database_url: \"postgres://app:***@db:5432/webhook\""));
    assert!(outputs[0].contains("sender: Some(MessagingService(\"MG01…cdef\"))"));
}

#[test]
fn serialized_settings_show_the_redacted_forms() {
    let json: serde_json::Value = serde_json::to_value(full()).unwrap();
    assert_eq!(json["account_sid"], "AC01…cdef");
    assert_eq!(json["auth_token"], "[redacted]");
    assert_eq!(json["api_key_secret"], "[redacted]");
    assert_eq!(json["webhook_shared_key"], "[redacted]");
    assert_eq!(json["auth_token_secondary"], "[redacted]");
    assert_eq!(json["database_url"], "postgres://app:***@db:5432/webhook");
    assert_eq!(json["redis_url"], "redis://:***@red:6379");
    assert_eq!(json["sender"], "MG01…cdef");
    assert_eq!(json["app_env"], "development");
    assert_eq!(json["log_format"], "text");
    assert_eq!(json["port"], 5000);
    assert_eq!(json["redis_key_prefix"], "whatsapp-webhook");
}

#[test]
fn summary_is_one_line_without_secrets() {
    assert_eq!(
        full().redacted_summary(),
        "app_env=development listen=0.0.0.0:5000 webhook_url=https://bot.example.com/api/v1/whatsapp/webhook \
         account_sid=AC01…cdef auth_token=set auth_token_secondary=set api_key=SK01…cdef sender=MG01…cdef \
         database=postgres://app:***@db:5432/webhook queue=redis://:***@red:6379 \
         redis_key_prefix=whatsapp-webhook api_base_url=https://api.twilio.com log_format=text workers=8"
    );
    assert_eq!(
        Settings::default().redacted_summary(),
        "app_env=development listen=0.0.0.0:5000 webhook_url=unset account_sid=unset auth_token=unset \
         sender=dry-run database=sqlite://data/webhook.db?mode=rwc queue=in-process \
         api_base_url=https://api.twilio.com log_format=text workers=8"
    );
    let placeholders = Settings::from_vars([
        ("TWILIO_ACCOUNT_SID", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("TWILIO_AUTH_TOKEN", "your_auth_token"),
    ])
    .unwrap();
    assert!(
        placeholders
            .redacted_summary()
            .contains("account_sid=placeholder auth_token=placeholder")
    );
    assert_eq!(
        format!("{}", Settings::default()),
        Settings::default().redacted_summary()
    );
}

fn status_url(webhook: Option<&str>, explicit: Option<&str>) -> Option<String> {
    let s = Settings {
        webhook_url: webhook.map(str::to_owned),
        status_callback_url: explicit.map(str::to_owned),
        ..Settings::default()
    };
    s.status_callback_url()
}

#[test]
fn status_callback_url_is_explicit_or_derived_from_webhook_url() {
    assert_eq!(status_url(None, None), None);
    assert_eq!(
        status_url(
            Some("https://a.example/api/v1/whatsapp/webhook"),
            Some("https://b.example/s")
        ),
        Some("https://b.example/s".into())
    );
    for (webhook, expected) in [
        (
            "https://a.example/api/v1/whatsapp/webhook",
            "https://a.example/api/v1/whatsapp/status",
        ),
        (
            "https://a.example:8443/api/v1/whatsapp/webhook",
            "https://a.example:8443/api/v1/whatsapp/status",
        ),
        (
            "https://a.example/bot/api/v1/whatsapp/webhook/",
            "https://a.example/bot/api/v1/whatsapp/status",
        ),
        (
            "https://a.example/api/v1/whatsapp/webhook?x=1#rc=3",
            "https://a.example/api/v1/whatsapp/status",
        ),
        (
            "https://a.example/hook",
            "https://a.example/api/v1/whatsapp/status",
        ),
        (
            "http://127.0.0.1:5000/api/v1/whatsapp/webhook",
            "http://127.0.0.1:5000/api/v1/whatsapp/status",
        ),
    ] {
        assert_eq!(
            status_url(Some(webhook), None).as_deref(),
            Some(expected),
            "{webhook}"
        );
    }
}

#[test]
fn listen_addr_brackets_ipv6() {
    let mut s = Settings::default();
    assert_eq!(s.listen_addr(), "0.0.0.0:5000");
    s.host = "::1".into();
    s.port = 8080;
    assert_eq!(s.listen_addr(), "[::1]:8080");
}

#[test]
fn sender_display_masks_service_sids_only() {
    assert_eq!(
        Sender::WhatsAppFrom("whatsapp:+14155238886".into()).to_string(),
        "whatsapp:+14155238886"
    );
    assert_eq!(
        Sender::MessagingService("MG0123456789abcdef0123456789abcdef".into()).to_string(),
        "MG01…cdef"
    );
}

#[test]
fn a_password_in_the_webhook_url_is_never_shown() {
    // Twilio can call a webhook with basic auth taken from the URL: the password is a secret.
    let s = Settings::from_vars([
        (
            "WEBHOOK_URL",
            "https://twilio:hunter2pw@bot.example.com/api/v1/whatsapp/webhook",
        ),
        (
            "STATUS_CALLBACK_URL",
            "https://twilio:statuspw@bot.example.com/api/v1/whatsapp/status",
        ),
    ])
    .unwrap();
    let derived = Settings::from_vars([(
        "WEBHOOK_URL",
        "https://twilio:hunter2pw@bot.example.com/api/v1/whatsapp/webhook",
    )])
    .unwrap();
    let mut outputs = vec![
        format!("{s:?}"),
        format!("{s}"),
        serde_json::to_string(&s).unwrap(),
        s.redacted_summary(),
    ];
    for settings in [&s, &derived] {
        outputs.extend(settings.findings().into_iter().map(|f| f.message));
    }
    for out in &outputs {
        assert!(
            !out.contains("hunter2pw") && !out.contains("statuspw"),
            "{out}"
        );
    }
    assert!(
        s.redacted_summary()
            .contains("webhook_url=https://twilio:***@bot.example.com/api/v1/whatsapp/webhook")
    );
    // The value itself is untouched: it is what Twilio signs.
    assert_eq!(
        s.webhook_url.as_deref(),
        Some("https://twilio:hunter2pw@bot.example.com/api/v1/whatsapp/webhook")
    );
}

//! Tests for `Settings::findings`: every finding, its status in both environments, its text.

use crate::{AppEnv, Settings, Status};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const HOOK: &str = "https://bot.example.com/api/v1/whatsapp/webhook";

fn dev(pairs: &[(&str, &str)]) -> Settings {
    Settings::from_vars(pairs.iter().copied()).unwrap()
}

/// The same settings judged as production (built in development so that loading succeeds).
fn prod(pairs: &[(&str, &str)]) -> Settings {
    let mut s = dev(pairs);
    s.app_env = AppEnv::Production;
    s
}

/// `(status, message, hint)` of every finding about `key`.
fn about(s: &Settings, key: &str) -> Vec<(Status, String, Option<String>)> {
    s.findings()
        .into_iter()
        .filter(|f| f.key == key)
        .map(|f| (f.status, f.message, f.hint))
        .collect()
}

fn ok(message: &str) -> Vec<(Status, String, Option<String>)> {
    vec![(Status::Ok, message.to_owned(), None)]
}

fn one(status: Status, message: &str, hint: &str) -> Vec<(Status, String, Option<String>)> {
    vec![(status, message.to_owned(), Some(hint.to_owned()))]
}

#[test]
fn statuses_are_ordered_so_the_worst_is_the_max() {
    assert!(Status::Ok < Status::Warning && Status::Warning < Status::Problem);
    let worst = dev(&[]).findings().iter().map(|f| f.status).max();
    assert_eq!(worst, Some(Status::Problem), "no token is a problem");
}

#[test]
fn app_env() {
    assert_eq!(about(&dev(&[]), "APP_ENV"), ok("development"));
    assert_eq!(about(&prod(&[]), "APP_ENV"), ok("production"));
}

#[test]
fn account_sid() {
    const HINT: &str = "copy the Account SID from the Twilio Console home page";
    assert_eq!(
        about(&dev(&[("TWILIO_ACCOUNT_SID", SID)]), "TWILIO_ACCOUNT_SID"),
        ok("AC01…cdef")
    );
    let missing = "not set: replies cannot be sent and online checks are skipped";
    assert_eq!(
        about(&dev(&[]), "TWILIO_ACCOUNT_SID"),
        one(Status::Warning, missing, HINT)
    );
    assert_eq!(
        about(&prod(&[]), "TWILIO_ACCOUNT_SID"),
        one(Status::Warning, missing, HINT)
    );
    let placeholder = [("TWILIO_ACCOUNT_SID", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")];
    assert_eq!(
        about(&dev(&placeholder), "TWILIO_ACCOUNT_SID"),
        one(
            Status::Warning,
            "still a placeholder: replies cannot be sent",
            HINT
        )
    );
    assert_eq!(
        about(&prod(&placeholder), "TWILIO_ACCOUNT_SID"),
        one(
            Status::Problem,
            "still a placeholder: replies cannot be sent (refused with APP_ENV=production)",
            HINT
        )
    );
}

#[test]
fn auth_token() {
    const HINT: &str = "copy the Auth Token from the Twilio Console home page (Account Info)";
    assert_eq!(
        about(&dev(&[("TWILIO_AUTH_TOKEN", TOKEN)]), "TWILIO_AUTH_TOKEN"),
        ok("set (hidden)")
    );
    assert_eq!(
        about(&dev(&[]), "TWILIO_AUTH_TOKEN"),
        one(
            Status::Problem,
            "not set: every webhook will be refused with 403",
            HINT
        )
    );
    for placeholder in [
        "your_auth_token",
        "changeme",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ] {
        assert_eq!(
            about(
                &dev(&[("TWILIO_AUTH_TOKEN", placeholder)]),
                "TWILIO_AUTH_TOKEN"
            ),
            one(
                Status::Problem,
                "still a placeholder: every webhook will be refused with 403",
                HINT
            ),
            "{placeholder}"
        );
    }
    // A real shared key still verifies what it signs: not "every webhook".
    assert_eq!(
        about(
            &dev(&[
                ("TWILIO_AUTH_TOKEN", "changeme"),
                ("TWILIO_WEBHOOK_SHARED_KEY", "webhook-rule-shared-secret-1")
            ]),
            "TWILIO_AUTH_TOKEN"
        ),
        one(
            Status::Problem,
            "still a placeholder: webhooks signed with it are refused with 403 (anyone could sign with a placeholder)",
            HINT
        )
    );
}

#[test]
fn a_secondary_token_beside_a_placeholder_primary_is_the_only_key() {
    let secondary = "fedcba9876543210fedcba9876543210";
    assert_eq!(
        about(
            &dev(&[
                ("TWILIO_AUTH_TOKEN", "changeme"),
                ("TWILIO_AUTH_TOKEN_SECONDARY", secondary)
            ]),
            "TWILIO_AUTH_TOKEN_SECONDARY"
        ),
        ok(
            "set (hidden): webhooks signed with it are accepted (TWILIO_AUTH_TOKEN is a placeholder and verifies nothing); REST calls use this one"
        )
    );
    assert_eq!(
        about(
            &dev(&[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TWILIO_AUTH_TOKEN_SECONDARY", secondary)
            ]),
            "TWILIO_AUTH_TOKEN_SECONDARY"
        ),
        ok("set (hidden): webhooks signed with either token are accepted; REST calls use this one")
    );
}

#[test]
fn api_key() {
    const KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
    const SECRET: &str = "abcdefghijABCDEFGHIJ0123456789ab";
    assert_eq!(
        about(&dev(&[]), "TWILIO_API_KEY_SID"),
        vec![],
        "no line without an API key"
    );
    let s = dev(&[
        ("TWILIO_API_KEY_SID", KEY_SID),
        ("TWILIO_API_KEY_SECRET", SECRET),
    ]);
    assert_eq!(
        about(&s, "TWILIO_API_KEY_SID"),
        ok("REST calls authenticate as SK01…cdef")
    );
    let s = prod(&[
        ("TWILIO_API_KEY_SID", KEY_SID),
        ("TWILIO_API_KEY_SECRET", "your_api_secret"),
    ]);
    assert_eq!(
        about(&s, "TWILIO_API_KEY_SECRET"),
        one(
            Status::Problem,
            "still a placeholder: REST calls will be refused (refused with APP_ENV=production)",
            "create an API key in the Twilio Console, or remove TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET"
        )
    );
}

#[test]
fn webhook_url_missing() {
    const HINT: &str =
        "set it to the public URL configured in Twilio, ending in /api/v1/whatsapp/webhook";
    assert_eq!(
        about(&dev(&[]), "WEBHOOK_URL"),
        one(
            Status::Warning,
            "not set: the server rebuilds it from each request's Host header",
            HINT
        )
    );
    assert_eq!(
        about(&prod(&[]), "WEBHOOK_URL"),
        one(
            Status::Problem,
            "not set: production checks signatures against it",
            HINT
        )
    );
}

#[test]
fn webhook_url_fine() {
    assert_eq!(
        about(&dev(&[("WEBHOOK_URL", HOOK)]), "WEBHOOK_URL"),
        ok(HOOK)
    );
    let prefixed = "https://example.com/bot/api/v1/whatsapp/webhook";
    assert_eq!(
        about(&prod(&[("WEBHOOK_URL", prefixed)]), "WEBHOOK_URL"),
        ok(prefixed)
    );
}

#[test]
fn webhook_url_not_https() {
    let url = [(
        "WEBHOOK_URL",
        "http://abc.ngrok-free.app/api/v1/whatsapp/webhook",
    )];
    const HINT: &str = "use the https:// URL (ngrok and Render both serve https)";
    assert_eq!(
        about(&dev(&url), "WEBHOOK_URL"),
        one(Status::Warning, "uses http, not https", HINT)
    );
    assert_eq!(
        about(&prod(&url), "WEBHOOK_URL"),
        one(
            Status::Problem,
            "uses http, not https (refused with APP_ENV=production)",
            HINT
        )
    );
}

#[test]
fn webhook_url_pointing_at_this_machine() {
    const HINT: &str = "use the public URL of your tunnel (ngrok) or deployment";
    for (host, shown) in [
        ("localhost:5000", "localhost"),
        ("127.0.0.1:5000", "127.0.0.1"),
        ("[::1]", "[::1]"),
    ] {
        let url = format!("https://{host}/api/v1/whatsapp/webhook");
        let message = format!("points at {shown}, which Twilio cannot reach");
        assert_eq!(
            about(&dev(&[("WEBHOOK_URL", &url)]), "WEBHOOK_URL"),
            one(Status::Warning, &message, HINT)
        );
        let message = format!("{message} (refused with APP_ENV=production)");
        assert_eq!(
            about(&prod(&[("WEBHOOK_URL", &url)]), "WEBHOOK_URL"),
            one(Status::Problem, &message, HINT)
        );
    }
}

#[test]
fn webhook_url_path_problems_are_warnings_in_both_environments() {
    let cases = [
        (
            "https://x.example.com/webhook",
            "does not end with /api/v1/whatsapp/webhook",
            "append /api/v1/whatsapp/webhook, the path the server listens on",
        ),
        (
            "https://x.example.com/api/v1/whatsapp/webhook/",
            "has a trailing slash: served and verified with or without it (the signature is checked for the URL as Twilio requests it)",
            "nothing breaks; the usual form has no slash, here and in the Twilio Console",
        ),
        (
            "https://x.example.com/api/v1/whatsapp/webhook?tenant=1",
            "has a query string; proxies that reorder it break the signature",
            "remove the ?… part here and in the Twilio Console",
        ),
        (
            "https://x.example.com/api/v1/whatsapp/webhook#rc=3",
            "has a #fragment (Twilio connection overrides): the server accepts signatures with or without it",
            "keep it only if the URL in the Twilio Console ends with the same #…; otherwise remove it",
        ),
    ];
    for (url, message, hint) in cases {
        assert_eq!(
            about(&dev(&[("WEBHOOK_URL", url)]), "WEBHOOK_URL"),
            one(Status::Warning, message, hint),
            "{url}"
        );
        assert_eq!(
            about(&prod(&[("WEBHOOK_URL", url)]), "WEBHOOK_URL"),
            one(Status::Warning, message, hint),
            "{url}"
        );
    }
}

#[test]
fn several_things_wrong_with_one_url_give_one_line_each() {
    let s = dev(&[("WEBHOOK_URL", "http://localhost:5000/")]);
    let messages: Vec<String> = about(&s, "WEBHOOK_URL")
        .into_iter()
        .map(|(_, m, _)| m)
        .collect();
    assert_eq!(
        messages,
        vec![
            "uses http, not https",
            "points at localhost, which Twilio cannot reach",
            "does not end with /api/v1/whatsapp/webhook",
        ]
    );
}

#[test]
fn status_callback_url() {
    assert_eq!(
        about(&dev(&[("WEBHOOK_URL", HOOK)]), "STATUS_CALLBACK_URL"),
        ok("derived from WEBHOOK_URL: https://bot.example.com/api/v1/whatsapp/status")
    );
    assert_eq!(
        about(&dev(&[]), "STATUS_CALLBACK_URL"),
        one(
            Status::Warning,
            "not set and WEBHOOK_URL is missing or invalid: replies get no delivery status callbacks",
            "set WEBHOOK_URL, or STATUS_CALLBACK_URL to the public URL of /api/v1/whatsapp/status"
        )
    );
    let explicit = "https://hooks.example.com/api/v1/whatsapp/status";
    assert_eq!(
        about(
            &dev(&[("STATUS_CALLBACK_URL", explicit)]),
            "STATUS_CALLBACK_URL"
        ),
        ok(explicit)
    );
    assert_eq!(
        about(
            &prod(&[(
                "STATUS_CALLBACK_URL",
                "http://hooks.example.com/api/v1/whatsapp/status"
            )]),
            "STATUS_CALLBACK_URL"
        ),
        one(
            Status::Problem,
            "uses http, not https (refused with APP_ENV=production)",
            "use the https:// URL (ngrok and Render both serve https)"
        )
    );
    assert_eq!(
        about(
            &dev(&[("STATUS_CALLBACK_URL", "https://hooks.example.com/status")]),
            "STATUS_CALLBACK_URL"
        ),
        one(
            Status::Warning,
            "does not end with /api/v1/whatsapp/status",
            "append /api/v1/whatsapp/status, the path the server listens on"
        )
    );
}

#[test]
fn sender() {
    assert_eq!(
        about(&dev(&[]), "TWILIO_WHATSAPP_FROM"),
        one(
            Status::Warning,
            "no sender set: replies are recorded but not sent (dry run)",
            "set TWILIO_WHATSAPP_FROM=whatsapp:+14155238886 (the Sandbox) or TWILIO_MESSAGING_SERVICE_SID"
        )
    );
    assert_eq!(
        about(&prod(&[]), "TWILIO_WHATSAPP_FROM")[0].0,
        Status::Warning,
        "dry run is allowed in production"
    );
    assert_eq!(
        about(
            &dev(&[("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886")]),
            "TWILIO_WHATSAPP_FROM"
        ),
        ok("replies are sent from whatsapp:+14155238886")
    );
    assert_eq!(
        about(
            &dev(&[("TWILIO_WHATSAPP_FROM", "+14155238886")]),
            "TWILIO_WHATSAPP_FROM"
        ),
        one(
            Status::Warning,
            "has no whatsapp: prefix; replies are sent from whatsapp:+14155238886",
            "write it as whatsapp:+E.164 to make that explicit"
        )
    );
    const MG: &str = "MG0123456789abcdef0123456789abcdef";
    assert_eq!(
        about(
            &dev(&[("TWILIO_MESSAGING_SERVICE_SID", MG)]),
            "TWILIO_MESSAGING_SERVICE_SID"
        ),
        ok("replies are sent through Messaging Service MG01…cdef")
    );
    let both = dev(&[
        ("TWILIO_MESSAGING_SERVICE_SID", MG),
        ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886"),
    ]);
    assert_eq!(
        about(&both, "TWILIO_MESSAGING_SERVICE_SID"),
        vec![
            (
                Status::Ok,
                "replies are sent through Messaging Service MG01…cdef".to_owned(),
                None
            ),
            (
                Status::Warning,
                "set together with TWILIO_WHATSAPP_FROM; replies go through the Messaging Service"
                    .to_owned(),
                Some("remove one of the two".to_owned())
            ),
        ]
    );
}

#[test]
fn database() {
    assert_eq!(
        about(&dev(&[]), "DATABASE_URL"),
        ok("sqlite://data/webhook.db?mode=rwc (embedded SQLite)")
    );
    assert_eq!(
        about(&prod(&[]), "DATABASE_URL"),
        one(
            Status::Warning,
            "SQLite in production: the data stays on one instance's disk and cannot be shared",
            "use PostgreSQL (on Render: fromDatabase with property connectionString)"
        )
    );
    let memory = [("DATABASE_URL", "sqlite::memory:")];
    const HINT: &str = "use a file (sqlite://data/webhook.db?mode=rwc) or PostgreSQL";
    assert_eq!(
        about(&dev(&memory), "DATABASE_URL"),
        one(
            Status::Warning,
            "in-memory SQLite: every message is lost when the process stops",
            HINT
        )
    );
    assert_eq!(about(&prod(&memory), "DATABASE_URL")[0].0, Status::Problem);
    assert_eq!(
        about(
            &prod(&[("DATABASE_URL", "postgresql://app:pw@db:5432/webhook")]),
            "DATABASE_URL"
        ),
        ok("postgresql://app:***@db:5432/webhook")
    );
    // Parameters the PostgreSQL client ignores are named (sqlx's own line, with the values, is
    // kept off the logs); their values are not.
    let ignored = about(
        &dev(&[(
            "DATABASE_URL",
            "postgres://app:pw@db/webhook?sslmode=require&sslpassword=SslPw89&token=TokQ1&token=2&application_name=bot",
        )]),
        "DATABASE_URL",
    );
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0].0, Status::Warning);
    assert_eq!(
        ignored[0].1,
        "postgres://app:***@db/webhook?sslmode=require&sslpassword=***&token=***&token=***&application_name=bot: the connection ignores the parameter(s) sslpassword, token"
    );
    assert!(!format!("{ignored:?}").contains("SslPw89"));
    assert_eq!(
        about(
            &prod(&[(
                "DATABASE_URL",
                "postgres://db/webhook?sslmode=verify-full&options=-c%20statement_timeout%3D5s&options[search_path]=app"
            )]),
            "DATABASE_URL"
        )[0]
        .0,
        Status::Ok
    );
}

#[test]
fn redis() {
    assert_eq!(
        about(&dev(&[]), "REDIS_URL"),
        ok("not set: in-process queue, the database stays the source of truth")
    );
    assert_eq!(
        about(
            &dev(&[("REDIS_URL", "redis://default:pw@red-abc:6379")]),
            "REDIS_URL"
        ),
        ok(
            "redis://default:***@red-abc:6379 (keys whatsapp-webhook:jobs and whatsapp-webhook:dead)"
        )
    );
    assert_eq!(
        about(
            &dev(&[
                ("REDIS_URL", "redis://red-abc:6379"),
                ("REDIS_KEY_PREFIX", "staging"),
            ]),
            "REDIS_URL"
        ),
        ok("redis://red-abc:6379 (keys staging:jobs and staging:dead)"),
        "the keys say which deployment's queue this is"
    );
}

#[test]
fn api_base_url() {
    assert_eq!(
        about(&prod(&[]), "TWILIO_API_BASE_URL"),
        ok("https://api.twilio.com")
    );
    let regional = "https://api.dublin.ie1.twilio.com";
    assert_eq!(
        about(
            &prod(&[("TWILIO_API_BASE_URL", regional)]),
            "TWILIO_API_BASE_URL"
        ),
        ok(regional)
    );
    let fake = [("TWILIO_API_BASE_URL", "http://127.0.0.1:4010")];
    let expected = |status, suffix: &str| {
        vec![
            (
                status,
                format!("uses http: the Auth Token would travel unencrypted{suffix}"),
                Some("use https://api.twilio.com".to_owned()),
            ),
            (
                status,
                format!("points at 127.0.0.1, not Twilio: replies go to a test server{suffix}"),
                Some("leave TWILIO_API_BASE_URL unset to talk to Twilio".to_owned()),
            ),
        ]
    };
    assert_eq!(
        about(&dev(&fake), "TWILIO_API_BASE_URL"),
        expected(Status::Warning, "")
    );
    assert_eq!(
        about(&prod(&fake), "TWILIO_API_BASE_URL"),
        expected(Status::Problem, " (refused with APP_ENV=production)")
    );
    // Plain http to another host: twilio-client refuses it, so it is a problem everywhere
    // (loading refuses it; settings built in code get the same verdict here).
    let mut remote = dev(&[]);
    remote.api_base_url = "http://example.com".to_owned();
    assert_eq!(
        about(&remote, "TWILIO_API_BASE_URL")[0],
        (
            Status::Problem,
            "uses http on a host that is not this machine: the Twilio client refuses it (plain http is only for local test servers)".to_owned(),
            Some("use https://api.twilio.com".to_owned()),
        )
    );
}

#[test]
fn listen_address() {
    assert_eq!(
        about(&dev(&[]), "PORT"),
        ok("the server listens on 0.0.0.0:5000 when it runs")
    );
    assert_eq!(
        about(&dev(&[("HOST", "::"), ("PORT", "8080")]), "PORT"),
        ok("the server listens on [::]:8080 when it runs")
    );
    assert_eq!(about(&dev(&[("HOST", "127.0.0.1")]), "HOST"), vec![]);
    assert_eq!(
        about(&prod(&[("HOST", "127.0.0.1")]), "HOST"),
        one(
            Status::Warning,
            "127.0.0.1 accepts connections from this machine only",
            "set HOST=0.0.0.0 unless a proxy on this machine forwards to it"
        )
    );
}

#[test]
fn findings_name_their_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# token\nTWILIO_AUTH_TOKEN=your_auth_token\n",
    )
    .unwrap();
    let opts = crate::LoadOptions::new(dir.path()).env_vars([("PORT", "8080")]);
    let s = crate::load(&opts).unwrap().settings;
    let source = |key: &str| {
        s.findings()
            .into_iter()
            .find(|f| f.key == key)
            .map(|f| f.source)
    };
    assert_eq!(source("TWILIO_AUTH_TOKEN").as_deref(), Some(".env line 2"));
    assert_eq!(source("PORT").as_deref(), Some("environment"));
    assert_eq!(source("WEBHOOK_URL").as_deref(), Some("not set"));
    assert_eq!(source("DATABASE_URL").as_deref(), Some("default"));
}

#[test]
fn variables_named_for_other_apps_are_pointed_at_our_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "TWILIO_SID=AC0123456789abcdef0123456789abcdef\n\
         TWILIO_AUTH_TOKN=0123456789abcdef0123456789abcdef\n\
         TWILIO_PHONE_NUMBER=+14155238886\n\
         DB_URL=postgres://db.internal/app\n\
         RUST_LOG=debug\n\
         OPENAI_API_KEY=sk-other-app\n",
    )
    .unwrap();
    let misnamed = |env: &[(&str, &str)]| -> Vec<(String, String, String)> {
        let opts = crate::LoadOptions::new(dir.path()).env_vars(env.iter().copied());
        crate::load(&opts)
            .unwrap()
            .settings
            .findings()
            .into_iter()
            .filter(|f| f.check == "misnamed")
            .inspect(|f| assert_eq!(f.status, Status::Warning))
            .map(|f| (f.key.to_owned(), f.message, f.hint.unwrap_or_default()))
            .collect()
    };
    let line = |key: &str, message: &str, hint: &str| {
        (key.to_owned(), message.to_owned(), hint.to_owned())
    };
    assert_eq!(
        misnamed(&[
            ("TWILIO_API_KEY", "SK0123456789abcdef0123456789abcdef"),
            ("HOME", "/root")
        ]),
        vec![
            line(
                "TWILIO_ACCOUNT_SID",
                "not set, but .env line 1 sets TWILIO_SID, which this server does not read",
                "rename TWILIO_SID to TWILIO_ACCOUNT_SID"
            ),
            line(
                "TWILIO_AUTH_TOKEN",
                "not set, but .env line 2 sets TWILIO_AUTH_TOKN, which this server does not read",
                "rename TWILIO_AUTH_TOKN to TWILIO_AUTH_TOKEN"
            ),
            line(
                "TWILIO_WHATSAPP_FROM",
                "not set, but .env line 3 sets TWILIO_PHONE_NUMBER, which this server does not read",
                "rename TWILIO_PHONE_NUMBER to TWILIO_WHATSAPP_FROM (the value as whatsapp:+<number>, e.g. whatsapp:+14155238886)"
            ),
            line(
                "DATABASE_URL",
                "left at its default, but .env line 4 sets DB_URL, which this server does not read",
                "rename DB_URL to DATABASE_URL"
            ),
            line(
                "TWILIO_API_KEY_SID",
                "not set, but environment sets TWILIO_API_KEY, which this server does not read",
                "rename TWILIO_API_KEY to TWILIO_API_KEY_SID"
            ),
        ]
    );
    // Once the key is set (or another sender is), its look-alike is someone else's.
    let set = misnamed(&[
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        (
            "TWILIO_MESSAGING_SERVICE_SID",
            "MG0123456789abcdef0123456789abcdef",
        ),
        ("DATABASE_URL", "sqlite://data/x.db?mode=rwc"),
    ]);
    assert_eq!(set, vec![]);
}

#[test]
fn a_look_alike_beside_a_placeholder_is_pointed_at_too() {
    // .env.example's token left in place, the real one under a misspelt name.
    let s = dev(&[
        ("TWILIO_AUTH_TOKEN", "your_auth_token"),
        ("TWILIO_AUTH_TOKN", TOKEN),
    ]);
    let misnamed: Vec<_> = s
        .findings()
        .into_iter()
        .filter(|f| f.check == "misnamed")
        .map(|f| (f.key, f.message))
        .collect();
    assert_eq!(
        misnamed,
        [(
            "TWILIO_AUTH_TOKEN",
            "still a placeholder, but environment sets TWILIO_AUTH_TOKN, which this server does not read".to_owned()
        )]
    );
}

#[test]
fn a_fully_configured_development_setup_is_all_ok() {
    let s = dev(&[
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("WEBHOOK_URL", HOOK),
        ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886"),
    ]);
    let not_ok: Vec<_> = s
        .findings()
        .into_iter()
        .filter(|f| f.status != Status::Ok)
        .collect();
    assert_eq!(not_ok, vec![]);
}

#[test]
fn findings_never_contain_secrets() {
    let s = dev(&[
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_API_KEY_SID", "SK0123456789abcdef0123456789abcdef"),
        ("TWILIO_API_KEY_SECRET", "abcdefghijABCDEFGHIJ0123456789ab"),
        ("DATABASE_URL", "postgres://app:pgsecret@db/x"),
        ("REDIS_URL", "redis://:redissecret@red:6379"),
    ]);
    let text = format!("{:?}", s.findings());
    for secret in [
        TOKEN,
        "abcdefghijABCDEFGHIJ0123456789ab",
        "pgsecret",
        "redissecret",
        SID,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn each_finding_has_a_stable_check_name() {
    let checks = |s: &Settings, key: &str| -> Vec<&'static str> {
        s.findings()
            .into_iter()
            .filter(|f| f.key == key)
            .map(|f| f.check)
            .collect()
    };
    let s = dev(&[
        ("TWILIO_ACCOUNT_SID", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("WEBHOOK_URL", "http://localhost:5000/hook/?a=1#b"),
        ("TWILIO_WHATSAPP_FROM", "+14155238886"),
        (
            "TWILIO_MESSAGING_SERVICE_SID",
            "MG0123456789abcdef0123456789abcdef",
        ),
        ("DATABASE_URL", "sqlite::memory:"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:1"),
    ]);
    assert_eq!(checks(&s, "APP_ENV"), ["ok"]);
    assert_eq!(checks(&s, "TWILIO_ACCOUNT_SID"), ["placeholder"]);
    assert_eq!(checks(&s, "TWILIO_AUTH_TOKEN"), ["missing"]);
    assert_eq!(
        checks(&s, "WEBHOOK_URL"),
        [
            "not_https",
            "unreachable_host",
            "query_string",
            "fragment",
            "wrong_path"
        ]
    );
    assert_eq!(checks(&s, "STATUS_CALLBACK_URL"), ["derived"]);
    assert_eq!(checks(&s, "TWILIO_WHATSAPP_FROM"), ["bare_number"]);
    assert_eq!(
        checks(&s, "TWILIO_MESSAGING_SERVICE_SID"),
        ["ok", "both_senders"]
    );
    assert_eq!(checks(&s, "DATABASE_URL"), ["in_memory"]);
    assert_eq!(
        checks(&s, "TWILIO_API_BASE_URL"),
        ["not_https", "not_twilio"]
    );
    assert_eq!(checks(&dev(&[]), "TWILIO_WHATSAPP_FROM"), ["missing"]);
    assert_eq!(checks(&dev(&[]), "STATUS_CALLBACK_URL"), ["missing"]);
    assert_eq!(checks(&prod(&[]), "DATABASE_URL"), ["sqlite_in_production"]);
    assert_eq!(
        checks(
            &dev(&[("WEBHOOK_URL", "https://x.example/api/v1/whatsapp/webhook/")]),
            "WEBHOOK_URL"
        ),
        ["trailing_slash"]
    );
}

#[test]
fn findings_serialize_for_scripts() {
    let s = dev(&[("WEBHOOK_URL", "http://x.example/api/v1/whatsapp/webhook")]);
    let f = s
        .findings()
        .into_iter()
        .find(|f| f.key == "WEBHOOK_URL")
        .unwrap();
    assert_eq!(
        serde_json::to_value(&f).unwrap(),
        serde_json::json!({
            "key": "WEBHOOK_URL",
            "check": "not_https",
            "status": "warning",
            "message": "uses http, not https",
            "hint": "use the https:// URL (ngrok and Render both serve https)",
            "source": "environment",
        })
    );
}

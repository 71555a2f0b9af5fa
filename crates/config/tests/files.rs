//! Loading from real files in a temporary directory: precedence, provenance, explicit paths.

use config::{LoadOptions, load};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn environment_beats_dotenv_beats_toml_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("webhook.toml"),
        "# lower-case keys\nport = 6000\nworker_concurrency = 2\nwebhook_url = \"https://toml.example/api/v1/whatsapp/webhook\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "PORT=7000\nWEBHOOK_URL=https://dotenv.example/api/v1/whatsapp/webhook\n",
    )
    .unwrap();
    let opts =
        LoadOptions::new(dir.path()).env_vars([("PORT", "8000"), ("TWILIO_AUTH_TOKEN", TOKEN)]);
    let loaded = load(&opts).unwrap();
    let s = &loaded.settings;
    assert_eq!(loaded.sources, ["webhook.toml", ".env"]);
    assert_eq!((s.port, s.origin("PORT")), (8000, "environment"));
    assert_eq!(
        (s.webhook_url.as_deref(), s.origin("WEBHOOK_URL")),
        (
            Some("https://dotenv.example/api/v1/whatsapp/webhook"),
            ".env line 2"
        )
    );
    assert_eq!(
        (s.worker_concurrency, s.origin("WORKER_CONCURRENCY")),
        (2, "webhook.toml line 3")
    );
    assert_eq!(
        (s.sweep_interval_secs, s.origin("SWEEP_INTERVAL_SECS")),
        (30, "default")
    );
}

#[test]
fn explicit_paths_replace_the_files_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "PORT=1111\n").unwrap();
    std::fs::write(dir.path().join("webhook.toml"), "host = \"127.0.0.1\"\n").unwrap();
    std::fs::write(dir.path().join("staging.env"), "\n\nPORT=2222\n").unwrap();
    std::fs::write(dir.path().join("staging.toml"), "host = \"::\"\n").unwrap();
    let opts = LoadOptions::new(dir.path())
        .env_file("staging.env")
        .config_file("staging.toml")
        .env_vars([("X", "y")]);
    let loaded = load(&opts).unwrap();
    assert_eq!(loaded.sources, ["staging.toml", "staging.env"]);
    assert_eq!(
        (loaded.settings.port, loaded.settings.origin("PORT")),
        (2222, "staging.env line 3")
    );
    assert_eq!(loaded.settings.host, "::");
}

#[test]
fn a_missing_env_file_that_was_asked_for_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions::new(dir.path())
        .env_file("prod.env")
        .env_vars([("X", "y")]);
    let err = load(&opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid configuration (1 problem):\n  prod.env: file not found; fix: create the file or give the path of an existing one (relative paths start at {})",
            dir.path().display()
        )
    );
}

/// `--env-file /dev/null` (no settings at all) and `--env-file <(op inject …)` (a pipe) are
/// files to read, not "file not found".
#[test]
fn an_env_file_that_is_not_a_regular_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(
        &LoadOptions::new(dir.path())
            .env_file("/dev/null")
            .env_vars([("X", "y")]),
    )
    .unwrap();
    assert_eq!(loaded.settings.port, 5000);
}

/// A quoted value may span lines; a line inside it that looks like `KEY=` is part of the
/// value, not a second assignment ("set 2 times" before).
#[test]
fn a_multi_line_value_is_not_mistaken_for_assignments() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "AUTO_REPLY_TEMPLATE=\"Thanks!\nPORT=is not config \\\" still inside\nbye\"\nPORT=19720\n",
    )
    .unwrap();
    let loaded = load(&LoadOptions::new(dir.path()).env_vars([("X", "y")])).unwrap();
    assert_eq!(loaded.settings.port, 19720);
    assert!(loaded.settings.auto_reply.contains("PORT=is not config"));
}

#[test]
fn no_files_at_all_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&LoadOptions::new(dir.path()).env_vars([("X", "y")])).unwrap();
    assert!(loaded.sources.is_empty());
    assert_eq!(loaded.settings.port, 5000);
}

#[test]
fn file_and_value_problems_are_reported_together_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("webhook.toml"), "prot = 5000\n").unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# Twilio\nTWILIO_ACCOUNT_SID=AC123\nPORT=http\nAPP_ENV=staging\n",
    )
    .unwrap();
    let err =
        load(&LoadOptions::new(dir.path()).env_vars([("WORKER_CONCURRENCY", "0")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration (5 problems):\n  \
         prot (webhook.toml line 1): unknown setting; fix: remove it, or use a key from .env.example in lower case (e.g. webhook_url)\n  \
         APP_ENV (.env line 4): \"staging\" is not an environment name; fix: set APP_ENV to development or production\n  \
         TWILIO_ACCOUNT_SID (.env line 2): not an Account SID: expected \"AC\" followed by 32 hex characters, got 5 characters; fix: copy the Account SID from the Twilio Console home page\n  \
         PORT (.env line 3): \"http\" is not a whole number; fix: set PORT to a whole number from 1 to 65535\n  \
         WORKER_CONCURRENCY (environment): 0 is outside 1 to 1024; fix: set WORKER_CONCURRENCY to a whole number from 1 to 1024"
    );
}

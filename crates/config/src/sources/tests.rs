//! Tests for reading and layering sources: precedence, provenance, file problems.
use super::*;

fn gather_in(dir: &Path, env: &[(&str, &str)]) -> Gathered {
    gather(&LoadOptions::new(dir).env_vars(env.iter().copied()))
}

/// Writes `file` with `text` in a fresh directory and gathers from it: every problem as
/// displayed, and the gathered values.
fn problems_of(file: &str, text: &str) -> (Vec<String>, Gathered) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), text).unwrap();
    let g = gather_in(dir.path(), &[]);
    (g.problems.iter().map(ToString::to_string).collect(), g)
}

fn origin(g: &Gathered, key: &str) -> Option<(String, String)> {
    g.values
        .get(key)
        .map(|r| (r.value.clone(), r.origin.clone()))
}

fn pair(v: &str, o: &str) -> Option<(String, String)> {
    Some((v.to_owned(), o.to_owned()))
}

#[test]
fn precedence_default_then_toml_then_dotenv_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("webhook.toml"),
        "port = 6000\nhost = \"127.0.0.1\"\nworker_concurrency = 2\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".env"), "# comment\nPORT=7000\nHOST=::1\n").unwrap();
    let g = gather_in(dir.path(), &[("PORT", "8000")]);
    assert!(g.problems.is_empty(), "{:?}", g.problems);
    assert_eq!(origin(&g, "PORT"), pair("8000", "environment"));
    assert_eq!(origin(&g, "HOST"), pair("::1", ".env line 3"));
    assert_eq!(
        origin(&g, "WORKER_CONCURRENCY"),
        pair("2", "webhook.toml line 3")
    );
    assert_eq!(origin(&g, "SWEEP_INTERVAL_SECS"), pair("30", "default"));
    assert_eq!(origin(&g, "WEBHOOK_URL"), None);
    assert_eq!(g.files, vec!["webhook.toml".to_owned(), ".env".to_owned()]);
    // What each winner overrides, lowest first; a default is not "overridden".
    assert_eq!(
        g.values["PORT"].shadowed,
        ["webhook.toml line 1", ".env line 2"]
    );
    assert_eq!(g.values["HOST"].shadowed, ["webhook.toml line 2"]);
    assert!(g.values["WORKER_CONCURRENCY"].shadowed.is_empty());
}

#[test]
fn empty_values_do_not_hide_lower_layers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("webhook.toml"), "port = 6000\n").unwrap();
    std::fs::write(dir.path().join(".env"), "PORT=\n").unwrap();
    let g = gather_in(dir.path(), &[("PORT", "")]);
    assert_eq!(origin(&g, "PORT"), pair("6000", "webhook.toml line 1"));
}

#[test]
fn only_known_keys_are_read_and_unknown_dotenv_keys_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "RUST_LOG=debug\nexport PORT=7000\n",
    )
    .unwrap();
    let g = gather_in(dir.path(), &[("HOME", "/root")]);
    assert!(g.problems.is_empty(), "{:?}", g.problems);
    assert_eq!(origin(&g, "PORT"), pair("7000", ".env line 2"));
    assert!(!g.values.contains_key("RUST_LOG"));
}

#[test]
fn quoted_dotenv_values_and_inline_comments() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "AUTO_REPLY_TEMPLATE='Hello {name} #1'\nHOST=127.0.0.1 # local only\n",
    )
    .unwrap();
    let g = gather_in(dir.path(), &[]);
    assert_eq!(
        origin(&g, "AUTO_REPLY_TEMPLATE"),
        pair("Hello {name} #1", ".env line 1")
    );
    assert_eq!(origin(&g, "HOST"), pair("127.0.0.1", ".env line 2"));
}

#[test]
fn explicit_files_must_exist_and_keep_the_given_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/prod.env"), "PORT=9000\n").unwrap();
    std::fs::write(dir.path().join(".env"), "PORT=1\n").unwrap();
    let g = gather(
        &LoadOptions::new(dir.path())
            .env_file("conf/prod.env")
            .env_vars([("A", "b")]),
    );
    assert_eq!(origin(&g, "PORT"), pair("9000", "conf/prod.env line 1"));

    let g = gather(
        &LoadOptions::new(dir.path())
            .env_file("missing.env")
            .config_file("missing.toml")
            .env_vars([("A", "b")]),
    );
    let shown: Vec<String> = g.problems.iter().map(ToString::to_string).collect();
    let cwd = dir.path().display();
    assert_eq!(
        shown,
        vec![
            format!(
                "missing.toml: file not found; fix: create the file or give the path of an existing one (relative paths start at {cwd})"
            ),
            format!(
                "missing.env: file not found; fix: create the file or give the path of an existing one (relative paths start at {cwd})"
            ),
        ]
    );
}

#[test]
fn an_env_file_that_is_a_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let g = gather(&LoadOptions::new(dir.path()).env_file("conf"));
    let shown: Vec<String> = g.problems.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with("conf: is a directory, not a file; fix: "),
        "{shown:?}"
    );
}

#[test]
fn toml_problems_name_the_line() {
    let (shown, _) = problems_of(
        "webhook.toml",
        "port = 6000\nwebhok_url = \"https://x\"\nPORT = 7000\nhost = [1]\n",
    );
    assert_eq!(
        shown,
        vec![
            "webhok_url (webhook.toml line 2): unknown setting; fix: remove it, or use a key from .env.example in lower case (e.g. webhook_url)",
            "PORT (webhook.toml line 3): set twice (lines 1 and 3); fix: keep only one of the two lines",
            "HOST (webhook.toml line 4): expected a string or a number; fix: write it as host = \"value\"",
        ]
    );
}

#[test]
fn toml_syntax_errors_name_the_line_but_not_the_content() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("webhook.toml"),
        "port = 6000\ntwilio_auth_token = abc123secret\n",
    )
    .unwrap();
    let g = gather_in(dir.path(), &[]);
    assert_eq!(g.problems.len(), 1);
    let p = &g.problems[0];
    assert_eq!(p.source, "webhook.toml line 2");
    assert!(!p.to_string().contains("abc123secret"), "{p}");

    // A parser message of several lines is one line here (the CLI prints one per check).
    std::fs::write(dir.path().join("webhook.toml"), "port = \n").unwrap();
    let g = gather_in(dir.path(), &[]);
    let shown = g.problems[0].to_string();
    assert!(!shown.contains('\n'), "{shown:?}");
    assert!(
        shown.starts_with("webhook.toml line 1: invalid TOML: "),
        "{shown:?}"
    );
}

#[test]
fn duplicate_dotenv_keys_are_a_problem() {
    let (shown, _) = problems_of(".env", "PORT=1\nHOST=::\nPORT=2\n");
    assert_eq!(
        shown,
        vec!["PORT (.env): set 2 times (lines 1, 3); fix: keep only one of the lines"]
    );
}

#[test]
fn unparsable_dotenv_lines_name_the_line_but_not_the_content() {
    let (shown, g) = problems_of(".env", "PORT=1\nTWILIO_AUTH_TOKEN s3cr3t\nHOST=::\n");
    assert_eq!(
        shown,
        vec![
            ".env line 2: cannot parse this line; fix: write KEY=value and put values with spaces, quotes or # in single quotes"
        ]
    );
    assert_eq!(origin(&g, "HOST"), pair("::", ".env line 3"));
}

#[test]
fn unparsable_quotes_say_what_is_wrong_on_which_line() {
    let (shown, _) = problems_of(
        ".env",
        "PORT=1\nKEY=\"a\\qb\"\nDATABASE_URL='s3cr3t-unterminated\n",
    );
    assert_eq!(
        shown,
        vec![
            ".env line 2: cannot parse this line: a backslash in double quotes that .env does not know; fix: use single quotes for values with backslashes, e.g. KEY='a\\b'",
            ".env line 3: cannot parse this line: a quote is not closed; fix: close the quote on the same line, e.g. KEY='value'",
        ]
    );
    assert!(shown.iter().all(|s| !s.contains("s3cr3t")));
}

#[test]
fn look_alike_names_point_at_the_key_they_were_meant_for() {
    use super::meant;
    // Names from other apps and tutorials, anywhere.
    assert_eq!(
        meant("TWILIO_PHONE_NUMBER", false),
        Some("TWILIO_WHATSAPP_FROM")
    );
    assert_eq!(meant("DB_URL", false), Some("DATABASE_URL"));
    // Our keys in lower case.
    assert_eq!(meant("twilio_auth_token", false), Some("TWILIO_AUTH_TOKEN"));
    // Typos: of TWILIO_ names everywhere, of other keys in .env only.
    assert_eq!(meant("TWILIO_AUTH_TOKN", false), Some("TWILIO_AUTH_TOKEN"));
    assert_eq!(
        meant("TWILO_ACCOUNT_SID", false),
        Some("TWILIO_ACCOUNT_SID")
    );
    assert_eq!(meant("REDIS_URI", true), Some("REDIS_URL"));
    assert_eq!(meant("REDIS_URI", false), None);
    // Our own keys, short keys' neighbours, other programs' settings: nothing.
    assert_eq!(meant("TWILIO_AUTH_TOKEN", true), None);
    assert_eq!(meant("HOME", true), None);
    assert_eq!(meant("NGROK_AUTHTOKEN", true), None);
    assert_eq!(meant("RUST_LOG", true), None);
    assert_eq!(meant("TWILIO_CONVERSATIONS_SERVICE_SID", false), None);
}

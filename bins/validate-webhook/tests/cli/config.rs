//! Configuration and WEBHOOK_URL lines: the seed's "placeholder token" and "wrong URL" flows.

use crate::support::{NGROK_WEBHOOK, Project, dotenv};

#[test]
fn placeholder_token_is_an_error_with_its_fix() {
    let p = Project::new(
        "TWILIO_ACCOUNT_SID=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nTWILIO_AUTH_TOKEN=your_auth_token\n",
    );
    let run = p.run(&[]);
    run.lines_pair(
        "  ❌ TWILIO_AUTH_TOKEN: still a placeholder: every webhook will be refused with 403 (.env line 2)",
        "     Fix: Copy the Auth Token from the Twilio Console home page (Account Info).",
    );
    run.lines_pair(
        "  ⚠️ TWILIO_ACCOUNT_SID: still a placeholder: replies cannot be sent (.env line 1)",
        "     Note: Copy the Account SID from the Twilio Console home page.",
    );
    assert_eq!(run.code, 1);
}

#[test]
fn the_env_file_that_was_read_is_named() {
    let p = Project::new(&dotenv(""));
    let run = p.run(&[]);
    run.line(&format!(
        "  ✅ env file: read {}",
        p.path().join(".env").display()
    ));

    let other = p.path().join("staging.env");
    std::fs::write(&other, dotenv("PORT=5050\n")).expect("write");
    let run = p.run(&["--env-file", "staging.env"]);
    run.line(&format!("  ✅ env file: read {}", other.display()));
}

#[test]
fn a_missing_env_file_given_explicitly_is_a_usage_error() {
    let p = Project::new("");
    let run = p.run(&["--env-file", "nope.env"]);
    run.line("  ❌ nope.env: file not found");
    assert_eq!(run.code, 2, "a path on the command line that names no file");
    let json = p.run(&["--env-file", "nope.env", "--json"]);
    assert_eq!(json.code, 2);
    let doc = json.json();
    assert_eq!(
        (
            doc["checks"][0]["name"].as_str(),
            doc["checks"][0]["detail"].as_str()
        ),
        (Some("nope.env"), Some("file not found")),
        "{doc}"
    );
}

#[test]
fn no_env_file_in_development_is_a_warning() {
    let p = Project::new("");
    std::fs::remove_file(p.path().join(".env")).expect("rm");
    let run = p.run(&[]);
    run.lines_pair(
        &format!(
            "  ⚠️ env file: no .env in {}; using the process environment only",
            p.path().display()
        ),
        "     Note: Copy .env.example to .env and fill it in, or pass --env-file PATH.",
    );
}

#[test]
fn no_env_file_stays_a_warning_when_another_value_is_wrong() {
    let p = Project::new("");
    std::fs::remove_file(p.path().join(".env")).expect("rm");
    let dir = p.path().display().to_string();
    let run = p.env("PORT", "80a").run(&[]);
    run.line(&format!(
        "  ⚠️ env file: no .env in {dir}; using the process environment only"
    ));
}

#[test]
fn missing_webhook_url_is_an_error() {
    // DESIGN.md's diagnosis flows: "WEBHOOK_URL missing". The server copes in development;
    // this tool has nothing to check ngrok, the Console and the signature against.
    let run = Project::new(&dotenv("")).run(&[]);
    run.lines_pair(
        "  ❌ WEBHOOK_URL: not set: there is no URL to check against ngrok, the Twilio Console and the signature (the server would rebuild it from each request's Host header)",
        "     Fix: Set it to the public URL configured in Twilio, ending in /api/v1/whatsapp/webhook.",
    );
    assert_eq!(run.code, 1);
}

#[test]
fn a_url_twilio_cannot_reach_is_an_error_online_only() {
    // Offline, http://127.0.0.1 is how `simulate` tests a local server; --online asks whether
    // Twilio reaches WEBHOOK_URL, and it does not reach this machine's loopback.
    let port = crate::support::closed_port();
    let p = Project::new(&dotenv(&format!(
        "WEBHOOK_URL=http://127.0.0.1:{port}/api/v1/whatsapp/webhook\nTWILIO_API_BASE_URL=http://127.0.0.1:{}\n",
        crate::support::closed_port()
    )));
    let offline = p.run(&[]);
    offline.line("  ⚠️ WEBHOOK_URL: uses http, not https (.env line 3)");
    offline.line("  ⚠️ WEBHOOK_URL: points at 127.0.0.1, which Twilio cannot reach (.env line 3)");
    offline.line_starting("  ⚠️ agent: not running; WEBHOOK_URL points at this machine");
    let online = p.run(&["--online"]);
    online.lines_pair(
        "  ❌ WEBHOOK_URL: uses http, not https (.env line 3)",
        "     Fix: Use the https:// URL (ngrok and Render both serve https).",
    );
    online.line("  ❌ WEBHOOK_URL: points at 127.0.0.1, which Twilio cannot reach (.env line 3)");
    online.line_starting("  ❌ agent: not running; WEBHOOK_URL points at this machine");
    assert_eq!(online.code, 1);
}

#[test]
fn plain_http_public_url_is_an_error() {
    let run = Project::new(&dotenv(
        "WEBHOOK_URL=http://3f2a-203-0-113-7.ngrok-free.app/api/v1/whatsapp/webhook\n",
    ))
    .run(&[]);
    run.lines_pair(
        "  ❌ WEBHOOK_URL: uses http, not https (.env line 3)",
        "     Fix: Use the https:// URL (ngrok and Render both serve https).",
    );
    assert_eq!(run.code, 1);
}

#[test]
fn plain_http_localhost_is_only_a_warning() {
    let run = Project::new(&dotenv(
        "WEBHOOK_URL=http://localhost:5000/api/v1/whatsapp/webhook\n",
    ))
    .run(&[]);
    run.line("  ⚠️ WEBHOOK_URL: uses http, not https (.env line 3)");
}

#[test]
fn wrong_path_is_an_error() {
    let run = Project::new(&dotenv(
        "WEBHOOK_URL=https://3f2a-203-0-113-7.ngrok-free.app/webhook\n",
    ))
    .run(&[]);
    run.lines_pair(
        "  ❌ WEBHOOK_URL: does not end with /api/v1/whatsapp/webhook (.env line 3)",
        "     Fix: Append /api/v1/whatsapp/webhook, the path the server listens on.",
    );
    assert_eq!(run.code, 1);
}

#[test]
fn trailing_slash_is_a_warning() {
    let run = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}/\n"))).run(&[]);
    run.lines_pair(
        "  ⚠️ WEBHOOK_URL: has a trailing slash: served and verified with or without it (the signature is checked for the URL as Twilio requests it) (.env line 3)",
        "     Note: Nothing breaks; the usual form has no slash, here and in the Twilio Console.",
    );
}

#[test]
fn a_good_url_is_shown_under_its_own_heading() {
    let run = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n"))).run(&[]);
    assert_eq!(
        run.line("Webhook URL"),
        format!("  ✅ WEBHOOK_URL: {NGROK_WEBHOOK}")
    );
}

#[test]
fn production_refusals_are_listed_and_the_other_checks_still_run() {
    let p = Project::new(
        "APP_ENV=production\nTWILIO_AUTH_TOKEN=changeme\nWEBHOOK_URL=http://example.com/api/v1/whatsapp/webhook\n",
    );
    let run = p.run(&[]);
    let errors: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("  ❌"))
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l.starts_with("  ❌ TWILIO_AUTH_TOKEN:")),
        "{}",
        run.stdout
    );
    assert!(
        errors.iter().any(|l| l.starts_with("  ❌ WEBHOOK_URL:")),
        "{}",
        run.stdout
    );
    // Lenient reload: the backend check still reports.
    run.line(&format!(
        "  ⚠️ port: nothing is listening on 127.0.0.1:{}",
        p.port()
    ));
    assert_eq!(run.code, 1);
}

#[test]
fn on_render_the_lenient_reload_keeps_the_webhook_url_derived_from_render_external_url() {
    // A production refusal (placeholder token) makes the CLI reload the values leniently; the
    // WEBHOOK_URL Render's RENDER_EXTERNAL_URL gives must survive that reload.
    let p = Project::new("APP_ENV=production\nTWILIO_AUTH_TOKEN=changeme\n")
        .env("RENDER_EXTERNAL_URL", "https://whatsapp-bot.onrender.com");
    let run = p.run(&[]);
    run.line(
        "  ✅ agent: not running, and not needed: WEBHOOK_URL points at whatsapp-bot.onrender.com",
    );
    assert!(
        run.lines()
            .iter()
            .any(|l| l.starts_with("  ❌ TWILIO_AUTH_TOKEN:")),
        "{}",
        run.stdout
    );
}

#[test]
fn a_key_production_requires_says_not_set_once() {
    let run = Project::new("APP_ENV=production\n").run(&[]);
    run.line("  ❌ TWILIO_AUTH_TOKEN: not set: production does not start without the real token");
    run.line("  ❌ WEBHOOK_URL: not set: production checks signatures against it");
    // A value that is set still names where it came from.
    let run = Project::new("APP_ENV=production\nTWILIO_AUTH_TOKEN=changeme\n").run(&[]);
    assert!(
        run.lines()
            .iter()
            .any(|l| l.starts_with("  ❌ TWILIO_AUTH_TOKEN: ") && l.ends_with("(.env line 2)")),
        "{}",
        run.stdout
    );
}

#[test]
fn two_values_that_do_not_parse_are_named_in_the_plural() {
    let p = Project::new(&dotenv("DATABASE_URL=sqlite://data/bot.db?mode=rwc\n"))
        .env("PORT", "80a")
        .env("WEBHOOK_URL", "not a url");
    let run = p.run(&[]);
    let skipped: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.contains(" and ") && l.starts_with("  ⚠️ skipped: "))
        .collect();
    assert!(!skipped.is_empty(), "{}", run.stdout);
    for line in skipped {
        assert!(line.ends_with(" are wrong (see ❌ above)"), "{line}");
    }
}

#[test]
fn a_value_that_does_not_parse_skips_only_the_checks_that_read_it() {
    let p =
        Project::new(&dotenv("DATABASE_URL=sqlite://data/bot.db?mode=rwc\n")).env("PORT", "80a");
    let run = p.run(&[]);
    let line = run.line_starting("  ❌ PORT: ");
    assert!(line.ends_with("(environment)"), "{line}");
    // ngrok (forwarding port) and the backend read PORT: skipped, not checked on 5000.
    run.lines_pair(
        "  ⚠️ skipped: PORT is wrong (see ❌ above)",
        "     Note: Fix that value, then run validate-webhook again.",
    );
    assert_eq!(
        run.lines()
            .iter()
            .filter(|l| l.starts_with("  ⚠️ skipped: PORT is wrong"))
            .count(),
        2,
        "{}",
        run.stdout
    );
    run.no_line_starting("  ⚠️ port:");
    // The database does not: it is still checked, with the configured file.
    assert!(
        run.lines()
            .iter()
            .any(|l| l.contains(" sqlite: ") && l.contains("data/bot.db")),
        "{}",
        run.stdout
    );
    run.no_line_starting("  ⚠️ other checks:");
    assert_eq!(run.code, 1);
}

#[test]
fn a_wrong_database_url_is_not_replaced_by_the_default_database() {
    let p = Project::new(&dotenv("DATABASE_URL=mysql://db.example.com/bot\n"));
    let run = p.run(&[]);
    assert!(
        run.lines()
            .iter()
            .any(|l| l.starts_with("  ❌ DATABASE_URL:")),
        "{}",
        run.stdout
    );
    run.line("  ⚠️ skipped: DATABASE_URL is wrong (see ❌ above)");
    run.no_line_starting("  ✅ sqlite:");
    run.no_line_starting("  ❌ sqlite:");
}

#[test]
fn a_line_that_cannot_be_parsed_still_skips_every_other_check() {
    // The unreadable line could have set any key: checking defaults would mislead.
    let p = Project::new(&dotenv("DATABASE_URL='sqlite://unterminated\n"));
    let run = p.run(&[]);
    run.lines_pair(
        "  ⚠️ other checks: skipped: the configuration does not load",
        "     Note: Fix the ❌ lines, then run validate-webhook again.",
    );
    assert_eq!(run.code, 1);
}

#[test]
fn a_password_in_webhook_url_is_never_printed() {
    // Twilio can call a webhook with basic auth taken from its URL: the password is a secret,
    // whichever check prints the URL (configuration, ngrok, Twilio, probe), in text and JSON.
    let tunnel = Project::new(&dotenv(
        "WEBHOOK_URL=https://twilio:s3cretPW@abc.ngrok-free.app/api/v1/whatsapp/webhook\n",
    ));
    let server = crate::support::webhook_server(crate::support::TOKEN, |port| {
        format!("http://twilio:s3cretPW@127.0.0.1:{port}/api/v1/whatsapp/webhook")
    });
    let local = Project::new(&dotenv(&format!(
        "WEBHOOK_URL=http://twilio:s3cretPW@127.0.0.1:{}/api/v1/whatsapp/webhook\n\
         TWILIO_API_BASE_URL=http://127.0.0.1:{}\n",
        server.port,
        crate::support::closed_port()
    )));
    for (p, args) in [
        (&tunnel, &[][..]),
        (&tunnel, &["--json"][..]),
        (&local, &["--online"][..]),
        (&local, &["--online", "--json"][..]),
    ] {
        let run = p.run(args);
        assert!(!run.stdout.contains("s3cretPW"), "{}", run.stdout);
        assert!(!run.stderr.contains("s3cretPW"), "{}", run.stderr);
        assert!(run.stdout.contains("twilio:***@"), "{}", run.stdout);
    }
}

#[test]
fn a_password_in_a_url_query_is_never_printed() {
    // libpq takes `?password=`; the line naming the unreachable database quotes the URL.
    let p = Project::new(&dotenv(&format!(
        "DATABASE_URL=postgres://postgres@127.0.0.1:{}/db?password=S3cr3tPw&sslmode=disable\n\
         REDIS_URL=redis://127.0.0.1:{}/0?password=redispw9\n",
        crate::support::closed_port(),
        crate::support::closed_port()
    )));
    for args in [&[][..], &["--json"][..]] {
        let run = p.run(args);
        for secret in ["S3cr3tPw", "redispw9"] {
            assert!(!run.stdout.contains(secret), "{secret} in {}", run.stdout);
            assert!(!run.stderr.contains(secret), "{secret} in {}", run.stderr);
        }
        assert!(run.stdout.contains("password=***"), "{}", run.stdout);
    }
}

//! Output contract: the JSON schema, exit codes 0/1/2, colour only when allowed.

use test_support::FakeNgrok;

use crate::support::{NGROK_URL, NGROK_WEBHOOK, Project, TinyServer, dotenv};

/// A setup where nothing is ❌: real-looking credentials, ngrok tunnel matching WEBHOOK_URL
/// and forwarding to PORT, a server answering /healthz, SQLite's directory present.
fn healthy() -> (Project, TinyServer, FakeNgrok) {
    let server = TinyServer::start(|_| (200, vec![], "ok".to_owned()));
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, &format!("http://localhost:{}", server.port));
    let p = Project::new(&dotenv(&format!(
        "WEBHOOK_URL={NGROK_WEBHOOK}\nTWILIO_WHATSAPP_FROM=whatsapp:+14155238886\n"
    )))
    .env("PORT", server.port.to_string())
    .env("NGROK_API_URL", ngrok.base_url());
    (p, server, ngrok)
}

#[test]
fn exit_code_is_0_without_errors() {
    let (p, _server, _ngrok) = healthy();
    let run = p.run(&[]);
    run.no_line_starting("  ❌");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.lines()
            .last()
            .is_some_and(|l| l.starts_with("Summary: ") && l.ends_with(", 0 errors.")),
        "{}",
        run.stdout
    );
    assert_eq!(p.run(&["check"]).code, 0);
}

#[test]
fn exit_code_is_1_with_an_error() {
    let run = Project::new(
        "TWILIO_AUTH_TOKEN=your_auth_token\nWEBHOOK_URL=https://bot.example.com/api/v1/whatsapp/webhook\n",
    )
    .run(&[]);
    assert_eq!(run.code, 1);
    assert!(
        run.lines()
            .last()
            .is_some_and(|l| l.ends_with(", 1 error.")),
        "{}",
        run.stdout
    );
}

#[test]
fn usage_errors_exit_2() {
    let p = Project::new("");
    for args in [
        &["--bogus"][..],
        &["--timeout", "0"],
        &["--timeout", "soon"],
        &["send-test"],
        &["send-test", "--to", "+15551234567"],
        &["frobnicate"],
        &["simulate", "--url", "notaurl"],
        &["simulate", "--url", "ftp://x/y"],
        // --online is check's: before another subcommand it would be silently ignored.
        &["--online", "simulate"],
        &["--online", "send-test", "--to", "whatsapp:+15551234567"],
    ] {
        let run = p.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.is_empty(), "{args:?} printed a report");
    }
    assert_eq!(p.run(&["--help"]).code, 0);
}

#[test]
fn usage_errors_with_json_still_print_a_json_document() {
    let p = Project::new("");
    let run = p.run(&["--json", "--timeout", "soon"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(
        (v["command"].as_str(), v["status"].as_str()),
        (Some("check"), Some("error"))
    );
    let check = &v["checks"][0];
    assert_eq!(check["section"], "usage");
    assert!(
        check["detail"].as_str().is_some_and(|d| d.contains("soon")),
        "clap's message names the bad value: {check}"
    );
    assert!(run.stderr.contains("soon"), "clap's text stays on stderr");
    let run = p.run(&["send-test", "--json"]);
    assert_eq!(run.code, 2);
    let v = run.json();
    assert_eq!(v["command"], "send-test");
    let detail = v["checks"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("the following required arguments were not provided:")
            && detail.contains("--to"),
        "the detail names the missing argument: {detail}"
    );
}

#[test]
fn json_follows_the_documented_schema() {
    let p = Project::new("TWILIO_AUTH_TOKEN=your_auth_token\nWEBHOOK_URL=http://example.com/x\n");
    let run = p.run(&["--json"]);
    assert_eq!(run.code, 1);
    let v = run.json();
    assert_eq!(v["version"], 1);
    assert_eq!(v["command"], "check");
    assert_eq!(v["status"], "error");
    let checks = v["checks"].as_array().expect("checks array");
    let count = |s: &str| checks.iter().filter(|c| c["status"] == s).count();
    assert_eq!(v["summary"]["ok"], count("ok"));
    assert_eq!(v["summary"]["warnings"], count("warning"));
    assert_eq!(v["summary"]["errors"], count("error"));
    for c in checks {
        let keys: Vec<&str> = c
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["detail", "hint", "name", "section", "status"], "{c}");
        assert!(["ok", "warning", "error"].contains(&c["status"].as_str().expect("status")));
        assert!(c["hint"].is_null() || c["hint"].is_string());
        if c["status"] == "error" {
            assert!(c["hint"].is_string(), "every error has a fix: {c}");
        }
    }
    let token = checks
        .iter()
        .find(|c| c["name"] == "TWILIO_AUTH_TOKEN")
        .expect("token check");
    assert_eq!(token["section"], "config");
    assert_eq!(token["status"], "error");
    assert_eq!(
        token["detail"],
        "still a placeholder: every webhook will be refused with 403 (.env line 1)"
    );
    let url = checks
        .iter()
        .find(|c| c["name"] == "WEBHOOK_URL")
        .expect("url check");
    assert_eq!(url["section"], "webhook_url");
    let sections: Vec<&str> = v["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        sections,
        [
            "config",
            "webhook_url",
            "ngrok",
            "backend",
            "database",
            "redis"
        ]
    );
    assert_eq!(v["sections"][0]["status"], "error");
    // checks[] is in display order: each section's checks together, sections in their order.
    let mut order: Vec<&str> = checks
        .iter()
        .map(|c| c["section"].as_str().expect("section"))
        .collect();
    order.dedup();
    assert_eq!(order, sections, "checks grouped by section");
    assert!(!run.stdout.contains('\u{1b}'));
}

#[test]
fn json_of_a_healthy_setup_has_status_ok_or_warning_and_exit_0() {
    let (p, _server, _ngrok) = healthy();
    let run = p.run(&["--json"]);
    assert_eq!(run.code, 0);
    assert_ne!(run.json()["status"], "error");
    assert_eq!(run.json()["summary"]["errors"], 0);
}

#[test]
fn colour_only_when_allowed() {
    let p = Project::new("TWILIO_AUTH_TOKEN=your_auth_token\n");
    // Piped stdout (not a terminal): no escape codes.
    assert!(!p.run(&[]).stdout.contains('\u{1b}'));
    // Forced colour proves the printer does colour...
    let p = p.env("CLICOLOR_FORCE", "1");
    assert!(p.run(&[]).stdout.contains("\u{1b}["));
    // ...and NO_COLOR wins over everything.
    let p = p.env("NO_COLOR", "1");
    assert!(!p.run(&[]).stdout.contains('\u{1b}'));
}

#[test]
fn every_error_line_is_followed_by_its_fix() {
    let run = Project::new("TWILIO_AUTH_TOKEN=your_auth_token\nWEBHOOK_URL=http://example.com/x\nDATABASE_URL=postgres://127.0.0.1:1/x\n").run(&[]);
    let lines = run.lines();
    let mut errors = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("  ❌") {
            errors += 1;
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|n| n.starts_with("     Fix: ") && n.ends_with('.')),
                "{l}\n{}",
                run.stdout
            );
        }
    }
    assert!(errors >= 3, "{}", run.stdout);
}

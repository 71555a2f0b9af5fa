//! `simulate` and `send-test`.

use test_support::FakeTwilio;

use crate::support::{NGROK_WEBHOOK, Project, TOKEN, TinyServer, dotenv, webhook_server};

/// A server that validates against the public WEBHOOK_URL, as webhook-server does.
fn public_url_server() -> TinyServer {
    webhook_server(TOKEN, |_| NGROK_WEBHOOK.to_owned())
}

#[test]
fn simulate_posts_a_signed_sample_to_the_local_server_and_explains_the_answer() {
    let server = public_url_server();
    let port = server.port;
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")))
        .env("PORT", port.to_string());
    let run = p.run(&["simulate"]);
    let local = format!("http://127.0.0.1:{port}/api/v1/whatsapp/webhook");
    let request = run.line_starting("  ✅ request: ");
    assert!(
        request.starts_with(&format!(
            "  ✅ request: POST {local} signed for {NGROK_WEBHOOK}: MessageSid SM"
        )),
        "{request}"
    );
    assert!(request.ends_with(", From whatsapp:+15551234567, ValidateWebhookProbe=1 so the server records it without replying"), "{request}");
    run.line(&format!("  ✅ answer: {local} answered 200: the signature was accepted and the message recorded (it is marked as a test, so nobody gets a reply); body: <?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"));
    assert_eq!(run.code, 0, "{}", run.stdout);
    let post = server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("posted");
    assert_eq!(
        post.form("Body").as_deref(),
        Some("Hello, I need help with my order #1234")
    );
    assert_eq!(post.form("ValidateWebhookProbe").as_deref(), Some("1"));
    // Only the simulation is printed, not the whole check.
    run.no_line_starting("ngrok");
}

#[test]
fn simulate_to_a_given_url_with_another_fixture() {
    let server = public_url_server();
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let url = server.url("/api/v1/whatsapp/webhook");
    let run = p.run(&[
        "simulate",
        "--url",
        &url,
        "--fixture",
        "inbound-whatsapp-media.form",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let v = run.json();
    assert_eq!(v["command"], "simulate");
    assert_eq!(v["checks"][1]["name"], "answer");
    assert_eq!(v["checks"][1]["status"], "ok");
    let post = server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("posted");
    assert!(post.form("MessageSid").expect("sid").starts_with("MM"));
    assert_eq!(post.form("NumMedia").as_deref(), Some("1"));
}

#[test]
fn simulate_against_a_server_signing_for_another_url_gets_403() {
    let server = webhook_server(TOKEN, |_| {
        "https://other.example/api/v1/whatsapp/webhook".to_owned()
    });
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")))
        .env("PORT", server.port.to_string());
    let run = p.run(&["simulate"]);
    run.line(&format!("  ❌ answer: http://127.0.0.1:{}/api/v1/whatsapp/webhook refused a correctly signed request (403); body: invalid signature", server.port));
    assert_eq!(run.code, 1);
}

#[test]
fn simulate_without_a_server_says_to_start_it() {
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let port = p.port();
    let run = p.run(&["simulate"]);
    run.lines_pair(
        &format!("  ❌ answer: cannot connect to http://127.0.0.1:{port}/api/v1/whatsapp/webhook: connection refused"),
        &format!("     Fix: Start webhook-server (`cargo run --release -p webhook-server`) so it listens on PORT {port}."),
    );
    // Aimed elsewhere with --url: the fix names that port, not PORT.
    let other = crate::support::closed_port();
    let url = format!("http://127.0.0.1:{other}/api/v1/whatsapp/webhook");
    let run = p.run(&["simulate", "--url", &url]);
    run.lines_pair(
        &format!("  ❌ answer: cannot connect to {url}: connection refused"),
        &format!("     Fix: Start webhook-server (`cargo run --release -p webhook-server`) so it listens on PORT {other}."),
    );
}

#[test]
fn simulate_without_webhook_url_signs_for_the_local_url_and_passes() {
    // docs/setup.md "Without a phone": only TWILIO_AUTH_TOKEN set. `check` calls a missing
    // WEBHOOK_URL ❌; `simulate` does not need one.
    let server = webhook_server(TOKEN, |port| {
        format!("http://127.0.0.1:{port}/api/v1/whatsapp/webhook")
    });
    let p = Project::new(&dotenv("")).env("PORT", server.port.to_string());
    let run = p.run(&["simulate"]);
    run.no_line_starting("  ❌");
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.line_starting("  ✅ answer: ");
}

#[test]
fn simulate_with_an_unknown_fixture() {
    let run = Project::new(&dotenv("")).run(&["simulate", "--fixture", "nope"]);
    run.lines_pair(
        "  ❌ fixture: nope is neither a built-in sample nor a readable file",
        "     Fix: Use one of inbound-whatsapp-text.form, inbound-whatsapp-media.form, inbound-whatsapp-button.form, inbound-whatsapp-location.form, inbound-whatsapp-emoji.form, inbound-whatsapp-long.form or the path of an urlencoded form body.",
    );
}

#[test]
fn send_test_sends_through_twilio_with_the_configured_sender() {
    let twilio = FakeTwilio::start_blocking();
    let p = Project::new(&dotenv(&format!(
        "TWILIO_API_BASE_URL={}\nTWILIO_WHATSAPP_FROM=whatsapp:+14155238886\nWEBHOOK_URL={NGROK_WEBHOOK}\n",
        twilio.base_url()
    )));
    let run = p.run(&[
        "send-test",
        "--to",
        "whatsapp:+15551234567",
        "--body",
        "hello from the test",
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let sent = twilio.sent_messages();
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.form_value("To"), Some("whatsapp:+15551234567"));
    assert_eq!(m.form_value("From"), Some("whatsapp:+14155238886"));
    assert_eq!(m.form_value("Body"), Some("hello from the test"));
    assert_eq!(
        m.form_value("StatusCallback"),
        Some("https://3f2a-203-0-113-7.ngrok-free.app/api/v1/whatsapp/status")
    );
    let line = run.line_starting("  ✅ message: Twilio accepted ");
    assert!(
        line.ends_with(" to whatsapp:+15551234567 (status queued)"),
        "{line}"
    );
}

#[test]
fn send_test_reports_twilio_errors_with_their_hint() {
    let twilio = FakeTwilio::start_blocking();
    twilio.fail_next(1, 400, "error-21211.json");
    let p = Project::new(&dotenv(&format!(
        "TWILIO_API_BASE_URL={}\nTWILIO_WHATSAPP_FROM=whatsapp:+14155238886\n",
        twilio.base_url()
    )));
    let run = p.run(&["send-test", "--to", "whatsapp:+15551234567"]);
    run.lines_pair(
        "  ❌ message: Twilio did not send it: The 'To' number whatsapp:+1555NOTANUMBER is not a valid phone number. (HTTP 400, code 21211)",
        "     Fix: The 'To' number is invalid: use E.164 with the whatsapp: prefix, e.g. whatsapp:+15551234567.",
    );
    assert_eq!(run.code, 1);
}

#[test]
fn send_test_without_a_sender() {
    let twilio = FakeTwilio::start_blocking();
    let p = Project::new(&dotenv(&format!(
        "TWILIO_API_BASE_URL={}\n",
        twilio.base_url()
    )));
    let run = p.run(&["send-test", "--to", "whatsapp:+15551234567"]);
    run.lines_pair(
        "  ❌ sender: no sender configured, so there is nothing to send from",
        "     Fix: Set TWILIO_WHATSAPP_FROM=whatsapp:+14155238886 (the Sandbox) or TWILIO_MESSAGING_SERVICE_SID.",
    );
    assert!(twilio.sent_messages().is_empty());
}

#[test]
fn simulate_with_a_wrong_value_posts_nothing() {
    // A broken key would otherwise be replaced by its default (here: WEBHOOK_URL unset, so the
    // sample would be signed for a URL the user did not configure).
    let server = public_url_server();
    let p = Project::new(&dotenv("WEBHOOK_URL=ftp://bot.example.com/hook\n"))
        .env("PORT", server.port.to_string());
    let run = p.run(&["simulate"]);
    run.line("  ⚠️ other checks: skipped: the configuration does not load");
    assert!(
        server.requests().iter().all(|r| r.method != "POST"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 1);
}

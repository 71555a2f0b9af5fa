//! `--online` against FakeTwilio and local stand-ins for the server: credentials, account,
//! the webhook URL Twilio has, and the signed / tampered probe.

use test_support::{FakeTwilio, fixture};

use crate::support::{
    ACCOUNT, Project, Run, TOKEN, TinyServer, closed_port, dotenv, webhook_server,
};

const NUMBER: &str = "+14155550100";
const SERVICE: &str = "MG0d4f8b2e6a1c9e3f7b5d1a8c4e2f6b9d";
const RENDER_URL: &str = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook";

/// A project talking to `twilio`, with WEBHOOK_URL on 127.0.0.1 so the probe stays local.
fn project(twilio: &FakeTwilio, webhook: &str, extra: &str) -> Project {
    Project::new(&dotenv(&format!(
        "TWILIO_API_BASE_URL={}\nWEBHOOK_URL={webhook}\n{extra}",
        twilio.base_url()
    )))
}

/// FakeTwilio whose number +14155550100 sends inbound messages to `sms_url`.
fn twilio_with_number_url(sms_url: &str) -> FakeTwilio {
    let twilio = FakeTwilio::start_blocking();
    let body = fixture("incoming-phone-numbers.json").replace(RENDER_URL, sms_url);
    twilio.set_fixture("incoming-phone-numbers.json", &body);
    twilio
}

fn local_server() -> TinyServer {
    webhook_server(TOKEN, |port| {
        format!("http://127.0.0.1:{port}/api/v1/whatsapp/webhook")
    })
}

/// Runs `check --online` against `twilio` with a local webhook server as WEBHOOK_URL and
/// `extra` settings; returns the run and that WEBHOOK_URL.
fn run_online(twilio: &FakeTwilio, extra: &str) -> (Run, String) {
    let server = local_server();
    let url = server.url("/api/v1/whatsapp/webhook");
    let run = project(twilio, &url, extra).run(&["--online"]);
    (run, url)
}

#[test]
fn accepted_credentials_active_account_and_sandbox_note() {
    let twilio = FakeTwilio::start_blocking();
    let server = local_server();
    let p = project(
        &twilio,
        &server.url("/api/v1/whatsapp/webhook"),
        "TWILIO_WHATSAPP_FROM=whatsapp:+14155238886\n",
    );
    let run = p.run(&["--online"]);
    run.line("Twilio (online)");
    run.line("  ✅ credentials: Twilio accepted the Auth Token for account AC3f…5c7e");
    run.line("  ✅ account: account AC3f…5c7e is active (Full)");
    run.lines_pair(
        "  ⚠️ webhook: the WhatsApp Sandbox's \"When a message comes in\" URL cannot be read through Twilio's API",
        // WEBHOOK_URL here is the local server's, which Twilio cannot call: not copied there.
        &format!("     Note: Check it in the Twilio Console: Messaging › Try it out › Send a WhatsApp message › Sandbox settings; it must be the public https URL Twilio calls (ending in /api/v1/whatsapp/webhook) with method POST: fix WEBHOOK_URL first ({} cannot be it, see its line above), then set the same URL there.", server.url("/api/v1/whatsapp/webhook")),
    );
    let auth = twilio.requests()[0].basic_auth().expect("basic auth");
    assert_eq!(auth, (ACCOUNT.to_owned(), TOKEN.to_owned()));
}

#[test]
fn rejected_credentials_are_an_error_with_the_fix() {
    let twilio = FakeTwilio::start_blocking();
    twilio.fail_next(1, 401, "error-20003.json");
    let server = local_server();
    let run = project(&twilio, &server.url("/api/v1/whatsapp/webhook"), "").run(&["--online"]);
    run.lines_pair(
        "  ❌ credentials: Twilio rejected the credentials for AC3f…5c7e: Authenticate: Your AccountSid or AuthToken was incorrect. (HTTP 401, code 20003)",
        "     Fix: Copy the Account SID and Auth Token again from the Twilio Console home page (Account Info); rotating the token invalidates the old one.",
    );
    run.no_line_starting("  ✅ account:");
    assert_eq!(run.code, 1);
    assert!(!run.stdout.contains(TOKEN));
}

#[test]
fn number_webhook_matching_webhook_url_is_ok() {
    let server = local_server();
    let url = server.url("/api/v1/whatsapp/webhook");
    let twilio = twilio_with_number_url(&url);
    let run = project(
        &twilio,
        &url,
        &format!("TWILIO_WHATSAPP_FROM=whatsapp:{NUMBER}\n"),
    )
    .run(&["--online"]);
    run.line(&format!("  ✅ webhook: Twilio sends inbound messages for the number {NUMBER} to WEBHOOK_URL with POST"));
    let lookup = twilio
        .requests()
        .into_iter()
        .find(|r| r.query_value("PhoneNumber").is_some())
        .expect("number lookup");
    assert_eq!(lookup.query_value("PhoneNumber"), Some(NUMBER));
}

#[test]
fn number_webhook_elsewhere_names_both_urls() {
    let twilio = FakeTwilio::start_blocking();
    let (run, url) = run_online(
        &twilio,
        &format!("TWILIO_WHATSAPP_FROM=whatsapp:{NUMBER}\n"),
    );
    run.lines_pair(
        &format!("  ❌ webhook: Twilio sends inbound messages for the number {NUMBER} to {RENDER_URL}, but WEBHOOK_URL is {url}"),
        // WEBHOOK_URL is local here (the probe stays on this machine), so the fix does not send
        // it to the Console.
        &format!("     Fix: Fix WEBHOOK_URL first: it must be the public https URL Twilio calls (see its line above). If {RENDER_URL} is that URL, set WEBHOOK_URL to it; otherwise set the fixed URL (HTTP POST) in the Twilio Console (Phone Numbers › Manage › Active numbers › {NUMBER} › Messaging, \"A message comes in\")."),
    );
    assert_eq!(run.code, 1);
}

/// The WhatsApp sender of `fixtures/whatsapp-senders.json` (not a phone number of the account).
const SENDER_NUMBER: &str = "+14155550123";

#[test]
fn whatsapp_sender_webhook_elsewhere_names_both_urls() {
    let twilio = FakeTwilio::start_blocking();
    let (run, url) = run_online(
        &twilio,
        &format!("TWILIO_WHATSAPP_FROM=whatsapp:{SENDER_NUMBER}\n"),
    );
    run.lines_pair(
        &format!("  ❌ webhook: Twilio sends inbound messages for the WhatsApp sender {SENDER_NUMBER} to {RENDER_URL}, but WEBHOOK_URL is {url}"),
        &format!("     Fix: Fix WEBHOOK_URL first: it must be the public https URL Twilio calls (see its line above). If {RENDER_URL} is that URL, set WEBHOOK_URL to it; otherwise set the fixed URL (HTTP POST) in the Twilio Console (Messaging › Senders › WhatsApp senders › {SENDER_NUMBER}, \"Webhook URL for incoming messages\")."),
    );
    assert_eq!(run.code, 1);
    let listing = twilio
        .requests()
        .into_iter()
        .find(|r| r.path == "/v2/Channels/Senders")
        .expect("senders listed");
    assert_eq!(listing.query_value("Channel"), Some("whatsapp"));
}

#[test]
fn whatsapp_sender_webhook_matching_webhook_url_is_ok() {
    let server = local_server();
    let url = server.url("/api/v1/whatsapp/webhook");
    let twilio = FakeTwilio::start_blocking();
    twilio.set_fixture(
        "whatsapp-senders.json",
        &fixture("whatsapp-senders.json").replace(RENDER_URL, &url),
    );
    let run = project(
        &twilio,
        &url,
        &format!("TWILIO_WHATSAPP_FROM=whatsapp:{SENDER_NUMBER}\n"),
    )
    .run(&["--online"]);
    run.line(&format!("  ✅ webhook: Twilio sends inbound messages for the WhatsApp sender {SENDER_NUMBER} to WEBHOOK_URL with POST"));
}

#[test]
fn a_number_that_is_neither_a_phone_number_nor_a_sender_is_a_warning() {
    let twilio = FakeTwilio::start_blocking();
    let (run, _) = run_online(&twilio, "TWILIO_WHATSAPP_FROM=whatsapp:+15550009999\n");
    run.line("  ⚠️ webhook: +15550009999 is neither a phone number nor a WhatsApp sender with a webhook in this account");
}

#[test]
fn messaging_service_webhook_elsewhere_names_both_urls() {
    let twilio = FakeTwilio::start_blocking();
    let (run, url) = run_online(
        &twilio,
        &format!("TWILIO_MESSAGING_SERVICE_SID={SERVICE}\n"),
    );
    run.line(&format!("  ❌ webhook: Twilio sends inbound messages for Messaging Service MG0d…6b9d to {RENDER_URL}, but WEBHOOK_URL is {url}"));
}

#[test]
fn signed_probe_gets_200_and_tampered_probe_gets_403() {
    let server = local_server();
    let url = server.url("/api/v1/whatsapp/webhook");
    let twilio = FakeTwilio::start_blocking();
    let run = project(
        &twilio,
        &url,
        "TWILIO_WHATSAPP_FROM=whatsapp:+14155238886\n",
    )
    .run(&["--online"]);
    run.line("Signed test request (online)");
    run.line(&format!("  ✅ signed request: {url} answered 200: the signature was accepted and the message recorded (it is marked as a test, so nobody gets a reply)"));
    run.line(&format!(
        "  ✅ tampered request: {url} refused the same request with a wrong signature (403)"
    ));
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    let first = &posts[0];
    assert_eq!(first.form("ValidateWebhookProbe").as_deref(), Some("1"));
    assert_eq!(first.form("AccountSid").as_deref(), Some(ACCOUNT));
    assert_eq!(first.form("To").as_deref(), Some("whatsapp:+14155238886"));
    let sid = first.form("MessageSid").expect("MessageSid");
    assert!(
        sid.starts_with("SM") && sid.len() == 34 && sid != "SM1a2b3c4d5e6f708192a3b4c5d6e7f809",
        "{sid}"
    );
    assert_eq!(
        first.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        posts[1].body, first.body,
        "the tampered request is the same message"
    );
    assert_ne!(
        posts[1].header("x-twilio-signature"),
        first.header("x-twilio-signature")
    );
}

#[test]
fn server_with_another_token_refuses_the_signed_probe() {
    let server = webhook_server("ffffffffffffffffffffffffffffffff", |port| {
        format!("http://127.0.0.1:{port}/api/v1/whatsapp/webhook")
    });
    let url = server.url("/api/v1/whatsapp/webhook");
    let twilio = FakeTwilio::start_blocking();
    let run = project(&twilio, &url, "").run(&["--online"]);
    run.lines_pair(
        &format!("  ❌ signed request: {url} refused a correctly signed request (403)"),
        "     Fix: The server validates signatures with a different TWILIO_AUTH_TOKEN or WEBHOOK_URL than this .env: give it the same values (WEBHOOK_URL exactly as Twilio calls it: https, same host and path) and restart it.",
    );
    run.no_line_starting("  ✅ tampered request");
    assert_eq!(run.code, 1);
}

#[test]
fn wrong_path_answers_404() {
    let server = TinyServer::start(|_| (404, vec![], "Not Found".to_owned()));
    let url = server.url("/webhook/api/v1/whatsapp/webhook");
    let twilio = FakeTwilio::start_blocking();
    let run = project(&twilio, &url, "").run(&["--online"]);
    run.lines_pair(
        &format!("  ❌ signed request: {url} answered 404: nothing handles inbound messages at this path"),
        "     Fix: webhook-server serves /api/v1/whatsapp/webhook at the root, and this URL has /webhook before it: remove /webhook (WEBHOOK_URL and the Twilio Console alike), unless a proxy in front is meant to strip it — then that proxy does not.",
    );
}

#[test]
fn ngrok_up_backend_down_answers_502() {
    let server = TinyServer::start(|_| {
        (
            502,
            vec![("Ngrok-Error-Code", "ERR_NGROK_8012".to_owned())],
            "Traffic successfully tunneled but the agent failed to connect to the upstream"
                .to_owned(),
        )
    });
    let url = server.url("/api/v1/whatsapp/webhook");
    let twilio = FakeTwilio::start_blocking();
    let p = project(&twilio, &url, "");
    let port = p.port();
    let run = p.run(&["--online"]);
    run.lines_pair(
        &format!("  ❌ signed request: {url} answered 502 ERR_NGROK_8012: ngrok is running but cannot reach the backend"),
        &format!("     Fix: Start webhook-server (`cargo run --release -p webhook-server`) so it listens on PORT {port} and make sure ngrok forwards to that port (`ngrok http {port}`)."),
    );
}

#[test]
fn nothing_at_webhook_url_is_a_connection_error() {
    let url = format!("http://127.0.0.1:{}/api/v1/whatsapp/webhook", closed_port());
    let twilio = FakeTwilio::start_blocking();
    let p = project(&twilio, &url, "");
    let port = p.port();
    let run = p.run(&["--online"]);
    run.lines_pair(
        &format!("  ❌ signed request: cannot connect to {url}: connection refused"),
        &format!("     Fix: Start webhook-server (`cargo run --release -p webhook-server`) so it listens on PORT {port}."),
    );
}

#[test]
fn online_without_credentials_says_what_is_missing() {
    let p = Project::new("WEBHOOK_URL=http://127.0.0.1:9/api/v1/whatsapp/webhook\n");
    let run = p.run(&["--online"]);
    run.lines_pair(
        "  ❌ credentials: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or an API key) are needed to ask Twilio",
        "     Fix: Copy the Account SID and Auth Token from the Twilio Console home page into .env.",
    );
    run.line("  ⚠️ signed request: not sent: TWILIO_AUTH_TOKEN is missing or a placeholder, so the request cannot be signed");
}

#[test]
fn trial_account_is_a_warning() {
    let twilio = FakeTwilio::start_blocking();
    let trial = fixture("account.json").replace("\"type\": \"Full\"", "\"type\": \"Trial\"");
    assert_ne!(trial, fixture("account.json"), "fixture shape changed");
    twilio.set_fixture("account.json", &trial);
    let server = local_server();
    let run = project(&twilio, &server.url("/api/v1/whatsapp/webhook"), "").run(&["--online"]);
    run.lines_pair(
        "  ⚠️ account: account AC3f…5c7e is active, Trial",
        "     Note: Trial accounts only message verified numbers and Sandbox participants (error 21608); upgrade to reach anyone.",
    );
}

#[test]
fn api_key_only_checks_credentials_with_the_key_and_skips_the_account() {
    const KEY: &str = "SK00000000000000000000000000000001";
    const SECRET: &str = "abcdefghijklmnopqrstuvwxyz012345";
    let twilio = FakeTwilio::start_blocking();
    let p = Project::new(&format!(
        "TWILIO_ACCOUNT_SID={ACCOUNT}\nTWILIO_API_KEY_SID={KEY}\nTWILIO_API_KEY_SECRET={SECRET}\nTWILIO_API_BASE_URL={}\nWEBHOOK_URL=http://127.0.0.1:9/api/v1/whatsapp/webhook\n",
        twilio.base_url()
    ));
    let run = p.run(&["--online"]);
    run.line("  ✅ credentials: Twilio accepted the API key for account AC3f…5c7e");
    run.no_line_starting("  ✅ account:");
    run.no_line_starting("  ❌ account:");
    for r in twilio.requests() {
        assert_eq!(r.basic_auth(), Some((KEY.to_owned(), SECRET.to_owned())));
        assert!(
            !r.path.ends_with(&format!("/Accounts/{ACCOUNT}.json")),
            "API keys cannot read the account"
        );
    }
    assert!(!run.stdout.contains(SECRET));
}

/// A placeholder API key secret beside a real token: the server's replies authenticate with the
/// key (and are refused), so the online check asks with the key too instead of the token.
#[test]
fn a_placeholder_api_key_is_checked_as_the_server_uses_it() {
    const KEY: &str = "SK00000000000000000000000000000001";
    let twilio = FakeTwilio::start_blocking();
    twilio.require_basic_auth(ACCOUNT, TOKEN);
    let (run, _) = run_online(
        &twilio,
        &format!("TWILIO_API_KEY_SID={KEY}\nTWILIO_API_KEY_SECRET=your_api_key_secret\n"),
    );
    run.line_starting("  ⚠️ TWILIO_API_KEY_SECRET: still a placeholder");
    let line = run.line_starting("  ❌ credentials: Twilio rejected the credentials for AC3f…5c7e");
    assert!(line.contains("20003"), "{line}");
    run.line("     Fix: Check TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET (Console › Account › API keys & tokens) and that the key belongs to TWILIO_ACCOUNT_SID.");
    assert!(
        twilio
            .requests()
            .iter()
            .all(|r| r.basic_auth().is_some_and(|(user, _)| user == KEY))
    );
    assert_eq!(run.code, 1);
}

#[test]
fn twilio_out_of_reach_names_the_url_that_was_tried() {
    let server = local_server();
    let base = format!("http://127.0.0.1:{}", closed_port());
    let p = Project::new(&dotenv(&format!(
        "TWILIO_API_BASE_URL={base}\nWEBHOOK_URL={}\n",
        server.url("/api/v1/whatsapp/webhook")
    )));
    let run = p.run(&["--online"]);
    let line = run.line_starting("  ❌ credentials: ");
    assert!(
        line.starts_with(&format!(
            "  ❌ credentials: cannot check the credentials with Twilio at {base}: "
        )),
        "{line}"
    );
    assert_eq!(run.code, 1);
}

const SECONDARY: &str = "fedcba9876543210fedcba9876543210";

#[test]
fn during_a_rotation_both_tokens_are_asked_about() {
    // Before the promotion Twilio accepts both.
    let twilio = FakeTwilio::start_blocking();
    let (run, _) = run_online(
        &twilio,
        &format!("TWILIO_AUTH_TOKEN_SECONDARY={SECONDARY}\n"),
    );
    run.line("  ✅ credentials: Twilio accepted the Auth Token for account AC3f…5c7e");
    run.line("  ✅ secondary token: Twilio accepts TWILIO_AUTH_TOKEN_SECONDARY too: webhooks signed with either token are accepted, replies use the secondary");
    assert!(!run.stdout.contains(SECONDARY), "{}", run.stdout);

    // A secondary token Twilio does not know: replies would fail.
    let twilio = FakeTwilio::start_blocking();
    twilio.require_basic_auth(ACCOUNT, TOKEN);
    let (run, _) = run_online(
        &twilio,
        &format!("TWILIO_AUTH_TOKEN_SECONDARY={SECONDARY}\n"),
    );
    let line =
        run.line_starting("  ❌ secondary token: Twilio rejected TWILIO_AUTH_TOKEN_SECONDARY");
    assert!(line.ends_with("so they would fail"), "{line}");
    assert_eq!(run.code, 1);

    // With an API key the replies authenticate with the key, whatever the tokens.
    let twilio = FakeTwilio::start_blocking();
    let (run, _) = run_online(
        &twilio,
        &format!(
            "TWILIO_AUTH_TOKEN_SECONDARY={SECONDARY}\n\
             TWILIO_API_KEY_SID=SK0123456789abcdef0123456789abcdef\n\
             TWILIO_API_KEY_SECRET=k3y5ecretk3y5ecretk3y5ecretk3y5e\n"
        ),
    );
    run.line("  ✅ TWILIO_AUTH_TOKEN_SECONDARY: set (hidden): webhooks signed with either token are accepted; REST calls use the API key");
    run.line("  ✅ secondary token: Twilio accepts TWILIO_AUTH_TOKEN_SECONDARY too: webhooks signed with either token are accepted (replies use the API key)");
    assert!(
        !run.stdout.contains("replies use the secondary"),
        "{}",
        run.stdout
    );
}

#[test]
fn after_the_promotion_the_old_primary_is_named_and_the_checks_go_on() {
    let twilio = FakeTwilio::start_blocking();
    twilio.require_basic_auth(ACCOUNT, SECONDARY);
    let (run, _) = run_online(
        &twilio,
        &format!("TWILIO_AUTH_TOKEN_SECONDARY={SECONDARY}\n"),
    );
    run.lines_pair(
        "  ❌ credentials: Twilio rejected TWILIO_AUTH_TOKEN for AC3f…5c7e but accepts TWILIO_AUTH_TOKEN_SECONDARY: the secondary token was promoted",
        "     Fix: Finish the rotation: set TWILIO_AUTH_TOKEN to the value of TWILIO_AUTH_TOKEN_SECONDARY and remove TWILIO_AUTH_TOKEN_SECONDARY.",
    );
    // The account is still read, with the token Twilio accepts.
    run.line("  ✅ account: account AC3f…5c7e is active (Full)");
    run.no_line_starting("  ✅ secondary token");
    assert_eq!(run.code, 1);

    // Twilio now signs webhooks with the promoted token, and so does the signed probe: a
    // backend that knows only that token accepts it (it was signed with the old one).
    let promoted = webhook_server(SECONDARY, |port| {
        format!("http://127.0.0.1:{port}/api/v1/whatsapp/webhook")
    });
    let url = promoted.url("/api/v1/whatsapp/webhook");
    let run = project(
        &twilio,
        &url,
        &format!("TWILIO_AUTH_TOKEN_SECONDARY={SECONDARY}\n"),
    )
    .run(&["--online"]);
    run.line(&format!("  ✅ signed request: {url} answered 200: the signature was accepted and the message recorded (it is marked as a test, so nobody gets a reply)"));
}

#[test]
fn a_password_in_the_url_twilio_reports_is_never_printed() {
    // The number's sms_url is not a configured URL: its password is still a secret.
    let twilio = twilio_with_number_url(
        "https://twuser:oldpass99@abc.ngrok-free.app/api/v1/whatsapp/webhook",
    );
    let (run, _) = run_online(
        &twilio,
        &format!("TWILIO_WHATSAPP_FROM=whatsapp:{NUMBER}\n"),
    );
    assert!(!run.stdout.contains("oldpass99"), "{}", run.stdout);
    assert!(
        run.stdout.contains("twuser:***@abc.ngrok-free.app"),
        "{}",
        run.stdout
    );
}

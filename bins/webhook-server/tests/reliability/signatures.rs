//! The operator's side of signatures: a request signed with a Webhook Rule's shared key
//! (HMAC-SHA256) gets a 403 whose log line names what to set; during an Auth Token rotation a
//! webhook signed with the secondary token is accepted and the log says how to finish; a webhook
//! configured with HTTP GET is refused with 405 and a line naming the fix, one sent to a wrong
//! path gets 404 and a line naming the right one; no secret ever appears in the output.

use test_support::{TestDb, WEBHOOK_URL, form_pairs};
use twilio_signature::Validator;

use crate::support::{Msg, ServerProcess, WEBHOOK_PATH, base_env, request, send_raw, set};

const KEY_ID: &str = "KS9a8b7c6d5e4f30211203f4e5d6c7b8a9";
const SECRET: &str = "rule-shared-secret-5d1f0c";

async fn post_shared_key(server: &ServerProcess, secret: &str, msg: &Msg) -> u16 {
    let body = msg.form();
    let signature = Validator::shared_key(secret).sign(WEBHOOK_URL, &form_pairs(&body));
    let settings = format!("key={KEY_ID},algorithm=HMAC_SHA256");
    post_signed(server, &body, &signature, Some(&settings)).await
}

/// Posts `msg` signed with `token` (HMAC-SHA1, as Twilio signs with an Auth Token).
async fn post_with_token(server: &ServerProcess, token: &str, msg: &Msg) -> u16 {
    let body = msg.form();
    let signature = test_support::sign_form(token, WEBHOOK_URL, &body);
    post_signed(server, &body, &signature, None).await
}

/// Posts `body` with `signature` (and a signature-settings header when given) as Render's
/// proxy forwards it: the public URL is WEBHOOK_URL's.
async fn post_signed(
    server: &ServerProcess,
    body: &str,
    signature: &str,
    settings: Option<&str>,
) -> u16 {
    let host = WEBHOOK_URL
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap();
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Twilio-Signature", signature),
        ("X-Forwarded-Host", host),
        ("X-Forwarded-Proto", "https"),
    ];
    if let Some(settings) = settings {
        headers.push(("X-Twilio-Webhooks-Signature-Settings", settings));
    }
    request(server.addr, "POST", WEBHOOK_PATH, &headers, body.as_bytes())
        .await
        .status
}

/// The server's log line for the (first) refused webhook.
fn refusal_line(server: &ServerProcess) -> String {
    let logs = server.logs();
    logs.lines()
        .find(|l| l.contains("Webhook refused with 403"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no 403 line in:\n{logs}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_key_webhook_is_refused_with_a_log_line_that_names_the_fix() {
    // Without TWILIO_WEBHOOK_SHARED_KEY: refused, and the log names the key and the setting.
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&base_env(&db.url(), None)).await;
    assert_eq!(
        post_shared_key(&server, SECRET, &Msg::new("shared", 0)).await,
        403
    );
    let line = refusal_line(&server);
    assert!(
        line.contains("TWILIO_WEBHOOK_SHARED_KEY is not set") && line.contains(KEY_ID),
        "{line}"
    );
    drop(server);

    // With it: the right secret is accepted; another secret is refused with a hint about the
    // shared key, not the auth token; the secret is in no log line.
    let db = TestDb::sqlite();
    let mut env = base_env(&db.url(), None);
    set(&mut env, "TWILIO_WEBHOOK_SHARED_KEY", SECRET);
    set(&mut env, "RUST_LOG", "debug");
    let server = ServerProcess::start(&env).await;
    assert_eq!(
        post_shared_key(&server, SECRET, &Msg::new("shared", 1)).await,
        200
    );
    assert_eq!(
        post_shared_key(&server, "a-rotated-secret", &Msg::new("shared", 2)).await,
        403
    );
    let line = refusal_line(&server);
    assert!(
        line.contains("TWILIO_WEBHOOK_SHARED_KEY is the secret")
            && line.contains("HMAC_SHA256")
            && line.contains(KEY_ID),
        "{line}"
    );
    server.assert_no_secrets(&[SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_secondary_token_is_accepted_and_the_log_says_to_finish_the_rotation() {
    const SECONDARY: &str = "fedcba9876543210fedcba9876543210";
    let db = TestDb::sqlite();
    let mut env = base_env(&db.url(), None);
    set(&mut env, "TWILIO_AUTH_TOKEN_SECONDARY", SECONDARY);
    let server = ServerProcess::start(&env).await;
    for n in 0..2 {
        let status = post_with_token(&server, SECONDARY, &Msg::new("rotated", n)).await;
        assert_eq!(status, 200);
    }
    let logs = server.logs();
    let told: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("signed with TWILIO_AUTH_TOKEN_SECONDARY"))
        .collect();
    assert_eq!(told.len(), 1, "said once per process:\n{logs}");
    assert!(
        told[0].contains("set TWILIO_AUTH_TOKEN to it and remove TWILIO_AUTH_TOKEN_SECONDARY"),
        "{}",
        told[0]
    );

    // Neither token: the 403 line says both were tried.
    let other = "00112233445566778899aabbccddeeff";
    assert_eq!(
        post_with_token(&server, other, &Msg::new("rotated", 9)).await,
        403
    );
    let line = refusal_line(&server);
    assert!(
        line.contains("neither TWILIO_AUTH_TOKEN nor TWILIO_AUTH_TOKEN_SECONDARY"),
        "{line}"
    );
    server.assert_no_secrets(&[SECONDARY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_configured_with_get_is_refused_with_a_log_line_that_names_the_fix() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&base_env(&db.url(), None)).await;
    // A browser opening the URL: 405, nothing to warn about.
    let browser = request(server.addr, "GET", WEBHOOK_PATH, &[], b"").await;
    assert_eq!(browser.status, 405);
    // The Console lets a webhook's method be HTTP GET: the parameters then come in the query.
    let query = Msg::new("get", 0).form();
    let path = format!("{WEBHOOK_PATH}?{query}");
    assert_eq!(
        request(server.addr, "GET", &path, &[], b"").await.status,
        405
    );
    let refused = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("Webhook refused with 405"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    crate::support::wait_for(
        "the 405 log line",
        std::time::Duration::from_secs(5),
        || {
            let seen = !refused(&server.logs()).is_empty();
            async move { seen }
        },
    )
    .await;
    // Logs are in order: one line, so the browser's request logged none.
    let lines = refused(&server.logs());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("set this webhook's method to HTTP POST in the Twilio Console"),
        "{}",
        lines[0]
    );
}

/// A body the server cannot read (over 64 KiB, broken chunked encoding) is refused with one log
/// line that says which and on which route, like every other refusal (these had none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_body_is_refused_with_a_log_line() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&base_env(&db.url(), None)).await;
    let big = format!("Body={}", "a".repeat(70 * 1024));
    let r = request(server.addr, "POST", WEBHOOK_PATH, &[], big.as_bytes()).await;
    assert_eq!(r.status, 413);
    let broken_chunks = send_raw(
        server.addr,
        b"POST /api/v1/whatsapp/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(broken_chunks.status, 400, "{broken_chunks:?}");
    let line = |logs: &str, what: &str| logs.lines().find(|l| l.contains(what)).map(str::to_owned);
    crate::support::wait_for("both log lines", std::time::Duration::from_secs(5), || {
        let logs = server.logs();
        let seen = line(&logs, "Webhook refused with 413").is_some()
            && line(&logs, "Webhook refused with 400").is_some();
        async move { seen }
    })
    .await;
    let logs = server.logs();
    let too_large = line(&logs, "Webhook refused with 413").unwrap();
    assert!(
        too_large.contains("larger than 64 KiB") && too_large.contains("webhook"),
        "{too_large}"
    );
    let broken = line(&logs, "Webhook refused with 400").unwrap();
    assert!(
        broken.contains("could not be read") && broken.contains("status"),
        "{broken}"
    );
}

/// A Console URL with a wrong path (a typo, a framework's route): Twilio's signed POST gets a
/// 404, and the log says where it went and which path to use; a scanner's POST to an unknown
/// path, with or without a made-up signature header, is not worth a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_at_a_wrong_path_is_logged_with_the_right_one() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&base_env(&db.url(), None)).await;
    let body = Msg::new("wrong-path", 0).form();
    let scanner = request(server.addr, "POST", "/wp-login.php", &[], body.as_bytes()).await;
    assert_eq!(scanner.status, 404);
    // The header alone proves nothing: anyone can add it.
    let forged = request(
        server.addr,
        "POST",
        "/wp-login.php",
        &[("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(forged.status, 404);
    // Twilio signs the URL it calls: WEBHOOK_URL's origin and the wrong path.
    let origin = WEBHOOK_URL.trim_end_matches("/api/v1/whatsapp/webhook");
    let signature = test_support::sign_form(
        test_support::AUTH_TOKEN,
        &format!("{origin}/api/v1/whatsapp/webhooks"),
        &body,
    );
    let typo = request(
        server.addr,
        "POST",
        "/api/v1/whatsapp/webhooks",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &signature),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(typo.status, 404);
    let lines = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("Webhook answered 404"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    crate::support::wait_for(
        "the 404 log line",
        std::time::Duration::from_secs(5),
        || {
            let seen = !lines(&server.logs()).is_empty();
            async move { seen }
        },
    )
    .await;
    let lines = lines(&server.logs());
    assert_eq!(lines.len(), 1, "only Twilio's request: {lines:?}");
    assert!(
        lines[0].contains("/api/v1/whatsapp/webhooks"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("path /api/v1/whatsapp/webhook;"),
        "{}",
        lines[0]
    );
}

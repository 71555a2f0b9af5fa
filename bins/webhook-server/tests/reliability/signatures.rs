//! The operator's side of a refused webhook: a request signed with a Webhook Rule's shared key
//! (HMAC-SHA256) gets a 403 whose log line names what to set, and the shared key's secret never
//! appears in the output.

use test_support::{TestDb, WEBHOOK_URL, form_pairs};
use twilio_signature::Validator;

use crate::support::{Msg, ServerProcess, WEBHOOK_PATH, base_env, request, set};

const KEY_ID: &str = "KS9a8b7c6d5e4f30211203f4e5d6c7b8a9";
const SECRET: &str = "rule-shared-secret-5d1f0c";

async fn post_shared_key(server: &ServerProcess, secret: &str, msg: &Msg) -> u16 {
    let body = msg.form();
    let signature = Validator::shared_key(secret).sign(WEBHOOK_URL, &form_pairs(&body));
    let settings = format!("key={KEY_ID},algorithm=HMAC_SHA256");
    let host = WEBHOOK_URL
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap();
    request(
        server.addr,
        "POST",
        WEBHOOK_PATH,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", signature.as_str()),
            ("X-Twilio-Webhooks-Signature-Settings", settings.as_str()),
            // As Render's proxy forwards it: the public URL is WEBHOOK_URL's.
            ("X-Forwarded-Host", host),
            ("X-Forwarded-Proto", "https"),
        ],
        body.as_bytes(),
    )
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

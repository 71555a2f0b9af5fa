//! What the binary says when it starts on the embedded default (the README's first command):
//! the dry run is said once (DESIGN.md: "none → replies are recorded but not sent ("dry run"),
//! said once at start").

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_dry_run_is_said_once_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, _) = spawn_on_the_default(dir.path());
    // The worker's start line comes after the dry-run line; then stop the server.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = child.stdout.take().expect("stdout");
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("worker started") && Instant::now() < deadline {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("worker started"),
        "the server started:\n{text}"
    );
    assert_eq!(
        text.to_ascii_lowercase().matches("dry run").count(),
        1,
        "one dry-run line:\n{text}"
    );
    assert!(text.contains("⚠️ Dry run: replies are recorded"), "{text}");
}

/// Starts the server on the embedded default in `dir` (a token, a free loopback port), its
/// stdout and stderr piped to the test; the child and its port.
fn spawn_on_the_default(dir: &std::path::Path) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_webhook-server"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef")
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start webhook-server");
    (child, port)
}

/// Runs the server in an empty directory with only `vars` (and PATH) set, to its exit.
fn run_with(vars: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_webhook-server"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run webhook-server")
}

/// With `APP_ENV=production` the logs are JSON; a configuration that stops the server is
/// reported as one JSON object too (a log pipeline parses every line), naming each problem.
#[test]
fn a_production_configuration_error_is_one_json_line() {
    let out = run_with(&[
        ("APP_ENV", "production"),
        ("TWILIO_AUTH_TOKEN", "changeme"),
        ("PORT", "80a"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
    assert_eq!(v["level"], "ERROR");
    // Like every line of the JSON log: RFC 3339, UTC.
    let at = v["timestamp"].as_str().expect("a timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    let keys: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"PORT") && keys.contains(&"TWILIO_AUTH_TOKEN"),
        "{v}"
    );
    assert!(!stderr.contains("changeme"), "{stderr}");

    // In development the same problem reads as text.
    let out = run_with(&[("PORT", "80a")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("❌ configuration error:\n"), "{stderr}");
}

/// A Twilio base URL the client would refuse is a configuration error like any other: exit 2,
/// listed with the other problems, the password masked, and no "🚀 listening" first.
#[test]
fn an_api_base_url_the_client_refuses_stops_the_start_as_a_configuration_error() {
    let out = run_with(&[
        (
            "TWILIO_API_BASE_URL",
            "https://proxyuser:ProxyPw4242@api.twilio.com",
        ),
        ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"),
        ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155550100"),
        ("PORT", "abc"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("PORT (environment)"), "{all}");
    assert!(
        all.contains("TWILIO_API_BASE_URL (environment): \"https://proxyuser:***@api.twilio.com\""),
        "{all}"
    );
    assert!(!all.contains("ProxyPw4242"), "{all}");
    assert!(!all.contains("listening"), "{all}");
}

/// A log consumer that goes away (a `| head`, a log shipper that exits) closes the pipe the
/// server writes its logs to; the server goes on serving and stops cleanly on SIGTERM.
#[test]
fn a_closed_log_pipe_does_not_stop_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, port) = spawn_on_the_default(dir.path());
    // Both ends the server writes to are closed before it logs its first line.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut served = 0;
    while served < 5 && Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("child status") {
            panic!("the server exited with {status} once its log pipe was closed");
        }
        // Each refused webhook logs a warning: more writes into the closed pipe.
        match post_unsigned(port) {
            Some(403) => served += 1,
            Some(503) | None => std::thread::sleep(Duration::from_millis(50)),
            Some(other) => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        served, 5,
        "the server answered while its logs had nowhere to go"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}

/// An unsigned webhook; the status code, or `None` while nothing listens.
fn post_unsigned(port: u16) -> Option<u16> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = "MessageSid=SM0123&From=whatsapp%3A%2B15550001111&Body=hi";
    write!(
        stream,
        "POST /api/v1/whatsapp/webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

//! ngrok: not running vs. running with another URL vs. forwarding to the wrong port.

use test_support::FakeNgrok;

use crate::support::{NGROK_URL, NGROK_WEBHOOK, Project, dotenv};

#[test]
fn not_running_is_a_warning_offline() {
    // With --online the same line is ❌ (unit test in src/checks/ngrok.rs: an online run here
    // would post the probe to the ngrok host).
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let port = p.port();
    let run = p.run(&[]);
    let line = run
        .lines()
        .into_iter()
        .find(|l| l.contains("ngrok is not running"))
        .unwrap_or_else(|| panic!("{}", run.stdout))
        .to_owned();
    assert!(
        line.starts_with("  ⚠️ agent: ngrok is not running (nothing answers at http://127.0.0.1:"),
        "{line}"
    );
    assert!(line.ends_with("/api/tunnels)"), "{line}");
    assert_eq!(
        run.line(&line),
        format!(
            "     Note: Start it with `ngrok http {port}`, then put its https URL + /api/v1/whatsapp/webhook in WEBHOOK_URL and in the Twilio Console."
        )
    );
}

#[test]
fn not_running_is_fine_when_webhook_url_is_not_ngrok() {
    let run = Project::new(&dotenv(
        "WEBHOOK_URL=https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook\n",
    ))
    .run(&[]);
    run.line(
        "  ✅ agent: not running, and not needed: WEBHOOK_URL points at whatsapp-bot.onrender.com",
    );
}

#[test]
fn not_running_with_a_localhost_webhook_url_is_a_warning_not_fine() {
    // Good for `simulate`, but Twilio cannot call it: not "not needed".
    let p = Project::new(&dotenv(
        "WEBHOOK_URL=http://localhost:5000/api/v1/whatsapp/webhook\n",
    ));
    let port = p.port();
    let run = p.run(&[]);
    run.lines_pair(
        "  ⚠️ agent: not running; WEBHOOK_URL points at this machine, which only local tests (simulate) reach",
        &format!("     Note: To receive real messages, run `ngrok http {port}` and put its https URL in WEBHOOK_URL and the Twilio Console."),
    );
    run.no_line_starting("  ✅ agent:");
}

#[test]
fn a_new_ngrok_url_is_an_error_with_the_exact_fix() {
    let p = Project::new(&dotenv(
        "WEBHOOK_URL=https://old-1234.ngrok-free.app/api/v1/whatsapp/webhook\n",
    ));
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, &format!("http://localhost:{}", p.port()));
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.line("  ✅ agent: ngrok is running (1 tunnel)");
    run.lines_pair(
        &format!("  ❌ public URL: ngrok's URL {NGROK_URL} differs from WEBHOOK_URL https://old-1234.ngrok-free.app/api/v1/whatsapp/webhook"),
        &format!("     Fix: ngrok gives a new URL on every restart: set WEBHOOK_URL={NGROK_WEBHOOK} and paste the same URL into the Twilio Console (\"When a message comes in\", HTTP POST)."),
    );
    assert_eq!(run.code, 1);
    assert_eq!(ngrok.requests()[0].path, "/api/tunnels");
}

#[test]
fn a_running_tunnel_with_a_local_webhook_url_is_an_error() {
    // ngrok runs for this server, but WEBHOOK_URL points at an address Twilio cannot reach.
    let p = Project::new(&dotenv(
        "WEBHOOK_URL=https://192.168.1.5/api/v1/whatsapp/webhook\n",
    ));
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, &format!("http://localhost:{}", p.port()));
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.lines_pair(
        &format!("  ❌ public URL: ngrok serves {NGROK_URL} but WEBHOOK_URL points at https://192.168.1.5/api/v1/whatsapp/webhook, which Twilio cannot reach"),
        &format!("     Fix: Set WEBHOOK_URL={NGROK_WEBHOOK} and paste the same URL into the Twilio Console (\"When a message comes in\", HTTP POST)."),
    );
    assert_eq!(run.code, 1);
}

#[test]
fn matching_url_and_port_are_ok() {
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let addr = format!("http://localhost:{}", p.port());
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, &addr);
    let port = p.port();
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.line(&format!(
        "  ✅ public URL: {NGROK_URL} is WEBHOOK_URL's origin"
    ));
    run.line(&format!(
        "  ✅ forwarding: {NGROK_URL} forwards to {addr} (PORT {port})"
    ));
}

#[test]
fn forwarding_to_another_port_is_an_error() {
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let port = p.port();
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, "http://localhost:8080");
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.lines_pair(
        &format!("  ❌ forwarding: {NGROK_URL} forwards to http://localhost:8080, but the server listens on PORT {port}"),
        &format!("     Fix: Restart ngrok with `ngrok http {port}` (then update WEBHOOK_URL and the Twilio Console), or set PORT=8080."),
    );
}

#[test]
fn forwarding_that_ngrok_cannot_connect_to_is_an_error() {
    // `ngrok http https://localhost:PORT`: ngrok speaks TLS to a plain-http server (502).
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let port = p.port();
    let addr = format!("https://localhost:{port}");
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, &addr);
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.lines_pair(
        &format!("  ❌ forwarding: {NGROK_URL} forwards to {addr}, but the server speaks plain http, so ngrok's TLS handshake with it fails (502)"),
        &format!("     Fix: Restart ngrok with `ngrok http {port}` (no https:// before the port)."),
    );
    // To [::1] while the server listens on IPv4 only (the default HOST=0.0.0.0).
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let port = p.port();
    let addr = format!("http://[::1]:{port}");
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, &addr);
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.lines_pair(
        &format!("  ❌ forwarding: {NGROK_URL} forwards to {addr}, but the server listens on IPv4 only (HOST), so ngrok's connection is refused (502)"),
        &format!("     Fix: Restart ngrok with `ngrok http 127.0.0.1:{port}`, or set HOST=::."),
    );
    // The same with HOST=:: is fine.
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\nHOST=::\n")));
    let port = p.port();
    let addr = format!("http://[::1]:{port}");
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, &addr);
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.line(&format!(
        "  ✅ forwarding: {NGROK_URL} forwards to {addr} (PORT {port})"
    ));
}

#[test]
fn an_agent_without_tunnels_is_reported() {
    let p = Project::new(&dotenv(&format!("WEBHOOK_URL={NGROK_WEBHOOK}\n")));
    let port = p.port();
    let ngrok = FakeNgrok::start_blocking(NGROK_URL, "http://localhost:8080");
    ngrok.set_tunnels(&[]);
    let run = p.env("NGROK_API_URL", ngrok.base_url()).run(&[]);
    run.line("  ✅ agent: ngrok is running (0 tunnels)");
    run.lines_pair(
        "  ⚠️ public URL: ngrok runs no https tunnel",
        &format!("     Note: Start one with `ngrok http {port}` and use its https URL in WEBHOOK_URL and the Twilio Console."),
    );
}

//! Backend: is something listening on PORT, and is it webhook-server (`GET /healthz` → 200)?
//! A server still waiting for its database (its `/readyz` says so) is a warning, not ✅;
//! another program on PORT is `❌` (webhook-server could not bind it) when the webhook chain
//! runs through this machine.

use std::net::{TcpStream, ToSocketAddrs};

use super::Ctx;
use crate::http;
use crate::report::{Check, Section, Status};

const S: Section = Section::Backend;

/// The backend section's checks.
pub(crate) fn check(ctx: &Ctx) -> Vec<Check> {
    let setup = &ctx.setup;
    let port = setup.port;
    let host = setup.local_host();
    let addr = format!("{host}:{port}");
    // Before the server starts this is expected; with --online the chain needs it, unless
    // WEBHOOK_URL points at a deployed host (Render, …) that does not run through this machine.
    let webhook_host = setup
        .webhook_url
        .as_deref()
        .and_then(|w| url::Url::parse(w).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    let chain_is_local = webhook_host
        .as_deref()
        .is_none_or(|h| super::ngrok::is_ngrok_host(h) || http::is_loopback(h));
    let missing = if ctx.online && chain_is_local {
        Status::Error
    } else {
        Status::Warning
    };
    // Another program on PORT: webhook-server cannot bind it, whether it runs yet or not.
    let occupied = if chain_is_local {
        Status::Error
    } else {
        missing
    };
    let start = format!(
        "Start the server with `cargo run --release -p webhook-server` (it listens on PORT {port}), then check again."
    );

    let listening = addr
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, ctx.timeout).is_ok());
    if !listening {
        return vec![Check::new(
            S,
            "port",
            missing,
            format!("nothing is listening on {addr}"),
            Some(start),
        )];
    }
    let mut out = vec![Check::ok(
        S,
        "port",
        format!("something is listening on {addr}"),
    )];
    let url = format!("{}/healthz", setup.local_base_url());
    let agent = http::agent(ctx.timeout, true);
    out.push(match http::get(&agent, &url) {
        Ok(a) if a.status == 200 => match starting(&agent, setup) {
            // Up, but its database is not reachable yet: every webhook gets 503.
            Some(reason) => Check::new(
                S,
                "healthz",
                missing,
                format!("webhook-server is up but still starting ({reason}): webhooks get 503 until it is ready"),
                Some("See the Database line: the server retries until the database answers."),
            ),
            None => Check::ok(S, "healthz", format!("GET {url} answered 200: webhook-server is up")),
        },
        Ok(a) => Check::new(
            S,
            "healthz",
            occupied,
            format!("GET {url} answered {}: the program on port {port} is not webhook-server", a.status),
            Some("Stop the other program or give webhook-server a free port (PORT) and `ngrok http` that port."),
        ),
        Err(f) => Check::new(
            S,
            "healthz",
            occupied,
            format!("GET {url} failed: {}", f.describe()),
            Some(format!("The program on port {port} does not speak HTTP like webhook-server: stop it or change PORT.")),
        ),
    });
    out
}

/// What a server in its starting phase waits for, from its `/readyz` (`"queue": "not started"`
/// only comes from that phase); `None` when it is past it or does not say.
fn starting(agent: &ureq::Agent, setup: &crate::setup::Setup) -> Option<String> {
    let url = format!("{}/readyz", setup.local_base_url());
    let answer = http::get(agent, &url).ok()?;
    let json: serde_json::Value = serde_json::from_str(&answer.body).ok()?;
    (json["queue"] == "not started").then(|| {
        json["database"]
            .as_str()
            .unwrap_or("waiting for the database")
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(webhook_url: &str, online: bool) -> Ctx {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind");
        Ctx {
            setup: crate::setup::Setup {
                webhook_url: Some(webhook_url.into()),
                port,
                ..Default::default()
            },
            online,
            timeout: std::time::Duration::from_secs(2),
            ngrok_api_url: "http://127.0.0.1:9".into(),
            cwd: std::path::PathBuf::from("."),
            broken: Default::default(),
        }
    }

    #[test]
    fn a_missing_local_backend_breaks_only_a_chain_through_this_machine() {
        let ngrok = check(&ctx(
            "https://abc.ngrok-free.app/api/v1/whatsapp/webhook",
            true,
        ));
        assert_eq!(ngrok[0].status, Status::Error, "{ngrok:?}");
        let offline = check(&ctx(
            "https://abc.ngrok-free.app/api/v1/whatsapp/webhook",
            false,
        ));
        assert_eq!(offline[0].status, Status::Warning, "{offline:?}");
        let deployed = check(&ctx(
            "https://bot.onrender.com/api/v1/whatsapp/webhook",
            true,
        ));
        assert_eq!(deployed[0].status, Status::Warning, "{deployed:?}");
    }
}

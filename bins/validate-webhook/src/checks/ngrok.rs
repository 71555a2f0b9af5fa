//! ngrok: ask the local agent API (`GET http://127.0.0.1:4040/api/tunnels`) whether a tunnel's
//! public URL is WEBHOOK_URL's origin and whether it forwards to PORT.

use serde::Deserialize;

use super::Ctx;
use crate::http::{self, Failure};
use crate::report::{Check, Section, Status};

const S: Section = Section::Ngrok;

#[derive(Debug, Deserialize)]
struct Tunnels {
    #[serde(default)]
    tunnels: Vec<Tunnel>,
}

#[derive(Debug, Deserialize)]
struct Tunnel {
    public_url: String,
    #[serde(default)]
    proto: String,
    #[serde(default)]
    config: TunnelConfig,
}

#[derive(Debug, Default, Deserialize)]
struct TunnelConfig {
    #[serde(default)]
    addr: String,
}

/// Hosts ngrok hands out; a WEBHOOK_URL on one of these needs a running agent.
pub(crate) fn is_ngrok_host(host: &str) -> bool {
    [
        ".ngrok-free.app",
        ".ngrok-free.dev",
        ".ngrok.app",
        ".ngrok.dev",
        ".ngrok.io",
    ]
    .iter()
    .any(|suffix| host.ends_with(suffix))
}

/// `scheme://host[:port]` of a URL, as ngrok reports `public_url`.
fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

/// The host and port a tunnel forwards to: `http://localhost:8080`, `localhost:80`, `8080`
/// (host `localhost`), `https://localhost` (port 443); an IPv6 host keeps its brackets. The
/// port is `None` when it cannot be read.
fn forward_target(addr: &str) -> (&str, Option<u16>) {
    let (scheme, rest) = addr.split_once("://").unwrap_or(("http", addr));
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.bytes().all(|b| b.is_ascii_digit()) {
        return ("localhost", authority.parse().ok());
    }
    match authority.rsplit_once(':') {
        // `[::1]` without a port: the last ':' is inside the brackets.
        Some((_, port)) if port.ends_with(']') => (authority, None),
        Some((host, port)) => (host, port.parse().ok()),
        None => (authority, Some(if scheme == "https" { 443 } else { 80 })),
    }
}

/// The local port a tunnel forwards to (see [`forward_target`]).
fn forward_port(addr: &str) -> Option<u16> {
    forward_target(addr).1
}

/// The ngrok section's checks.
pub(crate) fn check(ctx: &Ctx) -> Vec<Check> {
    let api = format!("{}/api/tunnels", ctx.ngrok_api_url.trim_end_matches('/'));
    let webhook = ctx.setup.webhook_url.as_deref();
    let webhook_origin = webhook.and_then(origin);
    let webhook_host = webhook
        .and_then(|w| url::Url::parse(w).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    let uses_ngrok = webhook_host.as_deref().is_none_or(is_ngrok_host);
    let port = ctx.setup.port;
    // Not running is expected before the server starts; with --online it breaks the chain.
    let missing_status = if ctx.online {
        Status::Error
    } else {
        Status::Warning
    };

    let agent = http::agent(ctx.timeout, true);
    let answer = match http::get(&agent, &api) {
        Ok(a) => a,
        Err(f) => {
            let local = webhook_host.as_deref().is_some_and(http::is_loopback);
            if local {
                // Fine for `simulate`; Twilio cannot call it (the WEBHOOK_URL line says so too),
                // which is what --online asks.
                return vec![Check::new(
                    S,
                    "agent",
                    missing_status,
                    "not running; WEBHOOK_URL points at this machine, which only local tests (simulate) reach",
                    Some(format!(
                        "To receive real messages, run `ngrok http {port}` and put its https URL in WEBHOOK_URL and the Twilio Console."
                    )),
                )];
            }
            if !uses_ngrok {
                return vec![Check::ok(
                    S,
                    "agent",
                    format!(
                        "not running, and not needed: WEBHOOK_URL points at {}",
                        webhook_host.unwrap_or_default()
                    ),
                )];
            }
            let detail = match f {
                Failure::Refused => format!("ngrok is not running (nothing answers at {api})"),
                other => format!(
                    "ngrok's agent API at {api} did not answer: {}",
                    other.describe()
                ),
            };
            return vec![Check::new(
                S,
                "agent",
                missing_status,
                detail,
                Some(format!(
                    "Start it with `ngrok http {port}`, then put its https URL + /api/v1/whatsapp/webhook in WEBHOOK_URL and in the Twilio Console."
                )),
            )];
        }
    };
    let tunnels = match serde_json::from_str::<Tunnels>(&answer.body) {
        Ok(t) if answer.status == 200 => t.tunnels,
        _ => {
            // The tunnel cannot be confirmed: as bad as ngrok not running, for an ngrok URL.
            let status = if uses_ngrok {
                missing_status
            } else {
                Status::Warning
            };
            return vec![Check::new(
                S,
                "agent",
                status,
                format!(
                    "{api} answered {} with something that is not ngrok's tunnel list",
                    answer.status
                ),
                Some(format!(
                    "Another program answers at {api}; stop it, or set NGROK_API_URL to ngrok's web_addr (its local API address)."
                )),
            )];
        }
    };
    let mut out = vec![Check::ok(
        S,
        "agent",
        format!(
            "ngrok is running ({} tunnel{})",
            tunnels.len(),
            if tunnels.len() == 1 { "" } else { "s" }
        ),
    )];
    let https: Vec<&Tunnel> = tunnels
        .iter()
        .filter(|t| t.proto == "https" || t.public_url.starts_with("https://"))
        .collect();

    let matching = webhook_origin.as_deref().and_then(|o| {
        https
            .iter()
            .find(|t| origin(&t.public_url).as_deref() == Some(o))
    });
    match matching {
        Some(t) => {
            out.push(Check::ok(
                S,
                "public URL",
                format!("{} is WEBHOOK_URL's origin", t.public_url),
            ));
            out.push(forwarding(t, port, &ctx.setup.host));
        }
        None => {
            // The tunnel most likely meant for this server: https and forwarding to PORT.
            let best = https
                .iter()
                .find(|t| forward_port(&t.config.addr) == Some(port))
                .or_else(|| https.first())
                .copied();
            let Some(t) = best else {
                out.push(Check::new(
                    S,
                    "public URL",
                    missing_status,
                    "ngrok runs no https tunnel",
                    Some(format!("Start one with `ngrok http {port}` and use its https URL in WEBHOOK_URL and the Twilio Console.")),
                ));
                return out;
            };
            let suggested = format!(
                "{}/api/v1/whatsapp/webhook",
                t.public_url.trim_end_matches('/')
            );
            let unreachable = webhook
                .and_then(|w| url::Url::parse(w).ok())
                .is_some_and(|u| config::unreachable_host(&u).is_some());
            match webhook {
                // localhost or a private address: Twilio cannot call it, the tunnel is the way.
                Some(w) if unreachable => out.push(Check::error(
                    S,
                    "public URL",
                    format!("ngrok serves {} but WEBHOOK_URL points at {w}, which Twilio cannot reach", t.public_url),
                    format!("Set WEBHOOK_URL={suggested} and paste the same URL into the Twilio Console (\"When a message comes in\", HTTP POST)."),
                )),
                Some(w) if !uses_ngrok => out.push(Check::warning(
                    S,
                    "public URL",
                    format!("ngrok serves {} but WEBHOOK_URL points at {w}: Twilio will not use this tunnel", t.public_url),
                    Some("Fine if this server is deployed elsewhere; for local testing use the ngrok URL in WEBHOOK_URL and the Twilio Console."),
                )),
                Some(w) => out.push(Check::error(
                    S,
                    "public URL",
                    format!("ngrok's URL {} differs from WEBHOOK_URL {w}", t.public_url),
                    format!(
                        "{}set WEBHOOK_URL={suggested} and paste the same URL into the Twilio Console (\"When a message comes in\", HTTP POST).",
                        if same_host(w, &t.public_url) {
                            // Same tunnel, another scheme or port: not a restart.
                            ""
                        } else {
                            "ngrok gives a new URL on every restart: "
                        }
                    ),
                )),
                None => out.push(Check::error(
                    S,
                    "public URL",
                    format!("ngrok serves {} but WEBHOOK_URL is not set", t.public_url),
                    format!("Set WEBHOOK_URL={suggested} and paste the same URL into the Twilio Console (\"When a message comes in\", HTTP POST)."),
                )),
            }
            if uses_ngrok {
                out.push(forwarding(t, port, &ctx.setup.host));
            }
        }
    }
    out
}

fn forwarding(t: &Tunnel, port: u16, host: &str) -> Check {
    let addr = t.config.addr.as_str();
    let (forward_host, forward_port) = forward_target(addr);
    // ngrok connects to what `addr` names; both of these get its 502 for every request.
    let unreachable = if addr.starts_with("https://") {
        Some((
            "the server speaks plain http, so ngrok's TLS handshake with it fails (502)",
            format!("Restart ngrok with `ngrok http {port}` (no https:// before the port)."),
        ))
    } else if forward_host == "[::1]" && host.parse::<std::net::Ipv4Addr>().is_ok() {
        // Only an IPv4 address for certain: `localhost` may resolve to ::1 first.
        Some((
            "the server listens on IPv4 only (HOST), so ngrok's connection is refused (502)",
            format!("Restart ngrok with `ngrok http 127.0.0.1:{port}`, or set HOST=::."),
        ))
    } else {
        None
    };
    match (forward_port, unreachable) {
        (Some(p), Some((why, fix))) if p == port => Check::error(
            S,
            "forwarding",
            format!("{} forwards to {addr}, but {why}", t.public_url),
            fix,
        ),
        (Some(p), _) if p == port => Check::ok(
            S,
            "forwarding",
            format!(
                "{} forwards to {} (PORT {port})",
                t.public_url, t.config.addr
            ),
        ),
        (Some(p), _) => Check::error(
            S,
            "forwarding",
            format!(
                "{} forwards to {}, but the server listens on PORT {port}",
                t.public_url, t.config.addr
            ),
            format!(
                "Restart ngrok with `ngrok http {port}` (then update WEBHOOK_URL and the Twilio Console), or set PORT={p}."
            ),
        ),
        (None, _) => Check::warning(
            S,
            "forwarding",
            format!(
                "cannot tell which port {} forwards to ({:?})",
                t.public_url, t.config.addr
            ),
            Some(format!(
                "Make sure ngrok forwards to PORT {port}: `ngrok http {port}`."
            )),
        ),
    }
}

/// Whether two URLs name the same host (the same tunnel).
fn same_host(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.host_str().is_some() && a.host_str() == b.host_str(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheme_change_on_the_same_tunnel_is_not_a_restart() {
        assert!(same_host(
            "http://3f2a.ngrok-free.app/api/v1/whatsapp/webhook",
            "https://3f2a.ngrok-free.app"
        ));
        assert!(!same_host(
            "https://old.ngrok-free.app/api/v1/whatsapp/webhook",
            "https://new.ngrok-free.app"
        ));
    }

    #[test]
    fn forward_ports_in_every_shape_ngrok_reports() {
        assert_eq!(forward_port("http://localhost:8080"), Some(8080));
        assert_eq!(forward_port("localhost:80"), Some(80));
        assert_eq!(forward_port("5000"), Some(5000));
        assert_eq!(forward_port("https://localhost"), Some(443));
        assert_eq!(forward_port("http://localhost"), Some(80));
        assert_eq!(forward_port("http://[::1]:5000"), Some(5000));
        assert_eq!(forward_target("http://[::1]:5000").0, "[::1]");
        assert_eq!(forward_target("http://localhost:5000").0, "localhost");
        assert_eq!(forward_target("5000").0, "localhost");
        assert_eq!(forward_target("192.168.5.5:5000").0, "192.168.5.5");
    }

    #[test]
    fn ngrok_hosts() {
        assert!(is_ngrok_host("3f2a-203-0-113-7.ngrok-free.app"));
        assert!(is_ngrok_host("abc.ngrok.io"));
        assert!(!is_ngrok_host("whatsapp-bot.onrender.com"));
        assert!(!is_ngrok_host("ngrok-free.app.evil.example"));
    }

    /// An offline check of an ngrok WEBHOOK_URL with the agent API on `port`.
    fn offline_ctx(port: u16) -> Ctx {
        Ctx {
            setup: crate::setup::Setup {
                webhook_url: Some("https://abc.ngrok-free.app/api/v1/whatsapp/webhook".into()),
                ..Default::default()
            },
            online: false,
            timeout: std::time::Duration::from_secs(2),
            ngrok_api_url: format!("http://127.0.0.1:{port}"),
            cwd: std::path::PathBuf::from("."),
            broken: Default::default(),
        }
    }

    #[test]
    fn not_running_is_an_error_only_online() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind");
        let mut ctx = offline_ctx(port);
        let offline = check(&ctx);
        assert_eq!(offline[0].status, Status::Warning, "{offline:?}");
        ctx.online = true;
        let online = check(&ctx);
        assert_eq!(online[0].status, Status::Error, "{online:?}");
        assert_eq!(online[0].detail, offline[0].detail);
    }

    #[test]
    fn another_program_on_the_agent_port_is_an_error_only_online() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope",
                );
            }
        });
        let mut ctx = offline_ctx(port);
        let offline = check(&ctx);
        assert_eq!(offline[0].status, Status::Warning, "{offline:?}");
        assert!(
            offline[0].detail.contains("not ngrok's tunnel list"),
            "{offline:?}"
        );
        ctx.online = true;
        let online = check(&ctx);
        assert_eq!(online[0].status, Status::Error, "{online:?}");
    }

    #[test]
    fn parses_the_fixture() {
        let t: Tunnels =
            serde_json::from_str(include_str!("../../../../fixtures/ngrok-tunnels.json"))
                .expect("parses");
        assert_eq!(
            t.tunnels[0].public_url,
            "https://3f2a-203-0-113-7.ngrok-free.app"
        );
        assert_eq!(forward_port(&t.tunnels[0].config.addr), Some(8080));
    }
}

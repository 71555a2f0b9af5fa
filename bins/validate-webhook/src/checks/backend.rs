//! Backend: is something listening on PORT, and is it webhook-server (`GET /healthz` → 200)?

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
    // Before the server starts this is expected; with --online the chain needs it.
    let missing = if ctx.online {
        Status::Error
    } else {
        Status::Warning
    };
    let start = format!(
        "Start the server with `cargo run -p webhook-server` (it listens on PORT {port}), then check again."
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
        Ok(a) if a.status == 200 => Check::ok(S, "healthz", format!("GET {url} answered 200: webhook-server is up")),
        Ok(a) => Check::new(
            S,
            "healthz",
            missing,
            format!("GET {url} answered {}: the program on port {port} is not webhook-server", a.status),
            Some("Stop the other program or give webhook-server a free port (PORT) and `ngrok http` that port."),
        ),
        Err(f) => Check::new(
            S,
            "healthz",
            missing,
            format!("GET {url} failed: {}", f.describe()),
            Some(format!("The program on port {port} does not speak HTTP like webhook-server: stop it or change PORT.")),
        ),
    });
    out
}

//! The `check` command: runs every check in display order and returns their lines.
//!
//! Each submodule owns one section and returns `Vec<Check>`; nothing here prints.
//!
//! - `ngrok` — the local agent API: tunnel URL vs WEBHOOK_URL, forwarding port.
//! - `backend` — something listening on PORT, `GET /healthz`.
//! - `database` — DATABASE_URL reachable, migrations applied.
//! - `redis` — REDIS_URL answers PING.
//! - `twilio` — `--online`: credentials, account, the webhook URL Twilio has.
//! - `probe` — `--online`: signed and tampered requests to WEBHOOK_URL.
//!
//! The configuration lines come first, from [`crate::settings`].

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::report::Check;
use crate::setup::Setup;

mod backend;
mod database;
mod ngrok;
pub(crate) mod probe;
mod redis;
pub(crate) mod twilio;

/// Everything a check may look at.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The configuration.
    pub setup: Setup,
    /// `--online`.
    pub online: bool,
    /// `--timeout`.
    pub timeout: Duration,
    /// ngrok agent API base (`http://127.0.0.1:4040`).
    pub ngrok_api_url: String,
    /// Base of relative paths (SQLite files).
    pub cwd: PathBuf,
}

/// Runs the checks after the configuration ones: ngrok, backend, database, Redis, and with
/// `--online` Twilio and the signed probe.
pub fn run(ctx: &Ctx) -> Vec<Check> {
    let mut out = Vec::new();
    out.extend(ngrok::check(ctx));
    out.extend(backend::check(ctx));
    out.extend(database::check(ctx));
    out.extend(redis::check(ctx));
    if ctx.online {
        out.extend(twilio::check(ctx));
        out.extend(probe::check(ctx));
    }
    out
}

/// TCP connect with a timeout, trying every address of `host`; the error is a short phrase.
pub(crate) fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|_| format!("{host} does not resolve"))?
        .collect();
    let mut last = "no address".to_owned();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(timeout));
                let _ = s.set_write_timeout(Some(timeout));
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = "connection refused".to_owned()
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("no answer within {} s", timeout.as_secs())
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

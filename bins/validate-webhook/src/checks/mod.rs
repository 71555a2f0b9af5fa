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

use std::collections::BTreeSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::report::{Check, Section, Status};
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
    /// Keys whose values are wrong (already reported as `❌`): the sections that read them
    /// are skipped, since `setup` holds their defaults instead.
    pub broken: BTreeSet<String>,
}

/// The keys each section reads.
const READS: &[(Section, &[&str])] = &[
    (Section::Ngrok, &["WEBHOOK_URL", "PORT"]),
    (Section::Backend, &["PORT", "HOST"]),
    (Section::Database, &["DATABASE_URL"]),
    (Section::Redis, &["REDIS_URL"]),
    (
        Section::Twilio,
        &[
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_API_KEY_SID",
            "TWILIO_API_KEY_SECRET",
            "TWILIO_WHATSAPP_FROM",
            "TWILIO_MESSAGING_SERVICE_SID",
            "TWILIO_API_BASE_URL",
            "WEBHOOK_URL",
        ],
    ),
    (
        Section::Probe,
        &["WEBHOOK_URL", "TWILIO_AUTH_TOKEN", "STATUS_CALLBACK_URL"],
    ),
];

impl Ctx {
    /// Adds where `key` was set to each `❌` line of `checks`: a value from the environment
    /// that shadows the one in `.env` is otherwise a puzzle.
    fn with_source(&self, mut checks: Vec<Check>, key: &str) -> Vec<Check> {
        let Some(source) = self.setup.sources.get(key) else {
            return checks;
        };
        for c in checks.iter_mut().filter(|c| c.status == Status::Error) {
            c.detail = match source.as_str() {
                "default" => format!("{} ({key} not set: the default)", c.detail),
                "not set" => continue,
                from => format!("{} ({key} from {from})", c.detail),
            };
        }
        checks
    }

    /// `run` unless a key `section` reads is broken; then one `⚠️` line naming the keys.
    fn unless_broken(&self, section: Section, run: impl FnOnce(&Ctx) -> Vec<Check>) -> Vec<Check> {
        let reads = READS
            .iter()
            .find(|(s, _)| *s == section)
            .map_or(&[][..], |(_, keys)| *keys);
        let broken: Vec<&str> = reads
            .iter()
            .copied()
            .filter(|k| self.broken.contains(*k))
            .collect();
        if broken.is_empty() {
            return run(self);
        }
        vec![Check::warning(
            section,
            "skipped",
            format!(
                "{} {} wrong (see ❌ above)",
                broken.join(" and "),
                if broken.len() == 1 { "is" } else { "are" }
            ),
            Some("Fix that value, then run validate-webhook again."),
        )]
    }
}

/// Runs the checks after the configuration ones: ngrok, backend, database, Redis, and with
/// `--online` Twilio and the signed probe. A section that reads a wrong key is one `⚠️
/// skipped` line instead.
pub fn run(ctx: &Ctx) -> Vec<Check> {
    let mut out = Vec::new();
    out.extend(ctx.unless_broken(Section::Ngrok, ngrok::check));
    out.extend(ctx.unless_broken(Section::Backend, backend::check));
    let database = ctx.unless_broken(Section::Database, database::check);
    out.extend(ctx.with_source(database, "DATABASE_URL"));
    let redis = ctx.unless_broken(Section::Redis, redis::check);
    out.extend(ctx.with_source(redis, "REDIS_URL"));
    if ctx.online {
        let twilio = ctx.unless_broken(Section::Twilio, twilio::check);
        // After a promoted rotation Twilio signs webhooks with the former secondary token:
        // the signed probe does the same (DESIGN: "the later checks use it").
        let promoted = twilio.iter().any(twilio::says_promoted);
        out.extend(twilio);
        let signing = match (&ctx.setup.auth_token_secondary, promoted) {
            (Some(secondary), true) => Ctx {
                setup: crate::setup::Setup {
                    auth_token: Some(secondary.clone()),
                    ..ctx.setup.clone()
                },
                ..ctx.clone()
            },
            _ => ctx.clone(),
        };
        out.extend(signing.unless_broken(Section::Probe, probe::check));
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

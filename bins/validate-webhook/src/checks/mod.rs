//! The `check` command: runs every check in display order and returns their lines.
//!
//! Each submodule owns one section and returns `Vec<Check>`; nothing here prints.
//!
//! - `ngrok` — the local agent API: tunnel URL vs WEBHOOK_URL, forwarding port.
//! - `backend` — something listening on PORT, `GET /healthz`.
//! - `storage` — DATABASE_URL and REDIS_URL reachable.
//! - `twilio` — `--online`: credentials, account, the webhook URL Twilio has.
//! - `probe` — `--online`: signed and tampered requests to WEBHOOK_URL.
//!
//! The configuration lines come first, from [`crate::settings`].

use std::path::PathBuf;
use std::time::Duration;

use crate::report::Check;
use crate::setup::Setup;

mod backend;
mod ngrok;
pub(crate) mod probe;
mod storage;
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
    out.extend(storage::database(ctx));
    out.extend(storage::redis(ctx));
    if ctx.online {
        out.extend(twilio::check(ctx));
        out.extend(probe::check(ctx));
    }
    out
}

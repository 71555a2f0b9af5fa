//! `validate-webhook`: says exactly what is wrong with a Twilio WhatsApp webhook setup before
//! anyone stares at an empty log.
//!
//! It loads the configuration with the same loader as the server (`config`), then checks what
//! that configuration points at — ngrok's tunnel, the local server, the database, Redis — and
//! with `--online` asks Twilio where it sends inbound messages and proves the whole chain with
//! a signed test request. Every check is data ([`report::Check`]: section, name, ordered
//! status, detail, hint); one printer ([`printer`]) renders them as ✅/⚠️/❌ lines or as the
//! versioned JSON document described in the README.
//!
//! # What it deliberately does not do
//!
//! - It changes nothing itself: no migrations, no Twilio Console updates, no files created
//!   (a SQLite file is inspected, never opened for writing). The messages it posts to the
//!   server (the `--online` probe, `simulate`) are recorded by the server like any webhook,
//!   marked as probes and never answered.
//! - It does not depend on `webhook-core`: the probe marker is the same literal
//!   ([`probe::PROBE_PARAM`]), so the CLI can diagnose a server that does not build.
//! - `send-test` is the only command with an effect outside this machine, and only when asked.
//!
//! # Layout
//!
//! - `cli.rs` — clap arguments; usage errors exit 2.
//! - `report.rs` — [`report::Check`], [`report::Status`], [`report::Section`], [`report::Report`].
//! - `printer.rs` — text and JSON rendering, the summary line.
//! - `settings.rs` — the only user of the `config` crate: `.env`, findings, load problems.
//! - `setup.rs` — [`setup::Setup`], what the checks need from the configuration.
//! - `checks/` — one module per section (`ngrok`, `backend`, `storage`, `twilio`, `probe`).
//! - `commands/` — `simulate` and `send-test`.
//! - `probe.rs` — signed sample messages; `diagnose.rs` — what an answer means; `http.rs` —
//!   ureq helpers.
//!
//! # Example
//!
//! ```
//! use validate_webhook::report::{Check, Report, Section};
//! use validate_webhook::printer::render_text;
//!
//! let mut report = Report::default();
//! report.push(Check::error(Section::WebhookUrl, "WEBHOOK_URL", "uses http, not https",
//!     "Use the https:// URL (ngrok and Render both serve https)."));
//! assert!(render_text(&report).contains("uses http, not https"));
//! assert_eq!(report.exit_code(), 1);
//! ```

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub mod checks;
pub mod cli;
mod commands;
pub mod diagnose;
pub mod http;
pub mod printer;
pub mod probe;
pub mod report;
pub mod settings;
pub mod setup;

use cli::{Cli, Command};
use report::{Check, Report, Section};

/// Runs the parsed command, prints its report and returns the exit code: 0, 1 when a line is
/// `❌`, 2 when `--env-file` names no file (a usage error, reported as its `❌` line).
pub fn run(cli: Cli) -> ExitCode {
    let cwd = settings::current_dir();
    let (name, report) = build_report(&cli, &cwd);
    let code = if missing_env_file(&cli, &cwd) {
        2
    } else {
        report.exit_code()
    };
    let text = if cli.global.json {
        printer::render_json(&report, name)
    } else {
        printer::render_text(&report)
    };
    // anstream drops colour codes when stdout is not a terminal or NO_COLOR is set.
    let mut out = anstream::stdout();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    ExitCode::from(code)
}

/// The `--json` document for arguments clap refused (exit code 2): one `usage` line with
/// clap's message and the fix, so a script reading stdout always gets JSON.
pub fn usage_error_json(args: &[String], clap_message: &str) -> String {
    let command = args
        .iter()
        .skip(1)
        .find_map(|a| match a.as_str() {
            "simulate" => Some("simulate"),
            "send-test" => Some("send-test"),
            _ => None,
        })
        .unwrap_or("check");
    // clap's first paragraph: "error: the following required arguments were not provided:"
    // and the lines naming them, up to the blank line before "Usage:".
    let paragraph: Vec<&str> = clap_message
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = paragraph.join(" ");
    let detail = match joined.trim_start_matches("error: ").trim() {
        "" => "the arguments could not be parsed",
        detail => detail,
    };
    let mut report = Report::default();
    report.push(Check::error(
        Section::Usage,
        "arguments",
        detail,
        "Run validate-webhook --help for the flags and subcommands.",
    ));
    printer::render_json(&report, command)
}

/// What the command does with the configuration; `--online` is given before or after `check`.
fn purpose(cli: &Cli) -> settings::Purpose {
    match &cli.command {
        Some(Command::Simulate(_) | Command::SendTest(_)) => settings::Purpose::Act,
        Some(Command::Check(a)) if a.online => settings::Purpose::CheckOnline,
        _ if cli.check.online => settings::Purpose::CheckOnline,
        _ => settings::Purpose::Check,
    }
}

/// `--env-file PATH` where PATH does not exist or is a directory (relative paths are read from
/// `cwd`); a pipe or `/dev/null` is a file to read, as for the loader.
pub fn missing_env_file(cli: &Cli, cwd: &Path) -> bool {
    cli.global.env_file.as_deref().is_some_and(|path| {
        let path = cwd.join(path);
        !path.exists() || path.is_dir()
    })
}

/// Runs the command and collects its lines; `name` is the command for the JSON document. No
/// line shows a password of a configured URL.
pub fn build_report(cli: &Cli, cwd: &Path) -> (&'static str, Report) {
    let purpose = purpose(cli);
    let mut loaded = settings::load(cwd, cli.global.env_file.as_deref(), purpose);
    let url_passwords = std::mem::take(&mut loaded.url_passwords);
    let (name, mut report) = collect(cli, cwd, loaded, purpose);
    settings::scrub(&url_passwords, &mut report.checks);
    (name, report)
}

fn collect(
    cli: &Cli,
    cwd: &Path,
    loaded: settings::Loaded,
    purpose: settings::Purpose,
) -> (&'static str, Report) {
    let timeout = Duration::from_secs(cli.global.timeout);
    let mut report = Report::default();
    let name = match &cli.command {
        None | Some(Command::Check(_)) => "check",
        Some(Command::Simulate(_)) => "simulate",
        Some(Command::SendTest(_)) => "send-test",
    };
    // `simulate` and `send-test` act on the values: with one of them wrong they do nothing.
    let acts = purpose == settings::Purpose::Act;
    let setup = loaded.setup.filter(|_| !acts || loaded.broken.is_empty());
    let Some(setup) = setup else {
        report.extend(loaded.checks);
        report.push(Check::warning(
            Section::Config,
            "other checks",
            "skipped: the configuration does not load",
            Some("Fix the ❌ lines, then run validate-webhook again."),
        ));
        return (name, report);
    };
    match &cli.command {
        None | Some(Command::Check(_)) => {
            report.extend(loaded.checks);
            let ctx = checks::Ctx {
                setup,
                online: purpose == settings::Purpose::CheckOnline,
                timeout,
                ngrok_api_url: cli.global.ngrok_api_url.clone(),
                cwd: cwd.to_path_buf(),
                broken: loaded.broken,
            };
            report.extend(checks::run(&ctx));
        }
        Some(Command::Simulate(args)) => {
            // Only the configuration's errors matter here; the rest is `check`'s job.
            report.extend(
                loaded
                    .checks
                    .into_iter()
                    .filter(|c| c.status == report::Status::Error),
            );
            report.extend(commands::simulate::run(
                &setup,
                args.url.as_deref(),
                &args.fixture,
                cwd,
                timeout,
            ));
        }
        Some(Command::SendTest(args)) => {
            report.extend(
                loaded
                    .checks
                    .into_iter()
                    .filter(|c| c.status == report::Status::Error),
            );
            report.extend(commands::send_test::run(
                &setup, &args.to, &args.body, timeout,
            ));
        }
    }
    (name, report)
}

//! `bench-gen-requests`: writes unique, validly signed inbound-message webhooks for `bench/unique.lua`.
//!
//! wrk's LuaJIT has no HMAC, and signing in Lua would spend the CPU the server under test needs
//! (client and server share the machine). So the signatures are computed here, before the run,
//! with the same [`Validator`] the server checks them with:
//!
//! - `DIR/body.tmpl`: the form body of a realistic WhatsApp text message (the shape of
//!   `fixtures/inbound-whatsapp-text.form`: 15 parameters, about 430 bytes) with `@SID@` where
//!   the message SID goes (`MessageSid`, `SmsSid`, `SmsMessageSid`).
//! - `DIR/requests-<t>.txt` for each wrk thread `t`: one line per request, `<sid> <signature>`.
//!   SIDs are `SM` + run id (8 hex) + thread (4 hex) + counter (20 hex), so every request of a
//!   run, and of different runs, is a new message.
//!
//! Usage: `bench-gen-requests --out DIR --url URL --threads T --per-thread N --run-id HEX`
//! with `TWILIO_AUTH_TOKEN` in the environment.

use anyhow::{Context, bail};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twilio_signature::Validator;
use webhook_core::inbound::{InboundMessage, parse_form};

const MARKER: &str = "@SID@";
const TEMPLATE: &str = "SmsMessageSid=@SID@&NumMedia=0&ProfileName=Ana+Souza&MessageType=text&\
SmsSid=@SID@&WaId=15551234567&SmsStatus=received&Body=Hello%2C+I+need+help+with+my+order+%231234&\
To=whatsapp%3A%2B14155238886&NumSegments=1&ReferralNumMedia=0&MessageSid=@SID@&\
AccountSid=AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e&From=whatsapp%3A%2B15551234567&ApiVersion=2010-04-01";

struct Args {
    out: PathBuf,
    url: String,
    threads: u32,
    per_thread: u64,
    run_id: u32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut out = None;
    let mut url = None;
    let mut threads = 2;
    let mut per_thread = 100_000;
    let mut run_id = 0;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value)),
            "--url" => url = Some(value),
            "--threads" => threads = value.parse().context("--threads: not a number")?,
            "--per-thread" => per_thread = value.parse().context("--per-thread: not a number")?,
            "--run-id" => {
                run_id = u32::from_str_radix(&value, 16).context("--run-id: not 8 hex digits")?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if threads == 0 || threads > 0xffff {
        bail!("--threads must be 1 to 65535");
    }
    Ok(Args {
        out: out.context("--out DIR is required")?,
        url: url.context("--url URL is required")?,
        threads,
        per_thread,
        run_id,
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("❌ bench-gen-requests: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    let token = std::env::var("TWILIO_AUTH_TOKEN").context("TWILIO_AUTH_TOKEN is not set")?;
    let validator = Validator::new(&token);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create {}", args.out.display()))?;
    std::fs::write(args.out.join("body.tmpl"), TEMPLATE).context("could not write body.tmpl")?;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let (args, validator) = (&args, &validator);
                s.spawn(move || write_thread_file(args, validator, t))
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| bail!("a generator thread panicked"))
        })
    })
}

fn write_thread_file(args: &Args, validator: &Validator, thread: u32) -> anyhow::Result<()> {
    let path = args.out.join(format!("requests-{thread}.txt"));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("could not create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for i in 0..args.per_thread {
        let sid = format!("SM{:08x}{thread:04x}{i:020x}", args.run_id);
        let body = TEMPLATE.replace(MARKER, &sid);
        let signature = validator.sign(&args.url, &parse_form(body.as_bytes()));
        if i == 0 {
            self_check(validator, &args.url, &body, &signature, &path)?;
        }
        writeln!(out, "{sid} {signature}")
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("could not write {}", path.display()))
}

/// The first request of each file must pass the server's own checks, or the whole run is 403s.
fn self_check(
    validator: &Validator,
    url: &str,
    body: &str,
    signature: &str,
    path: &Path,
) -> anyhow::Result<()> {
    validator
        .validate_form_body(url, body.as_bytes(), signature)
        .with_context(|| format!("{}: generated signature does not verify", path.display()))?;
    InboundMessage::from_form(body.as_bytes())
        .with_context(|| format!("{}: generated body does not parse", path.display()))?;
    Ok(())
}

//! Command-line arguments (clap derive). Parsing errors exit with code 2 (clap's usage error).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Diagnose a Twilio WhatsApp webhook setup: one ✅/⚠️/❌ line per check, the fix under every ❌.
///
/// Exit code: 0 when nothing is ❌, 1 otherwise, 2 on usage errors (an `--env-file` that
/// names no file included).
#[derive(Debug, Clone, Parser)]
#[command(name = "validate-webhook", version, about, long_about = None)]
pub struct Cli {
    /// What to do; `check` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Flags of `check`, also accepted without the subcommand name.
    #[command(flatten)]
    pub check: CheckArgs,
}

impl Cli {
    /// Refuses what clap's grammar lets through but nothing would read: `--online` before
    /// `simulate` or `send-test` (it belongs to `check`; after those subcommands clap refuses it
    /// itself).
    pub fn checked(self) -> Result<Cli, clap::Error> {
        use clap::CommandFactory as _;
        let subcommand = match &self.command {
            Some(Command::Simulate(_)) => Some("simulate"),
            Some(Command::SendTest(_)) => Some("send-test"),
            _ => None,
        };
        match subcommand {
            Some(name) if self.check.online => Err(Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--online belongs to `check` and is not used by `{name}` (`{name}` always sends its request)"
                ),
            )),
            _ => Ok(self),
        }
    }
}

/// Options every subcommand understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Read this .env file instead of ./.env (it must exist: exit code 2 otherwise).
    #[arg(long, value_name = "PATH", global = true)]
    pub env_file: Option<PathBuf>,

    /// Print the stable JSON document (its fields: bins/validate-webhook/README.md) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for each network answer (database, Redis, ngrok, Twilio, the server).
    #[arg(long, value_name = "SECS", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout: u64,

    /// ngrok agent API base URL (tests point it at a fake agent).
    #[arg(
        long,
        hide = true,
        env = "NGROK_API_URL",
        default_value = "http://127.0.0.1:4040",
        global = true
    )]
    pub ngrok_api_url: String,
}

/// Flags of the `check` command.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// Also ask Twilio (credentials, account, the webhook URL it has) and send signed test
    /// requests to WEBHOOK_URL. ngrok not running and the backend not listening become ❌ when
    /// WEBHOOK_URL runs through this machine (an ngrok URL, or localhost for the backend).
    #[arg(long)]
    pub online: bool,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check the configuration and what it points at (the default).
    Check(CheckArgs),
    /// POST a signed sample inbound WhatsApp message to the server and explain its answer.
    Simulate(SimulateArgs),
    /// Send a real WhatsApp message through Twilio with the configured sender.
    SendTest(SendTestArgs),
}

/// Flags of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Where to POST; default `http://127.0.0.1:$PORT/api/v1/whatsapp/webhook`. The signature is
    /// always computed for WEBHOOK_URL, the URL the server validates against.
    #[arg(long, value_name = "URL", value_parser = parse_http_url)]
    pub url: Option<String>,

    /// Sample message from fixtures/ to send (inbound-whatsapp-text, -media, -button,
    /// -location, -emoji, -long; the .form ending is optional), or the path of a form body.
    #[arg(long, value_name = "NAME", default_value = "inbound-whatsapp-text")]
    pub fixture: String,
}

/// Flags of `send-test`.
#[derive(Debug, Clone, Args)]
pub struct SendTestArgs {
    /// Recipient, `whatsapp:+` followed by the number in E.164 (e.g. `whatsapp:+15551234567`).
    #[arg(long, value_name = "whatsapp:+NUMBER", value_parser = parse_whatsapp_address)]
    pub to: String,

    /// Message text.
    #[arg(long, default_value = "Test message from validate-webhook ✅")]
    pub body: String,
}

/// Accepts `whatsapp:+` followed by 8 to 15 digits.
/// An `http://` or `https://` URL with a host (`simulate --url`).
fn parse_http_url(value: &str) -> Result<String, String> {
    let example = "e.g. http://127.0.0.1:5000/api/v1/whatsapp/webhook";
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(value.to_owned())
        }
        Ok(u) => Err(format!(
            "must be an http:// or https:// URL, not {}:, {example}",
            u.scheme()
        )),
        Err(e) => Err(format!("not a URL ({e}), {example}")),
    }
}

fn parse_whatsapp_address(value: &str) -> Result<String, String> {
    let digits = value
        .strip_prefix("whatsapp:+")
        .ok_or_else(|| "must start with `whatsapp:+`, e.g. whatsapp:+15551234567".to_owned())?;
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err("must be `whatsapp:+` followed by 8 to 15 digits, e.g. whatsapp:+15551234567".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_is_the_default_and_flags_work_without_the_subcommand() {
        let cli = Cli::try_parse_from(["validate-webhook", "--online", "--json"]).expect("parses");
        assert!(cli.command.is_none() && cli.check.online && cli.global.json);
        let cli = Cli::try_parse_from(["validate-webhook", "check", "--online", "--timeout", "3"])
            .expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Check(CheckArgs { online: true }))
        ));
        assert_eq!(cli.global.timeout, 3);
    }

    #[test]
    fn send_test_requires_a_whatsapp_address() {
        assert!(Cli::try_parse_from(["v", "send-test", "--to", "+15551234567"]).is_err());
        assert!(Cli::try_parse_from(["v", "send-test", "--to", "whatsapp:+1555"]).is_err());
        let cli = Cli::try_parse_from(["v", "send-test", "--to", "whatsapp:+15551234567"])
            .expect("parses");
        assert!(
            matches!(cli.command, Some(Command::SendTest(a)) if a.to == "whatsapp:+15551234567")
        );
    }
}

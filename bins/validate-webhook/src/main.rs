//! `validate-webhook` binary: parse the arguments (usage errors exit 2), run, exit 0 or 1.

use std::process::ExitCode;

use clap::Parser as _;
use validate_webhook::cli::Cli;

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => validate_webhook::run(cli),
        Err(e) => {
            // Help and --version are "errors" with exit code 0; usage errors are 2.
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

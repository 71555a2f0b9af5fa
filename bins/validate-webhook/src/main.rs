//! `validate-webhook` binary: parse the arguments (usage errors exit 2), run, exit 0, 1 or 2.

use std::process::ExitCode;

use clap::Parser as _;
use validate_webhook::cli::Cli;

fn main() -> ExitCode {
    match Cli::try_parse().and_then(Cli::checked) {
        Ok(cli) => validate_webhook::run(cli),
        Err(e) => {
            // Help and --version are "errors" with exit code 0; usage errors are 2, and with
            // --json stdout still carries a document (clap's text goes to stderr).
            let _ = e.print();
            let code = e.exit_code();
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            if code == 2 && args.iter().any(|a| a == "--json") {
                let doc = validate_webhook::usage_error_json(&args, &e.render().to_string());
                print!("{doc}");
            }
            ExitCode::from(u8::try_from(code).unwrap_or(2))
        }
    }
}

//! `webhook-server`: load configuration, set up logging, bind, serve until SIGTERM or Ctrl-C.
//!
//! All behaviour lives in `webhook-core`; this file only wires the process together.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: under load glibc spent about a third of the tokio workers'
/// CPU in `malloc`/`free`/`malloc_consolidate`, memory freed on another thread than the one that
/// allocated it (bench/README.md, "Where the time goes now").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Receive WhatsApp messages from Twilio webhooks, record them durably, answer them."
)]
struct Cli {
    /// Read this .env file instead of ./.env.
    #[arg(long, value_name = "PATH", global = true)]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks (the default).
    Serve,
    /// Apply pending database migrations and exit (for a platform's pre-deploy step).
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = config::LoadOptions {
        env_file: cli.env_file.clone(),
        ..config::LoadOptions::default()
    };
    let loaded = match config::load(&opts) {
        Ok(l) => l,
        Err(e) => {
            report_config_error(&opts, &e);
            return ExitCode::from(2);
        }
    };
    let settings = loaded.settings;
    init_tracing(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings, loaded.sources).await,
            Command::Migrate => migrate(settings).await,
        }
    });
    // A Twilio request still running on a blocking thread past the drain (it was started in
    // time but the network is slow) must not hold the exit: its reply is recorded as in doubt
    // and looked up at the next start, as after a crash.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("❌ {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: config::Settings, sources: Vec<String>) -> anyhow::Result<()> {
    let addr = format!("{}:{}", settings.host, settings.port);
    let listener = webhook_core::server::listen(&addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("is another process using PORT={}?", settings.port)
            }
            std::io::ErrorKind::AddrNotAvailable => format!(
                "HOST={} is not an address of this machine; 0.0.0.0 listens on all of them",
                settings.host
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "ports below 1024 need privileges; use a PORT such as 5000 (PORT={})",
                settings.port
            ),
            _ => format!(
                "is HOST={} an IP address or a name this machine resolves?",
                settings.host
            ),
        };
        anyhow::Error::new(e).context(format!("could not listen on {addr} ({why})"))
    })?;
    // The bound address as an address (an IPv6 host in brackets: http://[::]:5000).
    let addr = listener
        .local_addr()
        .map_or(addr, |bound| bound.to_string());
    tracing::info!(
        config = %settings.redacted_summary(),
        sources = %if sources.is_empty() { "defaults and environment".to_owned() } else { format!("defaults, {}, environment", sources.join(", ")) },
        "configuration loaded"
    );
    tracing::info!(
        "🚀 listening on http://{addr} — webhook: POST /api/v1/whatsapp/webhook, health: GET /healthz"
    );
    webhook_core::serve(listener, settings, shutdown_signal())
        .await
        .context("server failed")?;
    Ok(())
}

async fn migrate(settings: config::Settings) -> anyhow::Result<()> {
    let url = settings.database_url.expose();
    let store = match store::Store::connect(url, store::StoreOptions::default()).await {
        Ok(store) => store,
        Err(e) => {
            // Name the address and what answered there, as the server's retry line does.
            let context = match webhook_core::server::database_tcp(url).await {
                Some(tcp) => format!("could not migrate the database ({tcp})"),
                None => "could not migrate the database".to_owned(),
            };
            return Err(anyhow::Error::new(e).context(context));
        }
    };
    let pending = store
        .pending_migrations()
        .await
        .context("could not read which migrations are applied")?;
    store
        .run_migrations()
        .await
        .context("could not migrate the database")?;
    store.close().await;
    if pending.is_empty() {
        tracing::info!("✅ database migrations applied (none were pending)");
    } else {
        tracing::info!(
            migrations = %pending.join(", "),
            "✅ database migrations applied: {}",
            pending.join(", ")
        );
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what Render and Kubernetes send before stopping a process).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Says why the configuration does not load, before logging is set up: as one JSON object
/// when the logs would have been JSON (`APP_ENV=production` or `LOG_FORMAT=json`, as far as
/// the configuration can be read), so a log pipeline parsing every line gets this one too;
/// otherwise as text, one problem per line.
fn report_config_error(opts: &config::LoadOptions, e: &config::ConfigError) {
    let format = config::load_partial(opts).loaded.settings.log_format;
    // Written, not `eprintln!`: a closed stderr must not turn exit 2 into a panic.
    use std::io::Write as _;
    if format != config::LogFormat::Json {
        let _ = writeln!(std::io::stderr(), "❌ configuration error:\n{e}");
        return;
    }
    let problems: Vec<serde_json::Value> = e
        .problems()
        .iter()
        .map(|p| {
            serde_json::json!({
                "key": p.key,
                "source": p.source,
                "message": p.message,
                "fix": p.fix,
                "text": p.to_string(),
            })
        })
        .collect();
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "target": "webhook_server",
        "message": "❌ configuration error: the server does not start",
        "problems": problems,
    });
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn init_tracing(settings: &config::Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,hyper=warn"));
    // sea-orm's trace-level `connect` spans record the whole DATABASE_URL, password included,
    // and every event inside them repeats it: keep them off whatever RUST_LOG asks for.
    // sqlx logs each connection parameter it does not read with its value (`?token=…`): the
    // configuration's DATABASE_URL line names those keys without their values instead.
    let filter = ["sea_orm::driver=debug", "sqlx_postgres::options=error"]
        .into_iter()
        .filter_map(|cap| cap.parse().ok())
        .fold(filter, |filter, cap| filter.add_directive(cap));
    use std::io::IsTerminal;
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // A log consumer that went away (a closed pipe) must not stop the server: tracing would
    // report each failed write on stderr, and a closed stderr makes that report panic.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .log_internal_errors(false);
    if settings.log_format == config::LogFormat::Json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

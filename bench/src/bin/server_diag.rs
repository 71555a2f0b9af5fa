//! `bench-server-diag`: webhook-server's wiring plus two diagnostics, for finding bottlenecks.
//!
//! It loads configuration, opens the store and serves exactly like `webhook-server` (same
//! `config::load`, `Store::connect` options, `App::assemble` and `webhook_core::serve_app`), and:
//!
//! - prints the store's group-commit counters when it stops, as
//!   `BENCH_STORE_STATS batches=… rows=… fallbacks=…` on stderr (rows per batch = rows ÷ batches);
//! - with `BENCH_PARK_WORKER=1`, gives the app a work queue that accepts every message and never
//!   hands one out, so the reply worker stays idle. The webhook path (verify, parse, group commit,
//!   200) then runs alone, which shows how much the dry-run replies cost the acknowledgements.
//!
//! It is not the server the benchmark's headline numbers come from; `bench/load.sh` runs it only
//! for the `*-noworker` diagnostic configurations.

use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use store::{BoxFuture, Job, StoreError, WorkQueue};
use webhook_core::{App, AutoReply};

/// A queue that takes every message and never gives one back: the worker idles.
struct ParkedQueue;

impl WorkQueue for ParkedQueue {
    fn enqueue<'a>(&'a self, _message_sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
    fn receive(&self, _max: usize, block: Duration) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(block).await;
            Ok(Vec::new())
        })
    }
    fn ack<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async { Ok(0) })
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
    fn kind(&self) -> &'static str {
        "parked (benchmark)"
    }
}

fn main() -> ExitCode {
    bench::init_tracing();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("❌ {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let settings = config::load(&config::LoadOptions::default())
        .context("configuration error")?
        .settings;
    let park = std::env::var("BENCH_PARK_WORKER").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let addr = format!("{}:{}", settings.host, settings.port);
        let listener = webhook_core::server::listen(&addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        let app = if park {
            // The same store options as App::with_handler.
            let store = store::Store::connect(
                settings.database_url.expose(),
                store::StoreOptions {
                    migrate: true,
                    batch_max: settings.store_batch_max,
                    batch_linger: Duration::from_micros(settings.store_batch_linger_us),
                    ..store::StoreOptions::default()
                },
            )
            .await
            .context("could not open the database")?;
            let handler = Arc::new(AutoReply::new(settings.auto_reply.clone()));
            App::assemble(
                settings,
                store,
                Arc::new(ParkedQueue),
                None,
                handler,
                "bench-diag".to_owned(),
            )
        } else {
            App::from_settings(settings)
                .await
                .context("could not start")?
        };
        let app = Arc::new(app);
        tracing::info!(park, "bench-server-diag listening on http://{addr}");
        webhook_core::serve_app(listener, app.clone(), bench::shutdown_signal()).await;
        let s = app.store.stats();
        eprintln!(
            "BENCH_STORE_STATS batches={} rows={} fallbacks={}",
            s.batches, s.rows, s.fallbacks
        );
        Ok(())
    })
}

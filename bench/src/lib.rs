//! Shared pieces of the load-benchmark binaries driven by `bench/load.sh`.
//!
//! The benchmark compares our `webhook-server` with two reference servers built here, so that
//! the difference between them is only the work we want to price:
//!
//! - `bench-hello`: the transport floor. The production server's accept loop and connection
//!   setup (`webhook_core::server::accept_until`: HTTP/1 builder, timer, header timeout with its
//!   408 answer, keep-alive, `TCP_NODELAY`, graceful shutdown), the same body read, then a
//!   fixed 200.
//! - `bench-verify-only`: the webhook path with the store bypassed: body read, signature check with
//!   `webhook_core::verify::check`, `InboundMessage::from_params`, the row's params JSON, the
//!   request metrics and the acknowledgement log line, then the same empty-TwiML 200.
//! - `bench-gen-requests`: writes unique, validly signed webhook requests for `bench/unique.lua`.
//!
//! This crate deliberately contains no production code path: the production server has no bench
//! flag, and these binaries call the same library functions it calls.
//!
//! # Layout
//!
//! - [`serve`]: the production accept loop, shared by both reference servers.
//! - [`read_body`]: the body read with the server's size and time limits.
//! - [`init_tracing`], [`listen_addr`], [`shutdown_signal`]: process plumbing shared by the binaries.
//! - The global allocator: every benchmark binary uses mimalloc, like `webhook-server`, so the
//!   reference servers differ from it only in the work being priced.

use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use webhook_core::routes::{BODY_TIMEOUT, MAX_BODY};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Response body type of the reference servers (the production server's type).
pub type Body = webhook_core::routes::Body;

/// Serves `handler` on `listener` until `shutdown` resolves, through the production server's own
/// accept loop and connection settings ([`webhook_core::server::accept_until`]), then waits up to
/// 5 s for open connections.
pub async fn serve<H, F>(listener: TcpListener, handler: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    webhook_core::server::accept_until(&listener, handler, shutdown, Duration::from_secs(5)).await;
}

/// Reads a request body with the production limits (64 KiB, 10 s); `None` when it breaks them.
pub async fn read_body(req: Request<Incoming>) -> Option<(http::request::Parts, Bytes)> {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => Some((parts, collected.to_bytes())),
        _ => None,
    }
}

/// Logging set up like `webhook-server`: `RUST_LOG` when set, else the server's default filter.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .init();
}

/// The address to listen on: the first command-line argument, else `HOST`:`PORT`, else
/// `127.0.0.1:5000`.
pub fn listen_addr() -> String {
    std::env::args().nth(1).unwrap_or_else(|| {
        let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
        let port = std::env::var("PORT").unwrap_or_else(|_| "5000".to_owned());
        format!("{host}:{port}")
    })
}

/// Resolves on Ctrl-C or SIGTERM, like the production server.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

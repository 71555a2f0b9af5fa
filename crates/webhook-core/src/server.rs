//! The HTTP server: accept loop, per-connection limits, graceful shutdown.
//!
//! Shaped like hyper's `graceful_shutdown` example: one task per connection, each watched by
//! `GracefulShutdown`; on the shutdown signal the listener closes, in-flight requests finish (up
//! to a deadline), then the worker drains its in-flight replies and the function returns.

use crate::app::App;
use crate::{connection, routes};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Time a client has to send its request headers (slowloris guard). When it runs out, a client
/// that had started a request gets 408 and the connection is closed (see `connection`; an idle
/// keep-alive connection is closed silently); a body that is too slow gets 408 from `routes`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests and replies.
pub const DRAIN: Duration = Duration::from_secs(20);
/// How long the exit waits for the database pool to close after the drain.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest header section accepted (bigger → 431).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections the kernel holds for the accept loop (capped by `net.core.somaxconn`). Twilio
/// opens many connections at once in a burst; with std's and tokio's 128, the 129th waited
/// for a SYN retransmission (1 s).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Listens on `addr` (`host:port`, a name or an address) with [`LISTEN_BACKLOG`], like
/// [`TcpListener::bind`] otherwise: the first resolved address that binds, or the last error.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let listener = webhook_core::server::listen("0.0.0.0:5000").await?;
/// # Ok(()) }
/// ```
pub async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for resolved in tokio::net::lookup_host(addr).await? {
        let socket = if resolved.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        let bound = socket
            .set_reuseaddr(true)
            .and_then(|()| socket.bind(resolved))
            .and_then(|()| socket.listen(LISTEN_BACKLOG));
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    }))
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The app could not start (database, Redis, Twilio client).
    #[error(transparent)]
    Start(#[from] crate::app::StartError),
}

/// Opens everything `settings` describes and serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    settings: config::Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    for f in settings.findings() {
        // "No sender: dry run" is said once, by the dry-run line below (DESIGN.md: "said once
        // at start"), which also covers missing credentials.
        if (f.key, f.check) == ("TWILIO_WHATSAPP_FROM", "missing") {
            continue;
        }
        if f.status != config::Status::Ok {
            tracing::warn!(
                key = f.key,
                hint = f.hint.as_deref().unwrap_or(""),
                "⚠️ {}: {}",
                f.key,
                f.message
            );
        }
    }
    tokio::pin!(shutdown);
    // Until the app is up, requests get answers that say so (`routes::starting`) instead of
    // waiting in the listen backlog: /healthz 200, /readyz and the webhooks 503.
    let waiting_for = Arc::new(Mutex::new(
        "connecting to the database (first attempt)".to_owned(),
    ));
    let (ready_tx, mut ready_rx) = watch::channel(false);
    let starting = {
        let waiting_for = waiting_for.clone();
        let handler = move |req| routes::starting(waiting_for.clone(), req);
        accept_until(
            &listener,
            handler,
            async move {
                let _ = ready_rx.wait_for(|ready| *ready).await;
            },
            Duration::from_secs(5),
        )
    };
    // The database may come up after us (containers, a restarting managed database): stay up
    // and retry instead of exiting, as DESIGN's recovery rule asks.
    let retry = async {
        let mut backoff = Duration::from_secs(1);
        loop {
            match App::from_settings(settings.clone()).await {
                Ok(app) => return Ok(Arc::new(app)),
                Err(e) if e.is_unavailable() => {
                    // sqlx's pool hides why it could not connect ("pool timed out"): say
                    // whether the host even accepts TCP.
                    let tcp = database_tcp(settings.database_url.expose()).await;
                    tracing::error!(
                        error = %e,
                        database_tcp = tcp.as_deref().unwrap_or("-"),
                        retry_in_s = backoff.as_secs(),
                        "❌ cannot start yet: a dependency is unreachable; retrying (meanwhile /readyz and webhooks answer 503)"
                    );
                    if let Ok(mut w) = waiting_for.lock() {
                        *w = match &tcp {
                            Some(tcp) => format!("{e} ({tcp})"),
                            None => e.to_string(),
                        };
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let build = async {
        // A stop signal ends the retries, a connection attempt in progress included.
        let built = tokio::select! {
            built = retry => built.map(Some),
            _ = &mut shutdown => {
                tracing::info!("shutdown signal received before the server was ready: exiting");
                Ok(None)
            }
        };
        let _ = ready_tx.send(true);
        built
    };
    let (built, _) = tokio::join!(build, starting);
    let Some(app) = built? else {
        return Ok(());
    };
    if app.is_dry_run() {
        tracing::warn!(
            "⚠️ Dry run: replies are recorded in outbound_messages but not sent (set TWILIO_WHATSAPP_FROM or TWILIO_MESSAGING_SERVICE_SID, TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to send)"
        );
    }
    serve_app(listener, app, shutdown).await;
    Ok(())
}

/// For a PostgreSQL `database_url`: whether its host:port accepts a TCP connection within 2 s
/// (`"db.internal:5432: Connection refused (os error 111)"`), which sqlx's "pool timed out"
/// hides. `None` for other databases.
pub async fn database_tcp(database_url: &str) -> Option<String> {
    let url = url::Url::parse(database_url).ok()?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return None;
    }
    let addr = format!("{}:{}", url.host_str()?, url.port().unwrap_or(5432));
    let connect = tokio::net::TcpStream::connect(&addr);
    Some(
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(_)) => format!("{addr} accepts connections"),
            Ok(Err(e)) => format!("{addr}: {e}"),
            Err(_) => format!("{addr}: no answer within 2 s"),
        },
    )
}

/// Serves an already assembled [`App`]: spawns the worker and the sweep, accepts connections until
/// `shutdown` resolves, closes the listener (new connections are refused), then drains requests
/// and replies.
pub async fn serve_app(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(crate::worker::run(app.clone(), stop_rx.clone(), DRAIN));
    let sweeper = tokio::spawn(crate::sweep::run(
        app.clone(),
        Duration::from_secs(app.settings.sweep_interval_secs),
        stop_rx,
    ));

    let app_for_requests = app.clone();
    let handler = move |req| routes::handle(app_for_requests.clone(), req);
    let shutdown = async {
        shutdown.await;
        tracing::info!(
            "shutdown signal received: no new connections, finishing in-flight requests"
        );
    };
    let open = accept_loop(&listener, handler, shutdown).await;
    // Closed before the drain, so new connections are refused rather than left in the
    // backlog unanswered until the process exits.
    drop(listener);
    if !drain(open, DRAIN).await {
        tracing::warn!(
            "⚠️ some connections were still open after {} s",
            DRAIN.as_secs()
        );
    }
    let _ = stop_tx.send(true);
    // The sweep stops between batches; one it answers itself (the queue is down) may hold
    // sends, so it gets the drain's time, like the worker.
    if tokio::time::timeout(DRAIN, sweeper).await.is_err() {
        tracing::warn!(
            "⚠️ the sweep was still answering messages after {} s; the next start's sweep finishes them",
            DRAIN.as_secs()
        );
    }
    let _ = worker.await;
    // Closing the pool waits for every connection to come back; one stuck in a statement the
    // database never answers (a silent network) would hold the exit forever.
    if tokio::time::timeout(CLOSE_TIMEOUT, app.store.close())
        .await
        .is_err()
    {
        tracing::warn!(
            "⚠️ database connections still busy after {} s (the database stopped answering); exiting without them",
            CLOSE_TIMEOUT.as_secs()
        );
    }
    tracing::info!("server stopped");
}

/// Accepts connections on `listener` and serves each with `handler` until `shutdown` resolves,
/// then stops accepting and waits up to `drain` for open connections to finish their requests
/// (keep-alive connections are closed after their current request). Returns false when some
/// were still open at the deadline. The listener stays open: connections that arrive meanwhile
/// wait in its backlog for the next loop (the server's starting phase hands over to the real
/// routes this way), or are refused once the caller drops it.
///
/// Every connection gets the server's settings: HTTP/1.1 with keep-alive, `TCP_NODELAY`,
/// [`HEADER_TIMEOUT`] for the request headers (a started request then gets 408, see
/// `connection`), [`MAX_HEADER_BYTES`]. [`serve_app`] runs the webhook routes through it; the
/// load benchmark's reference servers (`bench/`) run their handlers through the same function,
/// so that they differ from the product only in the handler.
pub async fn accept_until<H, F>(
    listener: &TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
    drain_for: Duration,
) -> bool
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<routes::Body>> + Send + 'static,
{
    let open = accept_loop(listener, handler, shutdown).await;
    drain(open, drain_for).await
}

/// Waits up to `drain_for` for the connections `open` watches to finish their requests; false
/// when some were still open at the deadline.
async fn drain(open: GracefulShutdown, drain_for: Duration) -> bool {
    tokio::time::timeout(drain_for, open.shutdown())
        .await
        .is_ok()
}

/// The accept loop of [`accept_until`]: serves connections until `shutdown` resolves and
/// returns what watches the ones still open.
async fn accept_loop<H, F>(
    listener: &TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<routes::Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        // A client or proxy that shuts down its sending side after a complete request waits
        // for the answer: hyper's default closes at that EOF and drops the request's handler
        // (a webhook then acknowledged to nobody).
        .half_close(true)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = service_fn(move |req| {
                    let response = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(response.await) }
                });
                let (io, handle) = connection::split(stream);
                let conn = builder.serve_connection(TokioIo::new(io), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await
                        && e.is_timeout()
                        && handle.answer_header_timeout().await
                    {
                        tracing::debug!("408: request headers not complete within {} s (slow client)", HEADER_TIMEOUT.as_secs());
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    graceful
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many connections at once wait in the kernel's queue instead of being dropped: with a
    /// backlog of 128 the rest waited a second for their SYN to be sent again.
    #[tokio::test]
    async fn a_burst_of_connections_fits_the_listen_backlog() {
        let listener = listen("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: every connection must fit the backlog.
        let mut connecting = tokio::task::JoinSet::new();
        for _ in 0..400 {
            connecting.spawn(tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            ));
        }
        let mut connected = Vec::new();
        while let Some(done) = connecting.join_next().await {
            if let Ok(Ok(stream)) = done.unwrap() {
                connected.push(stream);
            }
        }
        assert_eq!(connected.len(), 400);
        drop(listener);
    }

    #[tokio::test]
    async fn listening_on_a_name_and_on_a_taken_port() {
        let listener = listen("localhost:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        let taken = listen(&format!("{}", listener.local_addr().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse, "port {port}");
        assert!(listen("no-such-host.invalid:80").await.is_err());
    }

    #[tokio::test]
    async fn the_database_probe_names_the_address_and_what_happened() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let refused = database_tcp(&format!("postgres://app:pw@127.0.0.1:{closed}/db"))
            .await
            .expect("a PostgreSQL URL is probed");
        assert!(
            refused.starts_with(&format!("127.0.0.1:{closed}: ")) && !refused.contains("pw"),
            "{refused}"
        );
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = open.local_addr().unwrap().port();
        assert_eq!(
            database_tcp(&format!("postgresql://127.0.0.1:{port}/db"))
                .await
                .as_deref(),
            Some(format!("127.0.0.1:{port} accepts connections").as_str())
        );
        assert_eq!(
            database_tcp("sqlite://data/webhook.db?mode=rwc").await,
            None
        );
    }
}

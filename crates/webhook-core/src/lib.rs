//! The WhatsApp-over-Twilio webhook pipeline.
//!
//! `webhook-core` turns Twilio's webhook POSTs into durably recorded, answered messages:
//!
//! ```text
//! POST /api/v1/whatsapp/webhook
//!   1. verify X-Twilio-Signature against WEBHOOK_URL      → 403 on mismatch   (verify)
//!   2. parse the form into a typed InboundMessage         → 400 on garbage    (inbound)
//!   3. record it durably, idempotent on MessageSid        → 503 if store down (app, store)
//!   4. 200 + empty TwiML, log "✅ Webhook received and acknowledged to Twilio"
//!   5. async: Handler decides the reply → twilio-client sends it → outbound row + status (worker)
//! POST /api/v1/whatsapp/status  → verify → store the event, status only moves forward (status)
//! ```
//!
//! It deliberately does not decide *what* to answer beyond a configurable auto-reply (implement
//! [`reply::Handler`] for that), does not download media, and does not terminate TLS (the
//! platform or ngrok does).
//!
//! # Layout
//!
//! - [`inbound`], [`status`]: typed Twilio payloads.
//! - [`verify`]: signature check against the public URL, and 403 diagnostics.
//! - [`reply`]: the [`reply::Handler`] trait and the default auto-reply.
//! - [`app`]: shared state and the record/readiness operations.
//! - [`routes`]: one function per endpoint; [`server`]: accept loop, limits, graceful shutdown;
//!   [`connection`]: the socket shared with hyper so a slow client still gets its 408.
//! - [`worker`]: the reply loop; [`pace`]: acknowledgements first, the worker's pace under a
//!   burst; [`sweep`]: re-queues unanswered messages from the database.
//! - [`metrics`]: Prometheus counters and histograms.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = config::load(&config::LoadOptions::default())?.settings;
//! let addr = format!("{}:{}", settings.host, settings.port);
//! let listener = webhook_core::server::listen(&addr).await?;
//! webhook_core::serve(listener, settings, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod app;
pub mod connection;
pub mod inbound;
pub mod metrics;
pub mod pace;
pub mod reply;
pub mod routes;
pub mod server;
pub mod status;
pub mod sweep;
pub mod verify;
pub mod worker;

pub use app::App;
pub use inbound::InboundMessage;
pub use reply::{AutoReply, Handler, Reply};
pub use server::{ServeError, serve, serve_app};
pub use status::StatusCallback;

//! Durable, idempotent storage of WhatsApp messages received through Twilio webhooks, on
//! PostgreSQL or SQLite, and the work queue that drives the reply step (Redis Streams or
//! in-process).
//!
//! What the server relies on:
//! - [`Store::record_inbound`] returns only after the row is committed, and exactly one call
//!   per `MessageSid` ever gets [`Recorded::New`]. Concurrent calls share one transaction
//!   (group commit), so one fsync serves many webhooks.
//! - [`Store::claim_inbound`] gives a message to one worker at a time (a lease); after a crash
//!   [`Store::unanswered_inbound`] finds it again.
//! - [`Store::create_outbound`] makes at most one reply row per inbound message, created before
//!   the send so a crash mid-send is visible.
//! - [`Store::record_status`] keeps every callback and moves a reply's status only forward.
//! - Every error says whether the backing service is unavailable ([`StoreError::is_unavailable`]
//!   → answer 503); the pools reconnect by themselves when it returns.
//!
//! What it deliberately does not do: parse webhooks, talk to Twilio, decide replies, or run
//! the sweep loop (that is `webhook-core`). The queue carries message SIDs only; the database
//! is the source of truth.
//!
//! # Layout
//!
//! - `store`: [`Store::connect`], migrations, health, counters.
//! - `group_commit`: the single writer behind `record_inbound`.
//! - `inbound`, `outbound`, `status`: the operations on each table.
//! - `queue`: [`WorkQueue`], [`InProcessQueue`], [`RedisQueue`].
//! - `entity`: sea-orm entities of the tables created by the `migrations` crate.
//! - `error`: [`StoreError`] and how driver errors map onto it.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), store::StoreError> {
//! use store::{NewInbound, Recorded, Store, StoreOptions};
//!
//! let store = Store::connect("sqlite::memory:", StoreOptions { migrate: true, ..Default::default() }).await?;
//! let msg = NewInbound {
//!     message_sid: "SM1a2b3c4d5e6f708192a3b4c5d6e7f809".into(),
//!     account_sid: "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e".into(),
//!     from: "whatsapp:+15551234567".into(),
//!     to: "whatsapp:+14155238886".into(),
//!     body: "Hello".into(),
//!     params_json: r#"{"Body":"Hello"}"#.into(),
//!     ..Default::default()
//! };
//! assert_eq!(store.record_inbound(msg.clone()).await?, Recorded::New);
//! assert_eq!(store.record_inbound(msg).await?, Recorded::Duplicate);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod entity;
mod error;
mod group_commit;
mod inbound;
mod model;
mod options;
mod outbound;
pub mod queue;
mod sql;
pub mod status;
mod store;

pub use error::StoreError;
pub use group_commit::{MAX_BATCH, WRITE_TIMEOUT};
pub use migrations::Migrator;
pub use model::{
    InboundMessage, InboundState, NewInbound, NewOutbound, NewStatusEvent, OutboundMessage,
    OutboundUpdate, Recorded, StatusApplied, StatusEvent, outbound_status,
};
pub use options::{BatchStatement, StoreOptions};
pub use queue::{BoxFuture, InProcessQueue, Job, RedisQueue, RedisQueueOptions, WorkQueue};
pub use store::{Backend, SqliteTarget, Store, StoreStats, sqlite_target};

/// `SM1a2b…f809`: enough of a SID to find it, for messages that should not carry whole values.
pub(crate) fn redact_sid(sid: &str) -> String {
    if sid.len() <= 10 || !sid.is_ascii() {
        return sid.to_owned();
    }
    format!("{}…{}", &sid[..6], &sid[sid.len() - 4..])
}

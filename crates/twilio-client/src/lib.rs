//! Outbound Twilio REST client: send WhatsApp replies, check credentials, read where Twilio
//! sends inbound webhooks.
//!
//! The webhook server uses it to answer messages; the `validate-webhook` CLI uses it to check a
//! setup online (are the credentials accepted, is the account active, does the number,
//! Messaging Service or WhatsApp sender point at `WEBHOOK_URL`).
//!
//! # What it does
//!
//! - [`Client::send_message`]: one `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//!   (`To`, `From` or `MessagingServiceSid`, `Body`, repeated `MediaUrl`, `ContentSid` +
//!   `ContentVariables`, `StatusCallback`), validated before it leaves.
//! - [`Client::send_with_retry`]: retries what is retryable (429, 5xx, timeouts, connection
//!   failures; not a failed TLS handshake) with jittered exponential backoff and
//!   `Retry-After`; after a try whose response was lost it looks the message up before sending
//!   again, so a retry cannot create a duplicate we do not know about. See [`RetryPolicy`]. [`Client::send_counting_attempts`]
//!   also says how many `POST`s a failure took ([`SendFailure`]).
//! - Look-ups: [`Client::fetch_message`], [`Client::list_messages`], [`Client::fetch_account`],
//!   [`Client::check_credentials`] (works with API keys), [`Client::find_incoming_number`],
//!   [`Client::fetch_messaging_service`], [`Client::fetch_whatsapp_sender`],
//!   [`Client::find_whatsapp_sender`] (by number, listing the WhatsApp senders).
//! - Typed errors ([`TwilioError`]) built from Twilio's error JSON, each saying whether it is
//!   retryable and what the operator should do; [`hint_for_code`] gives the same advice for
//!   codes that arrive later in status callbacks (63016, 63015, 30003…).
//!
//! # What it deliberately does not do
//!
//! - No async: ureq is blocking. Callers on tokio use `tokio::task::spawn_blocking`.
//! - No webhook signature validation (that is `twilio-signature`) and no persistence: the
//!   caller's outbound row is the record of what was sent.
//! - No pagination beyond the first page, except the lookup of a send whose response was lost
//!   (it reads back to when the send began); no media download, no other Twilio products.
//! - It never logs credentials; `Debug` of [`Auth`] and [`Client`] redacts them.
//!
//! # Layout
//!
//! - `auth.rs` — [`Auth`] (Auth Token or API key) and the Basic header.
//! - `client.rs` — [`Client`]: base URLs, timeouts, one method per endpoint.
//! - `message.rs` — [`SendMessage`] (validation, form encoding) and [`Message`].
//! - `resources.rs` — [`Account`], [`IncomingNumber`], [`MessagingService`], [`WhatsAppSender`].
//! - `error.rs` — [`TwilioError`], [`ApiError`], [`hint_for_code`].
//! - `retry.rs` — [`RetryPolicy`], [`SendOutcome`], the lost-response lookup.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use twilio_client::{Auth, Client, RetryPolicy, SendMessage, TwilioError};
//!
//! let client = Client::new(
//!     twilio_client::DEFAULT_BASE_URL,
//!     Auth::token("AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e", "your-auth-token"),
//!     Duration::from_secs(10),
//! )?;
//! let reply = SendMessage {
//!     status_callback: Some("https://example.com/api/v1/whatsapp/status".into()),
//!     ..SendMessage::text("whatsapp:+15551234567", "whatsapp:+14155238886", "Hi Ana!")
//! };
//! match client.send_with_retry(&reply, &RetryPolicy::default()) {
//!     Ok(outcome) => println!("sent {} after {} attempt(s)", outcome.message.sid, outcome.attempts),
//!     Err(e) if e.may_have_been_sent() => eprintln!("unknown outcome, do not resend: {e}"),
//!     Err(e) => eprintln!("not sent: {e}"),
//! }
//! # Ok::<(), TwilioError>(())
//! ```

mod auth;
mod client;
mod error;
mod message;
mod resources;
mod retry;

pub use auth::{Auth, redact_sid};
pub use client::{CONNECT_TIMEOUT, Client, DEFAULT_BASE_URL, MAX_SENDER_PAGES};
pub use error::{ApiError, TwilioError, hint_for_code};
pub use message::{MAX_BODY_CHARS, MAX_MEDIA_URLS, Message, SendMessage};
pub use resources::{Account, IncomingNumber, MessagingService, SenderWebhook, WhatsAppSender};
pub use retry::{LOOKUP_SKEW, RetryPolicy, SendFailure, SendOutcome, SendRecords};

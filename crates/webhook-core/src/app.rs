//! The shared state of one server: configuration, store, queue, Twilio client, handler, metrics.
//!
//! Everything a request or the worker needs hangs off one [`App`], built once at start by
//! [`App::from_settings`] (or assembled by tests with their own handler and queue).

use crate::inbound::InboundMessage;
use crate::metrics::Metrics;
use crate::reply::{AutoReply, Handler, PROBE_PARAM};
use crate::status::StatusCallback;
use crate::verify::PublicUrl;
use config::{Secret, Settings};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{NewStatusEvent, Recorded, StatusApplied, Store, StoreError, WorkQueue};
use tokio::sync::Semaphore;
use twilio_signature::Validator;

/// The worker is considered stuck when its loop has not turned for this long.
pub const WORKER_STALE_AFTER: Duration = Duration::from_secs(60);

/// Shared state of a running server.
pub struct App {
    /// The configuration the server started with.
    pub settings: Settings,
    /// Signature validator; `None` without `TWILIO_AUTH_TOKEN` (every webhook gets 403).
    pub validator: Option<Validator>,
    /// Whether the configured token looks like a placeholder (for 403 diagnostics).
    pub token_is_placeholder: bool,
    /// Validator for `TWILIO_AUTH_TOKEN_SECONDARY` during a token rotation: tried when the
    /// primary token's signature does not match. `None` when unset, a placeholder (anyone
    /// could sign with it) or the same as the primary token.
    pub secondary_validator: Option<Validator>,
    /// HMAC-SHA256 validator for webhooks a Webhook Rule signs with a shared key; `None`
    /// without `TWILIO_WEBHOOK_SHARED_KEY` (such webhooks get 403).
    pub shared_key_validator: Option<Validator>,
    /// Whether the configured shared key looks like a placeholder (for 403 diagnostics).
    pub shared_key_is_placeholder: bool,
    /// Public URL of the inbound webhook.
    pub webhook_url: PublicUrl,
    /// Public URL of the status callback.
    pub status_url: PublicUrl,
    /// Durable storage.
    pub store: Store,
    /// Work queue of message SIDs awaiting a reply.
    pub queue: Arc<dyn WorkQueue>,
    /// Twilio REST client; `None` means replies are recorded as dry run.
    pub client: Option<Arc<twilio_client::Client>>,
    /// Sender used for replies (`None`: dry run).
    pub sender: Option<config::Sender>,
    /// Decides replies.
    pub handler: Arc<dyn Handler>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Unique name of this process's worker; database claims carry it as `<worker_id>#<n>`.
    pub worker_id: String,
    /// Slots for replies being sent to Twilio (`WORKER_CONCURRENCY`), shared by the worker and
    /// the sweep's fallback so that together they never exceed it.
    sends: Arc<Semaphore>,
    heartbeat_ms: AtomicU64,
    secondary_seen: AtomicBool,
    /// A status callback arrived at the inbound URL (logged once).
    misrouted_status_seen: AtomicBool,
    /// An inbound message arrived at the status URL (warned once).
    misrouted_message_seen: AtomicBool,
    /// Set at shutdown: the moment by which every send to Twilio must have ended (no retry
    /// starts that could end later).
    pub(crate) sends_end_by: Arc<OnceLock<std::time::Instant>>,
    /// Acknowledgements under pressure, for the worker's pace (see [`crate::pace`]).
    acks: AckPressure,
}

/// How busy the acknowledgement path is: the verified webhooks (inbound messages and status
/// callbacks) being recorded right now, and when that count last reached
/// [`BUSY_RECORDING`](crate::pace::BUSY_RECORDING).
#[derive(Debug)]
struct AckPressure {
    recording: AtomicUsize,
    /// Milliseconds after `epoch` when the count last reached the threshold (0: never).
    busy_at_ms: AtomicU64,
    epoch: std::time::Instant,
}

impl AckPressure {
    fn new() -> Self {
        AckPressure {
            recording: AtomicUsize::new(0),
            busy_at_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    /// Milliseconds since `epoch`, from 1.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Counts one webhook as being recorded until the guard is dropped.
    fn start(&self) -> Recording<'_> {
        let in_flight = self.recording.fetch_add(1, Ordering::Relaxed) + 1;
        if in_flight >= crate::pace::BUSY_RECORDING {
            self.busy_at_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
        }
        Recording(&self.recording)
    }

    /// The count reached the threshold within the last [`BUSY_HOLD`](crate::pace::BUSY_HOLD).
    /// Held rather than instantaneous: group commit answers a whole batch of webhooks at once,
    /// so the count drops to zero for an instant after every commit even under full load.
    fn busy(&self) -> bool {
        let at = self.busy_at_ms.load(Ordering::Relaxed);
        let hold = u64::try_from(crate::pace::BUSY_HOLD.as_millis()).unwrap_or(u64::MAX);
        at != 0 && self.now_ms().saturating_sub(at) < hold
    }
}

/// One webhook being recorded; the count goes down when dropped.
struct Recording<'a>(&'a AtomicUsize);

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .field("worker_id", &self.worker_id)
            .field("dry_run", &self.is_dry_run())
            .finish_non_exhaustive()
    }
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// True when everything below is healthy.
    pub ready: bool,
    /// Database reachable.
    pub database: String,
    /// Queue (Redis or in-process) reachable.
    pub queue: String,
    /// Worker loop turned recently.
    pub worker: String,
}

impl Readiness {
    /// The report judged for taking webhooks: the database and the worker, not the queue
    /// (webhooks are recorded and acknowledged while Redis is down; the sweep answers them).
    /// The queue's state is still reported.
    pub fn for_webhooks(mut self) -> Readiness {
        self.ready = self.database == "ok" && self.worker == "ok";
        self
    }
}

/// The validator `make` builds from a configured signing secret, and whether the secret looks
/// like a placeholder (for 403 diagnostics); `(None, false)` when it is not set.
fn signing_key(secret: Option<&Secret>, make: fn(&str) -> Validator) -> (Option<Validator>, bool) {
    match secret.map(Secret::expose) {
        Some(s) => (Some(make(s)), config::is_placeholder(s)),
        None => (None, false),
    }
}

/// `TWILIO_AUTH_TOKEN_SECONDARY` when it can be used: set and not a placeholder (anyone could
/// sign with a placeholder). Both the webhook check and the REST credentials go by this.
fn secondary_token(settings: &Settings) -> Option<&Secret> {
    settings
        .auth_token_secondary
        .as_ref()
        .filter(|s| !config::is_placeholder(s.expose()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Error building an [`App`] from settings. Each message carries its cause's text (the cause is
/// not also a `source`, so an error-chain report does not print it twice).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("could not open the database: {0}")]
    Store(StoreError),
    /// Redis could not be reached at start.
    #[error("could not connect to Redis (REDIS_URL): {0}")]
    Queue(StoreError),
    /// The Twilio client could not be built.
    #[error("could not set up the Twilio client: {0}")]
    Twilio(twilio_client::TwilioError),
}

impl StartError {
    /// True when a dependency is only unreachable (worth retrying), not misconfigured.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StartError::Store(e) | StartError::Queue(e) => e.is_unavailable(),
            StartError::Twilio(_) => false,
        }
    }
}

impl App {
    /// Opens the store (running pending migrations), the queue and the Twilio client described by
    /// `settings`, with the default [`AutoReply`] handler.
    pub async fn from_settings(settings: Settings) -> Result<App, StartError> {
        let handler = Arc::new(AutoReply::new(settings.auto_reply.clone()));
        Self::with_handler(settings, handler).await
    }

    /// Like [`App::from_settings`] with a handler of your own.
    pub async fn with_handler(
        settings: Settings,
        handler: Arc<dyn Handler>,
    ) -> Result<App, StartError> {
        let store = Store::connect(
            settings.database_url.expose(),
            store::StoreOptions {
                migrate: true,
                batch_max: settings.store_batch_max,
                batch_linger: Duration::from_micros(settings.store_batch_linger_us),
                ..store::StoreOptions::default()
            },
        )
        .await
        .map_err(StartError::Store)?;
        let worker_id = worker_id();
        let queue: Arc<dyn WorkQueue> = match &settings.redis_url {
            Some(url) => {
                let opts = store::RedisQueueOptions {
                    key_prefix: settings.redis_key_prefix.clone(),
                    consumer: worker_id.clone(),
                    // A job's send ends LEASE_MARGIN before its claim expires (worker.rs).
                    send_timeout: crate::worker::CLAIM_LEASE - crate::worker::LEASE_MARGIN,
                    ..store::RedisQueueOptions::default()
                };
                match store::RedisQueue::connect(url.expose(), opts.clone()).await {
                    Ok(q) => Arc::new(q),
                    // Redis being down must not keep the server from taking webhooks: messages
                    // are committed to the database first and the sweep queues them once Redis
                    // is back. The queue connects lazily and recreates its group then.
                    Err(e) if e.is_unavailable() => {
                        tracing::warn!(error = %e, "⚠️ Redis is unreachable at start; webhooks are still recorded, replies resume when it returns");
                        Arc::new(
                            store::RedisQueue::new(url.expose(), opts)
                                .map_err(StartError::Queue)?,
                        )
                    }
                    Err(e) => return Err(StartError::Queue(e)),
                }
            }
            None => Arc::new(store::InProcessQueue::new()),
        };
        // A placeholder Messaging Service SID is no sender: a dry run, as its finding says.
        let sender = settings.sender.as_ref().filter(
            |s| !matches!(s, config::Sender::MessagingService(sid) if config::is_placeholder(sid)),
        );
        let client = match (sender, twilio_auth(&settings)) {
            (Some(_), Some(auth)) => Some(Arc::new(
                twilio_client::Client::new(
                    &settings.api_base_url,
                    auth,
                    crate::worker::TWILIO_REQUEST_TIMEOUT,
                )
                .map_err(StartError::Twilio)?,
            )),
            _ => None,
        };
        Ok(Self::assemble(
            settings, store, queue, client, handler, worker_id,
        ))
    }

    /// Builds an app from parts that are already open (tests use this with their own queue).
    pub fn assemble(
        settings: Settings,
        store: Store,
        queue: Arc<dyn WorkQueue>,
        client: Option<Arc<twilio_client::Client>>,
        handler: Arc<dyn Handler>,
        worker_id: String,
    ) -> App {
        let (validator, token_is_placeholder) =
            signing_key(settings.auth_token.as_ref(), Validator::new);
        let secondary_validator = secondary_token(&settings)
            .map(Secret::expose)
            .filter(|s| Some(*s) != settings.auth_token.as_ref().map(Secret::expose))
            .map(Validator::new);
        let (shared_key_validator, shared_key_is_placeholder) =
            signing_key(settings.webhook_shared_key.as_ref(), Validator::shared_key);
        let sends = Arc::new(Semaphore::new(settings.worker_concurrency.max(1)));
        let webhook_url = PublicUrl::new(settings.webhook_url.clone());
        let status_url = PublicUrl::new(settings.status_callback_url());
        let sender = if client.is_some() {
            settings.sender.clone()
        } else {
            None
        };
        App {
            validator,
            token_is_placeholder,
            secondary_validator,
            shared_key_validator,
            shared_key_is_placeholder,
            webhook_url,
            status_url,
            store,
            queue,
            client,
            sender,
            handler,
            metrics: Metrics::new(),
            worker_id,
            heartbeat_ms: AtomicU64::new(now_ms()),
            secondary_seen: AtomicBool::new(false),
            misrouted_status_seen: AtomicBool::new(false),
            misrouted_message_seen: AtomicBool::new(false),
            sends_end_by: Arc::new(OnceLock::new()),
            acks: AckPressure::new(),
            sends,
            settings,
        }
    }

    /// The slots for replies being sent to Twilio: `WORKER_CONCURRENCY` of them, shared by
    /// everything that sends.
    pub(crate) fn send_slots(&self) -> Arc<Semaphore> {
        self.sends.clone()
    }

    /// How many replies may be sent at the same time (`WORKER_CONCURRENCY`, at least 1).
    pub(crate) fn send_concurrency(&self) -> usize {
        self.settings.worker_concurrency.max(1)
    }

    /// True while acknowledgements are busy: at least
    /// [`BUSY_RECORDING`](crate::pace::BUSY_RECORDING) webhooks were being recorded at once
    /// within the last [`BUSY_HOLD`](crate::pace::BUSY_HOLD). The worker then paces itself.
    pub fn acks_busy(&self) -> bool {
        self.acks.busy()
    }

    /// True when replies are recorded but not sent (no sender or no credentials).
    pub fn is_dry_run(&self) -> bool {
        self.client.is_none() || self.sender.is_none()
    }

    /// Step 3: records the message durably. `Ok(true)` when new, `Ok(false)` for a duplicate
    /// delivery. New messages are queued for a reply; a queue failure is logged, not fatal,
    /// because the sweep finds unanswered messages in the database.
    pub async fn record(
        &self,
        msg: &InboundMessage,
        idempotency_token: Option<String>,
    ) -> Result<bool, StoreError> {
        let recording = self.acks.start();
        let recorded = self
            .store
            .record_inbound(msg.to_row(idempotency_token))
            .await?;
        // Only the database step counts: a slow Redis is not a busy acknowledgement path.
        drop(recording);
        let new = matches!(recorded, Recorded::New);
        if new && let Err(e) = self.queue.enqueue(&msg.message_sid).await {
            tracing::warn!(
                message_sid = %msg.message_sid,
                error = %e,
                "⚠️ Message recorded but not queued; the periodic sweep will pick it up"
            );
        }
        Ok(new)
    }

    /// Stores a status callback (every event; the message's status only moves forward).
    /// `idempotency_token` is the request's `I-Twilio-Idempotency-Token`; `callback_marker` the
    /// `ref` query parameter our outbound sends put in their `StatusCallback` URL.
    pub async fn record_status(
        &self,
        cb: &StatusCallback,
        idempotency_token: Option<String>,
        callback_marker: Option<String>,
    ) -> Result<(), StoreError> {
        let recording = self.acks.start();
        // The reply row gets Twilio's ErrorMessage, or (Twilio often sends none) the hint for its
        // code, as a send-time error records its hint: an operator reading outbound_messages
        // sees what to do about a 63016 without the logs.
        let error_message = cb.error_message.clone().or_else(|| {
            let code = cb.error_code?;
            twilio_client::hint_for_code(code).map(|hint| format!("error {code}: {hint}"))
        });
        let applied = self
            .store
            .record_status(NewStatusEvent {
                message_sid: cb.message_sid.clone(),
                status: cb.status.clone(),
                error_code: cb.error_code,
                error_message,
                params_json: crate::inbound::params_to_json(&cb.params),
                idempotency_token,
                callback_marker,
            })
            .await?;
        drop(recording);
        self.metrics.delivery_status(&cb.status, cb.error_code);
        if !crate::status::KNOWN_STATUSES.contains(&cb.status.as_str()) {
            tracing::warn!(
                message_sid = %cb.message_sid,
                status = %cb.status,
                error_code = cb.error_code,
                "⚠️ Delivery status this server does not know: kept in status_events, the reply's status is unchanged"
            );
            return Ok(());
        }
        let failed = matches!(cb.status.as_str(), "failed" | "undelivered");
        let hint = cb.error_code.map(|code| {
            twilio_client::hint_for_code(code)
                .unwrap_or("see https://www.twilio.com/docs/api/errors")
        });
        match (failed || cb.error_code.is_some(), applied) {
            // A failure that is now the reply's status (or will be once its SID is recorded).
            (true, StatusApplied::Advanced | StatusApplied::UnknownMessage) => tracing::warn!(
                message_sid = %cb.message_sid,
                status = %cb.status,
                error_code = cb.error_code,
                hint = hint.unwrap_or("Twilio gave no error code; see the message's logs in the Twilio Console"),
                applied = ?applied,
                "❌ Delivery failed"
            ),
            // A failure reported after a later status (e.g. `undelivered` after `read`), or again:
            // kept in status_events, the reply's status stays.
            (true, StatusApplied::Stale) => tracing::info!(
                message_sid = %cb.message_sid,
                status = %cb.status,
                error_code = cb.error_code,
                hint,
                applied = ?applied,
                "📬 Delivery failure callback kept; the reply already had this or a later status"
            ),
            (false, _) => tracing::info!(
                message_sid = %cb.message_sid,
                status = %cb.status,
                applied = ?applied,
                "📬 Delivery status received"
            ),
        }
        Ok(())
    }

    /// Whether the message is a `validate-webhook` probe that must not be answered.
    pub fn is_probe(msg: &InboundMessage) -> bool {
        msg.params.iter().any(|(k, _)| k == PROBE_PARAM)
    }

    /// Called when a webhook matched `TWILIO_AUTH_TOKEN_SECONDARY` but not the primary token:
    /// Twilio signs with the secondary now, so it was promoted. Logged once per process.
    pub fn secondary_token_used(&self, route: &'static str) {
        if self.secondary_seen.swap(true, Ordering::Relaxed) {
            return;
        }
        if self.token_is_placeholder {
            // Nothing was promoted: the primary was never filled in.
            tracing::warn!(
                route,
                "⚠️ Webhook signed with TWILIO_AUTH_TOKEN_SECONDARY: accepted. TWILIO_AUTH_TOKEN is still a placeholder and verifies nothing; set it to the Auth Token from the Twilio Console (and remove TWILIO_AUTH_TOKEN_SECONDARY unless a rotation is under way)"
            );
        } else {
            tracing::warn!(
                route,
                "⚠️ Webhook signed with TWILIO_AUTH_TOKEN_SECONDARY, not TWILIO_AUTH_TOKEN: Twilio signs with the secondary token now (it was promoted). Accepted; finish the rotation: set TWILIO_AUTH_TOKEN to it and remove TWILIO_AUTH_TOKEN_SECONDARY"
            );
        }
    }

    /// Called when a delivery status callback arrived at the inbound webhook URL (a status
    /// callback URL in the Console set to `WEBHOOK_URL`). It is recorded as a status, not
    /// answered as a message; the misconfiguration is logged once per process.
    pub fn status_callback_at_webhook_url(&self, cb: &StatusCallback) {
        if !self.misrouted_status_seen.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                message_sid = %cb.message_sid,
                status = %cb.status,
                "⚠️ A delivery status callback arrived at the inbound webhook URL: recorded as a status, not answered as a message. A status callback URL in the Twilio Console (the sender's, the Messaging Service's or the Sandbox's) is set to WEBHOOK_URL; point it at /api/v1/whatsapp/status instead, or leave it empty (replies sent by this server name their own)"
            );
        }
    }

    /// Notes an inbound message that arrived at the status callback URL (once per process).
    pub fn message_at_status_url(&self) {
        if !self.misrouted_message_seen.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "⚠️ An inbound message arrived at the status callback URL: recorded and answered as a message. In the Twilio Console (the sender's, the Messaging Service's or the Sandbox's settings), \"When a message comes in\" is set to /api/v1/whatsapp/status; set it to WEBHOOK_URL (/api/v1/whatsapp/webhook), and the status callback URL to /api/v1/whatsapp/status or nothing"
            );
        }
    }

    /// Marks the worker loop as alive.
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Store, queue and worker health for `/readyz`.
    pub async fn readiness(&self) -> Readiness {
        let timeout = Duration::from_secs(2);
        let database = match tokio::time::timeout(timeout, self.store.ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("unavailable: {e}"),
            Err(_) => "unavailable: no answer within 2 s".to_owned(),
        };
        let queue = match tokio::time::timeout(timeout, self.queue.ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("unavailable: {e}"),
            Err(_) => "unavailable: no answer within 2 s".to_owned(),
        };
        let age = Duration::from_millis(
            now_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)),
        );
        let worker = if age > WORKER_STALE_AFTER {
            format!("stuck: no progress for {} s", age.as_secs())
        } else {
            "ok".to_owned()
        };
        Readiness {
            ready: database == "ok" && queue == "ok" && worker == "ok",
            database,
            queue,
            worker,
        }
    }
}

/// REST credentials from settings: an API key when configured, else the auth token. During
/// a rotation (`TWILIO_AUTH_TOKEN_SECONDARY` set and not a placeholder) the secondary token:
/// Twilio accepts it before the promotion and only it after, so sends never fail in between.
pub fn twilio_auth(settings: &Settings) -> Option<twilio_client::Auth> {
    // A placeholder Account SID sends nothing (a dry run), as its finding says.
    let account_sid = settings
        .account_sid
        .clone()
        .filter(|sid| !config::is_placeholder(sid))?;
    match (
        &settings.api_key_sid,
        &settings.api_key_secret,
        secondary_token(settings).or(settings.auth_token.as_ref()),
    ) {
        (Some(key_sid), Some(secret), _) => Some(twilio_client::Auth::ApiKey {
            account_sid,
            key_sid: key_sid.clone(),
            secret: secret.expose().to_owned(),
        }),
        (_, _, Some(token)) => Some(twilio_client::Auth::Token {
            account_sid,
            auth_token: token.expose().to_owned(),
        }),
        _ => None,
    }
}

/// `<hostname>-<pid>-<6 random hex digits>`: unique per process even where every instance is pid
/// 1 on the same hostname (containers with host networking), since a claim made under this name
/// is taken again by the same name (two such instances both sent a reply to one message).
fn worker_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // std's RandomState is seeded from the operating system's randomness per process.
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "{}-{}-{:06x}",
        hostname(),
        std::process::id(),
        random.finish() & 0xff_ffff
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "webhook".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::{BUSY_HOLD, BUSY_RECORDING};

    #[test]
    fn worker_ids_of_one_host_and_pid_differ() {
        let a = worker_id();
        let b = worker_id();
        let prefix = format!("{}-{}-", hostname(), std::process::id());
        assert!(a.starts_with(&prefix) && b.starts_with(&prefix), "{a} {b}");
        assert_eq!(a.len(), prefix.len() + 6, "{a}");
        assert_ne!(a, b);
    }

    /// `STORE_BATCH_MAX` takes exactly the batch sizes the store writes: a larger one was once
    /// accepted and silently capped.
    #[test]
    fn the_configuration_accepts_the_store_s_batch_sizes_and_no_more() {
        let at = |n: usize| Settings::from_vars([("STORE_BATCH_MAX", n.to_string().as_str())]);
        assert_eq!(
            at(store::MAX_BATCH).unwrap().store_batch_max,
            store::MAX_BATCH
        );
        assert!(at(store::MAX_BATCH + 1).is_err());
    }

    /// A base URL the configuration accepts is stored in a form the client accepts, and one the
    /// client accepts as written is accepted by the configuration: otherwise the server logs
    /// "🚀 listening" and then stops at its first step with an error outside the configuration's
    /// report (or refuses a URL the client could use).
    #[test]
    fn the_configuration_and_the_client_agree_on_twilio_base_urls() {
        let client = |base: &str| {
            twilio_client::Client::new(
                base,
                twilio_client::Auth::token(
                    "AC0123456789abcdef0123456789abcdef",
                    "0123456789abcdef0123456789abcdef",
                ),
                Duration::from_secs(1),
            )
        };
        for base in [
            "https://api.twilio.com",
            "https://api.twilio.com/",
            "https://api.dublin.ie1.twilio.com",
            "https://proxy.corp.example/twilio",
            "https://[2001:db8::1]:8443",
            "http://127.0.0.1:26340",
            "http://localhost:8080/",
            "http://[::1]:8080",
            "http://fake-twilio.internal:8080",
            "http://10.0.0.5",
            "https://user:pw@api.twilio.com",
            "https://user@api.twilio.com",
            "https://api.twilio.com/?x=1",
            "https://api.twilio.com/#top",
            "ftp://api.twilio.com",
            "api.twilio.com",
            // Forms the URL parser normalises: what is stored is what the client reads.
            "HTTPS://API.twilio.com",
            "http://LOCALHOST:8080",
            "http://127.1:8080",
            "http://[0:0:0:0:0:0:0:1]:80",
            "https://@api.twilio.com",
        ] {
            let settings = Settings::from_vars([("TWILIO_API_BASE_URL", base)]);
            match &settings {
                Ok(s) => assert!(
                    client(&s.api_base_url).is_ok(),
                    "{base} stored as {}: {:?}",
                    s.api_base_url,
                    client(&s.api_base_url).err()
                ),
                Err(_) => assert!(
                    client(base).is_err(),
                    "the client takes {base}, the configuration refuses it: {settings:?}"
                ),
            }
        }
    }

    #[test]
    fn acknowledgements_stay_busy_for_the_hold_after_the_count_falls() {
        let acks = AckPressure::new();
        let few: Vec<_> = (0..BUSY_RECORDING - 1).map(|_| acks.start()).collect();
        assert!(!acks.busy(), "fewer than the threshold in flight");
        let one_more = acks.start();
        assert!(acks.busy());
        drop(one_more);
        drop(few);
        assert_eq!(
            acks.recording.load(Ordering::Relaxed),
            0,
            "guards count down"
        );
        assert!(
            acks.busy(),
            "a commit that answers the whole batch at once does not end the burst"
        );
        std::thread::sleep(BUSY_HOLD + Duration::from_millis(20));
        assert!(!acks.busy(), "quiet for longer than the hold");
    }
}

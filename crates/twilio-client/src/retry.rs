//! Sending with retries that never produce a duplicate message we do not know about.
//!
//! Twilio's `POST Messages.json` takes no idempotency key. So a try whose outcome is unknown
//! (timeout after the request went out, dropped connection, 5xx) is never simply repeated:
//! before the next try the client lists recent messages to the same recipient and, if one
//! matches what we sent, returns it instead of sending again. When the response was lost (no
//! answer at all), Twilio may still be creating the message when the client gives up waiting,
//! so the lookup comes no sooner than one request timeout later: a list taken right away could
//! miss a message that appears a moment after, and the resend would be a second message. A 5xx
//! is an answer (Twilio's handling of the request has ended), so its lookup follows the backoff.
//!
//! Waits use exponential backoff with full jitter (a random delay between zero and
//! `base_delay · 2^n`, capped at `max_delay`); a 429's `Retry-After` replaces the backoff,
//! capped at `max_retry_after`. Only [retryable](crate::TwilioError::is_retryable) errors are
//! retried — never a 4xx other than 429.
//!
//! [`RetryPolicy::max_elapsed`] bounds the whole send: a `POST` starts only if it can end (its
//! request timeout included) inside the budget. A caller that holds a lease on the work (the
//! webhook worker's claim on a message) passes the lease's remaining time, so no `POST` of ours
//! can still be in flight when another worker may take the message over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::Client;
use crate::error::TwilioError;
use crate::message::{Message, SendMessage};

/// How far before our first try a message found by the lookup may have been created
/// (clock skew between us and Twilio; Twilio's dates have one-second resolution).
pub const LOOKUP_SKEW: Duration = Duration::from_secs(60);

/// How many tries and how long to wait between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in total, at least 1. A try is a send, or — after a send that may have gone
    /// through — a lookup that could not be completed.
    pub max_attempts: u32,
    /// Backoff before the second try; doubles each time.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
    /// Largest wait taken from a `Retry-After` header.
    pub max_retry_after: Duration,
    /// Time budget for the whole send, from the call to the end of its last `POST`: a try
    /// (with the lookup before it and the wait before that) starts only if it fits, counting
    /// each request at the client's full timeout. `None`: only `max_attempts` limits it.
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 4 tries, 500 ms doubling up to 8 s, `Retry-After` honoured up to 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// A policy with the given tries and backoff, and the default `Retry-After` cap.
    pub fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay,
            max_delay,
            ..RetryPolicy::default()
        }
    }

    /// A single try, no retry.
    pub fn no_retry() -> RetryPolicy {
        RetryPolicy::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// This policy with a time budget for the whole send (see [`RetryPolicy::max_elapsed`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use twilio_client::RetryPolicy;
    ///
    /// let policy = RetryPolicy::default().within(Duration::from_secs(90));
    /// assert_eq!(policy.max_elapsed, Some(Duration::from_secs(90)));
    /// ```
    pub fn within(self, budget: Duration) -> RetryPolicy {
        RetryPolicy {
            max_elapsed: Some(budget),
            ..self
        }
    }

    /// The longest a send under this policy can take with requests bounded by `timeout`: every
    /// try at its longest wait, a lookup (of one page) before each resend, and the final
    /// lookup. A lookup that reads more pages takes longer; with [`RetryPolicy::max_elapsed`]
    /// set, the send ends its last `POST` within that budget whatever the lookups took.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twilio_client::RetryPolicy;
    ///
    /// // 4 tries, waits of up to 30 s (Retry-After), 10 s requests: 180 s in the worst case.
    /// assert_eq!(
    ///     RetryPolicy::default().worst_case(Duration::from_secs(10)),
    ///     Duration::from_secs(180)
    /// );
    /// ```
    pub fn worst_case(&self, timeout: Duration) -> Duration {
        let tries = self.max_attempts.max(1);
        // A lookup after a lost response waits at least one request timeout.
        let longest_wait = self.max_delay.max(self.max_retry_after).max(timeout);
        // First POST; then per retry: the wait, a lookup, a POST; then a final lookup; and the
        // lookup a caller makes before resending an interrupted send.
        timeout + (longest_wait + timeout * 2) * (tries - 1) + timeout * 2
    }

    /// The ceiling of the full-jitter backoff before retry number `retry` (1 = first retry).
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// How long to wait before retry number `retry` after `error`.
    pub fn delay_for(&self, retry: u32, error: &TwilioError) -> Duration {
        match error.retry_after() {
            Some(wait) => wait.min(self.max_retry_after),
            None => jitter(self.backoff_ceiling(retry)),
        }
    }
}

/// Time spent by one send, against its budget. Waits are counted as asked for, so a test's
/// recording sleeper advances the clock as a real sleep would.
struct Budget {
    limit: Option<Duration>,
    started: std::time::Instant,
    slept: Duration,
}

impl Budget {
    fn start(limit: Option<Duration>) -> Budget {
        Budget {
            limit,
            started: std::time::Instant::now(),
            slept: Duration::ZERO,
        }
    }

    fn slept(&mut self, wait: Duration) {
        self.slept += wait;
    }

    /// Whether `more` still fits in the budget.
    fn fits(&self, more: Duration) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        // A real sleeper is inside `elapsed`; a recording one only in `slept`.
        let spent = self.started.elapsed().max(self.slept);
        spent.saturating_add(more) <= limit
    }
}

/// What the caller's own records say about sends, for the lookups of
/// [`Client::send_counting_attempts_with`]. `()` knows nothing.
pub trait SendRecords {
    /// The SID of the message this send created, when it became known another way while the
    /// response was lost (a status callback carrying this send's marker).
    fn known_sid(&self) -> Option<String> {
        None
    }

    /// Whether another send already recorded `sid` as its own: two identical replies to one
    /// person match the same listed messages, and one must not take the other's.
    fn taken(&self, _sid: &str) -> bool {
        false
    }

    /// Time the caller has left before it must be done (a server's shutdown deadline, say),
    /// asked before every try: like [`RetryPolicy::max_elapsed`], no try (with its wait and
    /// its lookup) starts unless it can end within it, and the send then ends as
    /// [out of time](SendFailure::out_of_time). `None`: no such limit.
    fn time_left(&self) -> Option<Duration> {
        None
    }

    /// How often a wait before a retry asks [`time_left`](Self::time_left) again, for a caller
    /// whose deadline can appear while a send waits (a server told to stop during a 429's
    /// `Retry-After`): the wait then ends as soon as what is left of it, with the try after
    /// it, no longer fits, and the send ends as [out of time](SendFailure::out_of_time).
    /// `None`: a wait is one uninterrupted sleep.
    fn recheck_every(&self) -> Option<Duration> {
        None
    }
}

impl SendRecords for () {}

/// A message that Twilio accepted, and how we got it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOutcome {
    /// The created message.
    pub message: Message,
    /// `POST`s made (1 = the first one worked).
    pub attempts: u32,
    /// True when a response was lost and the message was found by listing instead:
    /// it was sent exactly once, just not confirmed directly.
    pub recovered: bool,
}

/// A send that [`Client::send_counting_attempts`] gave up on: the error that ended it and how
/// many `POST`s were made (0 when the request was refused before any, e.g. an empty body).
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {attempts} POST attempts)")]
#[non_exhaustive]
pub struct SendFailure {
    /// The first error that is not retryable, or the last one when the tries ran out.
    #[source]
    pub error: TwilioError,
    /// `POST`s made.
    pub attempts: u32,
    /// True when the time budget ([`RetryPolicy::max_elapsed`]), not the tries or a
    /// non-retryable answer, ended the send: a later attempt with a new budget may succeed.
    pub out_of_time: bool,
}

impl From<TwilioError> for SendFailure {
    /// A failure before any `POST` (a refused request, a lookup that failed): 0 attempts.
    fn from(error: TwilioError) -> Self {
        SendFailure {
            error,
            attempts: 0,
            out_of_time: false,
        }
    }
}

impl Client {
    /// Sends `req`, retrying retryable failures per `policy`, without blind resends.
    ///
    /// Returns the first error that is not retryable, or the last error when the tries run
    /// out. If that error [may have been sent](TwilioError::may_have_been_sent), the message
    /// may exist at Twilio: record it as unknown rather than sending it again later.
    /// [`Client::send_counting_attempts`] does the same and also says how many `POST`s a
    /// failure took.
    pub fn send_with_retry(
        &self,
        req: &SendMessage,
        policy: &RetryPolicy,
    ) -> Result<SendOutcome, TwilioError> {
        self.send_counting_attempts(req, policy)
            .map_err(|f| f.error)
    }

    /// [`Client::send_with_retry`], with the number of `POST`s made on failure too (to record
    /// on the reply, as [`SendOutcome::attempts`] is on success).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use twilio_client::{Auth, Client, RetryPolicy, SendMessage, TwilioError};
    ///
    /// let client = Client::new(
    ///     twilio_client::DEFAULT_BASE_URL,
    ///     Auth::token("AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e", "your-auth-token"),
    ///     Duration::from_secs(10),
    /// )?;
    /// let reply = SendMessage::text("whatsapp:+15551234567", "whatsapp:+14155238886", "Hi!");
    /// match client.send_counting_attempts(&reply, &RetryPolicy::default()) {
    ///     Ok(sent) => println!("sent {} after {} POST(s)", sent.message.sid, sent.attempts),
    ///     Err(failed) => eprintln!("gave up after {} POST(s): {}", failed.attempts, failed.error),
    /// }
    /// # Ok::<(), TwilioError>(())
    /// ```
    pub fn send_counting_attempts(
        &self,
        req: &SendMessage,
        policy: &RetryPolicy,
    ) -> Result<SendOutcome, SendFailure> {
        self.send_counting_attempts_with(req, policy, &())
    }

    /// [`Client::send_counting_attempts`], consulting the caller's `records` in each lookup of
    /// a send whose response was lost: a SID they already know for this send (a status
    /// callback carrying the marker of our `StatusCallback` URL names the message Twilio
    /// created) is fetched and returned as recovered, without listing or sending again
    /// (DESIGN: "look the message up (list … or match our own StatusCallback marker) before
    /// retrying"); a listed message another send already recorded is not taken for this one.
    pub fn send_counting_attempts_with(
        &self,
        req: &SendMessage,
        policy: &RetryPolicy,
        records: &dyn SendRecords,
    ) -> Result<SendOutcome, SendFailure> {
        req.validate()?;
        let started = chrono::Utc::now();
        let mut clock = Budget::start(policy.max_elapsed);
        let max_attempts = policy.max_attempts.max(1);
        let mut attempts = 0;
        let mut uncertain = false;
        let mut out_of_time = false;
        let mut last_error: Option<TwilioError> = None;

        for round in 0..max_attempts {
            let wait = match &last_error {
                Some(error) if uncertain && error.response_lost() => {
                    policy.delay_for(round, error).max(self.timeout)
                }
                Some(error) => policy.delay_for(round, error),
                None => Duration::ZERO,
            };
            // The POST, and before it the lookup that a possibly sent try requires.
            let requests = if uncertain { 2 } else { 1 };
            let needed = wait + self.timeout * requests;
            if !clock.fits(needed) || records.time_left().is_some_and(|left| needed > left) {
                let Some(error) = &last_error else {
                    return Err(SendFailure {
                        error: TwilioError::OutOfTime {
                            budget: policy.max_elapsed.unwrap_or_default(),
                            request_timeout: self.timeout,
                        },
                        attempts,
                        out_of_time: true,
                    });
                };
                tracing::warn!(
                    to = %req.to,
                    attempts,
                    error = %error,
                    "twilio send: no time left in the budget for another try"
                );
                out_of_time = true;
                break;
            }
            if let Some(error) = &last_error {
                tracing::warn!(
                    to = %req.to,
                    retry = round,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %error,
                    "twilio send failed, retrying"
                );
                let waited = self.wait(wait, records, self.timeout * requests);
                clock.slept(waited);
                if waited < wait {
                    tracing::warn!(
                        to = %req.to,
                        attempts,
                        error = %error,
                        "twilio send: stopped waiting to retry: the caller's deadline (a shutdown, say) leaves no time for another try"
                    );
                    out_of_time = true;
                    break;
                }
            }
            if uncertain {
                match self.lookup(req, started, records) {
                    Ok(Some(message)) => {
                        tracing::info!(sid = %message.sid, "twilio: lost response, message found by lookup");
                        return Ok(SendOutcome {
                            message,
                            attempts,
                            recovered: true,
                        });
                    }
                    // Not there: the earlier try did not go through, so sending is safe.
                    Ok(None) => {}
                    Err(lookup_error) => {
                        tracing::warn!(error = %lookup_error, "twilio: cannot check whether the message was sent");
                        if !lookup_error.is_retryable() {
                            break;
                        }
                        continue;
                    }
                }
                // The lookup (several pages, slow while Twilio is slow) may have used the
                // time the check above kept for it: the POST must still end inside the budget.
                if !clock.fits(self.timeout)
                    || records.time_left().is_some_and(|left| self.timeout > left)
                {
                    tracing::warn!(
                        to = %req.to,
                        attempts,
                        "twilio send: the lookup left no time in the budget for another try"
                    );
                    out_of_time = true;
                    break;
                }
            }
            attempts += 1;
            match self.send_message(req) {
                Ok(message) => {
                    return Ok(SendOutcome {
                        message,
                        attempts,
                        recovered: false,
                    });
                }
                Err(error) if !error.is_retryable() => {
                    return Err(SendFailure {
                        error,
                        attempts,
                        out_of_time: false,
                    });
                }
                Err(error) => {
                    uncertain = error.may_have_been_sent();
                    last_error = Some(error);
                }
            }
        }

        // Out of tries: one last look, so a message that did go out is reported as sent (if
        // the caller has the time).
        if uncertain
            && records.time_left().is_none_or(|left| left >= self.timeout)
            && let Ok(Some(message)) = self.lookup(req, started, records)
        {
            return Ok(SendOutcome {
                message,
                attempts,
                recovered: true,
            });
        }
        Err(SendFailure {
            error: last_error.unwrap_or_else(|| {
                TwilioError::InvalidRequest("retry policy allowed no attempt".to_owned())
            }),
            attempts,
            out_of_time,
        })
    }

    /// Sleeps `wait` before a try that needs `then` after it, in slices of
    /// [`SendRecords::recheck_every`] when the records ask for it, and returns how long it
    /// slept: less than `wait` when the caller's deadline left no room for the rest.
    fn wait(&self, wait: Duration, records: &dyn SendRecords, then: Duration) -> Duration {
        let Some(slice) = records.recheck_every().filter(|s| !s.is_zero()) else {
            (self.sleeper)(wait);
            return wait;
        };
        let mut slept = Duration::ZERO;
        while slept < wait {
            let rest = wait - slept;
            if records.time_left().is_some_and(|left| rest + then > left) {
                break;
            }
            let step = rest.min(slice);
            (self.sleeper)(step);
            slept += step;
        }
        slept
    }

    /// The message a send that may have gone through created: by the SID `records` know
    /// (fetched), else the oldest listed match no other send has recorded.
    fn lookup(
        &self,
        req: &SendMessage,
        started: chrono::DateTime<chrono::Utc>,
        records: &dyn SendRecords,
    ) -> Result<Option<Message>, TwilioError> {
        if let Some(sid) = records.known_sid() {
            return self.fetch_message(&sid).map(Some);
        }
        Ok(self
            .find_all_sent(req, started)?
            .into_iter()
            .find(|m| !records.taken(&m.sid)))
    }

    /// Looks for a message matching `req` (same `To`, sender, body and media count, outbound)
    /// that Twilio created since `started` minus [`LOOKUP_SKEW`]; `None` when there is none.
    ///
    /// `send_with_retry` calls this after a try whose response was lost. Call it yourself
    /// before re-sending a reply whose earlier send was interrupted (for example a crash
    /// while the outbound row said "sending"), with `started` = when that send began.
    /// Every page of the list back to that time is searched (up to 1,000 messages; beyond,
    /// the lookup fails rather than answer "not sent").
    pub fn find_sent(
        &self,
        req: &SendMessage,
        started: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Message>, TwilioError> {
        Ok(self.find_all_sent(req, started)?.into_iter().next())
    }

    /// Every message matching `req` that Twilio created since `started` minus
    /// [`LOOKUP_SKEW`], oldest first. Identical replies to one recipient (a fixed template, two
    /// equal messages) all match: a caller reconciling several interrupted sends gives each the
    /// first candidate no other reply has recorded, so none is taken twice.
    pub fn find_all_sent(
        &self,
        req: &SendMessage,
        started: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Message>, TwilioError> {
        // No DateSent filter: date_sent stays null while a message is queued.
        let since = started - chrono::Duration::from_std(LOOKUP_SKEW).unwrap_or_default();
        let recent = self.list_messages_since(&req.to, req.from.as_deref(), since)?;
        Ok(oldest_first(
            recent
                .into_iter()
                .filter(|m| matches_request(m, req) && m.created_at().is_some_and(|at| at >= since))
                .collect(),
        ))
    }
}

/// Messages as Twilio lists them (newest first) in creation order. `date_created` has whole
/// seconds: reversing first makes the stable sort keep the older of one second's messages first.
fn oldest_first(mut listed: Vec<Message>) -> Vec<Message> {
    listed.reverse();
    listed.sort_by_key(Message::created_at);
    listed
}

/// Whether a listed message is the one `req` would have created.
fn matches_request(message: &Message, req: &SendMessage) -> bool {
    if message.to != req.to {
        return false;
    }
    if message
        .direction
        .as_deref()
        .is_some_and(|d| !d.starts_with("outbound"))
    {
        return false;
    }
    let sender_matches = match (&req.from, &req.messaging_service_sid) {
        (Some(from), _) => message.from.as_deref() == Some(from.as_str()),
        (None, Some(mg)) => message.messaging_service_sid.as_deref() == Some(mg.as_str()),
        (None, None) => false,
    };
    if !sender_matches {
        return false;
    }
    // A template's stored body is the rendered text, which we do not know; compare free text only.
    if req.content_sid.is_none()
        && let Some(body) = &req.body
        && message.body.as_deref() != Some(body.as_str())
    {
        return false;
    }
    let sent_media = req.media_urls.len().to_string();
    message
        .num_media
        .as_deref()
        .is_none_or(|n| req.media_urls.is_empty() || n == sent_media)
}

/// A uniformly random duration in `[0, ceiling]` (full jitter). Not cryptographic.
fn jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(next_random() % (nanos.saturating_add(1)).max(1))
}

/// splitmix64 over a counter seeded from the clock: enough to spread retries apart.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = STATE.fetch_add(GOLDEN, Ordering::Relaxed) ^ clock;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn listed(json: &str) -> Message {
        serde_json::from_str(json).expect("message json")
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_millis(700));
        let ceilings: Vec<u128> = (1..=5).map(|r| p.backoff_ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 700, 700]);
        assert_eq!(p.backoff_ceiling(200), Duration::from_millis(700));
    }

    #[test]
    fn jitter_stays_within_the_ceiling_and_varies() {
        let ceiling = Duration::from_millis(50);
        let samples: Vec<Duration> = (0..200).map(|_| jitter(ceiling)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling));
        let first = samples[0];
        assert!(samples.iter().any(|d| *d != first));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn retry_after_replaces_backoff_and_is_capped() {
        let p = RetryPolicy {
            max_retry_after: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let limited = |secs| TwilioError::RateLimited {
            error: ApiError::parse(429, "{}"),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(p.delay_for(1, &limited(3)), Duration::from_secs(3));
        assert_eq!(p.delay_for(1, &limited(120)), Duration::from_secs(5));
    }

    #[test]
    fn lookup_candidates_are_oldest_first_within_one_second_too() {
        let at = |sid: &str, date: &str| Message {
            sid: sid.into(),
            date_created: Some(date.into()),
            ..listed(r#"{"sid":"x","status":"sent"}"#)
        };
        // Newest first, as Twilio lists them; SM2 and SM3 share a second.
        let listed = vec![
            at("SM4", "Thu, 26 Nov 2026 20:00:02 +0000"),
            at("SM3", "Thu, 26 Nov 2026 20:00:01 +0000"),
            at("SM2", "Thu, 26 Nov 2026 20:00:01 +0000"),
            at("SM1", "Thu, 26 Nov 2026 20:00:00 +0000"),
        ];
        let order: Vec<String> = oldest_first(listed).into_iter().map(|m| m.sid).collect();
        assert_eq!(order, ["SM1", "SM2", "SM3", "SM4"]);
    }

    #[test]
    fn lookup_matches_only_the_same_message() {
        let req = SendMessage::text("whatsapp:+1555", "whatsapp:+1415", "hi");
        let same = listed(
            r#"{"sid":"SM1","status":"sent","to":"whatsapp:+1555","from":"whatsapp:+1415","body":"hi","direction":"outbound-api","num_media":"0"}"#,
        );
        assert!(matches_request(&same, &req));
        let other_body = Message {
            body: Some("hello".into()),
            ..same.clone()
        };
        assert!(!matches_request(&other_body, &req));
        let inbound = Message {
            direction: Some("inbound".into()),
            ..same.clone()
        };
        assert!(!matches_request(&inbound, &req));
        let other_sender = Message {
            from: Some("whatsapp:+1999".into()),
            ..same
        };
        assert!(!matches_request(&other_sender, &req));
    }
}

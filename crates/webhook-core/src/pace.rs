//! Acknowledgements first: how fast the reply worker may go while webhooks are arriving faster
//! than the machine can both acknowledge and answer them.
//!
//! An acknowledgement is the one step Twilio does not retry: a webhook that is not answered
//! within 15 s is logged as 11200 and the message is gone (see `docs/architecture.md`). A reply
//! can wait: it is recorded work, and Twilio itself accepts at most 80 messages a second from one
//! WhatsApp sender. So while many webhooks are being recorded at once (at least
//! [`BUSY_RECORDING`], seen within the last [`BUSY_HOLD`]), the worker stops competing with
//! them for the CPU and the database: it answers at most [`BUSY_REPLY_RATE`] messages a second,
//! in chunks of up to [`BUSY_CHUNK`], and goes back to full speed soon after the burst. The burst's messages
//! wait, recorded, in the work queue (or for the sweep when the in-process queue is full) and
//! are answered after it; nothing is dropped.
//!
//! The pace never falls to zero, so a load that never ends cannot starve replies: they go on at
//! [`BUSY_REPLY_RATE`] a second, three times what one WhatsApp sender may send.

use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Webhooks being recorded at the same moment from which the worker paces itself. One webhook
/// spends ~1–3 ms in its recording on a healthy database, so 16 at once means thousands of
/// webhooks a second, or a database that has slowed down: either way the acknowledgements need
/// what the worker would take.
pub const BUSY_RECORDING: usize = 16;

/// How long one moment with [`BUSY_RECORDING`] webhooks in flight keeps the acknowledgements
/// "busy". Group commit answers a whole batch of webhooks at once, so under full load the count
/// still falls to zero for an instant after every commit; a worker that looked only at the
/// instant would find one of those moments several times a second.
pub const BUSY_HOLD: Duration = Duration::from_millis(250);

/// Messages a second the worker still answers while acknowledgements are busy (with or without
/// a send to Twilio): three times Twilio's limit of 80 messages a second for one WhatsApp
/// sender, so real replies are not held back below what Twilio would accept.
pub const BUSY_REPLY_RATE: f64 = 256.0;

/// Most jobs the worker takes at once while paced: a quarter of a second at
/// [`BUSY_REPLY_RATE`]. Chunks rather than single jobs, because each batch pays a commit.
pub const BUSY_CHUNK: usize = 64;

/// Longest single wait before the worker looks at the acknowledgements again, so it resumes
/// full speed soon after a burst ends (at most this after [`BUSY_HOLD`]).
const RECHECK: Duration = Duration::from_millis(50);

/// Minimum time between two "paced" log lines, so a load that hovers around
/// [`BUSY_RECORDING`] does not flood the log.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What [`Pace::allowance`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// Acknowledgements are not busy: take up to what was asked.
    Full(usize),
    /// Acknowledgements are busy: take at most this many (at least 1), then
    /// [`Pace::spend`] what was taken.
    Paced(usize),
    /// The stop signal changed while waiting.
    Stopping,
}

/// The worker's token bucket: it fills at [`BUSY_REPLY_RATE`] up to [`BUSY_CHUNK`] and is only
/// consulted while acknowledgements are busy.
#[derive(Debug)]
pub struct Pace {
    tokens: f64,
    filled_at: Instant,
    /// Time spent waiting for acknowledgements, not yet reported to the metrics.
    waited: Duration,
    logged_at: Option<Instant>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

impl Pace {
    /// A full bucket: the first paced chunk goes at once.
    pub fn new() -> Pace {
        Pace {
            tokens: BUSY_CHUNK as f64,
            filled_at: Instant::now(),
            waited: Duration::ZERO,
            logged_at: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let added = now.saturating_duration_since(self.filled_at).as_secs_f64() * BUSY_REPLY_RATE;
        self.tokens = (self.tokens + added).min(BUSY_CHUNK as f64);
        self.filled_at = now;
    }

    /// How many of `want` jobs the worker may take now. While `busy()` (the acknowledgements
    /// are busy, [`App::acks_busy`](crate::App::acks_busy)), waits until the bucket holds a
    /// chunk (at most `want`), looking again every 50 ms; returns at once otherwise.
    pub async fn allowance(
        &mut self,
        want: usize,
        busy: impl Fn() -> bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Allowance {
        let want = want.max(1);
        loop {
            let now = Instant::now();
            self.refill(now);
            if !busy() {
                return Allowance::Full(want);
            }
            let need = want.min(BUSY_CHUNK) as f64;
            if self.tokens >= need {
                return Allowance::Paced((self.tokens as usize).min(want));
            }
            if self.logged_at.is_none_or(|at| now - at >= LOG_EVERY) {
                self.logged_at = Some(now);
                tracing::info!(
                    replies_per_s = BUSY_REPLY_RATE,
                    "⏸️ Acknowledgements first: webhooks are arriving faster than the server can also answer them; replies go on at a reduced pace and catch up when the burst ends (every message is recorded)"
                );
            }
            let wait = Duration::from_secs_f64((need - self.tokens) / BUSY_REPLY_RATE).min(RECHECK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return Allowance::Stopping,
            }
            self.waited += Instant::now() - now;
        }
    }

    /// Takes `n` jobs out of the bucket after a [`Allowance::Paced`] answer.
    pub fn spend(&mut self, n: usize) {
        self.tokens = (self.tokens - n as f64).max(0.0);
    }

    /// The time spent waiting since the last call (for the metrics).
    pub fn take_waited(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(start_paused = true)]
    async fn quiet_acknowledgements_leave_the_worker_at_full_speed() {
        let (_tx, mut rx) = watch::channel(false);
        let mut pace = Pace::new();
        for _ in 0..100 {
            assert_eq!(
                pace.allowance(256, || false, &mut rx).await,
                Allowance::Full(256)
            );
        }
        assert_eq!(pace.take_waited(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_acknowledgements_hold_the_worker_to_the_floor_rate_without_starving_it() {
        let (_tx, mut rx) = watch::channel(false);
        let mut pace = Pace::new();
        let start = Instant::now();
        let mut taken = 0;
        while Instant::now() - start < Duration::from_secs(10) {
            match pace.allowance(256, || true, &mut rx).await {
                Allowance::Paced(n) => {
                    assert!((1..=BUSY_CHUNK).contains(&n), "a chunk at most: {n}");
                    pace.spend(n);
                    taken += n;
                }
                other => panic!("busy means paced, got {other:?}"),
            }
        }
        // 10 s at 256/s plus the first, full bucket.
        let most = (10.0 * BUSY_REPLY_RATE) as usize + BUSY_CHUNK;
        assert!(
            taken > most - 2 * BUSY_CHUNK && taken <= most,
            "{taken} jobs in 10 s (at most {most})"
        );
        assert!(pace.take_waited() > Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn the_worker_resumes_full_speed_within_a_recheck_of_the_burst_ending() {
        let (_tx, mut rx) = watch::channel(false);
        let mut pace = Pace::new();
        pace.spend(BUSY_CHUNK);
        let busy = AtomicBool::new(true);
        let start = Instant::now();
        let ends = async {
            tokio::time::sleep(Duration::from_millis(120)).await;
            busy.store(false, Ordering::Relaxed);
        };
        let (got, ()) = tokio::join!(
            pace.allowance(256, || busy.load(Ordering::Relaxed), &mut rx),
            ends
        );
        assert_eq!(got, Allowance::Full(256));
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_millis(120) && took <= Duration::from_millis(120) + RECHECK,
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_want_is_served_without_waiting_for_a_whole_chunk() {
        let (_tx, mut rx) = watch::channel(false);
        let mut pace = Pace::new();
        pace.spend(BUSY_CHUNK);
        let start = Instant::now();
        // With a sender the worker asks for its free send slots, e.g. 4.
        assert_eq!(
            pace.allowance(4, || true, &mut rx).await,
            Allowance::Paced(4)
        );
        let took = Instant::now() - start;
        assert!(took <= Duration::from_millis(20), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_stop_signal_ends_a_paced_wait() {
        let (tx, mut rx) = watch::channel(false);
        let mut pace = Pace::new();
        pace.spend(BUSY_CHUNK);
        let stop = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(true).unwrap();
        };
        let (got, ()) = tokio::join!(pace.allowance(256, || true, &mut rx), stop);
        assert_eq!(got, Allowance::Stopping);
    }
}

//! [`RedisQueue`]: a Redis Streams work queue shared by every server instance.
//!
//! - `enqueue`: `XADD <prefix>:jobs * sid <MessageSid>` (the ID only).
//! - `receive`: `XREADGROUP GROUP <group> <consumer> COUNT n BLOCK ms STREAMS <prefix>:jobs >`.
//!   The consumer group hands each entry to exactly one consumer.
//! - Reclaim: entries a consumer took but never acknowledged (it died) are taken over with
//!   `XAUTOCLAIM` once they have been idle longer than `reclaim_timeout`. That timeout must be
//!   longer than the Twilio send timeout, or a slow send would be taken over while still in
//!   flight; [`RedisQueue::new`] refuses a shorter one.
//! - Dead letters: an entry delivered more than `max_deliveries` times is moved to
//!   `<prefix>:dead` (with its SID and delivery count) instead of being handed out again.
//! - `ack`: `XACK` + `XDEL`, so the stream holds only unfinished work and `XLEN` is the depth.
//! - `NOGROUP` (Redis restarted without persistence, or the key was deleted): the group is
//!   recreated with `XGROUP CREATE … 0 MKSTREAM` and the read retried. It starts at `0`, not `$`:
//!   because acknowledged entries are deleted, everything still in the stream is unfinished work
//!   (for example jobs added after the restart but before this recreate), and `$` would skip it.
//! - Errors back off exponentially (100 ms doubling to `max_backoff`) inside `receive`, so a
//!   worker loop cannot hammer a Redis that is down.
//! - An `enqueue` that failed only after waiting (Redis accepted the connection but did not answer
//!   within half of `op_timeout` or more) opens a breaker: for `enqueue_cool_off` after it,
//!   enqueues fail at once, so webhooks are not each held for the timeout while the sweep queues
//!   their messages anyway (see `breaker.rs`).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::streams::{
    StreamAutoClaimReply, StreamInfoGroupsReply, StreamPendingCountReply, StreamRangeReply,
    StreamReadReply,
};
use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisError, Value};
use deadpool_redis::{Manager, Pool, Runtime};

use super::breaker::{Breaker, Change, Gate};
use super::{BoxFuture, Job, WorkQueue};
use crate::StoreError;

/// Settings for [`RedisQueue`].
#[derive(Debug, Clone)]
pub struct RedisQueueOptions {
    /// Prefix of the Redis keys (`<prefix>:jobs`, `<prefix>:dead`); tests use a random one.
    pub key_prefix: String,
    /// Consumer group shared by all instances.
    pub group: String,
    /// This consumer's name, unique per process (the server uses `hostname-pid-random`: the
    /// pid is often 1 in containers, and host networking gives them one hostname).
    pub consumer: String,
    /// An unacknowledged entry idle this long is taken over by another consumer.
    pub reclaim_timeout: Duration,
    /// The longest a worker may spend on one job's Twilio send (all retries included);
    /// `reclaim_timeout` must be longer.
    pub send_timeout: Duration,
    /// Deliveries after which an entry goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// Redis connections in the pool (a blocking read holds one).
    pub pool_size: usize,
    /// Connect and per-command timeout (blocking reads get their block time on top).
    pub op_timeout: Duration,
    /// Longest pause between attempts while Redis keeps failing.
    pub max_backoff: Duration,
    /// After an enqueue that failed slowly (Redis did not answer), how long enqueues fail at once
    /// before one is let through to try again.
    pub enqueue_cool_off: Duration,
}

impl Default for RedisQueueOptions {
    fn default() -> Self {
        RedisQueueOptions {
            key_prefix: "whatsapp-webhook".to_owned(),
            group: "reply-workers".to_owned(),
            consumer: format!("consumer-{}", std::process::id()),
            reclaim_timeout: Duration::from_secs(120),
            send_timeout: Duration::from_secs(60),
            max_deliveries: 5,
            pool_size: 16,
            op_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
            enqueue_cool_off: Duration::from_secs(5),
        }
    }
}

/// A Redis Streams [`WorkQueue`] with a consumer group (see the module documentation).
pub struct RedisQueue {
    pool: Pool,
    opts: RedisQueueOptions,
    stream: String,
    dead: String,
    failures: AtomicU32,
    reclaim: Mutex<Reclaim>,
    breaker: Breaker,
}

struct Reclaim {
    cursor: String,
    last_pass: Option<Instant>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL (which may hold a password) is deliberately not kept.
        f.debug_struct("RedisQueue")
            .field("stream", &self.stream)
            .field("group", &self.opts.group)
            .field("consumer", &self.opts.consumer)
            .finish_non_exhaustive()
    }
}

fn is_code(e: &RedisError, code: &str) -> bool {
    e.code() == Some(code)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisQueue {
    /// Validates the options and builds the pool without touching Redis.
    ///
    /// Errors: [`StoreError::InvalidInput`] when `reclaim_timeout <= send_timeout` (jobs still
    /// being sent would be handed to a second worker), for an empty prefix, group or consumer,
    /// or an unparsable URL.
    pub fn new(redis_url: &str, opts: RedisQueueOptions) -> Result<RedisQueue, StoreError> {
        if opts.reclaim_timeout <= opts.send_timeout {
            return Err(StoreError::InvalidInput(format!(
                "redis reclaim timeout ({:?}) must be longer than the Twilio send timeout ({:?}), \
                 or a job still being sent would be handed to a second worker",
                opts.reclaim_timeout, opts.send_timeout
            )));
        }
        if opts.key_prefix.is_empty() || opts.group.is_empty() || opts.consumer.is_empty() {
            return Err(StoreError::InvalidInput(
                "redis key prefix, group and consumer must not be empty".to_owned(),
            ));
        }
        let conn_cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(opts.op_timeout))
            .set_response_timeout(Some(opts.op_timeout));
        let manager = Manager::new_with_config(redis_url, conn_cfg).map_err(|e| {
            StoreError::InvalidInput(format!("REDIS_URL is not usable: {}", e.category()))
        })?;
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(2))
            .wait_timeout(Some(opts.op_timeout))
            .create_timeout(Some(opts.op_timeout))
            .recycle_timeout(Some(opts.op_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Bug(format!("building the redis pool: {e}")))?;
        Ok(RedisQueue {
            breaker: Breaker::new(opts.op_timeout / 2, opts.enqueue_cool_off),
            stream: format!("{}:jobs", opts.key_prefix),
            dead: format!("{}:dead", opts.key_prefix),
            pool,
            opts,
            failures: AtomicU32::new(0),
            reclaim: Mutex::new(Reclaim {
                cursor: "0-0".to_owned(),
                last_pass: None,
            }),
        })
    }

    /// [`RedisQueue::new`], then creates the stream and consumer group if missing. Fails with
    /// [`StoreError::Unavailable`] when Redis cannot be reached within `op_timeout`.
    pub async fn connect(
        redis_url: &str,
        opts: RedisQueueOptions,
    ) -> Result<RedisQueue, StoreError> {
        let q = RedisQueue::new(redis_url, opts)?;
        let mut conn = q.conn().await?;
        q.ensure_group(&mut conn).await?;
        Ok(q)
    }

    /// The stream holding unfinished jobs.
    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    /// The dead-letter stream.
    pub fn dead_letter_key(&self) -> &str {
        &self.dead
    }

    /// Entries in the dead-letter stream.
    pub async fn dead_letter_depth(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        redis::cmd("XLEN")
            .arg(&self.dead)
            .query_async(&mut *conn)
            .await
            .map_err(|e| StoreError::from_redis("reading the dead-letter length", &e))
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StoreError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::from_redis_pool("getting a redis connection", &e))?;
        // A blocking read may have left a longer timeout on this pooled connection.
        conn.set_response_timeout(self.opts.op_timeout);
        Ok(conn)
    }

    async fn ensure_group(&self, conn: &mut deadpool_redis::Connection) -> Result<(), StoreError> {
        let res: Result<Value, RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.opts.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut **conn)
            .await;
        match res {
            Ok(_) => {
                tracing::info!(stream = %self.stream, group = %self.opts.group, "created redis consumer group");
                Ok(())
            }
            Err(e) if is_code(&e, "BUSYGROUP") => Ok(()),
            Err(e) => Err(StoreError::from_redis(
                "creating the redis consumer group",
                &e,
            )),
        }
    }

    /// Runs `cmd`; on `NOGROUP` recreates the group and runs it once more.
    async fn query_with_group<T: redis::FromRedisValue>(
        &self,
        conn: &mut deadpool_redis::Connection,
        context: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        match cmd.query_async(&mut **conn).await {
            Ok(v) => Ok(v),
            Err(e) if is_code(&e, "NOGROUP") => {
                tracing::warn!(stream = %self.stream, "redis consumer group missing (Redis restarted or key deleted); recreating it");
                self.ensure_group(conn).await?;
                cmd.query_async(&mut **conn)
                    .await
                    .map_err(|e| StoreError::from_redis(context, &e))
            }
            Err(e) => Err(StoreError::from_redis(context, &e)),
        }
    }

    fn reclaim_due(&self) -> bool {
        let st = self.reclaim.lock().unwrap_or_else(|p| p.into_inner());
        let interval = (self.opts.reclaim_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(15));
        st.cursor != "0-0" || st.last_pass.is_none_or(|t| t.elapsed() >= interval)
    }

    /// Takes over entries idle longer than the reclaim timeout; dead-letters the ones delivered
    /// too often.
    async fn reclaim(
        &self,
        conn: &mut deadpool_redis::Connection,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let cursor = {
            let st = self.reclaim.lock().unwrap_or_else(|p| p.into_inner());
            st.cursor.clone()
        };
        let min_idle = millis(self.opts.reclaim_timeout);
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.stream)
            .arg(&self.opts.group)
            .arg(&self.opts.consumer)
            .arg(min_idle)
            .arg(&cursor)
            .arg("COUNT")
            .arg(max);
        let reply: StreamAutoClaimReply = self
            .query_with_group(conn, "reclaiming idle jobs (XAUTOCLAIM)", &cmd)
            .await?;
        {
            let mut st = self.reclaim.lock().unwrap_or_else(|p| p.into_inner());
            st.cursor = reply.next_stream_id.clone();
            if st.cursor == "0-0" {
                st.last_pass = Some(Instant::now());
            }
        }
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }

        // XAUTOCLAIM does not report delivery counts: ask XPENDING for each claimed id.
        let mut pipe = redis::pipe();
        for entry in &reply.claimed {
            pipe.cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.opts.group)
                .arg(&entry.id)
                .arg(&entry.id)
                .arg(1);
        }
        let pending: Vec<StreamPendingCountReply> = pipe
            .query_async(&mut **conn)
            .await
            .map_err(|e| StoreError::from_redis("reading delivery counts (XPENDING)", &e))?;

        let mut jobs = Vec::with_capacity(reply.claimed.len());
        for (entry, p) in reply.claimed.iter().zip(pending) {
            let deliveries = p
                .ids
                .first()
                .map_or(1, |p| u64::try_from(p.times_delivered).unwrap_or(u64::MAX));
            let sid: Option<String> = entry.get("sid");
            match sid {
                Some(sid) if deliveries <= self.opts.max_deliveries => {
                    tracing::info!(message_sid = %sid, deliveries, "reclaimed a job whose consumer stopped answering");
                    jobs.push(Job {
                        message_sid: sid,
                        id: entry.id.clone(),
                        deliveries,
                    });
                }
                sid => {
                    self.dead_letter(conn, &entry.id, sid.as_deref().unwrap_or(""), deliveries)
                        .await?;
                }
            }
        }
        Ok(jobs)
    }

    async fn dead_letter(
        &self,
        conn: &mut deadpool_redis::Connection,
        id: &str,
        sid: &str,
        deliveries: u64,
    ) -> Result<(), StoreError> {
        tracing::error!(
            message_sid = %sid,
            deliveries,
            dead_letter_stream = %self.dead,
            "❌ job delivered too many times; moved to the dead-letter stream (the database sweep still sees the message if it stays unanswered)"
        );
        redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&self.dead)
            .arg("*")
            .arg("sid")
            .arg(sid)
            .arg("entry")
            .arg(id)
            .arg("deliveries")
            .arg(deliveries)
            .ignore()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(&self.opts.group)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(id)
            .ignore()
            .query_async::<()>(&mut **conn)
            .await
            .map_err(|e| StoreError::from_redis("moving a job to the dead-letter stream", &e))
    }

    async fn read_new(
        &self,
        conn: &mut deadpool_redis::Connection,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Job>, StoreError> {
        let block_ms = millis(block);
        if block_ms > 0 {
            conn.set_response_timeout(block + self.opts.op_timeout);
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.opts.group)
            .arg(&self.opts.consumer)
            .arg("COUNT")
            .arg(max);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(">");
        let reply: Result<Option<StreamReadReply>, StoreError> = self
            .query_with_group(conn, "reading jobs (XREADGROUP)", &cmd)
            .await;
        conn.set_response_timeout(self.opts.op_timeout);
        let Some(reply) = reply? else {
            return Ok(Vec::new());
        };
        let mut jobs = Vec::new();
        for key in reply.keys {
            for entry in key.ids {
                match entry.get::<String>("sid") {
                    Some(sid) => jobs.push(Job {
                        message_sid: sid,
                        id: entry.id,
                        deliveries: 1,
                    }),
                    None => {
                        tracing::warn!(entry = %entry.id, "job without a sid field; dropping it");
                        self.dead_letter(conn, &entry.id, "", 1).await?;
                    }
                }
            }
        }
        Ok(jobs)
    }

    async fn receive_once(&self, max: usize, block: Duration) -> Result<Vec<Job>, StoreError> {
        let mut conn = self.conn().await?;
        if self.reclaim_due() {
            let jobs = self.reclaim(&mut conn, max).await?;
            if !jobs.is_empty() {
                return Ok(jobs);
            }
        }
        self.read_new(&mut conn, max, block).await
    }

    async fn xadd(&self, message_sid: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("sid")
            .arg(message_sid)
            .query_async::<String>(&mut *conn)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_redis("enqueueing a job (XADD)", &e))
    }

    /// Sleeps after the n-th consecutive failure: 100 ms, 200 ms, … up to `max_backoff`.
    async fn backoff(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).min(16);
        let delay = Duration::from_millis(100)
            .saturating_mul(1u32 << n)
            .min(self.opts.max_backoff);
        tokio::time::sleep(delay).await;
    }
}

impl WorkQueue for RedisQueue {
    fn enqueue<'a>(&'a self, message_sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let start = Instant::now();
            let gate = self.breaker.enter(start);
            if let Gate::Open { retry_in } = gate {
                let next = if retry_in.is_zero() {
                    "another enqueue is trying Redis now".to_owned()
                } else {
                    format!(
                        "the next attempt goes to Redis in {} ms",
                        retry_in.as_millis()
                    )
                };
                return Err(StoreError::Unavailable(format!(
                    "enqueueing a job (XADD): skipped, Redis did not answer a recent enqueue \
                     within {:?}; {next}",
                    self.opts.op_timeout
                )));
            }
            let result = self.xadd(message_sid).await;
            let change = match &result {
                Ok(()) => self.breaker.succeeded(gate),
                Err(e) if e.is_unavailable() => {
                    let now = Instant::now();
                    self.breaker.failed(gate, now, now - start)
                }
                Err(_) => self.breaker.succeeded(gate),
            };
            match change {
                Change::Opened => tracing::warn!(
                    cool_off_ms = millis(self.breaker.cool_off()),
                    "⚠️ Redis did not answer an enqueue in time; webhooks skip the queue for {:?} \
                     instead of each waiting for it (messages are recorded; the sweep answers them)",
                    self.breaker.cool_off()
                ),
                Change::Closed => {
                    tracing::info!("✅ Redis answers enqueues again; webhooks are queued as usual")
                }
                Change::StillOpen | Change::None => {}
            }
            result
        })
    }

    fn receive(&self, max: usize, block: Duration) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(async move {
            match self.receive_once(max.max(1), block).await {
                Ok(jobs) => {
                    self.failures.store(0, Ordering::Relaxed);
                    Ok(jobs)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis queue receive failed; backing off");
                    self.backoff().await;
                    Err(e)
                }
            }
        })
    }

    fn ack<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            redis::pipe()
                .atomic()
                .cmd("XACK")
                .arg(&self.stream)
                .arg(&self.opts.group)
                .arg(&job.id)
                .ignore()
                .cmd("XDEL")
                .arg(&self.stream)
                .arg(&job.id)
                .ignore()
                .query_async::<()>(&mut *conn)
                .await
                .map_err(|e| StoreError::from_redis("acknowledging a job (XACK)", &e))
        })
    }

    fn ack_many<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if jobs.is_empty() {
                return Ok(());
            }
            let mut conn = self.conn().await?;
            let mut xack = redis::cmd("XACK");
            xack.arg(&self.stream).arg(&self.opts.group);
            let mut xdel = redis::cmd("XDEL");
            xdel.arg(&self.stream);
            for job in jobs {
                xack.arg(&job.id);
                xdel.arg(&job.id);
            }
            redis::pipe()
                .atomic()
                .add_command(xack)
                .ignore()
                .add_command(xdel)
                .ignore()
                .query_async::<()>(&mut *conn)
                .await
                .map_err(|e| StoreError::from_redis("acknowledging jobs (XACK)", &e))
        })
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            redis::cmd("XLEN")
                .arg(&self.stream)
                .query_async(&mut *conn)
                .await
                .map_err(|e| StoreError::from_redis("reading the queue length (XLEN)", &e))
        })
    }

    /// The entries after the group's `last-delivered-id` (`XINFO GROUPS`), oldest first, by
    /// pages of `XRANGE (<id> + COUNT 10000`: the jobs no consumer has taken yet. Those taken
    /// and not acknowledged (in flight; given back after a batch failed, which Redis keeps;
    /// held by a consumer that died) are not listed, so the sweep queues their messages again
    /// once the database shows them unanswered (at most the workers' concurrency of them)
    /// instead of leaving them to `XAUTOCLAIM`'s reclaim timeout.
    fn waiting_sids(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<Option<HashSet<String>>, StoreError>> {
        const PAGE: usize = 10_000;
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let groups: Result<StreamInfoGroupsReply, RedisError> = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&self.stream)
                .query_async(&mut *conn)
                .await;
            let mut from = match groups {
                Ok(reply) => reply
                    .groups
                    .into_iter()
                    .find(|g| g.name == self.opts.group)
                    .map_or_else(|| "-".to_owned(), |g| format!("({}", g.last_delivered_id)),
                // No stream yet: nothing is waiting.
                Err(e) if e.to_string().contains("no such key") => {
                    return Ok(Some(Default::default()));
                }
                Err(e) => {
                    return Err(StoreError::from_redis(
                        "reading the consumer group (XINFO GROUPS)",
                        &e,
                    ));
                }
            };
            let mut sids = HashSet::new();
            while sids.len() < limit {
                let page = (limit - sids.len()).min(PAGE);
                let reply: StreamRangeReply = redis::cmd("XRANGE")
                    .arg(&self.stream)
                    .arg(&from)
                    .arg("+")
                    .arg("COUNT")
                    .arg(page)
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| StoreError::from_redis("listing the queued jobs (XRANGE)", &e))?;
                sids.extend(
                    reply
                        .ids
                        .iter()
                        .filter_map(|entry| entry.get::<String>("sid")),
                );
                match reply.ids.last() {
                    Some(last) if reply.ids.len() == page => from = format!("({}", last.id),
                    _ => break,
                }
            }
            Ok(Some(sids))
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut *conn)
                .await
                .map(|_| ())
                .map_err(|e| StoreError::from_redis("pinging redis", &e))
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaim_must_outlast_the_send_timeout() {
        let opts = RedisQueueOptions {
            reclaim_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let err = RedisQueue::new("redis://127.0.0.1:6379", opts).unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert!(err.to_string().contains("reclaim timeout"), "{err}");
    }

    #[test]
    fn defaults_are_consistent() {
        let o = RedisQueueOptions::default();
        assert!(o.reclaim_timeout > o.send_timeout);
        assert!(RedisQueue::new("redis://127.0.0.1:6379", o).is_ok());
    }

    #[test]
    fn a_bad_url_is_invalid_input_without_echoing_it() {
        let err =
            RedisQueue::new("notredis://user:hunter2@x", RedisQueueOptions::default()).unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

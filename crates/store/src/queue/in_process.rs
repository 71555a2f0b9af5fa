//! [`InProcessQueue`]: the queue used when `REDIS_URL` is not set.
//!
//! Jobs live in memory and die with the process; that is fine because the database sweep finds
//! every message that was recorded but not answered. A SID already waiting is not queued twice,
//! so repeated sweeps cannot grow the queue while workers are slow, and the queue holds at most
//! [`InProcessQueue::DEFAULT_CAPACITY`] waiting jobs: beyond that an enqueue is dropped (and
//! counted), since the sweep re-finds the message in the database. Memory stays bounded under
//! an overload the database cannot keep up with.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::{BoxFuture, Job, WorkQueue};
use crate::StoreError;

/// An in-memory [`WorkQueue`] shared by the tasks of one process.
#[derive(Debug)]
pub struct InProcessQueue {
    state: Mutex<State>,
    notify: Notify,
    next_id: AtomicU64,
    capacity: usize,
    dropped: AtomicU64,
}

impl Default for InProcessQueue {
    fn default() -> Self {
        InProcessQueue::with_capacity(InProcessQueue::DEFAULT_CAPACITY)
    }
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Job>,
    waiting_sids: HashSet<String>,
    in_flight: u64,
}

impl InProcessQueue {
    /// Waiting jobs kept at most by [`InProcessQueue::new`]: about 9 MiB, a couple of seconds
    /// of the fastest load measured. A burst beyond it costs nothing but a database read: the
    /// sweep queues the dropped messages again as soon as the queue has room (the server
    /// watches [`WorkQueue::dropped`]).
    pub const DEFAULT_CAPACITY: usize = 50_000;

    /// An empty queue holding at most [`InProcessQueue::DEFAULT_CAPACITY`] waiting jobs.
    pub fn new() -> InProcessQueue {
        InProcessQueue::default()
    }

    /// An empty queue holding at most `capacity` waiting jobs (at least 1).
    pub fn with_capacity(capacity: usize) -> InProcessQueue {
        InProcessQueue {
            state: Mutex::default(),
            notify: Notify::new(),
            next_id: AtomicU64::new(0),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Enqueues dropped because the queue was full (the sweep re-queues those messages).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-updated in a way that
        // matters (worst case a count is off), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, max: usize) -> Vec<Job> {
        let mut st = self.state();
        let n = max.min(st.waiting.len());
        let jobs: Vec<Job> = st.waiting.drain(..n).collect();
        for j in &jobs {
            st.waiting_sids.remove(&j.message_sid);
        }
        st.in_flight += jobs.len() as u64;
        jobs
    }
}

impl WorkQueue for InProcessQueue {
    fn enqueue<'a>(&'a self, message_sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            {
                let mut st = self.state();
                if st.waiting_sids.contains(message_sid) {
                    return Ok(()); // already waiting: one job is enough
                }
                if st.waiting.len() >= self.capacity {
                    let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
                    if dropped.is_power_of_two() || dropped == 0 {
                        tracing::warn!(
                            capacity = self.capacity,
                            dropped = dropped + 1,
                            "⚠️ in-process work queue full: the reply is left to the database sweep (the message is safely recorded)"
                        );
                    }
                    return Ok(());
                }
                st.waiting_sids.insert(message_sid.to_owned());
                let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                st.waiting.push_back(Job {
                    message_sid: message_sid.to_owned(),
                    id: id.to_string(),
                    deliveries: 1,
                });
            }
            self.notify.notify_waiters();
            Ok(())
        })
    }

    fn dropped(&self) -> u64 {
        InProcessQueue::dropped(self)
    }

    fn receive(&self, max: usize, block: Duration) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(async move {
            let max = max.max(1);
            let deadline = tokio::time::Instant::now() + block;
            loop {
                // Register for wake-ups before looking, so an enqueue in between is not missed.
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let jobs = self.take(max);
                if !jobs.is_empty() {
                    return Ok(jobs);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Ok(Vec::new());
                }
            }
        })
    }

    fn ack<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut st = self.state();
            st.in_flight = st.in_flight.saturating_sub(1);
            Ok(())
        })
    }

    fn ack_many<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut st = self.state();
            st.in_flight = st.in_flight.saturating_sub(jobs.len() as u64);
            Ok(())
        })
    }

    fn release<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), StoreError>> {
        // Nothing here can hand them out again: the sweep re-finds their messages in the
        // database. Only stop counting them as in flight.
        self.ack_many(jobs)
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let st = self.state();
            Ok(st.waiting.len() as u64 + st.in_flight)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn jobs_come_out_once_in_order_and_duplicates_collapse() {
        let q = InProcessQueue::new();
        q.enqueue("SM1").await.unwrap();
        q.enqueue("SM2").await.unwrap();
        q.enqueue("SM1").await.unwrap(); // still waiting: not queued twice
        assert_eq!(q.depth().await.unwrap(), 2);
        let jobs = q.receive(10, Duration::ZERO).await.unwrap();
        let sids: Vec<_> = jobs.iter().map(|j| j.message_sid.as_str()).collect();
        assert_eq!(sids, ["SM1", "SM2"]);
        assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(q.depth().await.unwrap(), 2, "in flight until acked");
        for j in &jobs {
            q.ack(j).await.unwrap();
        }
        assert_eq!(q.depth().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn released_jobs_stop_counting_and_are_not_handed_out_again() {
        let q = InProcessQueue::new();
        q.enqueue("SM1").await.unwrap();
        q.enqueue("SM2").await.unwrap();
        let jobs = q.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(q.depth().await.unwrap(), 2);
        // A batch that could not be written gives its jobs back: the sweep finds the messages.
        q.release(&jobs).await.unwrap();
        assert_eq!(
            q.depth().await.unwrap(),
            0,
            "released jobs are not in flight"
        );
        assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty());
        // The SIDs can be queued again (by the sweep).
        q.enqueue("SM1").await.unwrap();
        assert_eq!(q.depth().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_drops_new_jobs_and_counts_them() {
        let q = InProcessQueue::with_capacity(2);
        for sid in ["SM1", "SM2", "SM3", "SM1"] {
            q.enqueue(sid).await.unwrap();
        }
        assert_eq!(q.depth().await.unwrap(), 2, "bounded");
        assert_eq!(
            q.dropped(),
            1,
            "SM3 dropped; SM1 again is a duplicate, not a drop"
        );
        let jobs = q.receive(1, Duration::ZERO).await.unwrap();
        assert_eq!(jobs[0].message_sid, "SM1");
        q.enqueue("SM3").await.unwrap();
        let sids: Vec<String> = q
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.message_sid)
            .collect();
        assert_eq!(sids, ["SM2", "SM3"], "room again once a job was taken");
    }

    #[tokio::test]
    async fn a_blocked_receiver_wakes_on_enqueue() {
        let q = Arc::new(InProcessQueue::new());
        let rx = {
            let q = q.clone();
            tokio::spawn(async move { q.receive(1, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        q.enqueue("SM9").await.unwrap();
        let jobs = rx.await.unwrap().unwrap();
        assert_eq!(jobs[0].message_sid, "SM9");
    }

    #[tokio::test]
    async fn two_consumers_never_get_the_same_job() {
        let q = Arc::new(InProcessQueue::new());
        for i in 0..500 {
            q.enqueue(&format!("SM{i}")).await.unwrap();
        }
        let mut handles = Vec::new();
        for _ in 0..2 {
            let q = q.clone();
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let jobs = q.receive(7, Duration::ZERO).await.unwrap();
                    if jobs.is_empty() {
                        return got;
                    }
                    got.extend(jobs.into_iter().map(|j| j.message_sid));
                    tokio::task::yield_now().await;
                }
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 500);
        assert_eq!(unique.len(), 500);
    }
}

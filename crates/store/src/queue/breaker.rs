//! The enqueue breaker: a Redis that stops answering must not hold every webhook for the
//! operation timeout.
//!
//! `enqueue` runs on the webhook's request path, after the message is committed. When Redis is
//! down and refuses connections, an enqueue fails in microseconds. When it accepts connections
//! but never answers (a failover in progress, a saturated instance, a network path that drops
//! packets), each enqueue waits the whole `op_timeout` (2 s by default) before failing, and
//! every webhook's acknowledgement waits with it. The queue entry is not needed for correctness:
//! the message is in the database and the sweep finds it.
//!
//! So an enqueue that failed *slowly* (after at least half the timeout) opens the breaker: for
//! the cool-off that follows, enqueues fail at once without touching Redis. When the cool-off is
//! over, one enqueue is let through as a probe while the others still fail at once; its success
//! closes the breaker, its failure opens it for another cool-off. Fast failures (refused
//! connections) leave a closed breaker closed: they cost nothing to wait for.
//!
//! The breaker is a pure state machine over instants handed in by the caller, so it is tested
//! without a clock or a Redis.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What an enqueue may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Redis answered recently: try.
    Closed,
    /// The cool-off is over and this caller is the one probe: try, and report the outcome.
    Probe,
    /// Do not touch Redis; the next probe is due in this long (zero while a probe is running).
    Open { retry_in: Duration },
}

/// What an outcome changed, for the caller's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing worth a log line.
    None,
    /// The breaker has just opened (it was closed).
    Opened,
    /// A probe failed; the breaker stays open for another cool-off.
    StillOpen,
    /// A success closed an open breaker.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    cool_off: Duration,
    slow: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open_until: Option<Instant>,
    /// When the running probe started. A probe whose webhook went away (the client
    /// disconnected and its future was dropped) never reports back; after a cool-off another
    /// caller probes instead.
    probing: Option<Instant>,
}

impl Breaker {
    /// A breaker that opens after a failure taking at least `slow` and stays open `cool_off`.
    pub(crate) fn new(slow: Duration, cool_off: Duration) -> Breaker {
        Breaker {
            cool_off,
            slow,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an enqueue starting at `now` may touch Redis.
    pub(crate) fn enter(&self, now: Instant) -> Gate {
        let mut st = self.state();
        match st.open_until {
            None => Gate::Closed,
            Some(until) if now < until => Gate::Open {
                retry_in: until - now,
            },
            Some(_) if st.probing.is_some_and(|p| now < p + self.cool_off) => Gate::Open {
                retry_in: Duration::ZERO,
            },
            Some(_) => {
                st.probing = Some(now);
                Gate::Probe
            }
        }
    }

    /// An enqueue let through by `gate` succeeded.
    pub(crate) fn succeeded(&self, gate: Gate) -> Change {
        let mut st = self.state();
        if gate == Gate::Probe {
            st.probing = None;
        }
        if st.open_until.take().is_some() {
            Change::Closed
        } else {
            Change::None
        }
    }

    /// An enqueue let through by `gate` failed at `now` after `elapsed` with Redis unavailable.
    pub(crate) fn failed(&self, gate: Gate, now: Instant, elapsed: Duration) -> Change {
        let mut st = self.state();
        match gate {
            Gate::Probe => {
                st.probing = None;
                st.open_until = Some(now + self.cool_off);
                Change::StillOpen
            }
            Gate::Closed if elapsed >= self.slow => {
                // Several slow enqueues may end close together; the first one reports the opening.
                let change = if st.open_until.is_none() {
                    Change::Opened
                } else {
                    Change::None
                };
                st.open_until = Some(now + self.cool_off);
                change
            }
            Gate::Closed | Gate::Open { .. } => Change::None,
        }
    }

    /// The cool-off length, for log lines.
    pub(crate) fn cool_off(&self) -> Duration {
        self.cool_off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: Duration = Duration::from_millis(1000);
    const COOL: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fast_failures_keep_it_closed() {
        let b = Breaker::new(SLOW, COOL);
        let t = Instant::now();
        assert_eq!(b.enter(t), Gate::Closed);
        assert_eq!(b.failed(Gate::Closed, t, ms(3)), Change::None);
        assert_eq!(b.enter(t + ms(10)), Gate::Closed);
    }

    #[test]
    fn a_slow_failure_opens_it_for_the_cool_off() {
        let b = Breaker::new(SLOW, COOL);
        let t = Instant::now();
        assert_eq!(b.failed(Gate::Closed, t, SLOW), Change::Opened);
        assert_eq!(
            b.enter(t + ms(1000)),
            Gate::Open {
                retry_in: COOL - ms(1000)
            }
        );
        // A second slow failure that was already in flight does not announce it again.
        assert_eq!(b.failed(Gate::Closed, t + ms(5), SLOW), Change::None);
    }

    #[test]
    fn after_the_cool_off_exactly_one_probe_goes_through() {
        let b = Breaker::new(SLOW, COOL);
        let t = Instant::now();
        b.failed(Gate::Closed, t, SLOW);
        let later = t + COOL;
        assert_eq!(b.enter(later), Gate::Probe);
        assert_eq!(
            b.enter(later),
            Gate::Open {
                retry_in: Duration::ZERO
            }
        );
        assert_eq!(b.succeeded(Gate::Probe), Change::Closed);
        assert_eq!(b.enter(later), Gate::Closed);
    }

    #[test]
    fn a_failed_probe_opens_it_again_even_when_fast() {
        let b = Breaker::new(SLOW, COOL);
        let t = Instant::now();
        b.failed(Gate::Closed, t, SLOW);
        let later = t + COOL;
        assert_eq!(b.enter(later), Gate::Probe);
        assert_eq!(b.failed(Gate::Probe, later, ms(1)), Change::StillOpen);
        assert_eq!(
            b.enter(later + ms(1)),
            Gate::Open {
                retry_in: COOL - ms(1)
            }
        );
        assert_eq!(b.enter(later + COOL), Gate::Probe);
    }

    #[test]
    fn a_probe_that_never_reports_back_is_replaced_after_a_cool_off() {
        let b = Breaker::new(SLOW, COOL);
        let t = Instant::now();
        b.failed(Gate::Closed, t, SLOW);
        assert_eq!(b.enter(t + COOL), Gate::Probe);
        assert_eq!(
            b.enter(t + COOL + COOL - ms(1)),
            Gate::Open {
                retry_in: Duration::ZERO
            }
        );
        assert_eq!(b.enter(t + COOL + COOL), Gate::Probe);
    }

    #[test]
    fn a_success_while_closed_changes_nothing() {
        let b = Breaker::new(SLOW, COOL);
        assert_eq!(b.succeeded(Gate::Closed), Change::None);
        assert_eq!(b.enter(Instant::now()), Gate::Closed);
    }
}

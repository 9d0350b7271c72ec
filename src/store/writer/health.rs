//! Whether commits are going through: the writer's circuit breaker.
//!
//! A database can hang instead of failing: a synchronous standby that is
//! gone, a stalled disk, a partition that drops packets. Every send still
//! has its deadline (`WRITE_TIMEOUT_MS` from arrival), but without a breaker
//! each new send would queue behind the stuck commit and wait its deadline
//! out. So:
//!
//! - a commit attempt outstanding for `WRITE_STALL_MS` means commits are
//!   stuck: new sends and HTTP writes are refused at once, and `/readyz`
//!   says why;
//! - a batch that ran out of time (or could not reach the database before
//!   its deadline) refuses for `COOL_DOWN`, then lets the next batch through
//!   as the trial;
//! - the first commit that goes through closes the breaker: sending
//!   resumes by itself.
//!
//! The decision is a plain function of the times below (`verdict`); the
//! shared `Health` only stores them in atomics, so the check on every send
//! takes no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// How long a batch that ran out of time keeps the breaker open before the
/// next batch is let through to try again.
pub const COOL_DOWN: Duration = Duration::from_secs(1);

/// What the breaker says about commits right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Commits go through (or nothing has been tried yet).
    Healthy,
    /// A commit has been waiting this long (at least the stall threshold).
    Stuck(Duration),
    /// The last batch ran out of time; the next try is in this long.
    CoolingDown(Duration),
}

impl Verdict {
    /// Whether new writes are refused.
    pub fn refuses(self) -> bool {
        self != Verdict::Healthy
    }

    /// What `/readyz` and the refusals say.
    pub fn describe(self) -> String {
        match self {
            Verdict::Healthy => "ok".into(),
            Verdict::Stuck(d) => format!("stuck: a commit has waited {:.1} s", d.as_secs_f64()),
            Verdict::CoolingDown(d) => {
                format!("stuck: the last commit ran out of time; trying again in {:.1} s", d.as_secs_f64())
            }
        }
    }
}

/// The decision, from plain values (milliseconds since one epoch; 0 = none):
/// when each shard's outstanding attempt started, and until when a batch
/// that ran out of time keeps refusing.
pub fn verdict(now: u64, attempts_started: impl IntoIterator<Item = u64>, refusing_until: u64, stall: Duration) -> Verdict {
    let oldest = attempts_started.into_iter().filter(|&t| t != 0).min();
    if let Some(started) = oldest {
        let waited = Duration::from_millis(now.saturating_sub(started));
        if waited >= stall {
            return Verdict::Stuck(waited);
        }
    }
    if refusing_until > now {
        return Verdict::CoolingDown(Duration::from_millis(refusing_until - now));
    }
    Verdict::Healthy
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since the process's epoch, never 0 (0 means "none").
fn stamp(t: Instant) -> u64 {
    (t.saturating_duration_since(*EPOCH).as_millis() as u64).max(1)
}

/// The breaker's shared state: one slot per shard.
pub struct Health {
    stall: Duration,
    attempts: Vec<AtomicU64>,
    refusing_until: AtomicU64,
}

impl Health {
    pub fn new(shards: usize, stall: Duration) -> Health {
        LazyLock::force(&EPOCH);
        Health { stall, attempts: (0..shards).map(|_| AtomicU64::new(0)).collect(), refusing_until: AtomicU64::new(0) }
    }

    pub fn verdict(&self, now: Instant) -> Verdict {
        verdict(
            stamp(now),
            self.attempts.iter().map(|a| a.load(Ordering::Acquire)),
            self.refusing_until.load(Ordering::Acquire),
            self.stall,
        )
    }

    /// A shard started a commit attempt.
    pub fn attempt_started(&self, shard: usize, at: Instant) {
        if let Some(slot) = self.attempts.get(shard) {
            slot.store(stamp(at), Ordering::Release);
        }
    }

    /// A shard's attempt ended; `committed` when it went through.
    pub fn attempt_ended(&self, shard: usize, committed: bool) {
        if let Some(slot) = self.attempts.get(shard) {
            slot.store(0, Ordering::Release);
        }
        if committed {
            self.refusing_until.store(0, Ordering::Release);
        }
    }

    /// A batch ran out of time: refuse until `COOL_DOWN` has passed.
    pub fn ran_out_of_time(&self, at: Instant) {
        self.refusing_until.store(stamp(at + COOL_DOWN), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(2);

    #[test]
    fn nothing_outstanding_is_healthy() {
        assert_eq!(verdict(10_000, [0, 0], 0, STALL), Verdict::Healthy);
        assert_eq!(verdict(10_000, [], 9_000, STALL), Verdict::Healthy, "the cool-down is over");
    }

    #[test]
    fn an_attempt_older_than_the_stall_threshold_refuses() {
        assert_eq!(verdict(10_000, [8_500, 0], 0, STALL), Verdict::Healthy, "1.5 s is slow, not stuck");
        assert_eq!(verdict(10_000, [0, 8_000], 0, STALL), Verdict::Stuck(Duration::from_secs(2)));
        assert!(verdict(10_000, [9_990, 7_000], 0, STALL).refuses(), "the oldest shard decides");
    }

    #[test]
    fn a_batch_that_ran_out_of_time_refuses_until_its_cool_down_ends() {
        assert_eq!(verdict(10_000, [0], 10_400, STALL), Verdict::CoolingDown(Duration::from_millis(400)));
        assert_eq!(verdict(10_400, [0], 10_400, STALL), Verdict::Healthy);
    }

    #[test]
    fn a_commit_that_goes_through_closes_the_breaker() {
        let health = Health::new(2, STALL);
        let t0 = Instant::now();
        health.attempt_started(0, t0);
        assert!(health.verdict(t0 + Duration::from_secs(3)).refuses());
        health.ran_out_of_time(t0 + Duration::from_secs(3));
        health.attempt_ended(0, false);
        assert!(matches!(health.verdict(t0 + Duration::from_millis(3_500)), Verdict::CoolingDown(_)));
        health.attempt_started(1, t0 + Duration::from_secs(4));
        health.attempt_ended(1, true);
        assert_eq!(health.verdict(t0 + Duration::from_secs(4)), Verdict::Healthy);
    }
}

//! When a failed commit attempt is tried again, as a plain decision.
//!
//! A lost connection, an abandoned or timed-out attempt, or a unique violation (two
//! instances racing for the same seq) is transient: tried again, with a
//! growing pause, while the batch has time left. Any other statement error
//! is tried once more (a fresh connection rules out a poisoned session),
//! then the senders hear `internal`. Every retry carries the same message
//! ids, so an attempt whose outcome was unknown is never stored twice.

use std::time::Duration;

use super::WriteError;

/// What an attempt's failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptFailure {
    /// No answer before the batch's deadline: the attempt was abandoned.
    Abandoned,
    /// The statement ran out its statement timeout (the connection is fine).
    TimedOut,
    /// The connection is gone, or the server is a standby now.
    ConnectionLost,
    /// Two writers raced for the same key; the next attempt sees the winner.
    Conflict,
    /// The statement failed on a working connection.
    Statement,
}

impl AttemptFailure {
    pub fn transient(self) -> bool {
        self != AttemptFailure::Statement
    }
}

/// The next step after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    RetryAfter(Duration),
    GiveUp(WriteError),
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_pause: Duration,
    pub longest_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { first_pause: Duration::from_millis(40), longest_pause: Duration::from_secs(1) }
    }
}

impl RetryPolicy {
    /// After attempt number `attempt` (1-based) failed with `failure`, with
    /// `left` until the batch's deadline.
    pub fn after(&self, attempt: u32, failure: AttemptFailure, left: Duration) -> Next {
        if left.is_zero() || (!failure.transient() && attempt >= 2) {
            return Next::GiveUp(if failure.transient() {
                WriteError::Unavailable(if failure == AttemptFailure::Abandoned {
                    "the database did not answer in time"
                } else {
                    "the database is unavailable"
                })
            } else {
                WriteError::Internal
            });
        }
        let pause = self.first_pause.saturating_mul(1 << attempt.saturating_sub(1).min(6));
        Next::RetryAfter(pause.min(self.longest_pause).min(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAILURES: [AttemptFailure; 5] = [
        AttemptFailure::Abandoned,
        AttemptFailure::TimedOut,
        AttemptFailure::ConnectionLost,
        AttemptFailure::Conflict,
        AttemptFailure::Statement,
    ];

    proptest! {
        /// Whatever fails, the retries never outlive the deadline, and the
        /// loop ends: by the deadline for transient failures, after the
        /// second attempt otherwise.
        #[test]
        fn retries_end_within_the_deadline(
            failures in proptest::collection::vec(0usize..5, 1..200),
            budget_ms in 0u64..20_000,
            attempt_ms in proptest::collection::vec(0u64..3_000, 1..200),
        ) {
            let policy = RetryPolicy::default();
            let budget = Duration::from_millis(budget_ms);
            let mut spent = Duration::ZERO;
            let mut attempt = 0u32;
            let mut statement_failures = 0;
            loop {
                attempt += 1;
                let i = (attempt as usize - 1) % failures.len();
                // An attempt is bounded by what is left (it is cut at the deadline).
                spent = (spent + Duration::from_millis(attempt_ms[(attempt as usize - 1) % attempt_ms.len()])).min(budget);
                let failure = FAILURES[failures[i]];
                statement_failures += usize::from(!failure.transient());
                match policy.after(attempt, failure, budget - spent) {
                    Next::RetryAfter(pause) => {
                        prop_assert!(pause <= budget - spent);
                        prop_assert!(pause > Duration::ZERO);
                        spent += pause;
                    }
                    Next::GiveUp(err) => {
                        prop_assert!(spent <= budget);
                        prop_assert_eq!(err == WriteError::Internal, !failure.transient());
                        break;
                    }
                }
                prop_assert!(statement_failures < 3, "a statement error is tried at most twice");
                prop_assert!(attempt < 10_000, "the loop ends");
            }
        }
    }

    #[test]
    fn pauses_grow_to_the_longest() {
        let p = RetryPolicy::default();
        let left = Duration::from_secs(10);
        assert_eq!(p.after(1, AttemptFailure::ConnectionLost, left), Next::RetryAfter(Duration::from_millis(40)));
        assert_eq!(p.after(2, AttemptFailure::ConnectionLost, left), Next::RetryAfter(Duration::from_millis(80)));
        assert_eq!(p.after(9, AttemptFailure::ConnectionLost, left), Next::RetryAfter(Duration::from_secs(1)));
        assert_eq!(p.after(1, AttemptFailure::Statement, left), Next::RetryAfter(Duration::from_millis(40)));
        assert_eq!(p.after(2, AttemptFailure::Statement, left), Next::GiveUp(WriteError::Internal));
        assert_eq!(
            p.after(3, AttemptFailure::Abandoned, Duration::ZERO),
            Next::GiveUp(WriteError::Unavailable("the database did not answer in time"))
        );
    }
}

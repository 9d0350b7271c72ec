//! What one socket lets through, as plain data: sends, edits and deletes
//! within the rate limit, typing notices at most one per interval, and
//! strikes for bad or refused frames (past the limit within the window the
//! socket is closed). The session actor asks and acts; the decisions, and
//! their tests, are here.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rate_limit::{Rate, TokenBucket};
use crate::error::ErrorCode;

/// A client sending more than this many bad or refused frames within
/// `STRIKE_WINDOW` is closed with 1008.
pub const STRIKE_LIMIT: usize = 300;
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);
/// Typing notices fan out to a whole room and carry no data: at most one per
/// this interval per socket, the rest are dropped.
pub const TYPING_INTERVAL: Duration = Duration::from_millis(200);

pub struct Admission {
    bucket: TokenBucket,
    /// When the strikes still inside the window were earned, oldest first.
    strikes: VecDeque<Instant>,
    last_typing: Option<Instant>,
}

/// What an error frame sent to the client means for the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterError {
    Keep,
    /// Too many bad or refused frames: close with 1008.
    Close,
}

impl Admission {
    /// Starts with a full bucket of sends under `rate`.
    pub fn new(rate: Rate) -> Self {
        Admission { bucket: TokenBucket::new(rate), strikes: VecDeque::new(), last_typing: None }
    }

    /// A send, edit or delete may go now under `rate` (it takes a token).
    pub fn send(&mut self, now: Instant, rate: Rate) -> bool {
        self.bucket.try_take_at(now, rate)
    }

    /// A typing notice may go out now.
    pub fn typing(&mut self, now: Instant) -> bool {
        if self.last_typing.is_some_and(|last| now.saturating_duration_since(last) < TYPING_INTERVAL) {
            return false;
        }
        self.last_typing = Some(now);
        true
    }

    /// An error frame went to the client. Failures of our own (database
    /// down) are not the client's fault and earn no strike.
    pub fn errored(&mut self, code: ErrorCode, now: Instant) -> AfterError {
        if matches!(code, ErrorCode::Unavailable | ErrorCode::Internal) {
            return AfterError::Keep;
        }
        self.strikes.push_back(now);
        while self.strikes.front().is_some_and(|t| now.saturating_duration_since(*t) > STRIKE_WINDOW) {
            self.strikes.pop_front();
        }
        if self.strikes.len() > STRIKE_LIMIT {
            AfterError::Close
        } else {
            AfterError::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATE: Rate = Rate { per_sec: 20.0, burst: 40.0 };

    #[test]
    fn typing_goes_out_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut a = Admission::new(RATE);
        assert!(a.typing(t0), "the first one goes");
        assert!(!a.typing(t0 + TYPING_INTERVAL / 2));
        assert!(a.typing(t0 + TYPING_INTERVAL));
        assert!(!a.typing(t0 + TYPING_INTERVAL), "a dropped notice does not restart the interval");
    }

    #[test]
    fn our_own_failures_earn_no_strike() {
        let t0 = Instant::now();
        let mut a = Admission::new(RATE);
        for _ in 0..STRIKE_LIMIT * 2 {
            assert_eq!(a.errored(ErrorCode::Unavailable, t0), AfterError::Keep);
            assert_eq!(a.errored(ErrorCode::Internal, t0), AfterError::Keep);
        }
    }

    #[test]
    fn sends_past_the_burst_wait_for_the_rate() {
        let t0 = Instant::now();
        let rate = Rate { per_sec: 10.0, burst: 3.0 };
        let mut a = Admission::new(rate);
        assert!((0..3).all(|_| a.send(t0, rate)));
        assert!(!a.send(t0, rate));
        assert!(a.send(t0 + Duration::from_millis(100), rate));
    }

    proptest! {
        /// Whatever the timing, the socket is closed exactly when more than
        /// STRIKE_LIMIT client errors fall within one STRIKE_WINDOW.
        #[test]
        fn closed_exactly_when_the_window_holds_too_many_strikes(gaps in proptest::collection::vec(0u64..100, 1..700)) {
            let t0 = Instant::now();
            let mut a = Admission::new(RATE);
            let mut at = t0;
            let mut times = Vec::new();
            for gap in gaps {
                at += Duration::from_millis(gap);
                times.push(at);
                let in_window = times.iter().filter(|t| at.saturating_duration_since(**t) <= STRIKE_WINDOW).count();
                let want = if in_window > STRIKE_LIMIT { AfterError::Close } else { AfterError::Keep };
                prop_assert_eq!(a.errored(ErrorCode::BadRequest, at), want);
            }
        }
    }
}

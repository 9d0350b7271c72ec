//! A token bucket per connection: `per_sec` sends per second, bursts of
//! `burst`.

use std::time::Instant;

/// The instance's rule (`RATE_LIMIT_PER_SEC`, `RATE_LIMIT_BURST`): held
/// once in the session settings, not copied into every socket's bucket.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

/// One socket's tokens under a `Rate`.
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate) -> Self {
        TokenBucket { tokens: rate.burst, last: Instant::now() }
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take_at(&mut self, now: Instant, rate: Rate) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_burst_then_rate() {
        let start = Instant::now();
        let rate = Rate { per_sec: 10.0, burst: 5.0 };
        let mut b = TokenBucket { tokens: 5.0, last: start };
        for _ in 0..5 {
            assert!(b.try_take_at(start, rate));
        }
        assert!(!b.try_take_at(start, rate));
        assert!(b.try_take_at(start + Duration::from_millis(100), rate));
        assert!(!b.try_take_at(start + Duration::from_millis(100), rate));
        // Never more than the burst, however long the pause.
        let later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(b.try_take_at(later, rate));
        }
        assert!(!b.try_take_at(later, rate));
    }
}

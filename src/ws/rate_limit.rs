//! A token bucket per connection: `rate` sends per second, bursts of `burst`.

use std::time::Instant;

pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket { rate, burst, tokens: burst, last: Instant::now() }
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
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
        let mut b = TokenBucket { rate: 10.0, burst: 5.0, tokens: 5.0, last: start };
        for _ in 0..5 {
            assert!(b.try_take_at(start));
        }
        assert!(!b.try_take_at(start));
        assert!(b.try_take_at(start + Duration::from_millis(100)));
        assert!(!b.try_take_at(start + Duration::from_millis(100)));
        // Never more than the burst, however long the pause.
        let later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(b.try_take_at(later));
        }
        assert!(!b.try_take_at(later));
    }
}

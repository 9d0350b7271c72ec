//! A session's periodic duties, as plain data: when its token expires, when
//! a ping is due (and whether the client went quiet for too long), when the
//! token is touched so an open socket keeps it from idling out.
//!
//! One timer drives them all: actix polls every timer of an actor each time
//! it wakes (on every delivery), so one beats four.

use std::time::{Duration, Instant};

/// What a tick has to do, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// The token's maximum age ended: close the socket.
    Expire,
    /// Nothing heard from the client within its timeout: close the socket.
    TimeOut,
    /// The regular work: ping and/or touch the token.
    Run { ping: bool, touch: bool },
}

/// The intervals, the same for every session (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub ping_every: Duration,
    pub touch_every: Duration,
    pub client_timeout: Duration,
}

impl Intervals {
    /// How often the session's one timer should fire.
    pub fn tick_every(&self) -> Duration {
        self.ping_every.min(Duration::from_secs(1))
    }
}

/// When each duty of one session is next due. Only the instants live in the
/// session (every idle socket holds one): the intervals are passed in.
#[derive(Debug, Clone)]
pub struct Timers {
    expires: Instant,
    next_ping: Instant,
    next_touch: Instant,
}

impl Timers {
    pub fn new(now: Instant, expires_in: Duration, every: &Intervals) -> Self {
        Timers {
            // A token valid for longer than the clock can say expires "never".
            expires: now.checked_add(expires_in).unwrap_or(now + Duration::from_secs(365 * 86_400)),
            next_ping: now + every.ping_every,
            next_touch: now + every.touch_every,
        }
    }

    /// What is due at `now`, given when the client was last heard; schedules
    /// the next ping and touch.
    pub fn due(&mut self, now: Instant, last_heard: Instant, every: &Intervals) -> Duty {
        if now >= self.expires {
            return Duty::Expire;
        }
        let ping = now >= self.next_ping;
        if ping {
            self.next_ping = now + every.ping_every;
            if now.saturating_duration_since(last_heard) > every.client_timeout {
                return Duty::TimeOut;
            }
        }
        let touch = now >= self.next_touch;
        if touch {
            self.next_touch = now + every.touch_every;
        }
        Duty::Run { ping, touch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    const EVERY: Intervals = Intervals {
        ping_every: Duration::from_secs(5),
        touch_every: Duration::from_secs(60),
        client_timeout: Duration::from_secs(12),
    };

    fn timers(now: Instant) -> Timers {
        Timers::new(now, 100 * S, &EVERY)
    }

    #[test]
    fn pings_come_once_per_interval_and_touches_once_per_their_own() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        let (mut pings, mut touches) = (0, 0);
        for second in 1..=90 {
            let now = t0 + second * S;
            match t.due(now, now, &EVERY) {
                Duty::Run { ping, touch } => {
                    pings += ping as u32;
                    touches += touch as u32;
                }
                other => panic!("at {second} s: {other:?}"),
            }
        }
        assert_eq!((pings, touches), (18, 1));
    }

    #[test]
    fn a_quiet_client_times_out_at_the_first_ping_past_its_timeout() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        assert_eq!(t.due(t0 + 5 * S, t0, &EVERY), Duty::Run { ping: true, touch: false });
        assert_eq!(t.due(t0 + 10 * S, t0, &EVERY), Duty::Run { ping: true, touch: false });
        // Quiet for 13 s at the ping of 15 s (timeout 12 s).
        assert_eq!(t.due(t0 + 11 * S, t0, &EVERY), Duty::Run { ping: false, touch: false });
        assert_eq!(t.due(t0 + 15 * S, t0, &EVERY), Duty::TimeOut);
    }

    #[test]
    fn the_token_expiry_comes_before_anything_else() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        assert_eq!(t.due(t0 + 100 * S, t0, &EVERY), Duty::Expire);
    }

    #[test]
    fn a_token_valid_past_the_clock_never_expires() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, Duration::MAX, &EVERY);
        assert_eq!(t.due(t0 + 5 * S, t0 + 5 * S, &EVERY), Duty::Run { ping: true, touch: false });
        assert_eq!(EVERY.tick_every(), S);
    }
}

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

#[derive(Debug, Clone)]
pub struct Timers {
    expires: Instant,
    next_ping: Instant,
    next_touch: Instant,
    ping_every: Duration,
    touch_every: Duration,
    client_timeout: Duration,
}

impl Timers {
    pub fn new(
        now: Instant,
        expires_in: Duration,
        ping_every: Duration,
        touch_every: Duration,
        client_timeout: Duration,
    ) -> Self {
        Timers {
            // A token valid for longer than the clock can say expires "never".
            expires: now.checked_add(expires_in).unwrap_or(now + Duration::from_secs(365 * 86_400)),
            next_ping: now + ping_every,
            next_touch: now + touch_every,
            ping_every,
            touch_every,
            client_timeout,
        }
    }

    /// How often the session's one timer should fire.
    pub fn tick_every(&self) -> Duration {
        self.ping_every.min(Duration::from_secs(1))
    }

    /// What is due at `now`, given when the client was last heard; schedules
    /// the next ping and touch.
    pub fn due(&mut self, now: Instant, last_heard: Instant) -> Duty {
        if now >= self.expires {
            return Duty::Expire;
        }
        let ping = now >= self.next_ping;
        if ping {
            self.next_ping = now + self.ping_every;
            if now.saturating_duration_since(last_heard) > self.client_timeout {
                return Duty::TimeOut;
            }
        }
        let touch = now >= self.next_touch;
        if touch {
            self.next_touch = now + self.touch_every;
        }
        Duty::Run { ping, touch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timers(now: Instant) -> Timers {
        Timers::new(now, 100 * S, 5 * S, 60 * S, 12 * S)
    }

    #[test]
    fn pings_come_once_per_interval_and_touches_once_per_their_own() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        let (mut pings, mut touches) = (0, 0);
        for second in 1..=90 {
            let now = t0 + second * S;
            match t.due(now, now) {
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
        assert_eq!(t.due(t0 + 5 * S, t0), Duty::Run { ping: true, touch: false });
        assert_eq!(t.due(t0 + 10 * S, t0), Duty::Run { ping: true, touch: false });
        // Quiet for 13 s at the ping of 15 s (timeout 12 s).
        assert_eq!(t.due(t0 + 11 * S, t0), Duty::Run { ping: false, touch: false });
        assert_eq!(t.due(t0 + 15 * S, t0), Duty::TimeOut);
    }

    #[test]
    fn the_token_expiry_comes_before_anything_else() {
        let t0 = Instant::now();
        let mut t = timers(t0);
        assert_eq!(t.due(t0 + 100 * S, t0), Duty::Expire);
    }

    #[test]
    fn a_token_valid_past_the_clock_never_expires() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, Duration::MAX, 5 * S, 60 * S, 12 * S);
        assert_eq!(t.due(t0 + 5 * S, t0 + 5 * S), Duty::Run { ping: true, touch: false });
        assert_eq!(t.tick_every(), S);
    }
}

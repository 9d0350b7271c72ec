//! Back-pressure accounting for one socket, as plain data: bytes written
//! versus bytes the client has provably read.
//!
//! A pong answers every ping sent before it, and a client reads in order, so
//! everything written before an answered ping has been read. A client that
//! stops reading stops answering, and its backlog grows in our memory.
//!
//! Past the bound the session stops writing live messages (and catches the
//! client up later, see ws::session), so the backlog stays bounded for a slow
//! reader; only a reader that makes no progress at all for `GRACE` is
//! judged to have stopped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A client over the bound that proves no reading progress (no pong that
/// acknowledges more bytes) for this long has stopped reading; beyond
/// `HARD_FACTOR` times the bound it has too, whatever the time.
pub const GRACE: Duration = Duration::from_secs(10);
pub const HARD_FACTOR: u64 = 16;
/// A ping goes out every this fraction of the bound written, so a slow
/// reader proves progress often.
const PING_EVERY_FRACTION: u64 = 8;
/// Unanswered pings remembered (the oldest is what the grace is judged by).
const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug)]
pub struct Outbound {
    limit: u64,
    written: u64,
    acknowledged: u64,
    next_ping: u64,
    /// (ping id, bytes written when it was sent, when), oldest first.
    in_flight: VecDeque<(u64, u64, Instant)>,
    /// Bytes written when the last ping went out.
    at_last_ping: u64,
    /// The last time the client proved it reads (a pong acknowledging more
    /// bytes), or was within the bound.
    last_progress: Instant,
    /// Past the bound: live messages are not written until the backlog is
    /// down to half of it (the client is caught up from the database then).
    paused: bool,
}

/// What the accounting says about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Within the bound, or reading.
    Keeping,
    /// Over the bound with no proof of reading for the grace period (or far
    /// over it): it stopped reading.
    Stopped,
}

impl Outbound {
    /// `limit`: the unread bytes a client may sit on (`MAX_OUTBOUND_BYTES`).
    pub fn new(limit: u64) -> Self {
        Outbound {
            limit,
            written: 0,
            acknowledged: 0,
            next_ping: 0,
            in_flight: VecDeque::new(),
            at_last_ping: 0,
            last_progress: Instant::now(),
            paused: false,
        }
    }

    /// Pauses live writing past the bound; true when this call paused it.
    pub fn pause_if_over(&mut self) -> bool {
        if self.paused || !self.over_limit() {
            return false;
        }
        self.paused = true;
        true
    }

    /// Resumes live writing once the backlog is down to half the bound;
    /// true when this call resumed it (the client must be caught up).
    pub fn resume_if_drained(&mut self) -> bool {
        if !self.paused || !self.drained() {
            return false;
        }
        self.paused = false;
        true
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Counts a write; true when a ping should go out now (an eighth of the
    /// bound written since the last one), so proof of reading comes sooner
    /// than the heartbeat would bring it.
    pub fn wrote(&mut self, bytes: usize) -> bool {
        if self.backlog() <= self.limit {
            self.last_progress = Instant::now();
        }
        self.written += bytes as u64;
        self.written - self.at_last_ping > self.limit / PING_EVERY_FRACTION
    }

    /// A ping goes out now: its payload.
    pub fn ping(&mut self, now: Instant) -> [u8; 8] {
        let id = self.next_ping;
        self.next_ping += 1;
        self.at_last_ping = self.written;
        self.in_flight.push_back((id, self.written, now));
        if self.in_flight.len() > MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        id.to_be_bytes()
    }

    /// A pong came back: everything written before its ping was read.
    pub fn pong(&mut self, payload: &[u8], now: Instant) {
        let Ok(bytes) = <[u8; 8]>::try_from(payload) else { return };
        let id = u64::from_be_bytes(bytes);
        while let Some(&(sent, written, _)) = self.in_flight.front() {
            if sent > id {
                break;
            }
            if written > self.acknowledged {
                self.acknowledged = written;
                self.last_progress = now;
            }
            self.in_flight.pop_front();
        }
    }

    /// The backlog is down to half the bound: writing may resume.
    pub fn drained(&self) -> bool {
        self.backlog() <= self.limit / 2
    }

    /// Bytes written but not yet provably read.
    pub fn backlog(&self) -> u64 {
        self.written - self.acknowledged
    }

    /// Bytes that may still be written before the bound.
    pub fn room_left(&self) -> usize {
        usize::try_from(self.limit.saturating_sub(self.backlog())).unwrap_or(usize::MAX)
    }

    pub fn over_limit(&self) -> bool {
        self.backlog() > self.limit
    }

    pub fn reading(&self, now: Instant) -> Reading {
        let backlog = self.backlog();
        if backlog <= self.limit {
            return Reading::Keeping;
        }
        let stale = now.saturating_duration_since(self.last_progress) > GRACE;
        if stale || backlog > self.limit * HARD_FACTOR {
            Reading::Stopped
        } else {
            Reading::Keeping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_answers_keeps_up_and_one_that_does_not_has_stopped() {
        let t0 = Instant::now();
        let mut o = Outbound::new(1000);
        assert!(!o.wrote(100));
        assert!(o.wrote(200), "an eighth of the bound since the last ping");
        let ping = o.ping(t0);
        o.wrote(900);
        assert_eq!(o.backlog(), 1200);
        assert!(o.over_limit());
        let t1 = Instant::now();
        assert_eq!(o.reading(t1 + Duration::from_secs(1)), Reading::Keeping, "within the grace");
        assert_eq!(o.reading(t1 + GRACE + Duration::from_millis(1)), Reading::Stopped, "no progress for the grace");
        o.pong(&ping, t1 + GRACE);
        assert_eq!(o.backlog(), 900, "what was written before the ping was read");
        assert!(!o.drained());
        assert_eq!(o.reading(t1 + GRACE * 2 - Duration::from_millis(1)), Reading::Keeping, "progress restarts the grace");
        o.pong(b"junk", t1);
        assert_eq!(o.backlog(), 900);
    }

    #[test]
    fn live_writing_pauses_past_the_bound_and_resumes_at_half() {
        let t0 = Instant::now();
        let mut o = Outbound::new(1000);
        o.wrote(900);
        assert!(!o.pause_if_over(), "within the bound");
        let ping = o.ping(t0);
        o.wrote(200);
        assert!(o.pause_if_over(), "over the bound: paused");
        assert!(!o.pause_if_over(), "paused once");
        assert!(o.paused());
        assert!(!o.resume_if_drained(), "nothing read yet");
        o.pong(&ping, t0);
        assert_eq!(o.backlog(), 200);
        assert!(o.resume_if_drained(), "down to half the bound");
        assert!(!o.paused());
        assert!(!o.resume_if_drained(), "resumed once");
    }

    #[test]
    fn far_over_the_bound_is_stopped_at_once() {
        let t0 = Instant::now();
        let mut o = Outbound::new(100);
        o.ping(t0);
        o.wrote(100 * HARD_FACTOR as usize + 1);
        assert_eq!(o.reading(t0), Reading::Stopped);
    }

    #[test]
    fn a_pong_answers_every_earlier_ping() {
        let t0 = Instant::now();
        let mut o = Outbound::new(1 << 20);
        o.wrote(10);
        let _first = o.ping(t0);
        o.wrote(10);
        let second = o.ping(t0);
        o.wrote(10);
        o.pong(&second, t0);
        assert_eq!(o.backlog(), 10);
        assert!(o.drained());
    }
}

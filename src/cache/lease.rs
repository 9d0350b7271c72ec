//! How long this instance may trust what its in-process caches say about
//! tokens and memberships.
//!
//! Revocations reach other instances over the bus, in publish order on the
//! control channel. An instance that heard its own ping come back on that
//! channel `span` ago knows it has applied every revocation published before
//! that ping. So its L1 is trusted only while such a ping is younger than
//! `span`; past that (bus lagging, subscriber gone, Redis away) token and
//! membership lookups go to PostgreSQL. A revoker that cannot collect every
//! instance's confirmation therefore only has to wait `span` (plus a margin)
//! after its publish: by then any instance still trusting its L1 has applied
//! the revocation. See docs/caching.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::{Bus, BusEvent, BusState, Channel};
use crate::metrics::METRICS;

pub struct Lease {
    origin: Instant,
    span: Duration,
    /// Milliseconds (since `origin`, plus one) at which the newest own ping
    /// that came back was sent; 0: none since the last reset.
    heard: AtomicU64,
    /// Single-instance mode: there is nobody whose revocations could be missed.
    local: std::sync::atomic::AtomicBool,
}

impl Lease {
    pub fn new(span: Duration) -> Arc<Lease> {
        Arc::new(Lease {
            origin: Instant::now(),
            span,
            heard: AtomicU64::new(0),
            local: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A lease that is always valid (no other instance exists).
    pub fn always() -> Arc<Lease> {
        let lease = Lease::new(Duration::ZERO);
        lease.local.store(true, Ordering::Release);
        lease
    }

    pub fn span(&self) -> Duration {
        self.span
    }

    /// The stamp a ping carries: now, on this process's monotonic clock.
    pub fn stamp(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// One of our own pings came back, after everything published before it.
    pub fn heard_own(&self, stamp: u64) {
        self.heard.fetch_max(stamp, Ordering::AcqRel);
    }

    /// The bus lost messages (a reconnect): nothing heard counts any more.
    pub fn reset(&self) {
        self.heard.store(0, Ordering::Release);
    }

    /// Whether the L1 caches may answer for tokens and memberships.
    pub fn valid(&self) -> bool {
        if self.local.load(Ordering::Acquire) {
            return true;
        }
        let heard = self.heard.load(Ordering::Acquire);
        heard != 0 && self.stamp().saturating_sub(heard) < self.span.as_millis() as u64
    }
}

/// Pings the control channel every `span / 5`, so a live bus keeps the lease
/// valid with room for a few slow pings.
pub async fn run_pings(bus: Bus, lease: Arc<Lease>) {
    let every = (lease.span() / 5).max(Duration::from_millis(10));
    let mut tick = actix::clock::interval(every);
    loop {
        tick.tick().await;
        crate::supervisor::checkpoint(crate::supervisor::Task::LeasePings);
        METRICS.cache_lease_valid.set(i64::from(lease.valid()));
        if bus.state() != BusState::Local {
            bus.publish(Channel::Control, BusEvent::Lease { stamp: lease.stamp() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_only_while_an_own_ping_is_recent() {
        let lease = Lease::new(Duration::from_millis(40));
        assert!(!lease.valid(), "nothing heard yet");
        lease.heard_own(lease.stamp());
        assert!(lease.valid());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!lease.valid(), "expired");
        let old = lease.stamp() - 45;
        lease.heard_own(old);
        assert!(!lease.valid(), "an old ping heard late proves nothing new");
        lease.heard_own(lease.stamp());
        assert!(lease.valid());
        lease.reset();
        assert!(!lease.valid());
        assert!(Lease::always().valid());
    }
}

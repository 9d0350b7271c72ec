//! What an instance knows about the others and hears from them: who is alive
//! (heartbeats on the bus), how revocations reach them all at once
//! (`revocation`, with the caches' `lease`), and what arrives on the bus,
//! routed to this instance's rooms, caches and sockets (`inbound`).

pub mod inbound;
pub mod revocation;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::bus::{Bus, BusEvent, BusState, Channel};
use crate::chat::Registry;
use crate::metrics::METRICS;

/// Announces this instance every `every` and notices instances that went
/// silent, so their users drop out of presence everywhere.
pub async fn run_heartbeats(bus: Bus, liveness: Arc<Liveness>, registry: Registry, every: Duration) {
    let mut tick = actix::clock::interval(every);
    loop {
        tick.tick().await;
        crate::supervisor::checkpoint(crate::supervisor::Task::Heartbeats);
        let state = bus.state();
        METRICS.bridge_connected.set(i64::from(state != BusState::Disconnected));
        if state == BusState::Local {
            METRICS.cluster_instances.set(1);
            continue;
        }
        bus.publish(Channel::Control, BusEvent::Heartbeat);
        for gone in liveness.sweep() {
            log::warn!("instance {gone} went silent; dropping its presence");
            registry.instance_gone(&gone);
        }
        METRICS.cluster_instances.set(liveness.others().len() as i64 + 1);
    }
}

/// Last time each other instance was heard from.
pub struct Liveness {
    ttl: Duration,
    seen: Mutex<HashMap<String, Instant>>,
}

impl Liveness {
    pub fn new(ttl: Duration) -> Self {
        Liveness { ttl, seen: Mutex::new(HashMap::new()) }
    }

    pub fn heard_from(&self, instance: &str) {
        self.heard_from_at(instance, Instant::now());
    }

    fn heard_from_at(&self, instance: &str, at: Instant) {
        let mut seen = self.seen.lock();
        match seen.get_mut(instance) {
            Some(t) => *t = at,
            None => {
                seen.insert(instance.to_string(), at);
            }
        }
    }

    /// Forgets an instance that said goodbye; true if it was known.
    pub fn forget(&self, instance: &str) -> bool {
        self.seen.lock().remove(instance).is_some()
    }

    /// Removes and returns the instances silent for longer than the TTL.
    pub fn sweep(&self) -> Vec<String> {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        self.seen.lock().retain(|id, t| {
            let alive = now.duration_since(*t) <= self.ttl;
            if !alive {
                gone.push(id.clone());
            }
            alive
        });
        gone
    }

    pub fn others(&self) -> Vec<String> {
        let mut v: Vec<String> = self.seen.lock().keys().cloned().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_instances_expire() {
        let l = Liveness::new(Duration::from_secs(10));
        let t0 = Instant::now();
        l.heard_from_at("a", t0);
        l.heard_from_at("b", t0);
        assert!(l.sweep_at(t0 + Duration::from_secs(10)).is_empty(), "silent for exactly the TTL: still alive");
        l.heard_from_at("b", t0 + Duration::from_secs(11));
        assert_eq!(l.sweep_at(t0 + Duration::from_secs(12)), vec!["a".to_string()]);
        assert_eq!(l.others(), vec!["b".to_string()]);
        assert!(l.forget("b"));
        assert!(!l.forget("b"));
    }
}

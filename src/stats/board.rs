//! The latest snapshot of every instance this one hears from, and a short
//! history of cluster-wide points for the admin charts.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::report::{Aggregate, Point};
use super::snapshot::Snapshot;

/// Points kept for the charts: five minutes at one per second.
const HISTORY_POINTS: usize = 300;

pub struct StatsBoard {
    instance: String,
    stale_after: Duration,
    own: Mutex<Option<Arc<Snapshot>>>,
    others: Mutex<HashMap<String, (Instant, Arc<Snapshot>)>>,
    history: Mutex<VecDeque<Point>>,
}

impl StatsBoard {
    pub fn new(instance: &str, stale_after: Duration) -> Self {
        StatsBoard {
            instance: instance.to_string(),
            stale_after,
            own: Mutex::new(None),
            others: Mutex::new(HashMap::new()),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_POINTS)),
        }
    }

    /// This instance's newest snapshot; also appends a cluster-wide point.
    pub fn set_own(&self, snapshot: Snapshot) {
        *self.own.lock() = Some(Arc::new(snapshot));
        let point = Aggregate::of(self.current().iter().map(Arc::as_ref)).point();
        let mut history = self.history.lock();
        history.push_back(point);
        while history.len() > HISTORY_POINTS {
            history.pop_front();
        }
    }

    /// A snapshot another instance published on the bus.
    /// Figures another instance published on the bus.
    pub fn remote_encoded(&self, origin: &str, encoded: serde_json::Value) {
        match serde_json::from_value(encoded) {
            Ok(snapshot) => self.remote(origin, snapshot),
            // A newer or older instance during a rolling deploy: its figures
            // are left out of /admin until both speak the same shape.
            Err(e) => log::warn!("stats: figures from {origin} not understood: {e}"),
        }
    }

    pub fn remote(&self, origin: &str, mut snapshot: Snapshot) {
        if origin == self.instance {
            return;
        }
        // The envelope's origin is authoritative, whatever the body claims.
        snapshot.instance = origin.to_string();
        self.others.lock().insert(origin.to_string(), (Instant::now(), Arc::new(snapshot)));
    }

    /// An instance said goodbye: it leaves the figures at once.
    pub fn forget(&self, origin: &str) {
        self.others.lock().remove(origin);
    }

    /// This instance first, then every other one heard from recently, by name.
    pub fn current(&self) -> Vec<Arc<Snapshot>> {
        let now = Instant::now();
        let mut others: Vec<Arc<Snapshot>> = {
            let mut map = self.others.lock();
            map.retain(|_, (seen, _)| now.duration_since(*seen) <= self.stale_after);
            map.values().map(|(_, s)| s.clone()).collect()
        };
        others.sort_by(|a, b| a.instance.cmp(&b.instance));
        let mut all: Vec<Arc<Snapshot>> = self.own.lock().iter().cloned().collect();
        all.extend(others);
        all
    }

    pub fn history(&self) -> Vec<Point> {
        self.history.lock().iter().cloned().collect()
    }
}

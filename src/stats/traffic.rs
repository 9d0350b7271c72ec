//! Messages per room, counted where they are committed (each message once,
//! cluster-wide) and rolled over a one-minute window for "top rooms".

use std::collections::{HashMap, VecDeque};
use std::sync::LazyLock;

use parking_lot::Mutex;

/// Counts since the sampler last took them. Process-wide like the metrics
/// registry: one process is one instance.
static SINCE_LAST_TAKE: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Called once per committed batch and room.
pub fn record(room: &str, messages: u64) {
    let mut map = SINCE_LAST_TAKE.lock();
    match map.get_mut(room) {
        Some(n) => *n += messages,
        None => {
            map.insert(room.to_string(), messages);
        }
    }
}

fn take() -> HashMap<String, u64> {
    std::mem::take(&mut *SINCE_LAST_TAKE.lock())
}

/// A sliding window of per-room counts, one slot per sample.
pub struct RollingTraffic {
    slots: VecDeque<HashMap<String, u64>>,
    totals: HashMap<String, u64>,
    width: usize,
}

impl RollingTraffic {
    pub fn new(width: usize) -> Self {
        RollingTraffic { slots: VecDeque::with_capacity(width + 1), totals: HashMap::new(), width: width.max(1) }
    }

    /// Takes what was recorded since the last call as the newest slot.
    pub fn advance(&mut self) {
        self.push(take());
    }

    fn push(&mut self, slot: HashMap<String, u64>) {
        for (room, n) in &slot {
            *self.totals.entry(room.clone()).or_insert(0) += n;
        }
        self.slots.push_back(slot);
        while self.slots.len() > self.width {
            let Some(expired) = self.slots.pop_front() else { break };
            for (room, n) in expired {
                if let Some(total) = self.totals.get_mut(&room) {
                    *total = total.saturating_sub(n);
                    if *total == 0 {
                        self.totals.remove(&room);
                    }
                }
            }
        }
    }

    /// The `n` busiest rooms of the window, busiest first (ties by name).
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self.totals.iter().map(|(r, c)| (r.clone(), *c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn counts_expire_with_the_window() {
        let mut t = RollingTraffic::new(2);
        t.push(slot(&[("a", 5), ("b", 1)]));
        t.push(slot(&[("b", 2)]));
        assert_eq!(t.top(5), vec![("a".into(), 5), ("b".into(), 3)]);
        t.push(slot(&[("c", 1)]));
        assert_eq!(t.top(5), vec![("b".into(), 2), ("c".into(), 1)]);
        assert_eq!(t.top(1).len(), 1);
    }
}

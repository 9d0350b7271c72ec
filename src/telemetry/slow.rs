//! The latest slow deliveries and requests of this instance, with their trace
//! ids and stage times, for `/admin` (each instance's list travels in its
//! stats snapshot).

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Kept per kind; older ones fall off.
const KEEP: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowKind {
    Delivery,
    Request,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowOp {
    /// When it finished (Unix ms).
    pub at_ms: i64,
    pub kind: SlowKind,
    /// The room of a delivery; method, route and status of a request.
    pub what: String,
    pub total_ms: f64,
    /// (stage, ms) in order: queue, commit, bus, fanout for a delivery.
    pub stages: Vec<(String, f64)>,
    /// None when tracing is off and the operation had no trace.
    pub trace_id: Option<String>,
}

static RECENT: Mutex<VecDeque<SlowOp>> = Mutex::new(VecDeque::new());

pub fn record(op: SlowOp) {
    let mut recent = RECENT.lock();
    if recent.iter().filter(|o| o.kind == op.kind).count() >= KEEP {
        if let Some(oldest) = recent.iter().position(|o| o.kind == op.kind) {
            recent.remove(oldest);
        }
    }
    recent.push_back(op);
}

/// Oldest first.
pub fn latest() -> Vec<SlowOp> {
    RECENT.lock().iter().cloned().collect()
}

pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_of_each_kind() {
        let op = |kind, i: i64| SlowOp { at_ms: i, kind, what: String::new(), total_ms: 0.0, stages: vec![], trace_id: None };
        for i in 0..25 {
            record(op(SlowKind::Delivery, i));
        }
        record(op(SlowKind::Request, 100));
        let kept = latest();
        let deliveries: Vec<i64> = kept.iter().filter(|o| o.kind == SlowKind::Delivery).map(|o| o.at_ms).collect();
        assert_eq!(deliveries, (15..25).collect::<Vec<_>>());
        assert_eq!(kept.iter().filter(|o| o.kind == SlowKind::Request).count(), 1);
    }
}

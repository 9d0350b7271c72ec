//! Per-delivery metrics, buffered per thread: the hot path must not bounce
//! shared cache lines between cores on every frame.

use std::time::Duration;

use super::{DeliveryStage, METRICS};

/// Per-thread buffers for the per-delivery metrics.
struct DeliveryBuffer {
    latency: prometheus::local::LocalHistogram,
    fanout: prometheus::local::LocalHistogram,
    count: u64,
    last_flush: std::time::Instant,
}

impl DeliveryBuffer {
    fn flush(&mut self) {
        self.latency.flush();
        self.fanout.flush();
        METRICS.messages_delivered.inc_by(self.count);
        self.count = 0;
        self.last_flush = std::time::Instant::now();
    }
}

thread_local! {
    /// Per-thread buffer for the per-delivery metrics, so the hot path does
    /// not bounce shared cache lines between cores on every frame.
    static DELIVERIES: std::cell::RefCell<DeliveryBuffer> = std::cell::RefCell::new(DeliveryBuffer {
        latency: METRICS.delivery_latency.local(),
        fanout: METRICS.stage(DeliveryStage::Fanout).local(),
        count: 0,
        last_flush: std::time::Instant::now(),
    });
}

/// Counts one frame written to a socket, its latency since the server
/// received the message and its `fanout` stage (when known). Flushed every
/// 256 deliveries, and by a per-thread timer every 100 ms so quiet periods
/// are not left unflushed.
pub fn record_delivery(received_at: Option<std::time::Instant>, available_at: Option<std::time::Instant>) {
    DELIVERIES.with(|cell| {
        let mut b = cell.borrow_mut();
        let now = std::time::Instant::now();
        if let Some(t) = received_at {
            b.latency.observe(now.saturating_duration_since(t).as_secs_f64());
        }
        if let Some(t) = available_at {
            b.fanout.observe(now.saturating_duration_since(t).as_secs_f64());
        }
        b.count += 1;
        if b.count >= 256 || now.saturating_duration_since(b.last_flush) >= Duration::from_millis(100) {
            b.flush();
        }
    });
    FLUSHER.with(|started| {
        if !started.replace(true) {
            // Sessions run on actix workers, so a local task is available.
            actix::spawn(async {
                let mut tick = actix::clock::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    flush_deliveries();
                }
            });
        }
    });
}

fn flush_deliveries() {
    DELIVERIES.with(|cell| cell.borrow_mut().flush());
}

thread_local! {
    static FLUSHER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

//! Waiting on events with a bound, never with a fixed sleep.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` until it answers `Some`, at most `bound`; panics naming
/// `what` otherwise. The poll interval grows from 10 ms to 200 ms, so a
/// quick event is seen quickly and a slow one costs few polls.
pub async fn eventually<T, F, Fut>(bound: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out after {bound:?} waiting for {what}");
        actix_web::rt::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Resident memory of a process, in bytes (Linux `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

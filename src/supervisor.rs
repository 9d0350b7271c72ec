//! Supervision of the background tasks: a task that panics or returns is
//! logged, counted in `switchboard_task_restarts_total{task}` and started
//! again with back-off, so one bug in a loop does not silently leave an
//! instance without its writer, its bus or its figures. A task that keeps
//! failing (three restarts within a minute) is reported by `/readyz`.
//!
//! Tasks keep what must outlive a restart (the queues they drain) outside
//! the restarted future, so nothing queued is lost with a crash.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use parking_lot::Mutex;

use crate::metrics::METRICS;

crate::label_set! {
    /// Every supervised task (the `task` label of its restarts).
    pub enum Task {
        Writer = "writer",
        BusSubscriber = "bus_subscriber",
        BusPublisher = "bus_publisher",
        ControlLoop = "control_loop",
        Heartbeats = "heartbeats",
        LeasePings = "lease_pings",
        StatsSampler = "stats_sampler",
        Readiness = "readiness",
        ReplicaMonitor = "replica_monitor",
        Housekeeping = "housekeeping",
        Checkpointer = "checkpointer",
    }
}

impl Task {
    /// Whether the instance cannot do its job while this task is down: it
    /// is then not ready.
    pub fn critical(self) -> bool {
        matches!(self, Task::Writer | Task::BusSubscriber | Task::BusPublisher | Task::ControlLoop)
    }
}

/// Restarts within this window that make a task "failing".
const FAILING_WINDOW: Duration = Duration::from_secs(60);
const FAILING_RESTARTS: usize = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Health {
    restarts: HashMap<Task, VecDeque<Instant>>,
}

static HEALTH: LazyLock<Mutex<Health>> = LazyLock::new(|| Mutex::new(Health { restarts: HashMap::new() }));

/// Set once the process is stopping: a task that returns then has simply
/// finished (the writer's queue closes when the last sender is dropped).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The process is shutting down: tasks that return are not restarted.
pub fn stopping() {
    STOPPING.store(true, Ordering::Release);
}

/// Test hooks only: a task told to die panics at its next checkpoint.
static KILL: LazyLock<HashMap<Task, AtomicBool>> =
    LazyLock::new(|| Task::ALL.iter().map(|t| (*t, AtomicBool::new(false))).collect());

/// Runs `make()` as task `task` on the current arbiter, again and again.
pub fn spawn<F, Fut>(task: Task, make: F)
where
    F: FnMut() -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    actix::spawn(supervise(task, make));
}

/// The supervision loop itself, for tasks spawned on an arbiter of their own.
pub async fn supervise<F, Fut>(task: Task, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        match AssertUnwindSafe(make()).catch_unwind().await {
            Ok(()) if STOPPING.load(Ordering::Acquire) => {
                log::debug!("task {} finished: the process is stopping", task.as_str());
                return;
            }
            Ok(()) => log::error!("task {} returned; restarting it in {backoff:?}", task.as_str()),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                log::error!("task {} panicked ({why}); restarting it in {backoff:?}", task.as_str());
            }
        }
        METRICS.task_restarts.with_label_values(&[task.as_str()]).inc();
        {
            let mut health = HEALTH.lock();
            let recent = health.restarts.entry(task).or_default();
            recent.push_back(Instant::now());
            while recent.front().is_some_and(|t| t.elapsed() > FAILING_WINDOW) {
                recent.pop_front();
            }
        }
        // A task that ran a good while before failing starts again quickly.
        if started.elapsed() > FAILING_WINDOW {
            backoff = FIRST_BACKOFF;
        }
        actix::clock::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Tasks that restarted `FAILING_RESTARTS` times within the last minute.
pub fn failing() -> Vec<Task> {
    let mut health = HEALTH.lock();
    let mut out = Vec::new();
    for (task, recent) in health.restarts.iter_mut() {
        while recent.front().is_some_and(|t| t.elapsed() > FAILING_WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= FAILING_RESTARTS {
            out.push(*task);
        }
    }
    out.sort_by_key(|t| t.as_str());
    out
}

/// Every task's restart counter, at zero from start-up.
pub fn expose_metrics() {
    METRICS.expose(&METRICS.task_restarts, Task::ALL.map(Task::as_str));
}

/// Test hook: `task` panics at its next checkpoint.
pub fn kill(task: Task) {
    if let Some(flag) = KILL.get(&task) {
        flag.store(true, Ordering::Release);
    }
}

/// Where a task may be killed by the test hook (a no-op otherwise).
pub fn checkpoint(task: Task) {
    if KILL.get(&task).is_some_and(|f| f.swap(false, Ordering::AcqRel)) {
        panic!("test hook: task {} killed on purpose", task.as_str());
    }
}

/// A queue a task drains, kept outside the task so a restart finds it
/// (with everything still in it).
pub type Shared<T> = Arc<tokio::sync::Mutex<T>>;

pub fn shared<T>(value: T) -> Shared<T> {
    Arc::new(tokio::sync::Mutex::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[actix_rt::test]
    async fn a_task_that_panics_or_returns_is_restarted_and_counted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        spawn(Task::Housekeeping, move || {
            let r = r.clone();
            async move {
                let n = r.fetch_add(1, Ordering::AcqRel);
                if n == 0 {
                    panic!("first run fails");
                }
                if n == 1 {
                    return;
                }
                checkpoint(Task::Housekeeping);
                std::future::pending::<()>().await;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::Acquire) < 3 {
            assert!(Instant::now() < deadline, "not restarted");
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(METRICS.task_restarts.with_label_values(&["housekeeping"]).get() >= 2);
        assert_eq!(Task::parse("writer"), Some(Task::Writer));
        assert!(Task::ALL.iter().all(|t| Task::parse(t.as_str()) == Some(*t)));
    }
}

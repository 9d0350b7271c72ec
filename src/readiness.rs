//! Whether this instance should take traffic: what `/readyz` answers and
//! the stats sampler records, below both.

use std::time::Duration;

use serde_json::json;

use crate::bus::redis::RedisPool;
use crate::bus::Bus;
use crate::store::writer::Writer;
use crate::store::Store;

/// What `/readyz` found.
pub struct Readiness {
    pub status: &'static str,
    pub checks: serde_json::Value,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// What the checks look at: the parts themselves, and the instance's own
/// answers (draining, the recent windows warm) as they are now.
pub struct Probe<'a> {
    pub store: &'a Store,
    pub redis: Option<&'a RedisPool>,
    pub writer: &'a Writer,
    pub bus: &'a Bus,
    pub draining: bool,
    pub warm: bool,
}

/// The readiness checks.
pub async fn check(state: Probe<'_>) -> Readiness {
    let db_check = tokio::time::timeout(Duration::from_secs(1), state.store.primary());
    let redis_check = async {
        match state.redis {
            None => None,
            Some(pool) => Some(match tokio::time::timeout(Duration::from_secs(1), crate::bus::redis::ping(pool)).await {
                Ok(Ok(())) => "ok",
                Ok(Err(_)) => "unreachable",
                Err(_) => "timeout",
            }),
        }
    };
    let (db, redis) = futures_util::join!(db_check, redis_check);
    let (database, primary) = match &db {
        Ok(Ok(p)) if p.writable => ("ok", Some(p.server.clone())),
        // Reached a standby: writes would fail until the pool finds the primary.
        Ok(Ok(p)) => ("read_only", Some(p.server.clone())),
        Ok(Err(_)) => ("unreachable", None),
        Err(_) => ("timeout", None),
    };
    let (draining, warm) = (state.draining, state.warm);
    // Background tasks that keep crashing (supervisor): the instance cannot
    // be trusted with traffic while a critical one does.
    let failing = crate::supervisor::failing();
    let tasks_ok = !failing.iter().any(|t| t.critical());
    // Commits stuck (the writer's breaker): sends are being refused.
    let writer = state.writer.health().verdict(std::time::Instant::now());
    let status = if draining {
        "draining"
    } else if database == "ok" && redis.is_none_or(|r| r == "ok") && warm && tasks_ok && !writer.refuses() {
        "ready"
    } else {
        "not_ready"
    };
    let mut checks = json!({
        "database": database,
        "draining": draining,
        "writer": writer.describe(),
        "bus": state.bus.state().as_str(),
        "cache": if warm { "warm" } else { "warming" },
        "tasks": if failing.is_empty() {
            json!("ok")
        } else {
            json!(failing.iter().map(|t| (t.as_str().to_string(), json!("failing"))).collect::<serde_json::Map<String, serde_json::Value>>())
        },
    });
    if let Some(r) = redis {
        checks["redis"] = json!(r);
    }
    // Which server answered as the primary (host:port, or the SQLite file).
    if let Some(p) = primary {
        checks["database_primary"] = json!(p);
    }
    // Informational: reads fall back to the primary without the replica.
    if let Some(replica) = state.store.replica() {
        checks["replica"] = json!(if replica.is_healthy() { "ok" } else { "bypassed" });
    }
    Readiness { status, checks }
}

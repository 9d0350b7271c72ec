//! Abuse limits: connections per instance and per client IP, failed
//! password logins per client IP (brute force gets 429), and account and
//! guest creations per client IP (`creation`).
//!
//! The client IP is the peer address, or — when the peer is a trusted proxy
//! (`TRUSTED_PROXIES`, loopback by default) — the first address of its
//! `X-Forwarded-For`. A trusted peer that sends no `X-Forwarded-For` is
//! limited by its own address: behind a TLS terminator or a TCP-mode
//! balancer on the same host every client arrives from 127.0.0.1 without
//! the header, and exempting it would switch every per-address limit off.
//! The first such request is logged once, naming both settings.

pub mod creation;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use parking_lot::Mutex;

use crate::config::LimitsConfig;
use crate::error::ApiError;
use crate::metrics::{Limit, METRICS};
use crate::redis_pool::RedisPool;

pub struct Limits {
    max_connections: usize,
    max_per_ip: usize,
    login_failures_per_min: usize,
    trusted: Vec<IpAddr>,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    pub creations: creation::CreationLimits,
}

/// One open WebSocket; dropping it gives the slot back.
pub struct ConnectionSlot {
    limits: Arc<Limits>,
    ip: Option<IpAddr>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut map = self.limits.per_ip.lock();
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

/// The address a request is limited by: a trusted peer's `X-Forwarded-For`
/// (its first address), else the peer itself.
fn client_ip(peer: IpAddr, trusted: &[IpAddr], forwarded: Option<&str>) -> Option<IpAddr> {
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let named = forwarded.and_then(|f| f.split(',').next()).and_then(|first| first.trim().parse().ok());
    if named.is_none() {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            log::warn!(
                "a trusted proxy ({peer}) sent a request without a usable X-Forwarded-For: it is limited per address as \
                 one client. If a proxy on this host serves many clients, have it send X-Forwarded-For; if nothing \
                 should be trusted, set TRUSTED_PROXIES=none"
            )
        });
    }
    Some(named.unwrap_or(peer))
}

impl Limits {
    pub fn new(config: &LimitsConfig, redis: Option<(RedisPool, String)>) -> Arc<Limits> {
        Arc::new(Limits {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            login_failures_per_min: config.login_failures_per_min,
            trusted: config.trusted_proxies.clone(),
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            creations: creation::CreationLimits::new(config.signups_per_min, config.guests_per_min, redis),
        })
    }

    /// The client's address for limiting.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        client_ip(peer, &self.trusted, req.headers().get("x-forwarded-for").and_then(|h| h.to_str().ok()))
    }

    /// Takes a WebSocket slot, or refuses: 503 when the instance is full,
    /// 429 when this client already holds its share.
    pub fn open_connection(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnectionSlot, ApiError> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_connections {
            self.open.fetch_sub(1, Ordering::AcqRel);
            METRICS.limit_hit(Limit::Connections).inc();
            return Err(ApiError::Unavailable("this instance is at its connection limit; try another".into()));
        }
        if let Some(ip) = ip {
            let mut map = self.per_ip.lock();
            let n = map.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                drop(map);
                self.open.fetch_sub(1, Ordering::AcqRel);
                METRICS.limit_hit(Limit::ConnectionsPerIp).inc();
                return Err(ApiError::RateLimited("too many connections from this address".into()));
            }
            *n += 1;
        }
        Ok(ConnectionSlot { limits: self.clone(), ip })
    }

    /// Refuses a login from an address with too many recent failures.
    pub fn check_login(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let mut map = self.failures.lock();
        let Some(recent) = map.get_mut(&ip) else { return Ok(()) };
        let horizon = Instant::now() - Duration::from_secs(60);
        while recent.front().is_some_and(|t| *t < horizon) {
            recent.pop_front();
        }
        if recent.is_empty() {
            map.remove(&ip);
            return Ok(());
        }
        if recent.len() >= self.login_failures_per_min {
            METRICS.limit_hit(Limit::Login).inc();
            return Err(ApiError::RateLimited("too many failed sign-ins; wait a minute".into()));
        }
        Ok(())
    }

    pub fn record_login_failure(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut map = self.failures.lock();
        if map.len() > 100_000 {
            // Bounded memory under a spray from many addresses.
            let horizon = Instant::now() - Duration::from_secs(60);
            map.retain(|_, q| q.back().is_some_and(|t| *t >= horizon));
        }
        map.entry(ip).or_default().push_back(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_peer_without_the_header_is_limited_by_its_own_address() {
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let client: IpAddr = "203.0.113.9".parse().expect("ip");
        let trusted = [local];
        assert_eq!(client_ip(local, &trusted, Some("203.0.113.9, 10.0.0.1")), Some(client));
        assert_eq!(client_ip(local, &trusted, None), Some(local));
        assert_eq!(client_ip(local, &trusted, Some("garbage")), Some(local));
        assert_eq!(client_ip(client, &trusted, Some("198.51.100.1")), Some(client), "only trusted peers may name another");
        assert_eq!(client_ip(local, &[], Some("198.51.100.1")), Some(local), "TRUSTED_PROXIES=none");
    }
}

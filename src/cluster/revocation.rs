//! Access changes "at once" on every instance (guarantee 5): a signed-out
//! token, or a member removed from a private room, is refused by every
//! instance from the moment the revoking request answers. (A member added to
//! a private room is let in everywhere at once too, by the same path without
//! the lease wait: a late grant is an annoyance, not a breach.)
//!
//! The revoking instance, after the database change:
//! 1. applies the revocation here (`apply`): L1 entry dropped, sockets
//!    flagged through their `SessionGuard`s, the room told;
//! 2. publishes it on the control channel and waits for the PUBLISH reply;
//! 3. waits for its own echo: every instance it hears from was announced on
//!    the control channel before the revocation, so that list is complete;
//! 4. waits for a confirmation from each of those instances, which each
//!    sends after applying the revocation the same way.
//!
//! That takes a few milliseconds. If any confirmation is missing after the
//! cache lease (`cache::lease`) plus a margin, it answers anyway: by then
//! an instance that still trusts its L1 has provably heard a ping published
//! after the revocation, so it applied the revocation first (or flushed its
//! L1 when its subscription came back). The L2 entry in Redis was replaced by
//! a tombstone before the database change, so no instance reloads the old
//! answer from there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use super::Liveness;
use crate::bus::{Bus, BusEvent, Channel, PublishError};
use crate::cache::lease::Lease;
use crate::cache::{Caches, Membership};
use crate::chat::room::Kick;
use crate::chat::Registry;
use crate::connections::Connections;
use crate::domain::{RoomId, TokenHash, UserId};
use crate::metrics::METRICS;

/// How much longer than the lease a revoker waits for missing confirmations
/// (ping publish, scheduling and clock-tick slack).
const LEASE_MARGIN: Duration = Duration::from_millis(250);

/// What changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// A token: no request, upgrade, join or send with it any more.
    TokenRevoked(TokenHash),
    /// A member of a private room removed, or anyone banned from a room: no
    /// read, join or send there any more.
    MemberRemoved { room: RoomId, user: UserId },
    /// A member added to a private room: no instance answers "not a member"
    /// from its cache any more.
    MemberAdded { room: RoomId, user: UserId },
}

impl AccessChange {
    pub fn to_event(self, confirm: Option<Uuid>) -> BusEvent {
        match self {
            AccessChange::TokenRevoked(token) => BusEvent::Revoke { token_sha256: token.to_hex(), confirm },
            AccessChange::MemberRemoved { room, user } => BusEvent::Kick { room_id: room.0, user_id: user.0, confirm },
            AccessChange::MemberAdded { room, user } => BusEvent::Grant { room_id: room.0, user_id: user.0, confirm },
        }
    }

    /// Whether every instance must hold it before the request answers, even
    /// if that means waiting out the lease.
    fn must_hold(self) -> bool {
        !matches!(self, AccessChange::MemberAdded { .. })
    }
}

crate::label_set! {
    /// How every instance was made to hold a revocation (`outcome` label).
    pub enum Outcome {
        /// Single-instance mode: applied here, nobody else to tell.
        Local = "local",
        /// Every live instance confirmed.
        Confirmed = "confirmed",
        /// Some instance did not confirm; the lease wait covered it.
        LeaseWait = "lease_wait",
        /// A grant some instance did not confirm in time (its negative cache
        /// entry expires on its own).
        Unconfirmed = "unconfirmed",
    }
}

/// Every outcome's counter, at zero from start-up.
pub fn expose_metrics() {
    METRICS.expose(&METRICS.revocations, Outcome::ALL.map(Outcome::as_str));
}

#[derive(Debug, thiserror::Error)]
#[error("the revocation could not be published: {0}")]
pub struct PublishFailed(#[from] pub PublishError);

/// Confirmations being waited for, by revocation id.
#[derive(Default)]
struct Waiting {
    pending: Mutex<HashMap<Uuid, Arc<Waiter>>>,
}

#[derive(Default)]
struct Waiter {
    from: Mutex<HashSet<String>>,
    notify: Notify,
}

pub struct Revoker {
    instance: String,
    caches: Arc<Caches>,
    connections: Connections,
    registry: Registry,
    liveness: Arc<Liveness>,
    lease: Arc<Lease>,
    bus: Bus,
    waiting: Waiting,
}

impl Revoker {
    pub fn new(
        instance: &str,
        caches: Arc<Caches>,
        connections: Connections,
        registry: Registry,
        liveness: Arc<Liveness>,
        lease: Arc<Lease>,
        bus: Bus,
    ) -> Arc<Revoker> {
        Arc::new(Revoker {
            instance: instance.to_string(),
            caches,
            connections,
            registry,
            liveness,
            lease,
            bus,
            waiting: Waiting::default(),
        })
    }

    /// This instance's sockets (for frames other instances ask for).
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    pub fn lease(&self) -> &Arc<Lease> {
        &self.lease
    }

    /// Makes the revocation hold here: nothing this instance does after
    /// this returns accepts what was revoked.
    pub async fn apply(&self, revocation: AccessChange) {
        match revocation {
            AccessChange::TokenRevoked(token) => {
                self.caches.tokens.invalidate_local(&token).await;
                self.connections.revoke(&token);
            }
            AccessChange::MemberRemoved { room, user } => {
                // A removal or a ban: both caches' answers for the pair go.
                self.caches.members.invalidate_local(&Membership(room, user)).await;
                self.caches.bans.invalidate_local(&Membership(room, user)).await;
                self.connections.kick(user, room);
                if let Some(addr) = self.registry.get(room) {
                    addr.do_send(Kick { user_id: user });
                }
            }
            AccessChange::MemberAdded { room, user } => {
                // An addition or a lifted ban.
                self.caches.members.invalidate_local(&Membership(room, user)).await;
                self.caches.bans.invalidate_local(&Membership(room, user)).await;
            }
        }
    }

    /// Applies the revocation here and on every live instance; returns once
    /// no instance accepts what was revoked.
    pub async fn apply_everywhere(&self, revocation: AccessChange) -> Result<Outcome, PublishFailed> {
        let started = Instant::now();
        self.apply(revocation).await;
        if !self.bus.is_shared() {
            return Ok(self.finish(Outcome::Local, started));
        }
        let id = Uuid::new_v4();
        let waiter = Arc::new(Waiter::default());
        self.waiting.pending.lock().insert(id, waiter.clone());
        let _forget = Forget { waiting: &self.waiting, id };

        self.bus.publish_now(Channel::Control, revocation.to_event(Some(id))).await.map_err(PublishFailed)?;
        // From here on, the lease bounds the wait.
        let deadline = Instant::now() + self.lease.span() + LEASE_MARGIN;
        let own = [self.instance.clone()];
        let outcome = if wait_for(&waiter, &own, deadline).await.is_empty() {
            let others = self.liveness.others();
            let missing = wait_for(&waiter, &others, deadline).await;
            if missing.is_empty() {
                Outcome::Confirmed
            } else {
                log::warn!("revocation {id}: no confirmation from {missing:?}; waiting out the cache lease");
                Outcome::LeaseWait
            }
        } else {
            log::warn!("revocation {id}: our own echo did not come back; waiting out the cache lease");
            Outcome::LeaseWait
        };
        let outcome = match outcome {
            Outcome::LeaseWait if revocation.must_hold() => {
                actix::clock::sleep_until(deadline.into()).await;
                Outcome::LeaseWait
            }
            Outcome::LeaseWait => Outcome::Unconfirmed,
            other => other,
        };
        Ok(self.finish(outcome, started))
    }

    fn finish(&self, outcome: Outcome, started: Instant) -> Outcome {
        METRICS.revocations.with_label_values(&[outcome.as_str()]).inc();
        METRICS.revocation_seconds.observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// A revocation from another instance (or our own echo) arrived, in
    /// control-channel order.
    pub async fn on_event(&self, origin: &str, revocation: AccessChange, confirm: Option<Uuid>) {
        if origin == self.instance {
            if let Some(id) = confirm {
                self.on_confirm(origin, id);
            }
            return;
        }
        self.apply(revocation).await;
        if let Some(id) = confirm {
            self.bus.publish(Channel::Control, BusEvent::Confirm { id });
        }
    }

    /// `origin` has applied revocation `id`.
    pub fn on_confirm(&self, origin: &str, id: Uuid) {
        let waiter = self.waiting.pending.lock().get(&id).cloned();
        if let Some(waiter) = waiter {
            waiter.from.lock().insert(origin.to_string());
            waiter.notify.notify_waiters();
        }
    }
}

/// Removes a finished wait from the table, whichever way it ended.
struct Forget<'a> {
    waiting: &'a Waiting,
    id: Uuid,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiting.pending.lock().remove(&self.id);
    }
}

/// Waits until every instance in `needed` confirmed or the deadline passed;
/// returns those still missing.
async fn wait_for(waiter: &Waiter, needed: &[String], deadline: Instant) -> Vec<String> {
    loop {
        // Registered before checking, so a confirmation in between wakes us.
        let notified = waiter.notify.notified();
        let missing: Vec<String> = {
            let from = waiter.from.lock();
            needed.iter().filter(|i| !from.contains(*i)).cloned().collect()
        };
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
        let _ = tokio::time::timeout_at(deadline.into(), notified).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn waits_for_every_needed_confirmation_or_the_deadline() {
        let waiter = Arc::new(Waiter::default());
        let needed = vec!["a".to_string(), "b".to_string()];
        let w = waiter.clone();
        actix_rt::spawn(async move {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
            for who in ["a", "x", "b"] {
                w.from.lock().insert(who.to_string());
                w.notify.notify_waiters();
            }
        });
        let missing = wait_for(&waiter, &needed, Instant::now() + Duration::from_secs(5)).await;
        assert!(missing.is_empty());

        let started = Instant::now();
        let missing = wait_for(&waiter, &["c".to_string()], Instant::now() + Duration::from_millis(30)).await;
        assert_eq!(missing, vec!["c".to_string()]);
        assert!(started.elapsed() >= Duration::from_millis(29));
    }
}

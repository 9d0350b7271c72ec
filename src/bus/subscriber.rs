//! The subscriber's link to Redis, one state machine for both transports
//! (one server: a dedicated pub/sub connection; a cluster: sharded pub/sub
//! on every node). Each loop reports what happens to its connection; `Link`
//! decides what the listener must hear, and `Listening::apply` tells it.
//!
//! What a lost subscription means: messages published meanwhile are gone.
//! Once the control channel is subscribed again, cached security answers are
//! dropped (revocations may have been missed); once the rooms are, every room
//! resyncs from the database.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::{BusListener, BusState, Subscriptions};
use crate::metrics::METRICS;

/// What the listener must be told, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Messages may be lost from now on.
    Lost,
    /// The control channel is subscribed again after a loss.
    ControlRestored,
    /// Room channels are subscribed again after a loss: every room resyncs.
    RoomsRestored,
}

/// Whether the control channel and the rooms have been subscribed since the
/// last loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    control_lost: bool,
    rooms_lost: bool,
    /// Subscribed at least once: until then nothing was lost.
    up_once: bool,
}

impl Link {
    /// A subscriber task that was restarted (after a crash) starts as lost:
    /// whatever was published while it was down is gone.
    pub fn new(restarted: bool) -> (Link, Vec<Change>) {
        let link = Link { control_lost: restarted, rooms_lost: restarted, up_once: restarted };
        (link, if restarted { vec![Change::Lost] } else { Vec::new() })
    }

    /// The connection (or one node's, on a cluster) dropped.
    pub fn lost(&mut self) -> Vec<Change> {
        if !self.up_once {
            return Vec::new();
        }
        self.rooms_lost = true;
        // Told once per loss of the control channel: revocations travel on it.
        if std::mem::replace(&mut self.control_lost, true) {
            Vec::new()
        } else {
            vec![Change::Lost]
        }
    }

    /// A subscription was confirmed: the control channel's (`control`) or a
    /// room's. A single server confirms everything at once with `control`.
    pub fn subscribed(&mut self, control: bool) -> Vec<Change> {
        let mut told = Vec::new();
        if control {
            self.up_once = true;
            if self.control_lost {
                self.control_lost = false;
                told.push(Change::ControlRestored);
            }
        }
        if self.rooms_lost && self.up_once {
            self.rooms_lost = false;
            told.push(Change::RoomsRestored);
        }
        told
    }

    /// Subscribed to everything, nothing lost since.
    pub fn is_up(&self) -> bool {
        self.up_once && !self.control_lost && !self.rooms_lost
    }

    /// Rooms resync after this reconnect anyway: a per-room resync for each
    /// room subscribed now would only repeat it.
    pub fn rooms_resync_anyway(&self) -> bool {
        self.rooms_lost
    }
}

/// What a subscriber works with, whichever kind of Redis it listens to.
#[derive(Clone)]
pub struct Listening {
    pub prefix: String,
    pub subscriptions: Arc<Subscriptions>,
    /// Woken when the rooms to subscribe change.
    pub changed: Arc<Notify>,
    pub state: Arc<AtomicU8>,
    pub listener: Arc<dyn BusListener>,
}

impl Listening {
    /// Tells the listener, the readiness state and the metrics what `Link`
    /// decided.
    pub fn apply(&self, link: &Link, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Lost => {
                    log::warn!("bus: the subscription to Redis is lost; reconnecting");
                    self.listener.subscription_lost();
                }
                Change::ControlRestored => self.listener.control_restored(),
                Change::RoomsRestored => {
                    METRICS.bridge_reconnects.inc();
                    log::info!("bus: subscriber reconnected; every room resyncs");
                    self.listener.resubscribed(None);
                }
            }
        }
        let state = if link.is_up() { BusState::Connected } else { BusState::Disconnected };
        self.state.store(state as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_subscription_tells_nothing() {
        let (mut link, told) = Link::new(false);
        assert!(told.is_empty());
        assert!(link.lost().is_empty(), "nothing to lose before the first connection");
        assert!(link.subscribed(true).is_empty());
        assert!(link.is_up());
    }

    #[test]
    fn a_drop_then_a_reconnect_tells_lost_then_control_then_rooms() {
        let (mut link, _) = Link::new(false);
        link.subscribed(true);
        assert_eq!(link.lost(), vec![Change::Lost]);
        assert!(link.lost().is_empty(), "a second drop before the reconnect is the same loss");
        assert!(link.rooms_resync_anyway());
        assert_eq!(link.subscribed(true), vec![Change::ControlRestored, Change::RoomsRestored]);
        assert!(link.is_up());
    }

    #[test]
    fn on_a_cluster_rooms_and_control_come_back_apart() {
        let (mut link, _) = Link::new(false);
        link.subscribed(true);
        link.lost();
        assert_eq!(link.subscribed(false), vec![Change::RoomsRestored]);
        assert!(!link.is_up(), "the control channel is still lost");
        assert_eq!(link.subscribed(false), vec![]);
        assert_eq!(link.subscribed(true), vec![Change::ControlRestored]);
        assert!(link.is_up());
    }

    #[test]
    fn a_restarted_task_starts_lost() {
        let (mut link, told) = Link::new(true);
        assert_eq!(told, vec![Change::Lost]);
        assert_eq!(link.subscribed(true), vec![Change::ControlRestored, Change::RoomsRestored]);
    }

    proptest! {
        /// Whatever drops and confirmations arrive, checked against what
        /// truly happened: the listener hears `Lost` exactly when the
        /// control channel goes from subscribed to lost, `ControlRestored`
        /// exactly when it comes back, and `RoomsRestored` (every room
        /// resyncs) after every drop that came after the last one, never
        /// without one; once everything is confirmed the link is up.
        #[test]
        fn every_loss_is_told_once_and_restored_once(
            restarted in any::<bool>(),
            events in proptest::collection::vec(prop_oneof![Just(None), any::<bool>().prop_map(Some)], 0..80),
        ) {
            let (mut link, told) = Link::new(restarted);
            prop_assert_eq!(told.clone(), if restarted { vec![Change::Lost] } else { vec![] });
            // The truth: whether each has been dropped since it was last restored.
            let (mut up_once, mut control_down, mut rooms_down) = (restarted, restarted, restarted);
            for event in events.iter().copied().chain([Some(true)]) {
                match event {
                    None => {
                        let told = link.lost();
                        let expect = if up_once && !control_down { vec![Change::Lost] } else { vec![] };
                        prop_assert_eq!(told, expect);
                        if up_once {
                            control_down = true;
                            rooms_down = true;
                        }
                    }
                    Some(control) => {
                        let told = link.subscribed(control);
                        let mut expect = Vec::new();
                        up_once |= control;
                        if control && control_down {
                            control_down = false;
                            expect.push(Change::ControlRestored);
                        }
                        if rooms_down && up_once {
                            rooms_down = false;
                            expect.push(Change::RoomsRestored);
                        }
                        prop_assert_eq!(told, expect);
                    }
                }
                prop_assert_eq!(link.is_up(), up_once && !control_down && !rooms_down);
            }
            prop_assert!(link.is_up());
        }
    }
}

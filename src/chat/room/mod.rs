//! The `Room` actor: one per active room on this instance.
//!
//! It owns the room's local membership and its delivery order. Committed
//! messages arrive from the writer (and, across instances, the bus) possibly
//! out of order; the `Sequencer` decides what goes out (only `delivered + 1`
//! next, early arrivals buffered), and a gap that outlives `GAP_HEAL_MS` is
//! filled from the database, where every seq exists once committed. This
//! actor only turns messages into calls and decisions into sends.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

mod handlers;
mod join;
mod lifecycle;
mod messages;
mod presence;

pub use messages::*;

use super::events::{OutFrame, RoomEvent};
use super::host::RoomHost;
use super::replay::CatchUp;
use super::roster::Roster;
use super::sequencer::Sequencer;
use super::window::RecentWindow;
use crate::domain::{RoomId, RoomName, SessionId, UserId, Username};
use crate::frames;
use crate::metrics::METRICS;
use crate::store::writer::Committed;
use crate::store::Store;

struct Member {
    user_id: UserId,
    user: Username,
    recipient: Recipient<RoomEvent>,
    /// Live batches held while this join's replay is read (chat::replay).
    catch_up: CatchUp<Arc<[OutFrame]>>,
}

/// What every room actor needs to know from the configuration.
#[derive(Clone)]
pub struct RoomSettings {
    pub replay_limit: i64,
    pub idle: std::time::Duration,
    pub gap_heal: std::time::Duration,
    /// How often a room with members checks the database for messages the
    /// bus lost (only when other instances may exist).
    pub resync: std::time::Duration,
}

pub struct Room {
    id: RoomId,
    name: RoomName,
    host: Arc<dyn RoomHost>,
    /// Which start of this room's actor this is (the host forgets only its own).
    generation: u64,
    store: Store,
    settings: RoomSettings,
    members: HashMap<SessionId, Member>,
    /// Who is online here and on other instances.
    roster: Roster,
    /// Delivery order: everything up to `delivered()` went to every live member.
    sequencer: Sequencer<Committed>,
    gap_timer: Option<SpawnHandle>,
    idle_timer: Option<SpawnHandle>,
    joins: u64,
    /// The newest messages, contiguous and ending at `delivered`.
    window: RecentWindow,
}

impl Room {
    /// Starts at seq 0: `started` reads the room's last_seq from the database.
    pub fn new(id: RoomId, name: RoomName, generation: u64, host: Arc<dyn RoomHost>) -> Self {
        Room {
            window: RecentWindow::new(host.recent().size()),
            store: host.store().clone(),
            settings: host.settings().clone(),
            id,
            name,
            host,
            generation,
            members: HashMap::new(),
            roster: Roster::default(),
            sequencer: Sequencer::new(0),
            gap_timer: None,
            idle_timer: None,
            joins: 0,
        }
    }

    fn accept(&mut self, messages: Vec<Committed>, ctx: &mut Context<Self>) {
        let ready = self.sequencer.accept(messages);
        self.release(ready, ctx);
    }

    /// Fans out what the sequencer released; arms the gap timer if something
    /// is still waiting behind a gap.
    fn release(&mut self, released: Vec<Committed>, ctx: &mut Context<Self>) {
        if !released.is_empty() {
            let mut ready = Vec::with_capacity(released.len());
            for c in released {
                ready.push(OutFrame {
                    seq: c.message.seq,
                    wire: frames::wire(&frames::event(&c.message)),
                    received_at: Some(c.received_at),
                    available_at: Some(c.available_at),
                    trace: c.trace,
                });
                self.window.remember(c.message);
            }
            self.fan_out(ready.into());
        }
        if !self.sequencer.has_gap() {
            if let Some(h) = self.gap_timer.take() {
                ctx.cancel_future(h);
            }
        } else if self.gap_timer.is_none() && !self.sequencer.is_reading() {
            self.gap_timer = Some(ctx.run_later(self.settings.gap_heal, |room, ctx| {
                room.gap_timer = None;
                room.heal(ctx);
            }));
        }
    }

    /// Reads the missing seqs before the first buffered one from the database.
    fn heal(&mut self, ctx: &mut Context<Self>) {
        let Some((after, upto)) = self.sequencer.start_heal() else {
            return self.release(Vec::new(), ctx);
        };
        self.read_missing(after, upto, (upto - after).min(1000), "gap fill", ctx);
    }

    /// Reads committed messages after `delivered` that never arrived.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.members.is_empty() {
            return;
        }
        let Some(after) = self.sequencer.start_resync() else { return };
        self.read_missing(after, i64::MAX, 1000, "resync", ctx);
    }

    /// Feeds committed messages in `(after, upto]` from the database to the
    /// sequencer; a failed read is tried again by the gap timer or the next
    /// resync.
    fn read_missing(&mut self, after: i64, upto: i64, limit: i64, what: &'static str, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let (id, name) = (self.id, self.name.clone());
        ctx.spawn(async move { store.messages_between(id, &name, after, upto, limit).await }.into_actor(self).map(
            move |result, room, ctx| {
                room.sequencer.read_done();
                match result {
                    Ok(messages) => {
                        if !messages.is_empty() {
                            METRICS.gap_heals.inc();
                        }
                        room.accept(Committed::read_back(messages), ctx);
                    }
                    Err(e) => {
                        log::warn!("room {}: {what} failed, retrying: {e}", room.name);
                        room.release(Vec::new(), ctx);
                    }
                }
            },
        ));
    }

    fn fan_out(&mut self, frames: Arc<[OutFrame]>) {
        for member in self.members.values_mut() {
            if let Some(frames) = member.catch_up.route(frames.clone()) {
                member.recipient.do_send(RoomEvent::Messages { room: self.id, frames });
            }
        }
    }

    fn remove_member(&mut self, session: SessionId, ctx: &mut Context<Self>) -> Option<Member> {
        let member = self.members.remove(&session)?;
        let change = self.roster.disconnect(member.user_id);
        if change.flipped {
            self.notify_others(session, frames::presence(&self.name, &member.user, false));
        }
        if change.local_edge {
            self.announce(member.user_id, &member.user, false, ctx);
        }
        self.publish_online_count();
        if self.members.is_empty() {
            self.arm_idle_stop(ctx);
        }
        Some(member)
    }

    fn arm_idle_stop(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle_timer.take() {
            ctx.cancel_future(h);
        }
        self.idle_timer = Some(ctx.run_later(self.settings.idle, |room, ctx| {
            room.idle_timer = None;
            if room.members.is_empty() {
                ctx.stop();
            }
        }));
    }
}

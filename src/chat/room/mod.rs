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
mod messages;

pub use messages::*;

use super::events::{OutFrame, RoomEvent};
use super::frames;
use super::host::RoomHost;
use super::roster::Roster;
use super::sequencer::{Sequenced, Sequencer};
use super::window::RecentWindow;
use crate::bus::{BusEvent, Channel};
use crate::cache::recent::Window;
use crate::cluster::presence::RemoteOnline;
use crate::domain::{RoomId, RoomName, SessionId, UserId, Username};
use crate::error::ErrorCode;
use crate::metrics::METRICS;
use crate::store::models::StoredMessage;
use crate::store::writer::Committed;
use crate::store::Store;

struct Member {
    user_id: UserId,
    user: Username,
    recipient: Recipient<RoomEvent>,
    /// While its replay is read from the database, live frames wait here.
    catching_up: Option<Vec<Arc<[OutFrame]>>>,
    /// Which join this is; a replay finishing for an earlier join is ignored.
    generation: u64,
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
                    text: frames::event(&c.message),
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
        let store = self.store.clone();
        let (id, name) = (self.id, self.name.clone());
        let limit = (upto - after).min(1000);
        ctx.spawn(async move { store.messages_between(id, &name, after, upto, limit).await }.into_actor(self).map(
            |result, room, ctx| {
                room.sequencer.read_done();
                match result {
                    Ok(messages) => {
                        METRICS.gap_heals.inc();
                        room.accept(Committed::read_back(messages), ctx);
                    }
                    Err(e) => {
                        log::warn!("room {}: gap fill failed, retrying: {e}", room.name);
                        room.release(Vec::new(), ctx);
                    }
                }
            },
        ));
    }

    /// The replay after `since` from memory, when the window covers it.
    fn replay_from_window(&self, since: i64) -> Option<Arc<[OutFrame]>> {
        let held = self.window.replay_after(since, self.sequencer.delivered())?;
        Some(held.iter().map(|m| OutFrame::replayed(m.seq, frames::event(m))).collect())
    }

    fn fan_out(&mut self, frames: Arc<[OutFrame]>) {
        for member in self.members.values_mut() {
            match &mut member.catching_up {
                Some(buffer) => buffer.push(frames.clone()),
                None => member.recipient.do_send(RoomEvent::Messages { room: self.id, frames: frames.clone() }),
            }
        }
    }

    fn notify_others(&self, except: SessionId, frame: bytestring::ByteString) {
        for (id, member) in &self.members {
            if *id != except {
                member.recipient.do_send(RoomEvent::Notice { frame: frame.clone() });
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

    fn publish_online_count(&self) {
        self.host.set_online(self.id, self.roster.names().len());
    }

    /// Tells the other instances (bus) and the snapshot (Redis) that a user's
    /// first local connection opened or last one closed.
    fn announce(&self, user_id: UserId, user: &Username, online: bool, ctx: &mut Context<Self>) {
        let bus = self.host.bus();
        if !bus.is_shared() {
            return;
        }
        bus.publish(
            Channel::Room(self.id),
            BusEvent::Presence { room_id: self.id.0, user_id: user_id.0, user: user.to_string(), online },
        );
        let store = self.host.presence().clone();
        let (room, user) = (self.id, user.clone());
        ctx.spawn(
            async move {
                if online {
                    store.refresh(room, &[(user_id, user)]).await;
                } else {
                    store.remove(room, user_id, &user).await;
                }
            }
            .into_actor(self),
        );
    }

    /// Tells every local session that `user` came online or went offline.
    fn tell_presence(&self, user: &Username, online: bool) {
        let frame = frames::presence(&self.name, user, online);
        for m in self.members.values() {
            m.recipient.do_send(RoomEvent::Notice { frame: frame.clone() });
        }
        self.publish_online_count();
    }

    /// Reads committed messages after `delivered` that never arrived.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.members.is_empty() {
            return;
        }
        let Some(after) = self.sequencer.start_resync() else { return };
        let store = self.store.clone();
        let (id, name) = (self.id, self.name.clone());
        ctx.spawn(async move { store.messages_between(id, &name, after, i64::MAX, 1000).await }.into_actor(self).map(
            |result, room, ctx| {
                room.sequencer.read_done();
                match result {
                    Ok(messages) if !messages.is_empty() => {
                        METRICS.gap_heals.inc();
                        room.accept(Committed::read_back(messages), ctx);
                    }
                    Ok(_) => room.release(Vec::new(), ctx),
                    Err(e) => log::warn!("room {}: resync failed: {e}", room.name),
                }
            },
        ));
    }

    /// Periodic work while other instances may exist: catch up on anything
    /// the bus lost, and keep this instance's presence fields fresh.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.members.is_empty() {
            return;
        }
        self.resync(ctx);
        let users = self.roster.local_users();
        let store = self.host.presence().clone();
        let room = self.id;
        ctx.spawn(async move { store.refresh(room, &users).await }.into_actor(self));
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

    fn start_replay(&mut self, session: SessionId, generation: u64, since: i64, upto: i64, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let (id, name) = (self.id, self.name.clone());
        let limit = (upto - since).max(0);
        ctx.spawn(
            async move {
                // One retry covers a connection that died while idle in the pool.
                match store.messages_between(id, &name, since, upto, limit).await {
                    Ok(m) => Ok(m),
                    Err(_) => store.messages_between(id, &name, since, upto, limit).await,
                }
            }
            .into_actor(self)
            .map(move |result, room, ctx| room.finish_replay(session, generation, result, ctx)),
        );
    }

    fn finish_replay(
        &mut self,
        session: SessionId,
        generation: u64,
        result: Result<Vec<StoredMessage>, crate::store::StoreError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(member) = self.members.get_mut(&session).filter(|m| m.generation == generation) else {
            return;
        };
        match result {
            Ok(messages) => {
                let replay: Arc<[OutFrame]> = messages.iter().map(|m| OutFrame::replayed(m.seq, frames::event(m))).collect();
                let buffered = member.catching_up.take().unwrap_or_default();
                if !replay.is_empty() {
                    member.recipient.do_send(RoomEvent::Messages { room: self.id, frames: replay });
                }
                for frames in buffered {
                    member.recipient.do_send(RoomEvent::Messages { room: self.id, frames });
                }
            }
            Err(e) => {
                log::warn!("room {}: replay failed: {e}", self.name);
                let recipient = member.recipient.clone();
                self.remove_member(session, ctx);
                recipient.do_send(RoomEvent::Removed {
                    room: self.name.clone(),
                    code: ErrorCode::Unavailable,
                    message: "could not read the missed messages; join again".into(),
                });
            }
        }
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        METRICS.rooms_active.inc();
        // Bounds only what waits for an answer (`send`: joins, history and
        // online reads), which parks behind a full mailbox; deliveries come
        // by `do_send`, which never waits, and are bounded upstream (the
        // writer's queue, the bus). Actix's default of 16 would park a join
        // behind any burst of deliveries.
        ctx.set_mailbox_capacity(4096);
        let bus = self.host.bus();
        bus.subscribe(self.id);
        // Read last_seq after registering and subscribing, so every commit is
        // either counted here or delivered to this actor; read who is online
        // elsewhere. Joins wait until both are known.
        let store = self.store.clone();
        let presence = self.host.presence().clone();
        let recent = self.host.recent().clone();
        let (id, name) = (self.id, self.name.clone());
        ctx.wait(
            async move {
                let (model, others) = futures_util::join!(store.room_by_name(&name), async {
                    tokio::time::timeout(std::time::Duration::from_millis(500), presence.others(id)).await.unwrap_or_default()
                });
                let window = match &model {
                    Ok(Some(m)) => recent.load(&store, id, &name, m.last_seq).await,
                    _ => Window::new(),
                };
                (model, others, window)
            }
            .into_actor(self)
            .map(|(model, others, window), room, ctx| {
                match model {
                    Ok(Some(model)) => {
                        let released = room.sequencer.skip_to(model.last_seq);
                        room.release(released, ctx);
                    }
                    Ok(None) => log::error!("room {} vanished from the database", room.name),
                    Err(e) => log::warn!("room {}: could not refresh last_seq: {e}", room.name),
                }
                room.window.adopt(window, room.sequencer.delivered());
                for RemoteOnline { instance, user_id, user } in others {
                    room.roster.set_remote(&instance, user_id, &user, true);
                }
            }),
        );
        if bus.is_shared() {
            ctx.run_interval(self.settings.resync, |room, ctx| room.tick(ctx));
        }
        self.arm_idle_stop(ctx);
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if !self.members.is_empty() {
            return Running::Continue;
        }
        self.host.stopped(self.id, self.generation);
        Running::Stop
    }
}

/// In Drop rather than `stopped`, so it also runs when the actor's task
/// unwinds from a panic (sessions then rejoin a fresh room actor).
impl Drop for Room {
    fn drop(&mut self) {
        METRICS.rooms_active.dec();
        self.host.bus().unsubscribe(self.id);
    }
}

impl Sequenced for Committed {
    fn seq(&self) -> i64 {
        self.message.seq
    }
}

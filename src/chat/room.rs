//! The `Room` actor: one per active room on this instance.
//!
//! It owns the room's local membership and its delivery order. Committed
//! messages arrive from the writer (and, across instances, the bus) possibly
//! out of order; the room delivers only `delivered + 1` next, holds early
//! arrivals in a reorder buffer, and fills a gap that outlives `GAP_HEAL_MS`
//! from the database, where every seq exists once committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::events::{OutFrame, RoomEvent};
use super::frames;
use super::registry::{Registry, RoomSettings};
use crate::domain::{RoomId, RoomName, SessionId, UserId, Username};
use crate::error::ErrorCode;
use crate::metrics::METRICS;
use crate::store::models::{Room as RoomModel, StoredMessage};
use crate::store::writer::Committed;
use crate::store::Store;

/// A session joins; the room answers with `RoomEvent::Joined`, then (with
/// `since`) the replay, then the live stream.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub session: SessionId,
    pub user_id: UserId,
    pub user: Username,
    pub recipient: Recipient<RoomEvent>,
    /// The last seq the client saw, when it is recovering.
    pub since: Option<i64>,
}

/// A session stops receiving the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

/// A session's user is typing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    pub session: SessionId,
}

/// Messages committed for this room, in ascending seq.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub messages: Vec<Committed>,
}

/// A user lost membership: every session of theirs leaves the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick {
    pub user_id: UserId,
}

struct Member {
    user_id: UserId,
    user: Username,
    recipient: Recipient<RoomEvent>,
    /// While its replay is read from the database, live frames wait here.
    catching_up: Option<Vec<Arc<[OutFrame]>>>,
    /// Which join this is; a replay finishing for an earlier join is ignored.
    generation: u64,
}

pub struct Room {
    id: RoomId,
    name: RoomName,
    registry: Registry,
    store: Store,
    settings: RoomSettings,
    members: HashMap<SessionId, Member>,
    /// Connections per online user, for presence.
    online: HashMap<UserId, (Username, usize)>,
    /// Highest seq fanned out; everything up to it went to every live member.
    delivered: i64,
    /// Early arrivals, waiting for the seqs before them.
    pending: BTreeMap<i64, Committed>,
    gap_timer: Option<SpawnHandle>,
    healing: bool,
    idle_timer: Option<SpawnHandle>,
    joins: u64,
}

impl Room {
    pub fn new(model: &RoomModel, registry: Registry, store: Store, settings: RoomSettings) -> Self {
        Room {
            id: model.id,
            name: model.name.clone(),
            registry,
            store,
            settings,
            members: HashMap::new(),
            online: HashMap::new(),
            delivered: model.last_seq,
            pending: BTreeMap::new(),
            gap_timer: None,
            healing: false,
            idle_timer: None,
            joins: 0,
        }
    }

    fn accept(&mut self, messages: Vec<Committed>, ctx: &mut Context<Self>) {
        for c in messages {
            if c.message.seq > self.delivered {
                self.pending.insert(c.message.seq, c);
            }
        }
        self.drain(ctx);
    }

    /// Fans out the in-order prefix of the reorder buffer; arms the gap timer
    /// if something is still waiting.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let mut ready = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            let c = entry.remove();
            self.delivered = c.message.seq;
            ready.push(OutFrame {
                seq: c.message.seq,
                text: frames::message(&c.message),
                received_at: Some(c.received_at),
            });
        }
        if !ready.is_empty() {
            self.fan_out(ready.into());
        }
        if self.pending.is_empty() {
            if let Some(h) = self.gap_timer.take() {
                ctx.cancel_future(h);
            }
        } else if self.gap_timer.is_none() && !self.healing {
            self.gap_timer = Some(ctx.run_later(self.settings.gap_heal, |room, ctx| {
                room.gap_timer = None;
                room.heal(ctx);
            }));
        }
    }

    /// Reads the missing seqs before the first buffered one from the database.
    fn heal(&mut self, ctx: &mut Context<Self>) {
        let Some(&first_waiting) = self.pending.keys().next() else {
            return;
        };
        let after = self.delivered;
        let upto = first_waiting - 1;
        if upto <= after {
            self.drain(ctx);
            return;
        }
        self.healing = true;
        let store = self.store.clone();
        let (id, name) = (self.id, self.name.clone());
        let limit = (upto - after).min(1000);
        ctx.spawn(
            async move { store.messages_between(id, &name, after, upto, limit).await }
                .into_actor(self)
                .map(|result, room, ctx| {
                    room.healing = false;
                    match result {
                        Ok(messages) => {
                            METRICS.gap_heals.inc();
                            let now = Instant::now();
                            let filled = messages
                                .into_iter()
                                .map(|m| Committed { message: Arc::new(m), received_at: now })
                                .collect();
                            room.accept(filled, ctx);
                        }
                        Err(e) => {
                            log::warn!("room {}: gap fill failed, retrying: {e}", room.name);
                            room.drain(ctx);
                        }
                    }
                }),
        );
    }

    fn fan_out(&mut self, frames: Arc<[OutFrame]>) {
        for member in self.members.values_mut() {
            match &mut member.catching_up {
                Some(buffer) => buffer.push(frames.clone()),
                None => member.recipient.do_send(RoomEvent::Messages { room: self.name.clone(), frames: frames.clone() }),
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
        let gone_offline = match self.online.get_mut(&member.user_id) {
            Some((_, n)) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.online.remove(&member.user_id);
                true
            }
            None => false,
        };
        if gone_offline {
            self.notify_others(session, frames::presence(&self.name, &member.user, false));
        }
        self.registry.set_online(self.id, self.online.len());
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
                let replay: Arc<[OutFrame]> = messages
                    .iter()
                    .map(|m| OutFrame { seq: m.seq, text: frames::message(m), received_at: None })
                    .collect();
                let buffered = member.catching_up.take().unwrap_or_default();
                if !replay.is_empty() {
                    member.recipient.do_send(RoomEvent::Messages { room: self.name.clone(), frames: replay });
                }
                for frames in buffered {
                    member.recipient.do_send(RoomEvent::Messages { room: self.name.clone(), frames });
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
        ctx.set_mailbox_capacity(4096);
        // Read last_seq after registering, so every commit is either counted
        // here or delivered to this actor. Joins wait until it is known.
        let store = self.store.clone();
        let name = self.name.clone();
        ctx.wait(
            async move { store.room_by_name(&name).await }
                .into_actor(self)
                .map(|result, room, _| match result {
                    Ok(Some(model)) => room.delivered = room.delivered.max(model.last_seq),
                    Ok(None) => log::error!("room {} vanished from the database", room.name),
                    Err(e) => log::warn!("room {}: could not refresh last_seq: {e}", room.name),
                }),
        );
        self.arm_idle_stop(ctx);
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if !self.members.is_empty() {
            return Running::Continue;
        }
        self.registry.remove(self.id, &ctx.address());
        Running::Stop
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        METRICS.rooms_active.dec();
    }
}

impl Handler<Join> for Room {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle_timer.take() {
            ctx.cancel_future(h);
        }
        // A repeated join restarts this session's stream from its `since`.
        let rejoin = self.members.remove(&msg.session).is_some();
        if rejoin {
            if let Some((_, n)) = self.online.get_mut(&msg.user_id) {
                *n -= 1;
            }
        }
        let first_connection = match self.online.get_mut(&msg.user_id) {
            Some((_, n)) if *n > 0 => {
                *n += 1;
                false
            }
            _ => {
                self.online.insert(msg.user_id, (msg.user.clone(), 1));
                true
            }
        };
        self.registry.set_online(self.id, self.online.len());

        let last_seq = self.delivered;
        let (recovered, replay_from) = match msg.since {
            None => (None, None),
            Some(since) if since >= last_seq => (Some(true), None),
            Some(since) if last_seq - since > self.settings.replay_limit => (Some(false), None),
            Some(since) => (Some(true), Some(since)),
        };
        let online = self.online.values().filter(|(_, n)| *n > 0).map(|(u, _)| u);
        let frame = frames::joined(&self.name, last_seq, online, recovered);
        let after = replay_from.unwrap_or(last_seq);
        msg.recipient.do_send(RoomEvent::Joined { room: self.name.clone(), last_seq, after, frame });

        if first_connection && !rejoin {
            self.notify_others(msg.session, frames::presence(&self.name, &msg.user, true));
        }
        self.joins += 1;
        let generation = self.joins;
        self.members.insert(
            msg.session,
            Member {
                user_id: msg.user_id,
                user: msg.user,
                recipient: msg.recipient,
                catching_up: replay_from.map(|_| Vec::new()),
                generation,
            },
        );
        if let Some(since) = replay_from {
            self.start_replay(msg.session, generation, since, last_seq, ctx);
        }
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.remove_member(msg.session, ctx);
    }
}

impl Handler<Typing> for Room {
    type Result = ();

    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) {
        let Some(member) = self.members.get(&msg.session) else {
            return;
        };
        let frame = frames::typing(&self.name, &member.user);
        let typist = member.user_id;
        for m in self.members.values() {
            if m.user_id != typist {
                m.recipient.do_send(RoomEvent::Notice { frame: frame.clone() });
            }
        }
    }
}

impl Handler<Deliver> for Room {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        self.accept(msg.messages, ctx);
    }
}

impl Handler<Kick> for Room {
    type Result = ();

    fn handle(&mut self, msg: Kick, ctx: &mut Context<Self>) {
        let sessions: Vec<SessionId> =
            self.members.iter().filter(|(_, m)| m.user_id == msg.user_id).map(|(id, _)| *id).collect();
        for session in sessions {
            if let Some(member) = self.remove_member(session, ctx) {
                member.recipient.do_send(RoomEvent::Removed {
                    room: self.name.clone(),
                    code: ErrorCode::Forbidden,
                    message: "you are no longer a member of this room".into(),
                });
            }
        }
    }
}

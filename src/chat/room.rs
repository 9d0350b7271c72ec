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
use crate::metrics::{CacheName, CacheResult, METRICS};
use crate::store::models::StoredMessage;
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
    /// When it was sent to the room: the mailbox wait is the room's lag.
    pub queued_at: std::time::Instant,
}

/// A user lost membership: every session of theirs leaves the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick {
    pub user_id: UserId,
}

/// Someone is typing in this room on another instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteTyping {
    pub user_id: UserId,
    pub user: Username,
}

/// A user's first connection opened (or last closed) on another instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemotePresence {
    pub instance: String,
    pub user_id: UserId,
    pub user: Username,
    pub online: bool,
}

/// Another instance is gone: its users are offline unless seen elsewhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InstanceGone {
    pub instance: String,
}

/// The newest page of history from the room's window, if the window reaches
/// `at_least` (the room's last_seq per the primary) and holds the page.
#[derive(Message)]
#[rtype(result = "Option<(Vec<Arc<StoredMessage>>, bool)>")]
pub struct NewestPage {
    pub limit: usize,
    pub at_least: i64,
}

/// Who is online in the room, cluster-wide (for the member list).
#[derive(Message)]
#[rtype(result = "Vec<UserId>")]
pub struct OnlineUsers;

/// Read any committed messages this room has not delivered yet (after the
/// bus reconnected, or a subscription took effect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync;

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
    pub fn new(
        id: RoomId,
        name: RoomName,
        host: Arc<dyn RoomHost>,
        generation: u64,
        store: Store,
        settings: RoomSettings,
    ) -> Self {
        let window = RecentWindow::new(host.recent().size());
        Room {
            id,
            name,
            host,
            generation,
            store,
            settings,
            members: HashMap::new(),
            roster: Roster::default(),
            sequencer: Sequencer::new(0),
            gap_timer: None,
            idle_timer: None,
            joins: 0,
            window,
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
                    text: frames::message(&c.message),
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
        Some(held.iter().map(|m| OutFrame::replayed(m.seq, frames::message(m))).collect())
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
                let replay: Arc<[OutFrame]> = messages.iter().map(|m| OutFrame::replayed(m.seq, frames::message(m))).collect();
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

impl Handler<Join> for Room {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle_timer.take() {
            ctx.cancel_future(h);
        }
        // A repeated join restarts this session's stream from its `since`;
        // the connection is counted once.
        let rejoin = self.members.remove(&msg.session).is_some();
        let change = (!rejoin).then(|| self.roster.connect(msg.user_id, &msg.user));
        self.publish_online_count();

        let last_seq = self.sequencer.delivered();
        let (recovered, replay_from) = match msg.since {
            None => (None, None),
            Some(since) if since >= last_seq => (Some(true), None),
            Some(since) if last_seq - since > self.settings.replay_limit => (Some(false), None),
            Some(since) => (Some(true), Some(since)),
        };
        let frame = frames::joined(&self.name, last_seq, self.roster.names().into_iter(), recovered);
        let after = replay_from.unwrap_or(last_seq);
        msg.recipient.do_send(RoomEvent::Joined { room: self.name.clone(), last_seq, after, frame });

        if let Some(change) = change {
            if change.flipped {
                self.notify_others(msg.session, frames::presence(&self.name, &msg.user, true));
            }
            if change.local_edge {
                self.announce(msg.user_id, &msg.user, true, ctx);
            }
        }
        self.joins += 1;
        let generation = self.joins;
        // The replay comes from memory when the window covers it (a reconnect
        // storm after a deploy then reads nothing from PostgreSQL).
        let from_window = replay_from.and_then(|since| self.replay_from_window(since));
        if replay_from.is_some() {
            let result = if from_window.is_some() { CacheResult::Hit } else { CacheResult::Miss };
            METRICS.cache_request(CacheName::History, result).inc();
        }
        if let Some(frames) = &from_window {
            if !frames.is_empty() {
                msg.recipient.do_send(RoomEvent::Messages { room: self.id, frames: frames.clone() });
            }
        }
        let needs_database = replay_from.is_some() && from_window.is_none();
        self.members.insert(
            msg.session,
            Member {
                user_id: msg.user_id,
                user: msg.user,
                recipient: msg.recipient,
                catching_up: needs_database.then(Vec::new),
                generation,
            },
        );
        if let (true, Some(since)) = (needs_database, replay_from) {
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
        let (typist, user) = (member.user_id, member.user.clone());
        self.relay_typing(typist, &user);
        let bus = self.host.bus();
        if bus.is_shared() {
            bus.publish(
                Channel::Room(self.id),
                BusEvent::Typing { room_id: self.id.0, user_id: typist.0, user: user.to_string() },
            );
        }
    }
}

impl Room {
    /// Typing goes to everyone in the room but the typist's own connections.
    fn relay_typing(&self, typist: UserId, user: &Username) {
        let frame = frames::typing(&self.name, user);
        for m in self.members.values() {
            if m.user_id != typist {
                m.recipient.do_send(RoomEvent::Notice { frame: frame.clone() });
            }
        }
    }
}

impl Handler<RemoteTyping> for Room {
    type Result = ();

    fn handle(&mut self, msg: RemoteTyping, _: &mut Context<Self>) {
        self.relay_typing(msg.user_id, &msg.user);
    }
}

impl Handler<RemotePresence> for Room {
    type Result = ();

    fn handle(&mut self, msg: RemotePresence, _: &mut Context<Self>) {
        if let Some(online) = self.roster.set_remote(&msg.instance, msg.user_id, &msg.user, msg.online) {
            self.tell_presence(&msg.user, online);
        }
    }
}

impl Handler<InstanceGone> for Room {
    type Result = ();

    fn handle(&mut self, msg: InstanceGone, _: &mut Context<Self>) {
        for user in self.roster.instance_gone(&msg.instance) {
            self.tell_presence(&user, false);
        }
    }
}

impl Handler<NewestPage> for Room {
    type Result = Option<(Vec<Arc<StoredMessage>>, bool)>;

    fn handle(&mut self, msg: NewestPage, _: &mut Context<Self>) -> Self::Result {
        self.window.newest_page(msg.limit, msg.at_least, self.sequencer.delivered())
    }
}

impl Handler<OnlineUsers> for Room {
    type Result = Vec<UserId>;

    fn handle(&mut self, _: OnlineUsers, _: &mut Context<Self>) -> Self::Result {
        self.roster.online_ids()
    }
}

impl Handler<Resync> for Room {
    type Result = ();

    fn handle(&mut self, _: Resync, ctx: &mut Context<Self>) {
        self.resync(ctx);
    }
}

impl Handler<Deliver> for Room {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        METRICS.room_mailbox_lag.observe(msg.queued_at.elapsed().as_secs_f64());
        self.accept(msg.messages, ctx);
    }
}

impl Handler<Kick> for Room {
    type Result = ();

    fn handle(&mut self, msg: Kick, ctx: &mut Context<Self>) {
        let sessions: Vec<SessionId> = self.members.iter().filter(|(_, m)| m.user_id == msg.user_id).map(|(id, _)| *id).collect();
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

impl Sequenced for Committed {
    fn seq(&self) -> i64 {
        self.message.seq
    }
}

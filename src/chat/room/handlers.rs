//! How a room actor answers each message.

use std::sync::Arc;

use actix::prelude::*;

use crate::bus::{BusEvent, Channel};
use crate::chat::events::RoomEvent;
use crate::chat::frames;
use crate::domain::{SessionId, UserId, Username};
use crate::error::ErrorCode;
use crate::metrics::{CacheName, CacheResult, METRICS};
use crate::store::models::StoredMessage;

use super::*;

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

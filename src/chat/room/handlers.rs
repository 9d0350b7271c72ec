//! How a room actor answers each message.

use std::sync::Arc;

use actix::prelude::*;

use crate::bus::{BusEvent, Channel};
use crate::chat::events::RoomEvent;
use crate::domain::{SessionId, UserId};
use crate::error::ErrorCode;
use crate::metrics::METRICS;
use crate::store::models::StoredMessage;

use super::*;

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

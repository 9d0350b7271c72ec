//! Who is online: what the room tells its sessions, the other instances and
//! the presence snapshot when the roster changes.

use actix::prelude::*;

use super::Room;
use crate::bus::{BusEvent, Channel};
use crate::chat::events::RoomEvent;
use crate::domain::{SessionId, UserId, Username};
use crate::frames;

impl Room {
    pub(super) fn notify_others(&self, except: SessionId, frame: bytestring::ByteString) {
        let frame = frames::wire(&frame);
        for (id, member) in &self.members {
            if *id != except {
                member.recipient.do_send(RoomEvent::Notice { frame: frame.clone() });
            }
        }
    }

    pub(super) fn publish_online_count(&self) {
        self.host.set_online(self.id, self.roster.names().len());
    }

    /// Tells the other instances (bus) and the snapshot (Redis) that a user's
    /// first local connection opened or last one closed.
    pub(super) fn announce(&self, user_id: UserId, user: &Username, online: bool, ctx: &mut Context<Self>) {
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
    pub(super) fn tell_presence(&self, user: &Username, online: bool) {
        let frame = frames::wire(&frames::presence(&self.name, user, online));
        for m in self.members.values() {
            m.recipient.do_send(RoomEvent::Notice { frame: frame.clone() });
        }
        self.publish_online_count();
    }

    /// Periodic work while other instances may exist: catch up on anything
    /// the bus lost, and keep this instance's presence fields fresh.
    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.members.is_empty() {
            return;
        }
        self.resync(ctx);
        let users = self.roster.local_users();
        let store = self.host.presence().clone();
        let room = self.id;
        ctx.spawn(async move { store.refresh(room, &users).await }.into_actor(self));
    }

    /// Typing goes to everyone in the room but the typist's own connections.
    pub(super) fn relay_typing(&self, typist: UserId, user: &Username) {
        let frame = frames::wire(&frames::typing(&self.name, user));
        for m in self.members.values() {
            if m.user_id != typist {
                m.recipient.do_send(RoomEvent::Notice { frame: frame.clone() });
            }
        }
    }
}

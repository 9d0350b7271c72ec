//! Joining and leaving rooms: authorising against the database, handing
//! the session to the room actor, and what happens to sends that wait for it.

use actix::prelude::*;

use super::socket::SocketContext;
use crate::access::Access;
use crate::cache::RoomMeta;
use crate::chat::room::{Join, Leave};
use crate::chat::Room;
use crate::domain::RoomName;
use crate::error::{ApiError, ErrorCode};
use crate::store::models::User;
use crate::ws::streams::JoinStep;

use super::{PendingSend, Session};

impl Session {
    pub(super) fn handle_join(&mut self, room: String, since: Option<i64>, ctx: &mut SocketContext<Self>) {
        let name = match RoomName::parse(&room) {
            Ok(n) => n,
            Err(e) => return self.send_error(ctx, ErrorCode::BadRequest, &e.0, Some(&room)),
        };
        if since.is_some_and(|s| s < 0) {
            return self.send_error(ctx, ErrorCode::BadRequest, "since must be >= 0", Some(&room));
        }
        let max = self.parts.settings.sockets.max_rooms_per_connection;
        let guard = self.registration.guard.clone();
        match self.streams.request_join(&name, since, max, |room| guard.is_kicked(room)) {
            JoinStep::Updated => {}
            JoinStep::TooMany => {
                let msg = format!("a connection may join at most {max} rooms");
                self.send_error(ctx, ErrorCode::BadRequest, &msg, Some(&room));
            }
            JoinStep::Authorize => self.authorize(name, ctx),
            // A rejoin restarts the stream from `since` in the same room actor.
            JoinStep::Rejoin { handle, .. } => self.deliver_join(name, handle, since, ctx),
        }
    }

    /// Checks access for a join in progress, then hands it to the room. A
    /// kick of this user while the check ran makes it check again, so an
    /// answer from before a removal never lets the user in after it.
    pub(super) fn authorize(&mut self, name: RoomName, ctx: &mut SocketContext<Self>) {
        let access = self.parts.access.clone();
        let user = self.user.clone();
        let lookup_name = name.clone();
        let generation = self.registration.guard.kick_generation();
        ctx.spawn(async move { authorize_join(&access, &user, &lookup_name).await }.into_actor(self).map(
            move |result, session, ctx| match result {
                Ok(_) if session.registration.guard.kick_generation() != generation => {
                    if session.streams.is_authorizing(&name) {
                        session.authorize(name, ctx);
                    }
                }
                Ok(room) => {
                    let addr = session.parts.registry.get_or_start(room.id, &room.name);
                    let Some(since) = session.streams.authorized(&name, room.id, addr.clone()) else {
                        // The client left meanwhile.
                        return;
                    };
                    session.registration.guard.clear_kick(room.id);
                    session.deliver_join(name, addr, since, ctx);
                }
                Err(e) => session.abandon_join(&name, e.code(), &e.public_message(), ctx),
            },
        ));
    }

    pub(super) fn rejoin_dead_rooms(&mut self, ctx: &mut SocketContext<Self>) {
        for (name, since) in self.streams.dead(Addr::connected) {
            log::warn!("session {:?}: room {name} stopped unexpectedly; rejoining from seq {since}", self.id());
            self.handle_join(name.to_string(), Some(since), ctx);
        }
    }

    pub(super) fn join_message(&self, since: Option<i64>, ctx: &SocketContext<Self>) -> Join {
        Join {
            session: self.id(),
            user_id: self.user.id,
            user: self.user.username.clone(),
            recipient: ctx.address().recipient(),
            since,
        }
    }

    /// Sends `Join` to the room; a room that stopped in between is restarted once.
    pub(super) fn deliver_join(&mut self, name: RoomName, addr: Addr<Room>, since: Option<i64>, ctx: &mut SocketContext<Self>) {
        let join = self.join_message(since, ctx);
        ctx.spawn(async move { addr.send(join).await }.into_actor(self).map(move |result, session, ctx| {
            if result.is_ok() {
                return;
            }
            let Some((id, since)) = session.streams.joining(&name) else { return };
            let fresh = session.parts.registry.get_or_start(id, &name);
            session.streams.retarget(&name, fresh.clone());
            let retry = session.join_message(since, ctx);
            ctx.spawn(async move { fresh.send(retry).await }.into_actor(session).map(move |result, session, ctx| {
                if result.is_err() {
                    session.abandon_join(&name, ErrorCode::Unavailable, "the room is restarting; join again", ctx);
                }
            }));
        }));
    }

    /// A join that cannot finish: the join and every send queued behind it
    /// get an error, so nothing is dropped silently.
    pub(super) fn abandon_join(&mut self, name: &RoomName, code: ErrorCode, message: &str, ctx: &mut SocketContext<Self>) {
        let deferred = self.streams.abandon(name);
        self.send_error(ctx, code, message, Some(name.as_str()));
        self.refuse_deferred(name, deferred, code, message, ctx);
    }

    pub(super) fn refuse_deferred(
        &mut self,
        name: &RoomName,
        deferred: Vec<PendingSend>,
        code: ErrorCode,
        message: &str,
        ctx: &mut SocketContext<Self>,
    ) {
        for send in deferred {
            let reference = send.client_msg_id.unwrap_or_else(|| name.to_string());
            self.send_error(ctx, code, message, Some(&reference));
        }
    }

    pub(super) fn handle_leave(&mut self, room: &str, ctx: &mut SocketContext<Self>) {
        let Ok(name) = RoomName::parse(room) else { return };
        let (joined, refused) = self.streams.leave(&name);
        if let Some(addr) = joined {
            addr.do_send(Leave { session: self.id() });
        }
        self.refuse_deferred(&name, refused, ErrorCode::Forbidden, "left the room before the join finished", ctx);
    }
}

/// Looks the room up (creating a missing public room) and checks access.
async fn authorize_join(access: &Access, user: &User, name: &RoomName) -> Result<RoomMeta, ApiError> {
    let room = access.room_or_create_public(name, (!user.guest).then_some(user.id)).await?;
    access.check_visible(&room, user).await?;
    if !room.private {
        access.ensure_member(room.id, user.id).await?;
    }
    Ok(room)
}

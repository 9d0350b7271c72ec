//! Sends: parsed, rate limited, handed to the writer, acked once committed.

use std::time::Instant;

use actix::prelude::*;

use super::socket::SocketContext;
use crate::domain::{Body, ClientMsgId, MessageId, RoomName};
use crate::error::ErrorCode;
use crate::metrics::METRICS;
use crate::store::amend::Change;
use crate::store::writer::{SendRequest, WriteError};
use crate::telemetry::delivery::DeliveryTrace;
use crate::ws::streams::SendTarget;

use super::{Session, MAX_DEFERRED};

/// A send that waits for its room's join to finish.
#[derive(Debug)]
pub(super) struct PendingSend {
    pub(super) body: String,
    pub(super) client_msg_id: Option<String>,
    pub(super) received_at: Instant,
}

impl Session {
    pub(super) fn handle_send(&mut self, room: String, send: PendingSend, ctx: &mut SocketContext<Self>) {
        let reference = send.client_msg_id.clone().unwrap_or_else(|| room.clone());
        let name = match RoomName::parse(&room) {
            Ok(n) => n,
            Err(e) => return self.send_error(ctx, ErrorCode::BadRequest, &e.0, Some(&reference)),
        };
        let (room_id, send) = match self.streams.target(&name, send, MAX_DEFERRED) {
            SendTarget::Deferred => return,
            SendTarget::TooManyDeferred(_) => {
                return self.send_error(ctx, ErrorCode::RateLimited, "too many sends while joining", Some(&reference))
            }
            SendTarget::NotJoined(_) => {
                return self.send_error(ctx, ErrorCode::Forbidden, "join the room before sending to it", Some(&reference))
            }
            SendTarget::Joined(room_id, _, send) => (room_id, send),
        };
        if self.registration.guard.is_kicked(room_id) {
            self.streams.removed(&name);
            return self.send_error(ctx, ErrorCode::Forbidden, "you are no longer a member of this room", Some(&reference));
        }
        if !self.admission.send(Instant::now(), self.parts.settings.send_rate) {
            METRICS.rate_limited.inc();
            return self.send_error(ctx, ErrorCode::RateLimited, "slow down: too many messages", Some(&reference));
        }
        let client_msg_id = match send.client_msg_id.as_deref().map(ClientMsgId::parse).transpose() {
            Ok(c) => c,
            Err(e) => return self.send_error(ctx, ErrorCode::BadRequest, &e.0, Some(&reference)),
        };
        let body = match Body::parse(&send.body) {
            Ok(b) => b,
            Err(e) => return self.send_error(ctx, ErrorCode::BadRequest, &e.0, Some(&reference)),
        };
        let trace = DeliveryTrace::local(room_id, &name, send.received_at, None);
        let request = SendRequest {
            room_id,
            room: name,
            user_id: self.user.id,
            user: self.user.username.clone(),
            body,
            client_msg_id,
            received_at: send.received_at,
            trace: trace.clone(),
        };
        // Queued here, in frame order: the futures below may be polled in any
        // order, and a sender's messages must keep the order it sent them in.
        let queued = self.parts.writer.enqueue(request);
        self.pending_acks += 1;
        let waiting = async move {
            match queued {
                Ok(done) => done.await,
                Err(e) => Err(e),
            }
        };
        ctx.spawn(waiting.into_actor(self).map(move |result, session, ctx| {
            session.pending_acks -= 1;
            if let (Some(trace), Err(e)) = (&trace, &result) {
                trace.failed(e.reason());
            }
            match result {
                Ok(outcome) => {
                    let m = &outcome.message;
                    let ack = crate::frames::ack(&m.room, m.client_msg_id.as_ref().map(|c| c.as_str()), m.seq, m.id);
                    session.write(ctx, ack);
                    if let Some(trace) = &trace {
                        trace.acked(Instant::now());
                    }
                }
                Err(WriteError::Unavailable(why)) => session.send_error(ctx, ErrorCode::Unavailable, why, Some(&reference)),
                Err(WriteError::Internal) => {
                    session.send_error(ctx, ErrorCode::Internal, "the message could not be stored", Some(&reference))
                }
            }
            session.drained(ctx);
        }));
    }
}

impl Session {
    /// `{"type":"read","room","seq"}`: moves the read marker; the user's
    /// other sockets hear of it, this one only of a refusal.
    pub(super) fn handle_read(&mut self, room: String, seq: i64, ctx: &mut SocketContext<Self>) {
        // A room this socket has joined was checked then (and a removal or
        // ban since shows in the guard): straight to the coalescer, with no
        // look-ups. A client may send one per batch it reads.
        if let Some(name) = RoomName::parse(&room).ok().filter(|_| seq >= 0) {
            if let Some((room_id, _)) = self.streams.joined(&name) {
                if !self.registration.guard.is_kicked(room_id) {
                    self.parts.read_marks.queue(self.user.id, room_id, name, seq, Some(self.id()));
                    return;
                }
            }
        }
        let (read_marks, user, id) = (self.parts.read_marks.clone(), self.user.clone(), self.id());
        let reference = room.clone();
        ctx.spawn(async move { read_marks.mark_soon(&user, &room, seq, id).await }.into_actor(self).map(
            move |result, session, ctx| {
                if let Err(e) = result {
                    session.send_error(ctx, e.code(), &e.public_message(), Some(&reference));
                }
            },
        ));
    }
}

impl Session {
    /// `edit` (with `body`) or `delete`: acked with the event's seq once it
    /// is stored, refused with an `error` frame whose `ref` is the
    /// `client_msg_id` (else the room). Rate limited like sends.
    pub(super) fn handle_amend(
        &mut self,
        room: String,
        id: String,
        body: Option<String>,
        client_msg_id: Option<String>,
        ctx: &mut SocketContext<Self>,
    ) {
        let reference = client_msg_id.clone().unwrap_or_else(|| room.clone());
        if !self.admission.send(Instant::now(), self.parts.settings.send_rate) {
            METRICS.rate_limited.inc();
            return self.send_error(ctx, ErrorCode::RateLimited, "slow down: too many messages", Some(&reference));
        }
        let parsed = (|| -> Result<_, crate::domain::ParseError> {
            let id = MessageId::parse(&id)?;
            let change = match body {
                Some(body) => Change::Edit(Body::parse(&body)?),
                None => Change::Delete,
            };
            let client_msg_id = client_msg_id.as_deref().map(ClientMsgId::parse).transpose()?;
            Ok((id, change, client_msg_id))
        })();
        let (id, change, client_msg_id) = match parsed {
            Ok(p) => p,
            Err(e) => return self.send_error(ctx, ErrorCode::BadRequest, &e.0, Some(&reference)),
        };
        let (editor, user, admin) = (self.parts.editor.clone(), self.user.clone(), self.admin);
        let cmid = client_msg_id.clone();
        self.pending_acks += 1;
        let amend = async move { editor.amend(&user, admin, &room, id, change, client_msg_id).await };
        ctx.spawn(amend.into_actor(self).map(move |result, session, ctx| {
            session.pending_acks -= 1;
            match result {
                Ok((room, ack)) => {
                    session.write(ctx, crate::frames::ack(&room.name, cmid.as_ref().map(|c| c.as_str()), ack.seq, ack.id));
                }
                Err(e) => session.send_error(ctx, e.code(), &e.public_message(), Some(&reference)),
            }
            session.drained(ctx);
        }));
    }
}

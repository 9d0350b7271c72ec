//! The `Session` actor: one per WebSocket connection.
//!
//! It parses client frames, authorises joins against the database, hands sends
//! to the writer (acking once committed) and writes room traffic to the socket.
//! It also guards each joined room's stream: a frame at or below the last seq
//! written is never written again.
//!
//! Its parts: `inbound` (frames in), `join`, `send` and `fragments` (what
//! the client asks), `writing` (frames out, the slow-reader bound),
//! `lifecycle` (start, timers, close) and `socket` (its actix context, which
//! writes a room's frames as the room encoded them); the decisions live in
//! plain-data cores beside them in `ws` (admission, streams, outbound,
//! timers).
//!
//! actix-web-actors is deprecated upstream; its use (the handshake, the frame
//! types) is confined to this module.

mod fragments;
mod inbound;
mod join;
mod lifecycle;
mod parts;
mod send;
mod socket;
mod writing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use socket::SocketContext;

use super::admission::Admission;
use super::outbound::Outbound;
use super::streams::{Arrival, Streams};
use super::timers::Timers;
use crate::auth::AuthUser;
use crate::chat::room::Leave;
use crate::chat::{OutFrame, Room, RoomEvent};
use crate::connections::{Control, Registration};
use crate::domain::{RoomId, RoomName, SessionId};
use crate::limits::ConnectionSlot;
use crate::metrics::METRICS;
use crate::store::models::User;
use fragments::Fragment;
pub use parts::{SessionParts, Settings};
use send::PendingSend;
pub use socket::start;

/// Sends queued behind a join still in progress.
const MAX_DEFERRED: usize = 256;
/// Messages per catch-up read (several reads while the client keeps up).
const CATCH_UP_CHUNK: i64 = 200;

pub struct Session {
    /// Who is signed in; the token is the registration's, and the session's
    /// id its guard's (not copied here: an idle socket's memory is mostly
    /// this struct and actix's buffers, see `fits_the_allocation_budget`).
    user: User,
    admin: bool,
    parts: Arc<SessionParts>,
    /// Per room: authorising, joining or joined (with the last seq written).
    streams: Streams<Addr<Room>, PendingSend>,
    /// The send rate, the typing throttle and strikes (ws::admission).
    admission: Admission,
    last_heard: Instant,
    /// Boxed: rare, and an idle socket should not carry its size.
    fragment: Option<Box<Fragment>>,
    pending_acks: u32,
    /// Held for the socket's life: the connection limits count it.
    _slot: ConnectionSlot,
    /// This socket's entry in the connection index (dropped with it); its
    /// guard carries revocations that must hold before the mailbox is read.
    registration: Registration,
    /// Unread bytes, and whether live writing is paused for a slow reader
    /// (it is caught up once the backlog drains; ws::streams).
    outbound: Outbound,
    lifecycle: Lifecycle,
    timers: Timers,
}

/// Where a socket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Open,
    /// Told to reconnect elsewhere (the instance is restarting): it closes
    /// once its sends are acked, or after the drain grace.
    Draining,
    /// Closed (revoked, too slow, drained): nothing more is written.
    Closed,
}

impl Session {
    pub fn new(auth: AuthUser, parts: Arc<SessionParts>, slot: ConnectionSlot, registration: Registration) -> Self {
        let c = &parts.settings.sockets;
        let left = (auth.expires_at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let timers = Timers::new(Instant::now(), left, &parts.settings.intervals);
        Session {
            registration,
            admission: Admission::new(parts.settings.send_rate),
            user: auth.user,
            admin: auth.admin,
            streams: Streams::default(),
            last_heard: Instant::now(),
            fragment: None,
            pending_acks: 0,
            _slot: slot,
            outbound: Outbound::new(c.max_outbound_bytes as u64),
            lifecycle: Lifecycle::Open,
            timers,
            parts,
        }
    }

    fn id(&self) -> SessionId {
        self.registration.guard.id
    }

    fn on_joined(&mut self, room: RoomName, after: i64, frame: ByteString, ctx: &mut SocketContext<Self>) {
        match self.streams.arrived(&room, after) {
            Arrival::Live(deferred) => {
                self.write(ctx, frame);
                for send in deferred {
                    self.handle_send(room.to_string(), send, ctx);
                }
            }
            Arrival::Cancelled(addr) => addr.do_send(Leave { session: self.id() }),
            Arrival::Unexpected => {}
        }
    }

    fn on_messages(&mut self, room: RoomId, frames: &[OutFrame], ctx: &mut SocketContext<Self>) {
        if self.registration.guard.is_kicked(room) {
            return;
        }
        let (out, jump) = self.streams.deliver(room, frames, !self.outbound.paused());
        if let Some((from, to)) = jump {
            log::error!("session {:?}: room {room} jumped from seq {from} to {to}", self.id());
        }
        for frame in out {
            self.write_wire(ctx, frame.wire.clone());
            crate::metrics::record_delivery(frame.received_at, frame.available_at);
            if let Some(trace) = &frame.trace {
                trace.written(Instant::now());
            }
        }
    }
}

/// Cleanup lives in Drop, not `stopped`, so it also runs when the session's
/// task unwinds from a panic: the rooms forget the session, the revocation
/// index drops it, the gauges stay true.
impl Drop for Session {
    fn drop(&mut self) {
        METRICS.ws_connections.dec();
        for addr in self.streams.handles() {
            addr.do_send(Leave { session: self.id() });
        }
    }
}

impl Handler<RoomEvent> for Session {
    type Result = ();

    fn handle(&mut self, event: RoomEvent, ctx: &mut Self::Context) {
        match event {
            RoomEvent::Joined { room, after, frame, .. } => self.on_joined(room, after, frame, ctx),
            RoomEvent::Messages { room, frames } => self.on_messages(room, &frames, ctx),
            RoomEvent::Notice { frame } => self.write_wire(ctx, frame),
            RoomEvent::Removed { room, code, message } => {
                self.streams.removed(&room);
                ctx.text(crate::frames::error(code, &message, Some(room.as_str())));
            }
        }
    }
}

impl Handler<Control> for Session {
    type Result = ();

    fn handle(&mut self, control: Control, ctx: &mut Self::Context) {
        match control {
            Control::Revoked => self.close_revoked("this session was signed out", ctx),
            Control::Frame(frame) => self.write(ctx, frame),
            Control::Drain { after_ms } => {
                if self.lifecycle != Lifecycle::Open {
                    return;
                }
                self.lifecycle = Lifecycle::Draining;
                ctx.text(crate::frames::reconnect("server is restarting", after_ms));
                if self.pending_acks == 0 {
                    self.close_for_drain(ctx);
                } else {
                    ctx.run_later(self.parts.settings.drain_grace, |session, ctx| session.close_for_drain(ctx));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SocketContext;
    use actix::prelude::*;
    use actix_web::{web, FromRequest};
    use actix_web_actors::ws;

    /// An actor of known size, to measure what actix adds around one.
    struct Probe {
        _size: [u64; 16],
    }

    impl Actor for Probe {
        type Context = SocketContext<Self>;
    }

    impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Probe {
        fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
    }

    /// Each socket's session lives in one allocation with its WebSocket
    /// context and stream (the response boxes them as its body, see
    /// `socket::start`). At 1,008 bytes it took jemalloc's 1,024-byte class;
    /// at most 896 it takes the class below, 128 bytes less per idle
    /// socket (docs/performance.md, "The session's size"). A field added to
    /// `Session` that crosses the line shows here, not in a W3 run.
    #[actix_rt::test]
    async fn fits_the_allocation_budget() {
        let (req, mut payload) = actix_web::test::TestRequest::default().to_http_parts();
        let stream = web::Payload::from_request(&req, &mut payload).await.expect("a payload");
        let body = super::socket::body(Probe { _size: [0; 16] }, stream, 65_536);
        let around = std::mem::size_of_val(&body) - std::mem::size_of::<Probe>();
        let allocation = std::mem::size_of::<super::Session>() + around;
        assert!(allocation <= 896, "session {} + context {around} = {allocation} bytes", std::mem::size_of::<super::Session>());
    }
}

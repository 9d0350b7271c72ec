//! Everything written to the client goes through `write`, which keeps the
//! slow-reader bound (ws::outbound): live writing pauses past it, and what
//! the rooms sent meanwhile is read back from the database once the client
//! has read (ws::streams decides what goes out).

use std::time::Instant;

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_web_actors::ws::{CloseCode, CloseReason};
use bytestring::ByteString;

use super::socket::SocketContext;
use super::{Lifecycle, Session, CATCH_UP_CHUNK};
use crate::chat::OutFrame;
use crate::metrics::METRICS;
use crate::ws::outbound::Reading;

impl Session {
    /// Every frame to the client goes through here (or `write_wire`), for
    /// the slow-consumer bound.
    pub(super) fn write(&mut self, ctx: &mut SocketContext<Self>, text: ByteString) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        let len = text.len();
        ctx.text(text);
        self.wrote(len, ctx);
    }

    /// A room's frame, already on the wire (`frames::wire`): the same bytes
    /// every recipient writes.
    pub(super) fn write_wire(&mut self, ctx: &mut SocketContext<Self>, frame: Bytes) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        let len = frame.len();
        ctx.encoded(frame);
        self.wrote(len, ctx);
    }

    fn wrote(&mut self, len: usize, ctx: &mut SocketContext<Self>) {
        if self.outbound.wrote(len) {
            self.send_ping(ctx);
        }
        if self.outbound.pause_if_over() {
            // Guarantee 6: no more live messages queued past the bound; what
            // the rooms send meanwhile is read back once the client has read.
            METRICS.catchups.inc();
        }
        self.check_backlog(ctx);
    }

    /// A pong: the client read more. Once the backlog is down to half the
    /// bound, writing resumes with what it missed.
    pub(super) fn on_pong(&mut self, payload: &[u8], ctx: &mut SocketContext<Self>) {
        self.outbound.pong(payload, Instant::now());
        if self.outbound.resume_if_drained() {
            self.catch_up(ctx);
        }
    }

    /// Reads what paused rooms missed, from the database, a chunk at a time,
    /// and writes it in order; a room goes live again when nothing is left.
    pub(super) fn catch_up(&mut self, ctx: &mut SocketContext<Self>) {
        if self.outbound.paused() || self.lifecycle == Lifecycle::Closed {
            return;
        }
        for (room_id, name, after) in self.streams.start_catch_up() {
            let store = self.parts.store.clone();
            ctx.spawn(
                async move { store.messages_between(room_id, &name, after, i64::MAX, CATCH_UP_CHUNK).await }
                    .into_actor(self)
                    .map(move |result, session, ctx| match result {
                        Ok(messages) => {
                            let frames: Vec<OutFrame> =
                                messages.iter().map(|m| OutFrame::replayed(m.seq, &crate::frames::event(m))).collect();
                            let budget = session.outbound.room_left();
                            for frame in session.streams.caught_up(room_id, &frames, budget) {
                                session.write_wire(ctx, frame.wire.clone());
                            }
                            session.catch_up(ctx);
                        }
                        Err(e) => {
                            log::warn!("session {:?}: catch-up read failed, retrying: {e}", session.id());
                            session.streams.catch_up_failed(room_id);
                        }
                    }),
            );
        }
    }

    /// Closes a client that stopped reading (see ws::outbound).
    pub(super) fn check_backlog(&mut self, ctx: &mut SocketContext<Self>) {
        if self.lifecycle == Lifecycle::Closed || self.outbound.reading(Instant::now()) != Reading::Stopped {
            return;
        }
        self.lifecycle = Lifecycle::Closed;
        METRICS.slow_consumers.inc();
        log::info!("session {:?}: client stopped reading ({} bytes unread); closing", self.id(), self.outbound.backlog());
        ctx.close(Some(CloseReason {
            code: CloseCode::Policy,
            description: Some("too slow: reconnect and rejoin with since".into()),
        }));
        ctx.stop();
    }

    pub(super) fn send_ping(&mut self, ctx: &mut SocketContext<Self>) {
        let payload = self.outbound.ping(Instant::now());
        ctx.ping(&payload);
    }
}

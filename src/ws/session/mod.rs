//! The `Session` actor: one per WebSocket connection.
//!
//! It parses client frames, authorises joins against the database, hands sends
//! to the writer (acking once committed) and writes room traffic to the socket.
//! It also guards each joined room's stream: a frame at or below the last seq
//! written is never written again.
//!
//! actix-web-actors is deprecated upstream; its use is confined to this module
//! (with `join`, `send` and `fragments`, its parts) and `upgrade`.

mod fragments;
mod join;
mod send;

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use bytestring::ByteString;

use super::admission::{Admission, AfterError};
use super::connections::{Control, Registration};
use super::outbound::{Outbound, Reading};
use super::protocol::{self, ClientFrame};
use super::streams::{Arrival, Streams};
use super::test_hooks;
use crate::auth::AuthUser;
use crate::chat::room::{Leave, Typing};
use crate::chat::{OutFrame, Room, RoomEvent};
use crate::domain::{RoomId, RoomName, SessionId};
use crate::error::ErrorCode;
use crate::limits::ConnectionSlot;
use crate::metrics::METRICS;
use crate::state::AppState;
use fragments::Fragment;
use send::PendingSend;

/// Sends queued behind a join still in progress.
const MAX_DEFERRED: usize = 256;
/// Messages per catch-up read (several reads while the client keeps up).
const CATCH_UP_CHUNK: i64 = 200;

pub struct Session {
    id: SessionId,
    auth: AuthUser,
    state: web::Data<AppState>,
    /// Per room: authorising, joining or joined (with the last seq written).
    streams: Streams<Addr<Room>, PendingSend>,
    /// The send rate, the typing throttle and strikes (ws::admission).
    admission: Admission,
    last_heard: Instant,
    fragment: Option<Fragment>,
    pending_acks: usize,
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
    pub fn new(auth: AuthUser, state: web::Data<AppState>, slot: ConnectionSlot, registration: Registration) -> Self {
        let c = &state.config.sockets;
        Session {
            id: registration.guard.id,
            registration,
            admission: Admission::new(c.rate_limit_per_sec, c.rate_limit_burst),
            auth,
            streams: Streams::default(),
            last_heard: Instant::now(),
            fragment: None,
            pending_acks: 0,
            _slot: slot,
            outbound: Outbound::new(c.max_outbound_bytes as u64),
            lifecycle: Lifecycle::Open,
            timers: Timers { expires: Instant::now(), next_ping: Instant::now(), next_touch: Instant::now() },
            state,
        }
    }

    /// Every frame to the client goes through here, for the slow-consumer bound.
    fn write(&mut self, ctx: &mut ws::WebsocketContext<Self>, text: ByteString) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        let ping_due = self.outbound.wrote(text.len());
        ctx.text(text);
        if ping_due {
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
    fn on_pong(&mut self, payload: &[u8], ctx: &mut ws::WebsocketContext<Self>) {
        self.outbound.pong(payload, Instant::now());
        if self.outbound.resume_if_drained() {
            self.catch_up(ctx);
        }
    }

    /// Reads what paused rooms missed, from the database, a chunk at a time,
    /// and writes it in order; a room goes live again when nothing is left.
    fn catch_up(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.outbound.paused() || self.lifecycle == Lifecycle::Closed {
            return;
        }
        for (room_id, name, after) in self.streams.start_catch_up() {
            let store = self.state.store.clone();
            ctx.spawn(
                async move { store.messages_between(room_id, &name, after, i64::MAX, CATCH_UP_CHUNK).await }
                    .into_actor(self)
                    .map(move |result, session, ctx| match result {
                        Ok(messages) => {
                            let frames: Vec<OutFrame> =
                                messages.iter().map(|m| OutFrame::replayed(m.seq, crate::chat::frames::event(m))).collect();
                            let budget = session.outbound.room_left();
                            let out: Vec<ByteString> =
                                session.streams.caught_up(room_id, &frames, budget).into_iter().map(|f| f.text.clone()).collect();
                            for text in out {
                                session.write(ctx, text);
                            }
                            session.catch_up(ctx);
                        }
                        Err(e) => {
                            log::warn!("session {:?}: catch-up read failed, retrying: {e}", session.id);
                            session.streams.catch_up_failed(room_id);
                        }
                    }),
            );
        }
    }

    /// Closes a client that stopped reading (see ws::outbound).
    fn check_backlog(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.lifecycle == Lifecycle::Closed || self.outbound.reading(Instant::now()) != Reading::Stopped {
            return;
        }
        self.lifecycle = Lifecycle::Closed;
        METRICS.slow_consumers.inc();
        log::info!("session {:?}: client stopped reading ({} bytes unread); closing", self.id, self.outbound.backlog());
        ctx.close(Some(CloseReason {
            code: CloseCode::Policy,
            description: Some("too slow: reconnect and rejoin with since".into()),
        }));
        ctx.stop();
    }

    fn send_ping(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let payload = self.outbound.ping(Instant::now());
        ctx.ping(&payload);
    }

    fn send_error(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: ErrorCode, message: &str, reference: Option<&str>) {
        METRICS.ws_errors.with_label_values(&[code.as_str()]).inc();
        self.write(ctx, protocol::error(code, message, reference));
        if self.admission.errored(code, Instant::now()) == AfterError::Close {
            ctx.close(Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("too many invalid or refused frames".into()),
            }));
            ctx.stop();
        }
    }

    fn handle_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if self.registration.guard.is_revoked() {
            // Signed out on some instance; the Control message may still be queued.
            return self.close_revoked("this session was signed out", ctx);
        }
        if text.len() > self.state.config.sockets.max_frame_bytes {
            let msg = format!("frames are limited to {} bytes", self.state.config.sockets.max_frame_bytes);
            return self.send_error(ctx, ErrorCode::TooLarge, &msg, None);
        }
        let received_at = Instant::now();
        if let Some(hook) = self.state.config.test_hooks.then(|| test_hooks::parse(text)).flatten() {
            return test_hooks::run(hook, |name| self.streams.joined(name).map(|(_, addr)| addr.clone()));
        }
        match ClientFrame::parse(text) {
            Ok(ClientFrame::Join { room, since }) => self.handle_join(room, since, ctx),
            Ok(ClientFrame::Leave { room }) => self.handle_leave(&room, ctx),
            Ok(ClientFrame::Send { room, body, client_msg_id }) => {
                self.handle_send(room, PendingSend { body, client_msg_id, received_at }, ctx)
            }
            Ok(ClientFrame::Typing { room }) => {
                if let Some((_, addr)) = RoomName::parse(&room).ok().and_then(|n| self.streams.joined(&n)) {
                    if self.admission.typing(received_at) {
                        addr.do_send(Typing { session: self.id });
                    }
                }
            }
            Ok(ClientFrame::Read { room, seq }) => self.handle_read(room, seq, ctx),
            Ok(ClientFrame::Edit { room, id, body, client_msg_id }) => {
                self.handle_amend(room, id, Some(body), client_msg_id, ctx)
            }
            Ok(ClientFrame::Delete { room, id, client_msg_id }) => self.handle_amend(room, id, None, client_msg_id, ctx),
            Ok(ClientFrame::Ping { ts }) => {
                let ts = ts.unwrap_or_else(|| serde_json::Value::from(chrono::Utc::now().timestamp_millis()));
                self.write(ctx, protocol::pong(&ts));
            }
            Err(e) => self.send_error(ctx, ErrorCode::BadRequest, &e.message, e.reference.as_deref()),
        }
    }

    fn on_joined(&mut self, room: RoomName, after: i64, frame: ByteString, ctx: &mut ws::WebsocketContext<Self>) {
        match self.streams.arrived(&room, after) {
            Arrival::Live(deferred) => {
                self.write(ctx, frame);
                for send in deferred {
                    self.handle_send(room.to_string(), send, ctx);
                }
            }
            Arrival::Cancelled(addr) => addr.do_send(Leave { session: self.id }),
            Arrival::Unexpected => {}
        }
    }

    fn on_messages(&mut self, room: RoomId, frames: &[OutFrame], ctx: &mut ws::WebsocketContext<Self>) {
        if self.registration.guard.is_kicked(room) {
            return;
        }
        let (out, jump) = self.streams.deliver(room, frames, !self.outbound.paused());
        if let Some((from, to)) = jump {
            log::error!("session {:?}: room {room} jumped from seq {from} to {to}", self.id);
        }
        for frame in out {
            self.write(ctx, frame.text.clone());
            crate::metrics::record_delivery(frame.received_at, frame.available_at);
            if let Some(trace) = &frame.trace {
                trace.written(Instant::now());
            }
        }
    }

    fn close_revoked(&mut self, why: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        self.lifecycle = Lifecycle::Closed;
        ctx.text(protocol::error(ErrorCode::Unauthorized, why, None));
        ctx.close(Some(CloseReason { code: CloseCode::Policy, description: Some("token revoked".into()) }));
        ctx.stop();
    }

    /// The drain's close, once nothing is waiting for an ack.
    fn drained(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.lifecycle == Lifecycle::Draining && self.pending_acks == 0 {
            self.close_for_drain(ctx);
        }
    }

    fn close_for_drain(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        self.lifecycle = Lifecycle::Closed;
        ctx.close(Some(CloseReason { code: CloseCode::Restart, description: Some("server restarting".into()) }));
        ctx.stop();
    }
}

/// When the periodic duties of a session are next due.
struct Timers {
    /// The token's maximum age ends the socket too.
    expires: Instant,
    next_ping: Instant,
    /// An open socket is use: it keeps its token from idling out.
    next_touch: Instant,
}

impl Session {
    fn tick(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let now = Instant::now();
        if now >= self.timers.expires {
            return self.close_revoked("the session has expired; sign in again", ctx);
        }
        // Supervision: a room actor that died (a panic) is replaced, and this
        // session rejoins it from the last seq it wrote, losing nothing.
        self.rejoin_dead_rooms(ctx);
        self.check_backlog(ctx);
        // A catch-up read that failed is tried again.
        if !self.outbound.paused() && self.streams.any_behind() {
            self.catch_up(ctx);
        }
        let c = &self.state.config.sockets;
        if now >= self.timers.next_ping {
            self.timers.next_ping = now + c.heartbeat_interval;
            if self.last_heard.elapsed() > c.client_timeout {
                log::debug!("session {:?}: heartbeat timed out", self.id);
                ctx.close(Some(CloseReason { code: CloseCode::Away, description: Some("heartbeat timeout".into()) }));
                return ctx.stop();
            }
            self.send_ping(ctx);
        }
        if now >= self.timers.next_touch {
            self.timers.next_touch = now + self.state.session_clock.policy().touch_every();
            let (state, token) = (self.state.clone(), self.auth.token);
            actix::spawn(async move { state.session_clock.touch(&state.store, &token, chrono::Utc::now()).await });
        }
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        METRICS.ws_connections.inc();
        let c = &self.state.config.sockets;
        ctx.text(protocol::hello(
            &self.auth.user,
            &self.state.config.cluster.instance_id,
            c.heartbeat_interval.as_millis() as u64,
        ));
        self.state.connections.attach(&self.registration, self.auth.user.id, ctx.address().recipient());
        if self.registration.guard.is_revoked() {
            return self.close_revoked("this session was signed out", ctx);
        }
        // One timer for everything periodic: actix polls every timer of an
        // actor each time it wakes (on every delivery), so one beats four.
        let now = Instant::now();
        let left = (self.auth.expires_at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
        self.timers = Timers {
            expires: now.checked_add(left).unwrap_or(now + Duration::from_secs(365 * 86_400)),
            next_ping: now + c.heartbeat_interval,
            next_touch: now + self.state.session_clock.policy().touch_every(),
        };
        ctx.run_interval(c.heartbeat_interval.min(Duration::from_secs(1)), |session, ctx| session.tick(ctx));
    }
}

/// Cleanup lives in Drop, not `stopped`, so it also runs when the session's
/// task unwinds from a panic: the rooms forget the session, the revocation
/// index drops it, the gauges stay true.
impl Drop for Session {
    fn drop(&mut self) {
        METRICS.ws_connections.dec();
        for addr in self.streams.handles() {
            addr.do_send(Leave { session: self.id });
        }
    }
}

impl Handler<RoomEvent> for Session {
    type Result = ();

    fn handle(&mut self, event: RoomEvent, ctx: &mut Self::Context) {
        match event {
            RoomEvent::Joined { room, after, frame, .. } => self.on_joined(room, after, frame, ctx),
            RoomEvent::Messages { room, frames } => self.on_messages(room, &frames, ctx),
            RoomEvent::Notice { frame } => self.write(ctx, frame),
            RoomEvent::Removed { room, code, message } => {
                self.streams.removed(&room);
                ctx.text(protocol::error(code, &message, Some(room.as_str())));
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
                ctx.text(protocol::reconnect("server is restarting", after_ms));
                if self.pending_acks == 0 {
                    self.close_for_drain(ctx);
                } else {
                    ctx.run_later(self.state.config.drain.grace, |session, ctx| session.close_for_drain(ctx));
                }
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let msg = match item {
            Ok(msg) => msg,
            Err(ws::ProtocolError::Overflow) => {
                let msg = format!("frames are limited to {} bytes", self.state.config.sockets.max_frame_bytes);
                return self.send_error(ctx, ErrorCode::TooLarge, &msg, None);
            }
            // The codec's one I/O error of its own is a text frame that is
            // not UTF-8 (a transport failure ends the stream right after, so
            // nobody is left to read this answer).
            Err(ws::ProtocolError::Io(_)) => {
                return self.send_error(ctx, ErrorCode::BadRequest, "text frames must be valid UTF-8", None);
            }
            Err(e) => {
                log::debug!("session {:?}: protocol error: {e}", self.id);
                ctx.close(Some(CloseReason { code: CloseCode::Protocol, description: Some(e.to_string()) }));
                return ctx.stop();
            }
        };
        match msg {
            ws::Message::Text(text) => self.handle_text(&text, ctx),
            ws::Message::Binary(_) => {
                self.send_error(ctx, ErrorCode::BadRequest, "binary frames are not supported; send JSON text", None)
            }
            ws::Message::Continuation(item) => self.handle_fragment(item, ctx),
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(payload) => self.on_pong(&payload, ctx),
            ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}

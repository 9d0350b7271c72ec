//! What the client sends: WebSocket messages in, frames parsed, each handed
//! to its handler; refused frames answered with an error and counted as
//! strikes (ws::admission).

use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};

use super::send::PendingSend;
use super::socket::SocketContext;
use super::Session;
use crate::chat::room::Typing;
use crate::domain::RoomName;
use crate::error::ErrorCode;
use crate::metrics::METRICS;
use crate::ws::admission::AfterError;
use crate::ws::protocol::ClientFrame;
use crate::ws::test_hooks;

impl Session {
    pub(super) fn send_error(&mut self, ctx: &mut SocketContext<Self>, code: ErrorCode, message: &str, reference: Option<&str>) {
        METRICS.ws_errors.with_label_values(&[code.as_str()]).inc();
        self.write(ctx, crate::frames::error(code, message, reference));
        if self.admission.errored(code, Instant::now()) == AfterError::Close {
            ctx.close(Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("too many invalid or refused frames".into()),
            }));
            ctx.stop();
        }
    }

    pub(super) fn handle_text(&mut self, text: &str, ctx: &mut SocketContext<Self>) {
        if self.registration.guard.is_revoked() {
            // Signed out on some instance; the Control message may still be queued.
            return self.close_revoked("this session was signed out", ctx);
        }
        if text.len() > self.parts.settings.sockets.max_frame_bytes {
            let msg = format!("frames are limited to {} bytes", self.parts.settings.sockets.max_frame_bytes);
            return self.send_error(ctx, ErrorCode::TooLarge, &msg, None);
        }
        let received_at = Instant::now();
        if let Some(hook) = self.parts.settings.test_hooks.then(|| test_hooks::parse(text)).flatten() {
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
                        addr.do_send(Typing { session: self.id() });
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
                self.write(ctx, crate::frames::pong(&ts));
            }
            Err(e) => self.send_error(ctx, ErrorCode::BadRequest, &e.message, e.reference.as_deref()),
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let msg = match item {
            Ok(msg) => msg,
            Err(ws::ProtocolError::Overflow) => {
                let msg = format!("frames are limited to {} bytes", self.parts.settings.sockets.max_frame_bytes);
                return self.send_error(ctx, ErrorCode::TooLarge, &msg, None);
            }
            // The codec's one I/O error of its own is a text frame that is
            // not UTF-8 (a transport failure ends the stream right after, so
            // nobody is left to read this answer).
            Err(ws::ProtocolError::Io(_)) => {
                return self.send_error(ctx, ErrorCode::BadRequest, "text frames must be valid UTF-8", None);
            }
            Err(e) => {
                log::debug!("session {:?}: protocol error: {e}", self.id());
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

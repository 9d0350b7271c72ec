//! A session's start, its periodic duties (ws::timers decides when) and its
//! ends: signed out, expired, drained for a restart.

use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws::{CloseCode, CloseReason};

use super::socket::SocketContext;
use super::{Lifecycle, Session};
use crate::error::ErrorCode;
use crate::metrics::METRICS;
use crate::ws::timers::Duty;

impl Actor for Session {
    type Context = SocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        METRICS.ws_connections.inc();
        let c = &self.parts.settings.sockets;
        ctx.text(crate::frames::hello(&self.user, &self.parts.settings.instance_id, c.heartbeat_interval.as_millis() as u64));
        self.parts.connections.attach(&self.registration, self.user.id, ctx.address().downgrade().recipient());
        if self.registration.guard.is_revoked() {
            return self.close_revoked("this session was signed out", ctx);
        }
        ctx.run_interval(self.parts.settings.intervals.tick_every(), |session, ctx| session.tick(ctx));
    }
}

impl Session {
    pub(super) fn tick(&mut self, ctx: &mut SocketContext<Self>) {
        let (ping, touch) = match self.timers.due(Instant::now(), self.last_heard, &self.parts.settings.intervals) {
            Duty::Expire => return self.close_revoked("the session has expired; sign in again", ctx),
            Duty::TimeOut => {
                log::debug!("session {:?}: heartbeat timed out", self.id());
                ctx.close(Some(CloseReason { code: CloseCode::Away, description: Some("heartbeat timeout".into()) }));
                return ctx.stop();
            }
            Duty::Run { ping, touch } => (ping, touch),
        };
        // Supervision: a room actor that died (a panic) is replaced, and this
        // session rejoins it from the last seq it wrote, losing nothing.
        self.rejoin_dead_rooms(ctx);
        self.check_backlog(ctx);
        // A catch-up read that failed is tried again.
        if !self.outbound.paused() && self.streams.any_behind() {
            self.catch_up(ctx);
        }
        if ping {
            self.send_ping(ctx);
        }
        if touch {
            // An open socket is use: it keeps its token from idling out.
            let (authenticator, token) = (self.parts.authenticator.clone(), *self.registration.token());
            actix::spawn(async move { authenticator.touch(&token).await });
        }
    }

    pub(super) fn close_revoked(&mut self, why: &str, ctx: &mut SocketContext<Self>) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        self.lifecycle = Lifecycle::Closed;
        ctx.text(crate::frames::error(ErrorCode::Unauthorized, why, None));
        ctx.close(Some(CloseReason { code: CloseCode::Policy, description: Some("token revoked".into()) }));
        ctx.stop();
    }

    /// The drain's close, once nothing is waiting for an ack.
    pub(super) fn drained(&mut self, ctx: &mut SocketContext<Self>) {
        if self.lifecycle == Lifecycle::Draining && self.pending_acks == 0 {
            self.close_for_drain(ctx);
        }
    }

    pub(super) fn close_for_drain(&mut self, ctx: &mut SocketContext<Self>) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        self.lifecycle = Lifecycle::Closed;
        ctx.close(Some(CloseReason { code: CloseCode::Restart, description: Some("server restarting".into()) }));
        ctx.stop();
    }
}

//! A session joins: where its stream starts (chat::replay decides), and its
//! replay from the window or, when the window does not cover it, the database.

use std::sync::Arc;

use actix::prelude::*;

use super::{Join, Member, Room};
use crate::chat::events::{OutFrame, RoomEvent};
use crate::chat::replay::{JoinPlan, Source};
use crate::domain::SessionId;
use crate::error::ErrorCode;
use crate::frames;
use crate::metrics::{CacheName, CacheResult, METRICS};
use crate::store::models::StoredMessage;

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
        let plan = JoinPlan::new(msg.since, last_seq, self.settings.replay_limit);
        let frame = frames::joined(&self.name, last_seq, self.roster.names().into_iter(), plan.recovered);
        let after = plan.after(last_seq);
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
        let source = plan.source(|since| self.replay_from_window(since));
        if let Some(hit) = source.cache_hit() {
            METRICS.cache_request(CacheName::History, if hit { CacheResult::Hit } else { CacheResult::Miss }).inc();
        }
        let catch_up = source.catch_up(generation);
        match source {
            Source::Window(frames) if !frames.is_empty() => {
                msg.recipient.do_send(RoomEvent::Messages { room: self.id, frames });
            }
            Source::Database { since } => self.start_replay(msg.session, generation, since, last_seq, ctx),
            Source::Nothing | Source::Window(_) => {}
        }
        let member = Member { user_id: msg.user_id, user: msg.user, recipient: msg.recipient, catch_up };
        self.members.insert(msg.session, member);
    }
}

impl Room {
    /// The replay after `since` from memory, when the window covers it.
    fn replay_from_window(&self, since: i64) -> Option<Arc<[OutFrame]>> {
        let held = self.window.replay_after(since, self.sequencer.delivered())?;
        Some(held.iter().map(|m| OutFrame::replayed(m.seq, &frames::event(m))).collect())
    }

    fn start_replay(&mut self, session: SessionId, generation: u64, since: i64, upto: i64, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let (id, name) = (self.id, self.name.clone());
        let limit = (upto - since).max(0);
        ctx.spawn(
            async move {
                // One retry covers a connection that died while idle in the pool.
                match store.messages_between(id, &name, since, upto, limit).await {
                    Ok(m) => Ok(m),
                    Err(_) => store.messages_between(id, &name, since, upto, limit).await,
                }
            }
            .into_actor(self)
            .map(move |result, room, ctx| room.finish_replay(session, generation, result, ctx)),
        );
    }

    fn finish_replay(
        &mut self,
        session: SessionId,
        generation: u64,
        result: Result<Vec<StoredMessage>, crate::store::StoreError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(member) = self.members.get_mut(&session).filter(|m| m.catch_up.generation() == generation) else {
            return;
        };
        match result {
            Ok(messages) => {
                let replay: Arc<[OutFrame]> = messages.iter().map(|m| OutFrame::replayed(m.seq, &frames::event(m))).collect();
                let replay = (!replay.is_empty()).then_some(replay);
                for batch in member.catch_up.finish(generation, replay).unwrap_or_default() {
                    member.recipient.do_send(RoomEvent::Messages { room: self.id, frames: batch });
                }
            }
            Err(e) => {
                log::warn!("room {}: replay failed: {e}", self.name);
                let recipient = member.recipient.clone();
                self.remove_member(session, ctx);
                recipient.do_send(RoomEvent::Removed {
                    room: self.name.clone(),
                    code: ErrorCode::Unavailable,
                    message: "could not read the missed messages; join again".into(),
                });
            }
        }
    }
}

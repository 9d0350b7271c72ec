//! The room actor's start and end: subscribe, read where the room stands,
//! stop when idle, and leave nothing registered behind.

use actix::prelude::*;

use super::Room;
use crate::cache::recent::Window;
use crate::chat::presence_store::RemoteOnline;
use crate::chat::sequencer::Sequenced;
use crate::metrics::METRICS;
use crate::store::writer::Committed;

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        METRICS.rooms_active.inc();
        // Bounds only what waits for an answer (`send`: joins, history and
        // online reads), which parks behind a full mailbox; deliveries come
        // by `do_send`, which never waits, and are bounded upstream (the
        // writer's queue, the bus). Actix's default of 16 would park a join
        // behind any burst of deliveries.
        ctx.set_mailbox_capacity(4096);
        let bus = self.host.bus();
        bus.subscribe(self.id);
        // Read last_seq after registering and subscribing, so every commit is
        // either counted here or delivered to this actor; read who is online
        // elsewhere. Joins wait until both are known.
        let store = self.store.clone();
        let presence = self.host.presence().clone();
        let recent = self.host.recent().clone();
        let (id, name) = (self.id, self.name.clone());
        ctx.wait(
            async move {
                let (model, others) = futures_util::join!(store.room_by_name(&name), async {
                    tokio::time::timeout(std::time::Duration::from_millis(500), presence.others(id)).await.unwrap_or_default()
                });
                let window = match &model {
                    Ok(Some(m)) => recent.load(&store, id, &name, m.last_seq).await,
                    _ => Window::new(),
                };
                (model, others, window)
            }
            .into_actor(self)
            .map(|(model, others, window), room, ctx| {
                match model {
                    Ok(Some(model)) => {
                        let released = room.sequencer.skip_to(model.last_seq);
                        room.release(released, ctx);
                    }
                    Ok(None) => log::error!("room {} vanished from the database", room.name),
                    Err(e) => log::warn!("room {}: could not refresh last_seq: {e}", room.name),
                }
                room.window.adopt(window, room.sequencer.delivered());
                for RemoteOnline { instance, user_id, user } in others {
                    room.roster.set_remote(&instance, user_id, &user, true);
                }
            }),
        );
        if bus.is_shared() {
            ctx.run_interval(self.settings.resync, |room, ctx| room.tick(ctx));
        }
        self.arm_idle_stop(ctx);
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if !self.members.is_empty() {
            return Running::Continue;
        }
        self.host.stopped(self.id, self.generation);
        Running::Stop
    }
}

/// In Drop rather than `stopped`, so it also runs when the actor's task
/// unwinds from a panic (sessions then rejoin a fresh room actor).
impl Drop for Room {
    fn drop(&mut self) {
        METRICS.rooms_active.dec();
        self.host.bus().unsubscribe(self.id);
    }
}

impl Sequenced for Committed {
    fn seq(&self) -> i64 {
        self.message.seq
    }
}

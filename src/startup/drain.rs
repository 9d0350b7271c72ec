//! The end of a run: a termination signal, then the drain (readiness says
//! `draining`, clients get paced `reconnect` frames, the server stops
//! accepting once they have gone).

use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web;
use rand::Rng;

use crate::bus::{BusEvent, Channel};
use crate::connections::Control;
use crate::state::AppState;

pub(super) async fn wait_for_signal() {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        log::error!("cannot install the SIGTERM handler; only Ctrl-C stops gracefully");
        let _ = actix_web::rt::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM: draining"),
        _ = actix_web::rt::signal::ctrl_c() => log::info!("SIGINT: draining"),
    }
}

/// Drain: readiness says `draining`, sessions get `reconnect` in paced batches
/// with jittered delays, then the server stops accepting and finishes.
pub(super) async fn shutdown(state: web::Data<AppState>, handle: ServerHandle) {
    state.start_draining();
    let config = &state.config;
    let started = Instant::now();
    let sessions = state.connections.all();
    let jitter_ms = config.drain.jitter.as_millis() as u64 + 1;
    log::info!(
        "draining {} connections in batches of {} every {:?}",
        sessions.len(),
        config.drain.batch_size,
        config.drain.batch_interval
    );
    for (i, chunk) in sessions.chunks(config.drain.batch_size).enumerate() {
        if i > 0 {
            actix_web::rt::time::sleep(config.drain.batch_interval).await;
        }
        for recipient in chunk {
            // Spread the returns so the other replicas see a trickle, not a storm.
            let after_ms = 100 + rand::thread_rng().gen_range(0..jitter_ms);
            recipient.do_send(Control::Drain { after_ms });
        }
    }
    // Sessions close once their pending acks are in (at most the grace period).
    let deadline = Instant::now() + config.drain.grace + Duration::from_millis(500);
    while state.connections.count() > 0 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    state.bus.publish(Channel::Control, BusEvent::Goodbye);
    log::info!("drained in {:?}", started.elapsed());
    handle.stop(true).await;
}

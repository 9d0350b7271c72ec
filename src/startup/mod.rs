//! `Application::build` makes the parts in the order they need each other
//! (each step a function in `parts`): the store, Redis, the bus, the rooms,
//! the cluster-wide state, the writer, then the HTTP server.
//! `run_until_stopped` serves until SIGTERM/SIGINT, then drains (`drain`):
//! readiness turns `draining`, clients get paced `reconnect` frames, the
//! server stops accepting, the writer flushes, exit 0.

mod drain;
mod parts;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::web;

use crate::bus::Bus;
use crate::config::Config;
use crate::state::{AppState, Parts};
use crate::supervisor;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] crate::store::bootstrap::BootstrapError),
    #[error("cannot listen on {addr}: {cause}")]
    Bind { addr: SocketAddr, cause: std::io::Error },
    #[error(transparent)]
    Traces(#[from] crate::telemetry::export::ExportError),
    #[error("database preparation thread died")]
    PreparationDied,
    #[error("cannot create the default room {room}: {cause}")]
    DefaultRoom { room: String, cause: crate::store::StoreError },
    #[error("{var} is not usable: {cause}")]
    Redis { var: &'static str, cause: bb8_redis::redis::RedisError },
}

pub struct Application {
    addr: SocketAddr,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let config = Arc::new(config);
        parts::observability(&config)?;
        let store = parts::store(&config).await?;
        let (medium, redis) = parts::redis(&config)?;
        // The bus comes before everything that publishes on it; what listens
        // to it is made from those parts, and starts its intake.
        let (bus, intake) = Bus::build(&config.cluster.instance_id, medium);
        let (registry, recent) = parts::rooms(&config, &store, redis.as_ref(), &bus);
        let cluster = parts::cluster(&config, redis.as_ref(), &registry, &bus);
        intake.start(parts::inbound(&config, &registry, &cluster));
        let writer = parts::writer(&config, &store, &registry);
        parts::warm_windows(&config, &store, recent);
        let state = web::Data::new(AppState::new(Parts {
            config: config.clone(),
            store,
            writer,
            registry,
            connections: cluster.connections,
            bus,
            redis,
            liveness: cluster.liveness,
            caches: cluster.caches,
            stats: cluster.stats,
            revoker: cluster.revoker,
        }));
        parts::background(&state);
        let (addr, server) = parts::http(&config, state.clone())?;
        Ok(Application { addr, server, state })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until a termination signal, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let state = self.state.clone();
        actix_web::rt::spawn(async move {
            drain::wait_for_signal().await;
            drain::shutdown(state, handle).await;
        });
        self.server.await?;
        supervisor::stopping();
        // Everything accepted is committed (or answered) before exit.
        self.state.writer.flush_and_close().await;
        crate::telemetry::flush();
        log::info!("stopped");
        Ok(())
    }
}

//! `Application::build` wires the pieces together (database, writer,
//! registry, HTTP server) and `run_until_stopped` serves until SIGTERM/SIGINT,
//! then drains: readiness turns `draining`, clients get paced `reconnect`
//! frames, the server stops accepting, the writer flushes, exit 0.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use rand::Rng;

use std::sync::atomic::AtomicU8;

use bb8_redis::redis;

use crate::bus::local::LocalHub;
use crate::bus::redis::{RedisTransport, Subscriber};
use crate::bus::{Bus, BusEvent, BusState, Channel, Subscriptions, Transport};
use crate::cache::recent::RecentLists;
use crate::cache::Caches;
use crate::chat::inbound::Inbound;
use crate::chat::room::RoomSettings;
use crate::chat::Registry;
use crate::cluster::lease::Lease;
use crate::cluster::presence::PresenceStore;
use crate::cluster::revocation::Revoker;
use crate::cluster::{run_heartbeats, Liveness};
use crate::config::Config;
use crate::metrics::METRICS;
use crate::redis_pool::RedisPool;
use crate::request_timing::RequestTiming;
use crate::routes;
use crate::state::{AppState, Parts};
use crate::stats::StatsBoard;
use crate::store::bootstrap::{prepare_database, BootstrapError};
use crate::store::writer::{Writer, WriterConfig};
use crate::store::Store;
use crate::supervisor::{self, Task};
use crate::ws::connections::Control;
use crate::ws::Connections;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] BootstrapError),
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
        log::info!(
            "starting instance {} (database {}, redis {})",
            config.cluster.instance_id,
            config.database.kind.describe(),
            config.redis.describe(),
        );
        crate::telemetry::init(&config.observability.traces, &config.cluster.instance_id)?;
        // Label sets owned above the metrics registry, at zero from the start.
        crate::supervisor::expose_metrics();
        crate::cluster::revocation::expose_metrics();
        crate::ws::expose_metrics();
        // Migrations block; run them on a plain thread (see store::bootstrap).
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (database, wait) = (config.database.kind.clone(), config.database.startup_wait);
        std::thread::spawn(move || {
            let _ = tx.send(prepare_database(&database, wait));
        });
        rx.await.map_err(|_| StartupError::PreparationDied)??;

        let store = Store::new(&config);
        store.spawn_replica_monitor();
        store.spawn_checkpointer();
        // Somewhere to talk from the start (several instances may do this at
        // once: creation is insert-if-missing).
        for name in &config.rooms.default_rooms {
            store
                .ensure_public_room(name, None)
                .await
                .map_err(|cause| StartupError::DefaultRoom { room: name.to_string(), cause })?;
        }
        let redis: Option<(Subscriber, RedisPool)> = if !config.redis.cluster_urls.is_empty() {
            let pool = crate::redis_pool::build_cluster(&config.redis.cluster_urls)
                .map_err(|cause| StartupError::Redis { var: "REDIS_CLUSTER_URLS", cause })?;
            Some((Subscriber::Cluster(config.redis.cluster_urls.clone()), pool))
        } else if let Some(url) = &config.redis.url {
            let client = redis::Client::open(url.as_str()).map_err(|cause| StartupError::Redis { var: "REDIS_URL", cause })?;
            // Lazy: Redis may come up after us; readiness says so meanwhile.
            let pool = crate::redis_pool::build(url, config.redis.pool_max)
                .map_err(|cause| StartupError::Redis { var: "REDIS_URL", cause })?;
            Some((Subscriber::Single(client), pool))
        } else {
            None
        };
        let redis_pool = redis.as_ref().map(|(_, pool)| pool.clone());
        let presence =
            PresenceStore::new(redis_pool.clone(), &config.redis.key_prefix, &config.cluster.instance_id, config.cluster.ttl);
        let recent = RecentLists::new(
            if config.cache.enabled { config.rooms.recent_window } else { 0 },
            redis_pool.as_ref().map(|pool| (pool.clone(), config.redis.key_prefix.clone())),
        );
        let registry = Registry::new(
            store.clone(),
            RoomSettings {
                replay_limit: config.rooms.replay_limit,
                idle: config.rooms.idle,
                gap_heal: config.rooms.gap_heal,
                resync: config.rooms.resync,
            },
            presence,
            recent.clone(),
        );
        let connections = Connections::default();
        let liveness = Arc::new(Liveness::new(config.cluster.ttl));
        // Single-instance mode has nobody whose revocations could be missed.
        let lease = if redis_pool.is_some() { Lease::new(config.cache.lease) } else { Lease::always() };
        let caches = Arc::new(Caches::new(
            &config.cache,
            redis_pool.as_ref().map(|pool| (pool, config.redis.key_prefix.as_str())),
            lease.clone(),
        ));
        let stats = Arc::new(StatsBoard::new(&config.cluster.instance_id, config.cluster.ttl));
        let revoker = Revoker::new(
            &config.cluster.instance_id,
            caches.clone(),
            connections.clone(),
            registry.clone(),
            liveness.clone(),
            lease.clone(),
        );
        let (inbound, control_loop) = Inbound::new(
            &config.cluster.instance_id,
            registry.clone(),
            liveness.clone(),
            caches.clone(),
            stats.clone(),
            revoker.clone(),
        );
        supervisor::spawn(Task::ControlLoop, move || control_loop.clone().run());
        let subscriptions = Arc::new(Subscriptions::default());
        let bus_state =
            Arc::new(AtomicU8::new(if redis_pool.is_some() { BusState::Disconnected } else { BusState::Local } as u8));
        let transport: Arc<dyn Transport> = match redis {
            Some((subscriber, pool)) => RedisTransport::start(
                subscriber,
                pool,
                config.redis.key_prefix.clone(),
                subscriptions.clone(),
                bus_state.clone(),
                inbound,
            ),
            None => Arc::new(LocalHub::default().join(subscriptions.clone(), inbound)),
        };
        let bus = Bus::new(&config.cluster.instance_id, transport, subscriptions, bus_state);
        registry.attach_bus(bus.clone());
        caches.attach_bus(&bus);
        revoker.attach_bus(bus.clone());
        let (lease_bus, lease_pings) = (bus.clone(), lease.clone());
        supervisor::spawn(Task::LeasePings, move || crate::cluster::lease::run_pings(lease_bus.clone(), lease_pings.clone()));
        let writer = Writer::start(
            WriterConfig {
                shards: config.writer.shards,
                batch_max: config.writer.batch_max,
                queue: config.writer.queue,
                write_timeout: config.writer.write_timeout,
                stall: config.writer.stall,
            },
            store.settings().clone(),
            Arc::new(crate::chat::fanout::Fanout::new(registry.clone())),
        );
        // Readiness waits for the hottest rooms' windows (bounded in time).
        let warm_store = store.clone();
        let (warm_rooms, warm_budget) = (config.rooms.warm_rooms, config.rooms.warm_timeout);
        actix_web::rt::spawn(async move { recent.warm(&warm_store, warm_rooms, warm_budget).await });
        let (hb_bus, hb_liveness, hb_registry, every) =
            (bus.clone(), liveness.clone(), registry.clone(), config.cluster.heartbeat);
        supervisor::spawn(Task::Heartbeats, move || {
            run_heartbeats(hb_bus.clone(), hb_liveness.clone(), hb_registry.clone(), every)
        });
        let state = web::Data::new(AppState::new(Parts {
            config: config.clone(),
            store,
            writer,
            registry,
            connections,
            bus,
            redis: redis_pool,
            liveness,
            caches,
            stats,
            revoker,
        }));
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r_state, r_ready) = (state.clone(), ready.clone());
        supervisor::spawn(Task::Readiness, move || crate::stats::sampler::watch_readiness(r_state.clone(), r_ready.clone()));
        let s_state = state.clone();
        supervisor::spawn(Task::StatsSampler, move || crate::stats::sampler::run(s_state.clone(), ready.clone()));
        let h_state = state.clone();
        supervisor::spawn(Task::Housekeeping, move || crate::housekeeping::run(h_state.clone()));
        // Touch the metrics so every series exists from start-up.
        METRICS.ws_connections.set(0);

        let listener = TcpListener::bind(config.http.bind_addr)
            .map_err(|cause| StartupError::Bind { addr: config.http.bind_addr, cause })?;
        let addr = listener.local_addr().map_err(|cause| StartupError::Bind { addr: config.http.bind_addr, cause })?;
        let assets = web::Data::new(crate::assets::Assets::build(config.http.asset_base_url.as_deref()));
        let app_state = state.clone();
        let max_body = config.http.max_body_bytes;
        let slow_request = config.observability.slow_request;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(assets.clone())
                // Compression is decided per route (see routes::configure):
                // a WebSocket stream must not pass through an encoder.
                .wrap(RequestTiming::new(slow_request))
                .configure(|cfg| routes::configure(cfg, max_body))
                .default_service(web::to(routes::not_found))
        })
        .workers(config.http.workers)
        .backlog(4096)
        // Per worker; the WebSocket cap is enforced by `limits`.
        .max_connections(config.limits.max_connections + 1024)
        // Slowloris: the request head must arrive within this.
        .client_request_timeout(config.http.handshake_timeout)
        .keep_alive(config.http.keep_alive)
        .disable_signals()
        .shutdown_timeout(config.drain.shutdown_timeout.as_secs().max(1))
        .on_connect(|conn, _| {
            // Chat frames are small and latency-bound: never wait for Nagle.
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .listen(listener)
        .map_err(|cause| StartupError::Bind { addr: config.http.bind_addr, cause })?
        .run();
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
            wait_for_signal().await;
            shutdown(state, handle).await;
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

async fn wait_for_signal() {
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
async fn shutdown(state: web::Data<AppState>, handle: ServerHandle) {
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

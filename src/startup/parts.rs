//! The steps of `Application::build`, one part each, in the order they need
//! each other.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use bb8_redis::redis;

use super::StartupError;
use crate::bus::redis::Subscriber;
use crate::bus::{Bus, BusListener, Medium};
use crate::cache::lease::Lease;
use crate::cache::recent::RecentLists;
use crate::cache::Caches;
use crate::chat::presence_store::PresenceStore;
use crate::chat::room::RoomSettings;
use crate::chat::Registry;
use crate::cluster::inbound::Inbound;
use crate::cluster::revocation::Revoker;
use crate::cluster::{run_heartbeats, Liveness};
use crate::config::Config;
use crate::connections::Connections;
use crate::metrics::METRICS;
use crate::redis_pool::RedisPool;
use crate::request_timing::RequestTiming;
use crate::routes;
use crate::state::AppState;
use crate::stats::StatsBoard;
use crate::store::bootstrap::prepare_database;
use crate::store::writer::{Writer, WriterConfig};
use crate::store::Store;
use crate::supervisor::{self, Task};

/// Logs, traces and the metrics whose label sets live above the registry.
pub fn observability(config: &Config) -> Result<(), StartupError> {
    log::info!(
        "starting instance {} (database {}, redis {})",
        config.cluster.instance_id,
        config.database.kind.describe(),
        config.redis.describe(),
    );
    crate::telemetry::init(&config.observability.traces, &config.cluster.instance_id)?;
    crate::supervisor::expose_metrics();
    crate::cluster::revocation::expose_metrics();
    crate::ws::expose_metrics();
    // Touch the metrics so every series exists from start-up.
    METRICS.ws_connections.set(0);
    Ok(())
}

/// The database, migrated, with its background duties and default rooms.
pub async fn store(config: &Config) -> Result<Store, StartupError> {
    // Migrations block; run them on a plain thread (see store::bootstrap).
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (database, wait) = (config.database.kind.clone(), config.database.startup_wait);
    std::thread::spawn(move || {
        let _ = tx.send(prepare_database(&database, wait));
    });
    rx.await.map_err(|_| StartupError::PreparationDied)??;
    let store = Store::new(config);
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
    Ok(store)
}

/// Where the bus runs, and the Redis pool for the shared caches, presence
/// and limits (none without Redis: one instance, all in process).
pub fn redis(config: &Config) -> Result<(Medium, Option<RedisPool>), StartupError> {
    let (subscriber, pool) = if !config.redis.cluster_urls.is_empty() {
        let pool = crate::redis_pool::build_cluster(&config.redis.cluster_urls)
            .map_err(|cause| StartupError::Redis { var: "REDIS_CLUSTER_URLS", cause })?;
        (Subscriber::Cluster(config.redis.cluster_urls.clone()), pool)
    } else if let Some(url) = &config.redis.url {
        let client = redis::Client::open(url.as_str()).map_err(|cause| StartupError::Redis { var: "REDIS_URL", cause })?;
        // Lazy: Redis may come up after us; readiness says so meanwhile.
        let pool = crate::redis_pool::build(url, config.redis.pool_max)
            .map_err(|cause| StartupError::Redis { var: "REDIS_URL", cause })?;
        (Subscriber::Single(client), pool)
    } else {
        return Ok((Medium::Local, None));
    };
    let medium = Medium::Redis { subscriber, pool: pool.clone(), prefix: config.redis.key_prefix.clone() };
    Ok((medium, Some(pool)))
}

/// The room registry (room actors start on demand) and the rooms' recent
/// lists.
pub fn rooms(config: &Config, store: &Store, redis: Option<&RedisPool>, bus: &Bus) -> (Registry, RecentLists) {
    let presence = PresenceStore::new(redis.cloned(), &config.redis.key_prefix, &config.cluster.instance_id, config.cluster.ttl);
    let recent = RecentLists::new(
        if config.cache.enabled { config.rooms.recent_window } else { 0 },
        redis.map(|pool| (pool.clone(), config.redis.key_prefix.clone())),
    );
    let settings = RoomSettings {
        replay_limit: config.rooms.replay_limit,
        idle: config.rooms.idle,
        gap_heal: config.rooms.gap_heal,
        resync: config.rooms.resync,
    };
    (Registry::new(store.clone(), settings, presence, recent.clone(), bus.clone()), recent)
}

/// What this instance shares with the others: who is alive, the caches and
/// the lease their answers depend on, the stats board, revocations and the
/// index of this instance's sockets they act on.
pub struct Cluster {
    pub connections: Connections,
    pub liveness: Arc<Liveness>,
    pub caches: Arc<Caches>,
    pub stats: Arc<StatsBoard>,
    pub revoker: Arc<Revoker>,
}

pub fn cluster(config: &Config, redis: Option<&RedisPool>, registry: &Registry, bus: &Bus) -> Cluster {
    let instance = &config.cluster.instance_id;
    let connections = Connections::default();
    let liveness = Arc::new(Liveness::new(config.cluster.ttl));
    // Single-instance mode has nobody whose revocations could be missed.
    let lease = if redis.is_some() { Lease::new(config.cache.lease) } else { Lease::always() };
    let l2 = redis.map(|pool| (pool, config.redis.key_prefix.as_str()));
    let caches = Arc::new(Caches::new(&config.cache, l2, lease.clone(), bus));
    let stats = Arc::new(StatsBoard::new(instance, config.cluster.ttl));
    let revoker =
        Revoker::new(instance, caches.clone(), connections.clone(), registry.clone(), liveness.clone(), lease, bus.clone());
    Cluster { connections, liveness, caches, stats, revoker }
}

/// What hears the bus: room traffic to the rooms, control events through
/// their ordered loop (started here).
pub fn inbound(config: &Config, registry: &Registry, cluster: &Cluster) -> Arc<dyn BusListener> {
    let (inbound, control_loop) = Inbound::new(
        &config.cluster.instance_id,
        registry.clone(),
        cluster.liveness.clone(),
        cluster.caches.clone(),
        cluster.stats.clone(),
        cluster.revoker.clone(),
    );
    supervisor::spawn(Task::ControlLoop, move || control_loop.clone().run());
    inbound
}

/// The writer: commits sends in batches and hands each commit to the rooms
/// (and, through them, the bus).
pub fn writer(config: &Config, store: &Store, registry: &Registry) -> Writer {
    let w = &config.writer;
    Writer::start(
        WriterConfig { shards: w.shards, batch_max: w.batch_max, queue: w.queue, write_timeout: w.write_timeout, stall: w.stall },
        store.settings().clone(),
        Arc::new(crate::chat::fanout::Fanout::new(registry.clone())),
    )
}

/// Readiness waits for the hottest rooms' windows (bounded in time).
pub fn warm_windows(config: &Config, store: &Store, recent: RecentLists) {
    let store = store.clone();
    let (rooms, budget) = (config.rooms.warm_rooms, config.rooms.warm_timeout);
    actix_web::rt::spawn(async move { recent.warm(&store, rooms, budget).await });
}

/// The supervised tasks that run for the instance's life.
pub fn background(state: &web::Data<AppState>) {
    let (bus, lease) = (state.bus.clone(), state.revoker.lease().clone());
    supervisor::spawn(Task::LeasePings, move || crate::cache::lease::run_pings(bus.clone(), lease.clone()));
    let (bus, liveness, registry, every) =
        (state.bus.clone(), state.liveness.clone(), state.registry.clone(), state.config.cluster.heartbeat);
    supervisor::spawn(Task::Heartbeats, move || run_heartbeats(bus.clone(), liveness.clone(), registry.clone(), every));
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (r_state, r_ready) = (state.clone(), ready.clone());
    supervisor::spawn(Task::Readiness, move || crate::sampling::watch_readiness(r_state.clone(), r_ready.clone()));
    let s_state = state.clone();
    supervisor::spawn(Task::StatsSampler, move || crate::sampling::run(s_state.clone(), ready.clone()));
    let h_state = state.clone();
    supervisor::spawn(Task::Housekeeping, move || crate::housekeeping::run(h_state.clone()));
}

/// The HTTP server, listening (it serves once awaited).
pub fn http(config: &Config, state: web::Data<AppState>) -> Result<(SocketAddr, Server), StartupError> {
    let bind = config.http.bind_addr;
    let failed = |cause| StartupError::Bind { addr: bind, cause };
    let listener = TcpListener::bind(bind).map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let assets = web::Data::new(crate::assets::Assets::build(config.http.asset_base_url.as_deref()));
    // Apart from the state, so the `AuthUser` extractor needs nothing more.
    let authenticator = web::Data::from(state.authenticator.clone());
    let (max_body, slow_request) = (config.http.max_body_bytes, config.observability.slow_request);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(authenticator.clone())
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
    .map_err(failed)?
    .run();
    Ok((addr, server))
}

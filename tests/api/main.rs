//! Integration tests against real server processes, real PostgreSQL (or the
//! embedded SQLite file) and real sockets. One test binary, so it links once.

/// A single-instance contract test that runs once per backend, as
/// `name::postgres` and `name::sqlite`: every `TestDb` (and so every
/// `spawn_app`) in it uses that backend.
macro_rules! on_both_backends {
    ($(async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run() $body

            #[actix_web::test]
            async fn postgres() {
                crate::support::use_backend(crate::support::Backend::Postgres);
                run().await
            }

            #[actix_web::test]
            async fn sqlite() {
                crate::support::use_backend(crate::support::Backend::Sqlite);
                run().await
            }
        }
    )*};
}

/// A scenario that runs in every bus mode: one instance without Redis,
/// `instances` over Redis, and as many over a Redis Cluster. One test per
/// mode (`name::single_instance`, `name::over_redis`,
/// `name::over_redis_cluster`), so one failure does not hide the others.
macro_rules! in_every_mode {
    (instances: $n:literal; $($(#[$attr:meta])* async fn $name:ident($mode:ident: Mode) $body:block)*) => {$(
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($mode: crate::support::Mode) $body

            #[actix_web::test]
            async fn single_instance() {
                run(crate::support::Mode::Single).await
            }

            #[actix_web::test]
            async fn over_redis() {
                run(crate::support::Mode::Redis($n)).await
            }

            #[actix_web::test]
            async fn over_redis_cluster() {
                run(crate::support::Mode::RedisCluster($n)).await
            }
        }
    )*};
}

mod auth;
mod browser;
mod cache;
mod client;
mod cluster;
mod database;
mod delivery;
mod deploy;
mod dms;
mod edits;
mod failover;
mod faults;
mod frames;
mod fuzz;
mod limits;
mod memory;
mod messages;
mod moderation;
mod observability;
mod pages;
mod plans;
mod reads;
mod rolling;
mod rooms;
mod security;
mod shutdown;
mod slow_readers;
mod stalled_database;
mod startup;
mod supervision;
mod support;
mod traces;

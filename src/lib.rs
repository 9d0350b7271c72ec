//! Switchboard: a real-time chat server.
//!
//! How a message flows (each step is a module):
//! socket -> `ws::session` (Session actor) -> `store::writer` (group commit in
//! PostgreSQL) -> `chat::registry` -> `chat::room` (Room actor, ordered
//! fan-out) -> `ws::session` of every member -> socket; and from the writer
//! over `bus` (Redis pub/sub) and `cluster::inbound` to the rooms of other
//! instances.

pub mod access;
pub mod assets;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod domain;
pub mod edits;
pub mod error;
pub mod frames;
pub mod housekeeping;
pub mod limits;
pub mod metrics;
pub mod readiness;
pub mod reads;
pub mod redis_pool;
pub mod request_timing;
pub mod routes;
pub mod sampling;
pub mod startup;
pub mod state;
pub mod stats;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod time;
pub mod ws;

//! Test harness: every test gets its own database and its own server process
//! (the real binary, on a random port) and talks to it over real HTTP and
//! WebSocket connections.

mod app;
mod cluster;
mod db;
pub mod fleet;
pub mod otlp;
pub mod proxy;
pub mod services;
mod tools;
mod wait;
mod ws;

pub use app::*;
pub use cluster::*;
pub use db::*;
pub use tools::*;
pub use wait::*;
pub use ws::*;

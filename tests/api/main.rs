//! Integration tests against real server processes, real PostgreSQL and real
//! sockets. One test binary, so it links once.

mod auth;
mod browser;
mod cache;
mod cluster;
mod database;
mod delivery;
mod deploy;
mod fleet;
mod fuzz;
mod frames;
mod helpers;
mod messages;
mod observability;
mod pages;
mod plans;
mod proxy;
mod reliability;
mod rolling;
mod rooms;
mod security;
mod shutdown;
mod startup;

//! Live figures for `/admin`: each instance samples its metrics once a
//! second into a snapshot (`sampler`, driven by the sampling task),
//! publishes it on the bus, and any instance aggregates the latest
//! snapshots of all (`board`, `report`).

pub mod board;
pub mod distribution;
pub mod report;
pub mod sampler;
pub mod snapshot;
pub mod totals;
pub mod traffic;

pub use board::StatsBoard;
pub use snapshot::Snapshot;

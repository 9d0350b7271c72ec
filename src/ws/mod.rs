//! The WebSocket edge: the HTTP upgrade, one `Session` actor per connection,
//! the frame types, and the index of live connections (for revocation and
//! draining).

pub mod connections;
pub mod outbound;
pub mod protocol;
pub mod rate_limit;
pub mod session;
pub mod streams;
pub mod test_hooks;
pub mod upgrade;

pub use connections::Connections;

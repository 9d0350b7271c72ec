//! The WebSocket edge: the HTTP upgrade, one `Session` actor per connection,
//! the frame types, and the index of live connections (for revocation and
//! draining).

pub mod admission;
pub mod connections;
pub mod outbound;
pub mod protocol;
pub mod rate_limit;
pub mod session;
pub mod streams;
pub mod test_hooks;
pub mod timers;
pub mod upgrade;

pub use connections::Connections;

/// Every error code's counter (`switchboard_ws_errors_total`), at zero from start-up.
pub fn expose_metrics() {
    let metrics = &crate::metrics::METRICS;
    metrics.expose(&metrics.ws_errors, crate::error::ErrorCode::ALL.map(crate::error::ErrorCode::as_str));
}
